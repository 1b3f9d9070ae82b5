package agent

import (
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress reports active uploads: a live line each on a terminal, else a log line each every
// interval.
type progress struct {
	out   io.Writer // terminal, or nil
	log   *slog.Logger
	every time.Duration

	mu     sync.Mutex
	active map[*transfer]struct{}
	lines  int // lines drawn last time (terminal)
}

// transfer is one upload in progress.
type transfer struct {
	name    string
	size    int64
	start   time.Time
	pos     atomic.Int64 // bytes the server has plus those read for the PATCH in flight
	base    atomic.Int64 // offset when this run of the upload started
	read    atomic.Int64 // bytes read for PATCH bodies
	lastLog time.Time
}

func newProgress(out io.Writer, log *slog.Logger, every time.Duration) *progress {
	return &progress{out: out, log: log, every: every, active: map[*transfer]struct{}{}}
}

func (p *progress) begin(name string, size int64) *transfer {
	t := &transfer{name: name, size: size, start: time.Now()}
	t.base.Store(-1)
	p.mu.Lock()
	p.active[t] = struct{}{}
	p.mu.Unlock()
	return t
}

func (p *progress) end(t *transfer) {
	p.mu.Lock()
	delete(p.active, t)
	p.mu.Unlock()
}

// resumeAt sets the confirmed offset (after HEAD or PATCH).
func (t *transfer) resumeAt(off int64) {
	t.pos.Store(off)
	t.base.CompareAndSwap(-1, off)
}

func (t *transfer) add(n int64) { t.pos.Add(n); t.read.Add(n) }

func (t *transfer) sent() int64 { return t.read.Load() }

// figures: percent done, MB/s since the start and the time left at that rate.
func (t *transfer) figures(now time.Time) (pct, mbps float64, eta time.Duration) {
	pos := t.pos.Load()
	if t.size > 0 {
		pct = 100 * float64(pos) / float64(t.size)
	} else {
		pct = 100
	}
	secs := now.Sub(t.start).Seconds()
	if secs > 0 {
		mbps = float64(t.read.Load()) / 1e6 / secs
	}
	if mbps > 0 {
		eta = time.Duration(float64(t.size-pos) / (mbps * 1e6) * float64(time.Second)).Round(time.Second)
	} else {
		eta = -1
	}
	return pct, mbps, eta
}

// start runs the reporter until the returned function is called.
func (p *progress) start() (stop func()) {
	tick := p.every
	if p.out != nil {
		tick = 500 * time.Millisecond
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-done:
				if p.out != nil {
					p.draw(time.Now())
				}
				return
			case now := <-t.C:
				if p.out != nil {
					p.draw(now)
				} else {
					p.logActive(now)
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (p *progress) snapshot() []*transfer {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := make([]*transfer, 0, len(p.active))
	for t := range p.active {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].start.Before(ts[j].start) })
	return ts
}

func (p *progress) logActive(now time.Time) {
	for _, t := range p.snapshot() {
		if now.Sub(t.lastLog) < p.every-p.every/10 {
			continue
		}
		t.lastLog = now
		pct, mbps, eta := t.figures(now)
		p.log.Info("upload progress", "file", t.name, "percent", round2(pct), "bytes", t.pos.Load(),
			"size", t.size, "mb_per_s", round2(mbps), "eta", eta.String())
	}
}

// draw redraws one line per active upload in place (ANSI: cursor up, clear line).
func (p *progress) draw(now time.Time) {
	ts := p.snapshot()
	var b strings.Builder
	if p.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.lines)
	}
	for _, t := range ts {
		pct, mbps, eta := t.figures(now)
		etas := "--"
		if eta >= 0 {
			etas = eta.String()
		}
		name := t.name
		if len(name) > 48 {
			name = "…" + name[len(name)-47:]
		}
		fmt.Fprintf(&b, "\x1b[2K%-48s %6.1f%% %8.2f MB/s  ETA %s\n", name, pct, mbps, etas)
	}
	for i := len(ts); i < p.lines; i++ {
		b.WriteString("\x1b[2K\n")
	}
	if extra := p.lines - len(ts); extra > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", extra)
	}
	p.lines = len(ts)
	_, _ = io.WriteString(p.out, b.String())
}
