package agent

import (
	"bytes"
	"context"
	"github.com/jax-mba/mba/protocol"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRun: the long-running agent follows a recording: each hourly fragment goes up once the
// next one exists, the rest once the recording ended and the files are stable; nothing twice.
func TestRun(t *testing.T) {
	now := time.Now().UTC()
	begin := now.Add(-2 * time.Hour)
	ts := newTestServer(t, ManifestSession{SessionID: 7, StartedAt: begin, Recording: true, FragmentHourly: true,
		Prefixes: []string{"r_"}})
	video := t.TempDir()
	day := filepath.Join(video, "NV1-lab", begin.Format("2006-01-02"))
	frag := func(h int) string {
		return "r_" + begin.Add(time.Duration(h)*time.Hour).Format(protocol.FragmentTimeLayout) + ".avi"
	}
	writeFile(t, filepath.Join(day, "r_start_timestamp.txt"), 40, now)
	writeFile(t, filepath.Join(day, frag(0)), 200000, now)
	writeFile(t, filepath.Join(day, frag(1)), 100000, now) // being written

	cfg := testConfig(t, ts.srv.URL, video)
	cfg.ScanEvery = 30 * time.Millisecond
	cfg.StableFor = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, testLogger(t)) }()

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; uploads %v", what, ts.uploads())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	uploaded := func(name string) func() bool {
		return func() bool { return ts.file(7, name).State == StateUploaded }
	}
	waitFor("the first fragment", uploaded(frag(0)))
	time.Sleep(4 * cfg.StableFor)
	if st := ts.file(7, frag(1)).State; st != "" {
		t.Fatalf("the fragment being written was sent (%s)", st)
	}
	if st := ts.file(7, "r_start_timestamp.txt").State; st != "" {
		t.Fatalf("a file of a recording in progress was sent (%s)", st)
	}
	writeFile(t, filepath.Join(day, frag(2)), 50000, time.Now())
	waitFor("the second fragment", uploaded(frag(1)))
	writeFile(t, filepath.Join(day, "r_timestamps.txt"), 5000, time.Now())

	ended := time.Now().UTC()
	ts.mu.Lock()
	ts.sessions[0].Recording = false
	ts.sessions[0].EndedAt = &ended
	ts.mu.Unlock()
	for _, n := range []string{frag(2), "r_timestamps.txt", "r_start_timestamp.txt"} {
		waitFor(n, uploaded(n))
	}
	time.Sleep(5 * cfg.ScanEvery) // more scans: nothing is sent again
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
	if n := ts.posts.Load(); n != 5 {
		t.Errorf("%d uploads created, want 5", n)
	}
	for name, u := range ts.uploads() {
		if len(u) != 1 || u[0].sha256 != fileSHA(t, filepath.Join(day, name)) {
			t.Errorf("%s: %+v", name, u)
		}
	}
}

func TestProgressTerminal(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, nil, time.Second)
	tr := p.begin("m_2026-11-26_10-00-00.avi", 1000)
	tr.resumeAt(250)
	tr.add(250)
	p.draw(time.Now().Add(time.Second))
	if s := out.String(); !strings.Contains(s, "m_2026-11-26_10-00-00.avi") || !strings.Contains(s, "50.0%") ||
		!strings.Contains(s, "MB/s") || !strings.Contains(s, "ETA") {
		t.Errorf("progress line %q", s)
	}
	p.end(tr)
	out.Reset()
	p.draw(time.Now())
	if s := out.String(); !strings.HasPrefix(s, "\x1b[1A") {
		t.Errorf("finished line not cleared: %q", s)
	}
}
