package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/agent"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/simulator"
	"github.com/jax-mba/mba/internal/storage"
	"github.com/jax-mba/mba/protocol"
)

// UploadsFigures are scenario 5's results. MB are 10^6 bytes; every time is the best of
// uploadRuns.
type UploadsFigures struct {
	Verification VerificationFigures `json:"verification"`
	Upload       UploadFigures       `json:"upload"`
}

// VerificationFigures: the workflow's VerifyFile against sha256sum on the same stored file,
// both reading from the page cache.
type VerificationFigures struct {
	FileBytes     int64     `json:"file_bytes"`
	SHA256SumMBps float64   `json:"sha256sum_mb_per_s"`
	VerifyMBps    float64   `json:"verify_file_mb_per_s"`
	Ratio         float64   `json:"ratio_to_sha256sum"`
	SHA256SumS    []float64 `json:"sha256sum_runs_s"`
	VerifyS       []float64 `json:"verify_file_runs_s"`
	// OpenSSL is a second reference (`openssl dgst -sha256`, which uses the CPU's SHA
	// instructions where coreutils' sha256sum may not); zero when openssl is not installed.
	OpenSSLMBps  float64   `json:"openssl_mb_per_s,omitempty"`
	OpenSSLRatio float64   `json:"ratio_to_openssl,omitempty"`
	OpenSSLS     []float64 `json:"openssl_runs_s,omitempty"`
}

// UploadFigures: the agent uploading one finished file to the real service over loopback,
// against a plain copy of the same file on the same file system.
type UploadFigures struct {
	FileBytes int64 `json:"file_bytes"`
	// CopyMBps: io.Copy to a new file plus fsync (the server fsyncs what it stores).
	CopyMBps float64 `json:"copy_mb_per_s"`
	// AgentMBps: agent.RunOnce from start to end: manifest, SHA-256 of the file, tus upload,
	// the server moving it into storage.
	AgentMBps float64 `json:"agent_mb_per_s"`
	// TransferMBps: the agent's own figure for the upload alone (its "uploaded" log line).
	TransferMBps  float64   `json:"transfer_mb_per_s"`
	Ratio         float64   `json:"agent_ratio_to_copy"`
	TransferRatio float64   `json:"transfer_ratio_to_copy"`
	CopyS         []float64 `json:"copy_runs_s"`
	AgentS        []float64 `json:"agent_runs_s"`
	TransferS     []float64 `json:"transfer_runs_s"`
	// ServerVerifyS: from UPLOADED to VERIFIED by the service's own workflow, per upload.
	ServerVerifyS []float64 `json:"server_verify_s"`
}

const uploadRuns = 3

// storageEnv points the storage of every `mba serve` the harness starts into the run's work
// directory (the defaults are relative to the working directory).
func storageEnv(work string) {
	_ = os.Setenv("MBA_STORAGE_DIR", filepath.Join(work, "files"))
	_ = os.Setenv("MBA_STORAGE_STAGING_DIR", filepath.Join(work, "staging"))
}

// uploads: verification throughput against sha256sum (target: at least 0.8x) and the agent's
// upload throughput over loopback against a plain file copy.
func uploads(ctx context.Context, r *runner) (any, []TargetOutcome, error) {
	verifyBytes, uploadBytes := int64(2<<30), int64(1<<30)
	if r.cfg.Quick {
		verifyBytes, uploadBytes = 512<<20, 256<<20
	}
	dir, err := os.MkdirTemp(r.stack.workDir, "uploads-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	var f UploadsFigures
	if f.Verification, err = benchVerify(ctx, dir, verifyBytes); err != nil {
		return nil, nil, fmt.Errorf("verification: %w", err)
	}
	v := f.Verification
	r.printf("verification of %d MiB: sha256sum %.0f MB/s, VerifyFile %.0f MB/s: %.2fx sha256sum (best of %d)\n",
		v.FileBytes>>20, v.SHA256SumMBps, v.VerifyMBps, v.Ratio, uploadRuns)
	if v.OpenSSLMBps > 0 {
		r.printf("  for reference: openssl dgst -sha256 %.0f MB/s; VerifyFile %.2fx openssl\n", v.OpenSSLMBps, v.OpenSSLRatio)
	}
	if f.Upload, err = benchUpload(ctx, r, dir, uploadBytes); err != nil {
		return nil, nil, fmt.Errorf("upload: %w", err)
	}
	u := f.Upload
	r.printf("upload of %d MiB over loopback: agent %.0f MB/s end to end (%.2fx copy), %.0f MB/s transfer alone (%.2fx copy); copy + fsync %.0f MB/s (best of %d)\n",
		u.FileBytes>>20, u.AgentMBps, u.Ratio, u.TransferMBps, u.TransferRatio, u.CopyMBps, uploadRuns)
	r.printf("the service verified each upload in %v s\n", u.ServerVerifyS)
	return f, []TargetOutcome{
		atLeast("verification throughput / sha256sum on the same file (ratio)", v.Ratio, 0.8,
			fmt.Sprintf("%.0f vs %.0f MB/s, %d MiB", v.VerifyMBps, v.SHA256SumMBps, v.FileBytes>>20)),
	}, nil
}

// writeRandom writes size pseudo-random bytes to path and returns their SHA-256.
func writeRandom(path string, size int64) (string, error) {
	out, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer out.Close()
	var seed [32]byte
	copy(seed[:], "mba uploads benchmark")
	rng := rand.NewChaCha8(seed)
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		b := buf[:min(int64(len(buf)), left)]
		_, _ = rng.Read(b)
		h.Write(b)
		if _, err := out.Write(b); err != nil {
			return "", err
		}
	}
	if err := out.Sync(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), out.Close()
}

// warm reads the file once, so that what follows reads it from the page cache.
func warm(path string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	_, err = io.Copy(io.Discard, in)
	return err
}

func best(runs []float64) float64 {
	b := runs[0]
	for _, s := range runs[1:] {
		b = min(b, s)
	}
	return b
}

func mbps(size int64, seconds float64) float64 { return round1(float64(size) / 1e6 / seconds) }

// benchManifest is the manifest VerifyFile reads: one file, uploaded once, as declared.
type benchManifest struct {
	size int64
	sum  string
}

func (m *benchManifest) DeviceFiles(context.Context, int64, int64) ([]activities.KnownFile, error) {
	return nil, nil
}

func (m *benchManifest) SessionFile(_ context.Context, _, _ int64, name string) (activities.KnownFile, error) {
	size, sum := m.size, m.sum
	return activities.KnownFile{Name: name, State: recording.FileUploaded, Size: &size, SHA256: &sum, Uploads: 1}, nil
}

func (m *benchManifest) ExpectFiles(context.Context, int64, int64, []string) error { return nil }

func (m *benchManifest) RecordFileResult(context.Context, activities.FileResult) error { return nil }

func benchVerify(ctx context.Context, dir string, size int64) (VerificationFigures, error) {
	fig := VerificationFigures{FileBytes: size}
	local := filepath.Join(dir, "verify.avi")
	sum, err := writeRandom(local, size)
	if err != nil {
		return fig, err
	}
	root := filepath.Join(dir, "storage")
	st, err := storage.New(ctx, storage.Config{Kind: "dir", Dir: root})
	if err != nil {
		return fig, err
	}
	ref := activities.FileRef{SessionID: 1, DeviceID: 1, Enclosure: "BENCH1", Name: "f.avi"}
	key := storage.Key(ref.SessionID, ref.Enclosure, ref.Name)
	if err := st.PutFile(ctx, key, local); err != nil {
		return fig, err
	}
	stored := filepath.Join(root, filepath.FromSlash(key))
	if err := warm(stored); err != nil {
		return fig, err
	}
	files := &activities.Files{Manifest: &benchManifest{size: size, sum: sum}, Storage: st}
	_, noOpenSSL := exec.LookPath("openssl")
	// hashWith runs a command that prints the file's SHA-256 first and returns its time.
	hashWith := func(name string, args ...string) (float64, error) {
		start := time.Now()
		out, err := exec.CommandContext(ctx, name, args...).Output()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		elapsed := time.Since(start).Seconds()
		if got, _, _ := strings.Cut(string(out), " "); got != sum {
			return 0, fmt.Errorf("%s says %.12s, the file was written with %.12s", name, got, sum)
		}
		return round3(elapsed), nil
	}
	for range uploadRuns {
		t, err := hashWith("sha256sum", stored)
		if err != nil {
			return fig, err
		}
		fig.SHA256SumS = append(fig.SHA256SumS, t)
		if noOpenSSL == nil {
			t, err := hashWith("openssl", "dgst", "-sha256", "-r", stored)
			if err != nil {
				return fig, err
			}
			fig.OpenSSLS = append(fig.OpenSSLS, t)
		}

		var ts testsuite.WorkflowTestSuite
		ts.SetLogger(quietLogger())
		env := ts.NewTestActivityEnvironment()
		env.RegisterActivity(files)
		start := time.Now()
		val, err := env.ExecuteActivity(files.VerifyFile, ref)
		elapsed := time.Since(start).Seconds()
		if err != nil {
			return fig, err
		}
		var res activities.Verification
		if err := val.Get(&res); err != nil {
			return fig, err
		}
		if res.State != recording.FileVerified {
			return fig, fmt.Errorf("VerifyFile says %s: %s", res.State, res.Reason)
		}
		fig.VerifyS = append(fig.VerifyS, round3(elapsed))
	}
	fig.SHA256SumMBps = mbps(size, best(fig.SHA256SumS))
	fig.VerifyMBps = mbps(size, best(fig.VerifyS))
	fig.Ratio = round2(best(fig.SHA256SumS) / best(fig.VerifyS))
	if len(fig.OpenSSLS) > 0 {
		fig.OpenSSLMBps = mbps(size, best(fig.OpenSSLS))
		fig.OpenSSLRatio = round2(best(fig.OpenSSLS) / best(fig.VerifyS))
	}
	return fig, nil
}

// copyFile copies src to dst and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return out.Close()
}

// uploadedLog catches the agent's "uploaded" log line: its time for the transfer alone.
type uploadedLog struct {
	mu      sync.Mutex
	seconds float64
}

func (h *uploadedLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *uploadedLog) WithGroup(string) slog.Handler            { return h }
func (h *uploadedLog) WithAttrs([]slog.Attr) slog.Handler       { return h }

func (h *uploadedLog) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != "uploaded" {
		return nil
	}
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "seconds" {
			h.mu.Lock()
			h.seconds = a.Value.Resolve().Float64()
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

// benchUpload: three enclosures record a 1-second session (prefix "bench", one file
// bench_.avi each); each then has a token, and its agent uploads the same file over loopback.
func benchUpload(ctx context.Context, r *runner, dir string, size int64) (UploadFigures, error) {
	fig := UploadFigures{FileBytes: size}
	sim, stop, err := startSim(simulator.Config{BaseURL: r.stack.Base + "/api", Count: uploadRuns, NamePrefix: "NV",
		FirstNumber: 9001, Location: "bench", Interval: time.Second, FollowUp: 200 * time.Millisecond})
	if err != nil {
		return fig, err
	}
	defer stop()
	ids, err := registered(ctx, r.stack, sim, 30*time.Second)
	if err != nil {
		return fig, err
	}
	started := time.Now()
	var spec []map[string]any
	for _, id := range ids {
		spec = append(spec, map[string]any{"device_id": id, "filename_prefix": "bench"})
	}
	var x api.SessionView
	if err := r.stack.Call(ctx, "POST", "/api/recording-session", map[string]any{"name": "uploads",
		"duration": 1, "target_fps": 30, "fragment_hourly": false, "device_spec": spec}, &x); err != nil {
		return fig, err
	}
	defer os.RemoveAll(filepath.Join(r.stack.workDir, "files", "sessions", fmt.Sprint(x.ID)))
	if _, err := waitAll(ctx, r.stack, x.ID, started, recording.DeviceComplete, 2*time.Minute); err != nil {
		return fig, err
	}
	// The enclosures take COMPLETE, go idle and say so in their next heartbeats (the workflow
	// verifies files once released); then they stop (a token makes heartbeats without it fail).
	for _, e := range sim.Enclosures() {
		for deadline := time.Now().Add(30 * time.Second); e.State().SessionID != 0; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				return fig, fmt.Errorf("%s was not released", e.Name())
			}
		}
	}
	time.Sleep(3 * time.Second)
	names := make([]string, len(sim.Enclosures()))
	for i, e := range sim.Enclosures() {
		names[i] = e.Name()
	}
	stop()

	file := protocol.FileNamePrefix("bench") + ".avi"
	src := filepath.Join(dir, "upload-source.avi")
	if _, err := writeRandom(src, size); err != nil {
		return fig, err
	}
	if err := warm(src); err != nil {
		return fig, err
	}
	day := started.Format("2006-01-02") // local time, as the client names its date directories
	for i, name := range names {
		// A plain copy first.
		dst := filepath.Join(dir, "copy.avi")
		start := time.Now()
		if err := copyFile(src, dst); err != nil {
			return fig, err
		}
		fig.CopyS = append(fig.CopyS, round3(time.Since(start).Seconds()))
		if err := os.Remove(dst); err != nil {
			return fig, err
		}

		// Then the agent, as this enclosure, with the file where the client would have written it.
		var tok map[string]string
		if err := r.stack.Call(ctx, "PUT", "/api/device/"+name+"/token", nil, &tok); err != nil {
			return fig, err
		}
		video := filepath.Join(dir, fmt.Sprint("video", i))
		at := filepath.Join(video, protocol.EnclosureDir(name, "bench"), day)
		if err := os.MkdirAll(at, 0o755); err != nil {
			return fig, err
		}
		if err := os.Rename(src, filepath.Join(at, file)); err != nil {
			return fig, err
		}
		src = filepath.Join(at, file)
		log := &uploadedLog{}
		cfg := agent.Config{ServerURL: r.stack.Base, Enclosure: name, Token: tok["token"], VideoDir: video,
			StateDir: filepath.Join(dir, fmt.Sprint("state", i)), StableFor: time.Millisecond}
		start = time.Now()
		sum, err := agent.RunOnce(ctx, cfg, slog.New(log))
		elapsed := time.Since(start).Seconds()
		if err != nil {
			return fig, err
		}
		if sum.Uploaded != 1 || sum.BytesSent != size {
			return fig, fmt.Errorf("%s: the agent did not upload %s once: %s", name, file, sum)
		}
		fig.AgentS = append(fig.AgentS, round3(elapsed))
		log.mu.Lock()
		transfer := log.seconds
		log.mu.Unlock()
		if transfer <= 0 {
			return fig, errors.New("the agent logged no upload time")
		}
		fig.TransferS = append(fig.TransferS, round3(transfer))

		// Let the service verify it before the next run (and check it did).
		t, err := verifiedIn(ctx, r.stack, x.ID, name, file, 3*time.Minute)
		if err != nil {
			return fig, err
		}
		fig.ServerVerifyS = append(fig.ServerVerifyS, t)
	}
	fig.CopyMBps = mbps(size, best(fig.CopyS))
	fig.AgentMBps = mbps(size, best(fig.AgentS))
	fig.TransferMBps = mbps(size, best(fig.TransferS))
	fig.Ratio = round2(best(fig.CopyS) / best(fig.AgentS))
	fig.TransferRatio = round2(best(fig.CopyS) / best(fig.TransferS))
	return fig, nil
}

// verifiedIn waits until the session lists the enclosure's file VERIFIED and returns the
// seconds from its upload to its verification.
func verifiedIn(ctx context.Context, s *Stack, sid int64, enclosure, name string, within time.Duration) (float64, error) {
	last := "not listed"
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var x api.SessionView
		if err := s.Call(ctx, "GET", fmt.Sprintf("/api/recording-session/%d", sid), nil, &x); err != nil {
			return 0, err
		}
		for _, d := range x.DeviceStatuses {
			if d.Device.Name != enclosure {
				continue
			}
			for _, f := range d.Files {
				if f.Name != name {
					continue
				}
				last = string(f.State) + " " + f.Reason
				switch {
				case f.State == recording.FileVerified && f.UploadedAt != nil && f.VerifiedAt != nil:
					return round3(f.VerifiedAt.Sub(*f.UploadedAt).Seconds()), nil
				case f.State == recording.FileCorrupt || f.State == recording.FileMissing:
					return 0, fmt.Errorf("%s of %s: %s", name, enclosure, last)
				}
			}
		}
	}
	return 0, errors.New(name + " of " + enclosure + " not verified in time: " + last)
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }
