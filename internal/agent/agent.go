package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Summary counts what a run did with the files it found.
type Summary struct {
	Uploaded  int   // files whose upload completed
	Skipped   int   // finished files the server already has (or verified: 409), or does not want now
	Failed    int   // files whose upload failed (RunOnce: after a second try)
	Deleted   int   // verified files deleted locally (DeleteVerified)
	BytesSent int64 // bytes sent in PATCH bodies (including any re-sent after a drop)
}

func (s Summary) String() string {
	return fmt.Sprintf("%d uploaded, %d skipped, %d failed, %d deleted, %d bytes sent",
		s.Uploaded, s.Skipped, s.Failed, s.Deleted, s.BytesSent)
}

// errFileChanged: the file changed after it was found finished or hashed; it is left for the
// next scan (never uploaded with a checksum of other bytes).
var errFileChanged = errors.New("file changed since it was hashed")

type agent struct {
	cfg     Config
	log     *slog.Logger
	c       *client
	st      *state
	sc      *scanner
	limiter *rate.Limiter // nil: unlimited
	prog    *progress
	q       *queue

	mu        sync.Mutex
	sum       Summary
	completed map[string]completion // job key -> the last upload this agent completed
	warned    map[string]bool       // upload keys already warned about (differs from the server's copy)
}

// completion is an upload the agent completed: which bytes, and when.
type completion struct {
	sha256 string
	at     time.Time
}

func newAgent(cfg Config, log *slog.Logger) (*agent, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	st, err := loadState(cfg.StateDir)
	if st == nil {
		return nil, err
	}
	if err != nil {
		log.Warn("agent state", "error", err)
	}
	a := &agent{cfg: cfg, log: log, c: c, st: st, sc: newScanner(cfg), q: newQueue(),
		completed: map[string]completion{}, warned: map[string]bool{}}
	if cfg.BandwidthBytesPerSecond > 0 {
		burst := min(cfg.BandwidthBytesPerSecond, 256<<10)
		a.limiter = rate.NewLimiter(rate.Limit(cfg.BandwidthBytesPerSecond), int(burst))
	}
	a.prog = newProgress(cfg.Progress, log, cfg.ProgressEvery)
	return a, nil
}

// RunOnce does one pass: fetch the manifest, find the finished files, upload (or delete) what
// needs it, and return. A file that fails is tried once more at the back of the queue; the
// error is non-nil when any file failed or the manifest could not be had.
func RunOnce(ctx context.Context, cfg Config, log *slog.Logger) (Summary, error) {
	a, err := newAgent(cfg, log)
	if err != nil {
		return Summary{}, err
	}
	stopProgress := a.prog.start()
	defer stopProgress()
	if err := a.scanAndQueue(ctx); err != nil {
		return Summary{}, err
	}
	a.work(ctx, true)
	sum := a.summary()
	if ctx.Err() != nil {
		return sum, ctx.Err()
	}
	if sum.Failed > 0 {
		return sum, fmt.Errorf("%d of the files failed to upload", sum.Failed)
	}
	return sum, nil
}

// Run scans every ScanEvery and uploads with Concurrency slots until ctx is done. An upload in
// flight is abandoned on cancellation (the server keeps what it confirmed; the next start
// resumes there).
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	a, err := newAgent(cfg, log)
	if err != nil {
		return err
	}
	a.log.Info("upload agent started", "server", a.cfg.ServerURL, "enclosure", a.cfg.Enclosure,
		"video_dir", a.cfg.VideoDir, "concurrency", a.cfg.Concurrency,
		"bandwidth_bytes_per_second", a.cfg.BandwidthBytesPerSecond, "delete_verified", a.cfg.DeleteVerified)
	stopProgress := a.prog.start()
	defer stopProgress()
	done := make(chan struct{})
	go func() { defer close(done); a.work(ctx, false) }()
	t := time.NewTicker(a.cfg.ScanEvery)
	defer t.Stop()
	for {
		if err := a.scanAndQueue(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("scan failed; trying again at the next scan", "error", err)
		}
		select {
		case <-ctx.Done():
			<-done
			a.log.Info("upload agent stopped", "summary", a.summary().String())
			return nil
		case <-t.C:
		}
	}
}

func (a *agent) summary() Summary {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sum
}

func (a *agent) count(f func(*Summary)) {
	a.mu.Lock()
	f(&a.sum)
	a.mu.Unlock()
}

// scanAndQueue fetches the manifest, scans the video directory and queues every finished file.
func (a *agent) scanAndQueue(ctx context.Context) error {
	asked := time.Now()
	m, err := a.c.fetchManifest(ctx)
	if err != nil {
		return err
	}
	now := a.cfg.Now()
	files, err := a.sc.scan(m, now)
	if err != nil {
		return fmt.Errorf("scanning %s: %w", a.cfg.VideoDir, err)
	}
	seen := make(map[string]bool, len(files))
	queued, waiting := 0, 0
	for _, f := range files {
		seen[f.path] = true
		if !f.finished {
			waiting++
			continue
		}
		entry, known := f.session.file(f.name)
		if a.q.push(&job{f: f, entry: entry, known: known, manifestAt: asked}) {
			queued++
		}
	}
	a.log.Debug("scan", "sessions", len(m.Sessions), "files", len(files), "unfinished", waiting, "queued", queued)
	if err := a.st.forgetHashes(func(p string) bool {
		if seen[p] {
			return false
		}
		_, err := os.Stat(p)
		return errors.Is(err, os.ErrNotExist)
	}); err != nil {
		a.log.Warn("saving agent state", "error", err)
	}
	return nil
}

// work runs Concurrency upload slots. once: stop when the queue is empty, and give each file
// two tries; otherwise run until ctx is done, trying failed files again later.
func (a *agent) work(ctx context.Context, once bool) {
	var wg sync.WaitGroup
	for range a.cfg.Concurrency {
		wg.Go(func() {
			for {
				j, wait, empty := a.q.pop(a.cfg.Now())
				if j == nil {
					if once && empty {
						return
					}
					select {
					case <-ctx.Done():
						return
					case <-a.q.wake:
					case <-time.After(min(wait, time.Second)):
					}
					continue
				}
				err := a.process(ctx, j)
				switch {
				case err == nil || ctx.Err() != nil:
					a.q.finish(j)
				case errors.Is(err, errFileChanged), errors.Is(err, os.ErrNotExist):
					a.log.Info("file changed or vanished; left for the next scan", "file", j.f.path, "reason", err)
					a.q.finish(j)
				default:
					j.failures++
					a.log.Error("upload failed", "file", j.f.path, "session", j.f.session.SessionID,
						"attempt", j.failures, "error", err)
					if once && j.failures >= 2 {
						a.count(func(s *Summary) { s.Failed++ })
						a.q.finish(j)
						continue
					}
					// To the back of the queue; the file is tried again after a pause.
					pause := min(a.cfg.RetryMax*time.Duration(1<<min(j.failures-1, 4)), 15*time.Minute)
					if once {
						pause = a.cfg.RetryBase
					}
					a.q.requeue(j, a.cfg.Now().Add(pause))
				}
			}
		})
	}
	wg.Wait()
}

// process decides what a finished file needs and does it: nothing, a deletion, an upload (new
// or resumed).
func (a *agent) process(ctx context.Context, j *job) error {
	f := j.f
	info, err := os.Stat(f.path)
	if err != nil {
		return err
	}
	if info.Size() != f.size || !info.ModTime().Equal(f.mtime) {
		return errFileChanged
	}
	sum, ok := a.st.cachedHash(f.path, f.size, f.mtime)
	if !ok {
		var size int64
		var mtime time.Time
		sum, size, mtime, err = hashFile(ctx, f.path)
		if err != nil {
			return fmt.Errorf("hashing: %w", err)
		}
		if size != f.size || !mtime.Equal(f.mtime) {
			return errFileChanged
		}
		if err := a.st.setHash(f.path, size, mtime, sum); err != nil {
			a.log.Warn("saving agent state", "error", err)
		}
	}
	sid := f.session.SessionID
	key := uploadKey(sid, f.name, sum)
	jk := j.key()
	e := j.entry
	same := j.known && e.SHA256 == sum && e.Size == f.size
	a.mu.Lock()
	c, ok := a.completed[jk]
	a.mu.Unlock()
	if ok && c.sha256 == sum && c.at.After(j.manifestAt) {
		// Uploaded after the manifest was read: whatever it says is stale.
		a.count(func(s *Summary) { s.Skipped++ })
		return nil
	}
	fresh := false
	switch {
	case j.known && e.Reupload:
		fresh = true
	case same && e.State == StateVerified:
		a.count(func(s *Summary) { s.Skipped++ })
		if a.cfg.DeleteVerified {
			return a.deleteVerified(f, sum)
		}
		return nil
	case same && e.State == StateUploaded:
		a.count(func(s *Summary) { s.Skipped++ })
		return nil
	case j.known && (e.State == StateVerified || e.State == StateUploaded || e.State == StateCorrupt):
		// The server holds other bytes under this name (or judged them corrupt and has not asked
		// for them again): it decides; the agent does not overwrite on its own.
		a.mu.Lock()
		warn := !same && !a.warned[key]
		a.warned[key] = true
		a.mu.Unlock()
		if warn { // once per file and checksum, not every scan
			a.log.Warn("local file differs from the server's copy; not sent unless the server asks again",
				"file", f.path, "session", sid, "server_state", e.State, "server_sha256", e.SHA256, "local_sha256", sum)
		}
		a.count(func(s *Summary) { s.Skipped++ })
		return nil
	}

	resume := ""
	if fresh {
		if u := a.st.uploadURL(key); u != "" && u != a.c.resolve(e.UploadURL) {
			resume = u // a new upload of ours, interrupted
		}
	} else {
		if e.State == StateUploading && e.UploadURL != "" && same {
			resume = a.c.resolve(e.UploadURL)
		} else {
			resume = a.st.uploadURL(key)
		}
	}
	err = a.upload(ctx, f, sum, key, resume)
	switch {
	case errors.Is(err, errAlreadyVerified):
		a.log.Info("already verified on the server", "file", f.path, "session", sid)
		a.count(func(s *Summary) { s.Skipped++ })
		return nil
	case err != nil:
		return err
	}
	a.mu.Lock()
	a.completed[jk] = completion{sha256: sum, at: time.Now()}
	a.mu.Unlock()
	a.count(func(s *Summary) { s.Uploaded++ })
	return nil
}

// deleteVerified removes a file the server verified with the same size and SHA-256.
func (a *agent) deleteVerified(f localFile, sum string) error {
	info, err := os.Stat(f.path)
	if err != nil {
		return err
	}
	if info.Size() != f.size || !info.ModTime().Equal(f.mtime) {
		return errFileChanged
	}
	if err := os.Remove(f.path); err != nil {
		return fmt.Errorf("deleting verified file: %w", err)
	}
	a.log.Info("deleted verified file", "file", f.path, "session", f.session.SessionID, "size", f.size, "sha256", sum)
	a.count(func(s *Summary) { s.Deleted++ })
	return nil
}

// upload sends the file over tus, resuming at resume if it is given and still there. It
// returns nil once the server holds every byte.
func (a *agent) upload(ctx context.Context, f localFile, sum, key, uploadURL string) error {
	fh, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer fh.Close()
	meta := map[string]string{
		"session_id": strconv.FormatInt(f.session.SessionID, 10),
		"filename":   f.name,
		"sha256":     sum,
	}
	tr := a.prog.begin(f.name, f.size)
	defer a.prog.end(tr)
	started := time.Now()
	var offset int64 = -1 // unknown: ask the server
	failures := 0
	fail := func(err error) error {
		failures++
		if failures >= a.cfg.Attempts {
			return err
		}
		a.log.Warn("upload interrupted; resuming after a pause", "file", f.path, "error", err, "attempt", failures)
		offset = -1
		return a.sleep(ctx, failures)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if uploadURL == "" {
			u, err := a.c.create(ctx, f.size, meta)
			if err != nil {
				if errors.Is(err, errAlreadyVerified) || !temporary(ctx, err) {
					return err
				}
				if err := fail(err); err != nil {
					return err
				}
				continue
			}
			uploadURL = u
			offset = 0
			if err := a.st.setUploadURL(key, u); err != nil {
				a.log.Warn("saving agent state", "error", err)
			}
			a.log.Debug("upload created", "file", f.path, "url", u)
		}
		if offset < 0 {
			off, length, err := a.c.offset(ctx, uploadURL)
			switch {
			case errors.Is(err, errUploadGone):
				a.log.Warn("upload is gone on the server; starting a new one", "file", f.path, "url", uploadURL)
				uploadURL = ""
				_ = a.st.setUploadURL(key, "")
				continue
			case err != nil:
				if !temporary(ctx, err) {
					return err
				}
				if err := fail(err); err != nil {
					return err
				}
				continue
			case length >= 0 && length != f.size:
				a.log.Warn("upload on the server has another length; starting a new one", "file", f.path,
					"server_length", length, "size", f.size)
				_ = a.c.terminate(ctx, uploadURL)
				uploadURL = ""
				_ = a.st.setUploadURL(key, "")
				continue
			}
			offset = off
			tr.resumeAt(offset)
		}
		if offset >= f.size {
			_ = a.st.setUploadURL(key, "")
			secs := time.Since(started).Seconds()
			a.log.Info("uploaded", "file", f.path, "session", f.session.SessionID, "size", f.size, "sha256", sum,
				"seconds", round2(secs), "mb_per_s", round2(float64(tr.sent())/1e6/max(secs, 1e-3)))
			return nil
		}
		// Never send bytes other than those hashed.
		if info, err := fh.Stat(); err != nil || info.Size() != f.size || !info.ModTime().Equal(f.mtime) {
			_ = a.c.terminate(ctx, uploadURL)
			_ = a.st.setUploadURL(key, "")
			return errFileChanged
		}
		n := min(a.cfg.ChunkBytes, f.size-offset)
		next, err := a.patchChunk(ctx, uploadURL, fh, offset, n, tr)
		switch {
		case err == nil:
			if next <= offset {
				if err := fail(fmt.Errorf("server took no bytes at offset %d", offset)); err != nil {
					return err
				}
				continue
			}
			if next > f.size {
				return fmt.Errorf("server reports offset %d past the file size %d", next, f.size)
			}
			offset = next
			failures = 0
			tr.resumeAt(offset)
		case errors.Is(err, errUploadGone):
			a.log.Warn("upload is gone on the server; starting a new one", "file", f.path, "url", uploadURL)
			uploadURL = ""
			_ = a.st.setUploadURL(key, "")
		case errors.Is(err, errOffsetMismatch):
			if err := fail(err); err != nil {
				return err
			}
		case temporary(ctx, err):
			if err := fail(err); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// patchChunk sends n bytes of the file at offset in one PATCH. A PATCH that makes no progress
// for StallTimeout (a silent network: no reset, no acknowledgement) is abandoned, so that the
// upload resumes instead of waiting for TCP to give up.
func (a *agent) patchChunk(ctx context.Context, uploadURL string, fh *os.File, offset, n int64, tr *transfer) (int64, error) {
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(a.cfg.StallTimeout, func() {
		cancel(fmt.Errorf("no progress for %s", a.cfg.StallTimeout))
	})
	defer stall.Stop()
	body := &countingReader{r: io.NewSectionReader(fh, offset, n), ctx: pctx, limiter: a.limiter, tr: tr,
		counted: func(k int) {
			stall.Reset(a.cfg.StallTimeout)
			a.count(func(s *Summary) { s.BytesSent += int64(k) })
		}}
	next, err := a.c.patch(pctx, uploadURL, offset, body, n)
	if err != nil && ctx.Err() == nil && pctx.Err() != nil {
		if cause := context.Cause(pctx); !strings.Contains(err.Error(), cause.Error()) {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
	}
	return next, err
}

// temporary says whether an error may pass on its own: network errors and 5xx, not a refusal.
func temporary(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var he *HTTPError
	if errors.As(err, &he) {
		return he.temporary()
	}
	return true
}

// sleep waits the attempt's back-off: exponential from RetryBase, capped at RetryMax, with
// jitter (50-100%).
func (a *agent) sleep(ctx context.Context, attempt int) error {
	d := a.cfg.RetryBase << min(attempt-1, 20)
	if d > a.cfg.RetryMax || d <= 0 {
		d = a.cfg.RetryMax
	}
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// countingReader streams a PATCH body: it applies the bandwidth limit, counts bytes and
// reports progress.
type countingReader struct {
	r       io.Reader
	ctx     context.Context
	limiter *rate.Limiter
	tr      *transfer
	counted func(int)
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.limiter != nil {
		if b := c.limiter.Burst(); len(p) > b {
			p = p[:b]
		}
	}
	n, err := c.r.Read(p)
	if n > 0 {
		if c.limiter != nil {
			if werr := c.limiter.WaitN(c.ctx, n); werr != nil {
				return 0, werr
			}
		}
		c.tr.add(int64(n))
		c.counted(n)
	}
	return n, err
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
