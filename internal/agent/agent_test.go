package agent

import (
	"bytes"
	"context"
	"errors"
	"github.com/jax-mba/mba/protocol"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The session used by most tests: started 2026-11-26 10:00 UTC, over, not hourly.
var (
	start = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	ended = start.Add(3 * time.Hour)
)

func endedSession(id int64, prefixes ...string) ManifestSession {
	e := ended
	return ManifestSession{SessionID: id, StartedAt: start, EndedAt: &e, Prefixes: prefixes}
}

// dayDir is the client's directory for the session's day.
func dayDir(video string) string { return filepath.Join(video, "NV1-lab", "2026-11-26") }

func TestMatchName(t *testing.T) {
	prefixes := []string{"m_", "m_s2_"}
	cases := []struct {
		name   string
		hourly bool
		idx    int
		kind   string
		ok     bool
	}{
		{"m_.avi", false, 0, protocol.FileVideo, true},
		{"m_.avi", true, 0, "", false},
		{"m_timestamps.txt", false, 0, protocol.FileTimestamps, true},
		{"m_start_timestamp.txt", true, 0, protocol.FileStartTimestamp, true},
		{"m_s2_timestamps.txt", false, 1, protocol.FileTimestamps, true}, // not prefix m_
		{"m_s2_.avi", false, 1, protocol.FileVideo, true},
		{"m_2026-11-26_10-00-00.avi", true, 0, protocol.FileFragment, true},
		{"m_2026-11-26_10-00-00.avi", false, 0, "", false},
		{"m_s2_2026-11-26_13-20-00.avi", true, 1, protocol.FileFragment, true},
		{"m_2026-13-26_10-00-00.avi", true, 0, "", false}, // no 13th month
		{"m_2026-11-26_10-00-0x.avi", true, 0, "", false},
		{"m_s3_timestamps.txt", false, 0, "", false},
		{"m_timestamps.txt.tmp", false, 0, "", false},
		{"xm_timestamps.txt", false, 0, "", false},
		{"m_", false, 0, "", false},
	}
	for _, c := range cases {
		idx, kind, _, ok := matchName(c.name, prefixes, c.hourly)
		if ok != c.ok || (ok && (idx != c.idx || kind != c.kind)) {
			t.Errorf("matchName(%q, hourly=%v) = %d %q %v; want %d %q %v", c.name, c.hourly, idx, kind, ok, c.idx, c.kind, c.ok)
		}
	}
}

// TestScanSelection: which files are found for which session, and which are finished.
func TestScanSelection(t *testing.T) {
	video := t.TempDir()
	now := time.Date(2026, 11, 26, 14, 0, 0, 0, time.UTC)
	old := now.Add(-time.Hour)     // stable
	fresh := now.Add(-time.Second) // still being written, as far as anyone can tell
	day := dayDir(video)
	files := map[string]time.Time{
		// hourly, recording, resumed once: prefixes m_ then m_s2_
		"m_2026-11-26_10-00-00.avi":    old,   // a later m_ fragment exists: finished
		"m_2026-11-26_11-00-00.avi":    old,   // last m_ fragment, m_ is over (m_s2_ follows), stable: finished
		"m_timestamps.txt":             old,   // m_ over, stable: finished
		"m_start_timestamp.txt":        fresh, // m_ over but not stable: not finished
		"m_s2_2026-11-26_12-00-00.avi": fresh, // a later m_s2_ fragment exists: finished however fresh
		"m_s2_2026-11-26_13-00-00.avi": old,   // last fragment of the recording prefix: not finished
		"m_s2_timestamps.txt":          old,   // recording prefix: not finished
		"m_.avi":                       old,   // not hourly: not this session's
		"other_timestamps.txt":         old,   // another prefix
		// not hourly, over: prefix n_
		"n_.avi":                old,
		"n_timestamps.txt":      old,
		"n_start_timestamp.txt": fresh,
	}
	for name, mt := range files {
		writeFile(t, filepath.Join(day, name), 10, mt)
	}
	// the day before the start is scanned; a week before is not; a leftover from before the
	// session (prefix re-used) is not taken
	writeFile(t, filepath.Join(video, "NV1-lab", "2026-11-25", "m_s2_start_timestamp.txt"), 10, start.Add(time.Minute))
	writeFile(t, filepath.Join(video, "NV1-lab", "2026-11-19", "m_s2_.avi"), 10, old)
	writeFile(t, filepath.Join(video, "NV1-lab", "2026-11-25", "n_2026-11-25_09-00-00.avi"), 10, old)
	writeFile(t, filepath.Join(video, "NV1-lab", "2026-11-25", "m_s2_2026-11-25_09-00-00.avi"), 10, start.Add(-3*time.Hour))

	e := now.Add(-2 * time.Hour)
	m := &Manifest{Sessions: []ManifestSession{
		{SessionID: 1, StartedAt: start, Recording: true, FragmentHourly: true, Prefixes: []string{"m_", "m_s2_"}},
		{SessionID: 2, StartedAt: start, EndedAt: &e, Prefixes: []string{"n_"}},
	}}
	// Another enclosure's files on a shared disk are never this one's, whatever their prefix.
	writeFile(t, filepath.Join(video, "NV12-lab", "2026-11-26", "n_timestamps.txt"), 10, old)
	cfg, _ := Config{ServerURL: "http://x", Token: "t", Enclosure: testEnclosure, VideoDir: video, StateDir: t.TempDir(), Location: time.UTC}.withDefaults()
	sc := newScanner(cfg)
	got, err := sc.scan(m, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range got {
		if strings.Contains(f.path, "NV12-") {
			t.Errorf("took %s of another enclosure", f.path)
		}
	}
	want := map[string]string{ // name -> "session/finished"
		"m_2026-11-26_10-00-00.avi":    "1/true",
		"m_2026-11-26_11-00-00.avi":    "1/true",
		"m_timestamps.txt":             "1/true",
		"m_start_timestamp.txt":        "1/false",
		"m_s2_2026-11-26_12-00-00.avi": "1/true",
		"m_s2_2026-11-26_13-00-00.avi": "1/false",
		"m_s2_timestamps.txt":          "1/false",
		"m_s2_start_timestamp.txt":     "1/false",
		"n_.avi":                       "2/true",
		"n_timestamps.txt":             "2/true",
		"n_start_timestamp.txt":        "2/false",
	}
	gotMap := map[string]string{}
	for _, f := range got {
		gotMap[f.name] = strings.Join([]string{itoa(f.session.SessionID), boolStr(f.finished)}, "/")
	}
	for name, w := range want {
		if gotMap[name] != w {
			t.Errorf("%s: got %q, want %q", name, gotMap[name], w)
		}
	}
	for name := range gotMap {
		if _, ok := want[name]; !ok {
			t.Errorf("%s found but belongs to no session", name)
		}
	}

	// Stable: once unchanged for StableFor, the fresh files of finished prefixes are finished.
	later := now.Add(cfg.StableFor)
	got, _ = sc.scan(m, later)
	for _, f := range got {
		if (f.name == "m_start_timestamp.txt" || f.name == "n_start_timestamp.txt") && !f.finished {
			t.Errorf("%s not finished after StableFor", f.name)
		}
		if f.name == "m_s2_timestamps.txt" && f.finished {
			t.Errorf("%s of the recording prefix finished", f.name)
		}
	}
	// A file that keeps growing is never stable by observation.
	p := filepath.Join(day, "n_start_timestamp.txt")
	writeFile(t, p, 20, later)
	got, _ = sc.scan(m, later.Add(time.Second))
	for _, f := range got {
		if f.name == "n_start_timestamp.txt" && f.finished {
			t.Errorf("a file changed a second ago is finished")
		}
	}
}

// TestPrefixReusedAcrossSessions: the same prefix on two days goes to the right session.
func TestPrefixReusedAcrossSessions(t *testing.T) {
	video := t.TempDir()
	day1 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	day2 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	e1, e2 := day1.Add(2*time.Hour), day2.Add(2*time.Hour)
	writeFile(t, filepath.Join(video, "NV1-lab", "2026-11-25", "m_timestamps.txt"), 10, e1)
	writeFile(t, filepath.Join(video, "NV1-lab", "2026-11-26", "m_timestamps.txt"), 11, e2)
	m := &Manifest{Sessions: []ManifestSession{
		{SessionID: 1, StartedAt: day1, EndedAt: &e1, Prefixes: []string{"m_"}},
		{SessionID: 2, StartedAt: day2, EndedAt: &e2, Prefixes: []string{"m_"}},
	}}
	cfg, _ := Config{ServerURL: "http://x", Token: "t", Enclosure: testEnclosure, VideoDir: video, StateDir: t.TempDir(), Location: time.UTC}.withDefaults()
	got, err := newScanner(cfg).scan(m, e2.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("found %d files, want 2", len(got))
	}
	for _, f := range got {
		want := int64(1)
		if strings.Contains(f.path, "2026-11-26") {
			want = 2
		}
		if f.session.SessionID != want {
			t.Errorf("%s given to session %d, want %d", f.path, f.session.SessionID, want)
		}
	}
}

func TestUploadSeveral(t *testing.T) {
	ts := newTestServer(t, endedSession(12, "mouse1_", "mouse1_s2_"))
	video := t.TempDir()
	sizes := map[string]int64{
		"mouse1_.avi": 3<<20 + 17, "mouse1_timestamps.txt": 1000, "mouse1_start_timestamp.txt": 33,
		"mouse1_s2_.avi": 2 << 20, "mouse1_s2_timestamps.txt": 0, // an empty file is a file too
	}
	for name, size := range sizes {
		writeFile(t, filepath.Join(dayDir(video), name), size, ended.Add(-time.Minute))
	}
	cfg := testConfig(t, ts.srv.URL, video)
	cfg.Concurrency = 3
	sum, err := runOnce(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Uploaded != len(sizes) || sum.Failed != 0 {
		t.Fatalf("summary %v", sum)
	}
	var total int64
	up := ts.uploads()
	for name, size := range sizes {
		total += size
		want := fileSHA(t, filepath.Join(dayDir(video), name))
		u := up[name]
		if len(u) != 1 {
			t.Fatalf("%s: %d uploads", name, len(u))
		}
		if u[0].info.MetaData["sha256"] != want || u[0].sha256 != want || u[0].info.Size != size ||
			u[0].info.MetaData["session_id"] != "12" {
			t.Errorf("%s: stored %+v sha %s, want sha %s size %d", name, u[0].info, u[0].sha256, want, size)
		}
	}
	if sum.BytesSent != total {
		t.Errorf("bytes sent %d, want %d", sum.BytesSent, total)
	}

	// Second pass: the server has them all (UPLOADED); nothing is sent again.
	sum, err = runOnce(t, cfg)
	if err != nil || sum.Uploaded != 0 || sum.Skipped != len(sizes) || sum.BytesSent != 0 {
		t.Fatalf("second pass: %v %v", sum, err)
	}
	if n := ts.posts.Load(); n != int32(len(sizes)) {
		t.Errorf("%d uploads created, want %d", n, len(sizes))
	}
}

func TestWrongToken(t *testing.T) {
	ts := newTestServer(t, endedSession(12, "m_"))
	cfg := testConfig(t, ts.srv.URL, t.TempDir())
	cfg.Token = "wrong"
	_, err := runOnce(t, cfg)
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != 401 || he.Reason != "wrong enclosure token" {
		t.Fatalf("err = %v", err)
	}
}

// TestServerRefusals: 409 is done, 404 (unknown session) fails that file only.
func TestServerRefusals(t *testing.T) {
	ts := newTestServer(t, endedSession(12, "m_"))
	ts.verified["m_.avi"] = true
	video := t.TempDir()
	writeFile(t, filepath.Join(dayDir(video), "m_.avi"), 5000, ended)
	writeFile(t, filepath.Join(dayDir(video), "m_timestamps.txt"), 500, ended)
	sum, err := runOnce(t, testConfig(t, ts.srv.URL, video))
	if err != nil || sum.Skipped != 1 || sum.Uploaded != 1 || sum.Failed != 0 {
		t.Fatalf("409: %v %v", sum, err)
	}

	// A session the server refuses (not this enclosure's): 404 fails that file, not the others.
	ts2 := newTestServer(t, endedSession(12, "m_"), endedSession(13, "k_"))
	ts2.refused[13] = true
	writeFile(t, filepath.Join(dayDir(video), "k_.avi"), 500, ended)
	sum, err = runOnce(t, testConfig(t, ts2.srv.URL, video))
	if err == nil || sum.Failed != 1 || sum.Uploaded != 2 {
		t.Fatalf("404: %v %v", sum, err)
	}
	var he *HTTPError
	if !errors.As(err, &he) && !strings.Contains(err.Error(), "failed") {
		t.Errorf("err %v", err)
	}
}

// TestResumeAfterDrop: the connection is cut in the middle of a PATCH; the agent asks the
// server for its offset and continues from there.
func TestResumeAfterDrop(t *testing.T) {
	ts := newTestServer(t, endedSession(12, "m_"))
	video := t.TempDir()
	const size = 10 << 20
	path := filepath.Join(dayDir(video), "m_.avi")
	writeFile(t, path, size, ended)
	proxy := newCutProxy(t, ts.srv.URL)
	proxy.cutAfter.Store(6<<20 + 12345)
	cfg := testConfig(t, proxy.url(), video)
	cfg.ChunkBytes = 4 << 20
	sum, err := runOnce(t, cfg)
	if err != nil || sum.Uploaded != 1 {
		t.Fatalf("%v %v", sum, err)
	}
	if proxy.cuts.Load() != 1 {
		t.Fatalf("the connection was not cut")
	}
	got := ts.received.Load()
	if got < size || got > size+cfg.ChunkBytes {
		t.Errorf("server received %d bytes for a %d-byte file (chunk %d)", got, size, cfg.ChunkBytes)
	}
	t.Logf("server received %d bytes for %d (%d re-sent)", got, size, got-size)
	if up := ts.uploads()["m_.avi"]; len(up) != 1 || up[0].sha256 != fileSHA(t, path) {
		t.Errorf("stored %+v", up)
	}
}

// TestResumeAfterStall: the network goes silent in the middle of a PATCH (no reset); the
// agent gives up on that request after StallTimeout and resumes on a new connection.
func TestResumeAfterStall(t *testing.T) {
	ts := newTestServer(t, endedSession(12, "m_"))
	video := t.TempDir()
	const size = 12 << 20
	path := filepath.Join(dayDir(video), "m_.avi")
	writeFile(t, path, size, ended)
	proxy := newCutProxy(t, ts.srv.URL)
	proxy.stall = true
	proxy.cutAfter.Store(3 << 20)
	cfg := testConfig(t, proxy.url(), video)
	cfg.ChunkBytes = 8 << 20
	cfg.StallTimeout = 300 * time.Millisecond
	sum, err := runOnce(t, cfg)
	if err != nil || sum.Uploaded != 1 {
		t.Fatalf("%v %v", sum, err)
	}
	if proxy.cuts.Load() != 1 {
		t.Fatalf("the network did not stall")
	}
	if got := ts.received.Load(); got < size || got > size+cfg.ChunkBytes {
		t.Errorf("server received %d bytes for a %d-byte file", got, size)
	}
	if up := ts.uploads()["m_.avi"]; len(up) != 1 || up[0].sha256 != fileSHA(t, path) {
		t.Errorf("stored %+v", up)
	}
}

// TestResumeAfterRestart: the agent stops mid-upload; the next run resumes the same upload
// from the state file, even though the manifest no longer mentions it.
func TestResumeAfterRestart(t *testing.T) {
	ts := newTestServer(t, endedSession(12, "m_"))
	video := t.TempDir()
	const size = 8 << 20
	path := filepath.Join(dayDir(video), "m_.avi")
	writeFile(t, path, size, ended)
	cfg := testConfig(t, ts.srv.URL, video)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cut := func(total int64) {
		if total > size/2 {
			cancel()
		}
	}
	ts.onBytes.Store(&cut)
	if _, err := RunOnce(ctx, cfg, testLogger(t)); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v", err)
	}
	ts.onBytes.Store(nil)
	if f := ts.file(12, "m_.avi"); f.State != StateUploading {
		t.Fatalf("server state %+v", f)
	}
	ts.clearFiles(12) // the manifest forgot the upload: the state file remembers it
	sum, err := runOnce(t, cfg)
	if err != nil || sum.Uploaded != 1 {
		t.Fatalf("second run: %v %v", sum, err)
	}
	if n := ts.posts.Load(); n != 1 {
		t.Errorf("%d uploads created, want 1 (resumed)", n)
	}
	if got := ts.received.Load(); got > size+cfg.ChunkBytes {
		t.Errorf("server received %d bytes for a %d-byte file", got, size)
	}
	if up := ts.uploads()["m_.avi"]; len(up) != 1 || up[0].sha256 != fileSHA(t, path) {
		t.Errorf("stored %+v", up)
	}
	// The upload is done: the state file no longer holds its URL.
	st, _ := loadState(cfg.StateDir)
	if len(st.data.Uploads) != 0 {
		t.Errorf("state still has uploads: %v", st.data.Uploads)
	}
	if len(st.data.Hashes) != 1 {
		t.Errorf("state has %d hashes, want 1", len(st.data.Hashes))
	}
}

// TestReupload: reupload=true sends the file again as a new upload.
func TestReupload(t *testing.T) {
	ts := newTestServer(t, endedSession(12, "m_"))
	video := t.TempDir()
	writeFile(t, filepath.Join(dayDir(video), "m_.avi"), 300000, ended)
	cfg := testConfig(t, ts.srv.URL, video)
	if sum, err := runOnce(t, cfg); err != nil || sum.Uploaded != 1 {
		t.Fatalf("%v %v", sum, err)
	}
	f := ts.file(12, "m_.avi")
	f.State, f.Reupload = StateCorrupt, true
	ts.setFile(12, f)
	sum, err := runOnce(t, cfg)
	if err != nil || sum.Uploaded != 1 {
		t.Fatalf("reupload: %v %v", sum, err)
	}
	if n := ts.posts.Load(); n != 2 {
		t.Errorf("%d uploads created, want 2", n)
	}
	if g := ts.file(12, "m_.avi"); g.State != StateUploaded || g.UploadURL == f.UploadURL {
		t.Errorf("server state after reupload: %+v", g)
	}
	// CORRUPT without reupload: the agent waits for the server to ask.
	g := ts.file(12, "m_.avi")
	g.State = StateCorrupt
	ts.setFile(12, g)
	if sum, err := runOnce(t, cfg); err != nil || sum.Uploaded != 0 || sum.Skipped != 1 {
		t.Fatalf("corrupt, not asked: %v %v", sum, err)
	}
}

// TestResumeFromManifest: an upload the manifest lists as UPLOADING is resumed, not restarted.
func TestResumeFromManifest(t *testing.T) {
	ts := newTestServer(t, endedSession(12, "m_"))
	video := t.TempDir()
	const size = 3 << 20
	path := filepath.Join(dayDir(video), "m_.avi")
	writeFile(t, path, size, ended)
	// Another agent (state lost) sent the first part.
	c, _ := newClient(Config{ServerURL: ts.srv.URL, Token: testToken, Enclosure: testEnclosure, HTTPClient: ts.srv.Client()})
	sum := fileSHA(t, path)
	ctx := context.Background()
	u, err := c.create(ctx, size, map[string]string{"session_id": "12", "filename": "m_.avi", "sha256": sum})
	if err != nil {
		t.Fatal(err)
	}
	fh, _ := os.Open(path)
	defer fh.Close()
	if _, err := c.patch(ctx, u, 0, ioLimit(fh, 1<<20), 1<<20); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, ts.srv.URL, video) // fresh state dir
	s, err := runOnce(t, cfg)
	if err != nil || s.Uploaded != 1 || s.BytesSent != size-1<<20 {
		t.Fatalf("%v %v", s, err)
	}
	if n := ts.posts.Load(); n != 1 {
		t.Errorf("%d uploads created, want 1", n)
	}
}

func TestDeleteVerified(t *testing.T) {
	ts := newTestServer(t, endedSession(12, "m_"))
	video := t.TempDir()
	names := []string{"m_.avi", "m_timestamps.txt", "m_start_timestamp.txt"}
	for _, n := range names {
		writeFile(t, filepath.Join(dayDir(video), n), 4096, ended)
	}
	cfg := testConfig(t, ts.srv.URL, video)
	if sum, err := runOnce(t, cfg); err != nil || sum.Uploaded != 3 {
		t.Fatalf("%v %v", sum, err)
	}
	// m_.avi verified with the same checksum; m_timestamps.txt verified but with another;
	// m_start_timestamp.txt only UPLOADED.
	a := ts.file(12, "m_.avi")
	a.State = StateVerified
	ts.setFile(12, a)
	b := ts.file(12, "m_timestamps.txt")
	b.State, b.SHA256 = StateVerified, strings.Repeat("0", 64)
	ts.setFile(12, b)

	// Off by default: nothing deleted.
	if sum, err := runOnce(t, cfg); err != nil || sum.Deleted != 0 {
		t.Fatalf("%v %v", sum, err)
	}
	cfg.DeleteVerified = true
	sum, err := runOnce(t, cfg)
	if err != nil || sum.Deleted != 1 || sum.Uploaded != 0 {
		t.Fatalf("%v %v", sum, err)
	}
	for _, n := range names {
		_, err := os.Stat(filepath.Join(dayDir(video), n))
		if deleted := errors.Is(err, os.ErrNotExist); deleted != (n == "m_.avi") {
			t.Errorf("%s deleted=%v", n, deleted)
		}
	}
}

// TestFileChangedAfterHash: a cached hash of other bytes is never sent.
func TestFileChangedAfterHash(t *testing.T) {
	ts := newTestServer(t, endedSession(12, "m_"))
	video := t.TempDir()
	path := filepath.Join(dayDir(video), "m_.avi")
	writeFile(t, path, 1000, ended)
	cfg := testConfig(t, ts.srv.URL, video)
	st, _ := loadState(cfg.StateDir)
	info, _ := os.Stat(path)
	// A hash cached for another mtime is not used.
	_ = st.setHash(path, info.Size(), info.ModTime().Add(-time.Second), strings.Repeat("a", 64))
	if sum, err := runOnce(t, cfg); err != nil || sum.Uploaded != 1 {
		t.Fatalf("%v %v", sum, err)
	}
	if up := ts.uploads()["m_.avi"]; len(up) != 1 || up[0].info.MetaData["sha256"] != fileSHA(t, path) {
		t.Errorf("stored %+v", up)
	}
}

// TestLargeFileStreams: a 100 MB file goes up without being read into memory.
func TestLargeFileStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB")
	}
	ts := newTestServer(t, endedSession(12, "m_"))
	video := t.TempDir()
	const size = 100 << 20
	path := filepath.Join(dayDir(video), "m_.avi")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Create(path)
	_ = f.Truncate(size) // sparse: fast to make
	_ = f.Close()
	_ = os.Chtimes(path, ended, ended)
	cfg := testConfig(t, ts.srv.URL, video)
	cfg.ChunkBytes = 16 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	sum, err := runOnce(t, cfg)
	runtime.ReadMemStats(&after)
	if err != nil || sum.Uploaded != 1 || sum.BytesSent != size {
		t.Fatalf("%v %v", sum, err)
	}
	// Client and server together allocate a small fraction of the file.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
		t.Errorf("allocated %d MB for a %d MB file", alloc>>20, size>>20)
	} else {
		t.Logf("allocated %.1f MB for a %d MB upload", float64(alloc)/(1<<20), size>>20)
	}
	if up := ts.uploads()["m_.avi"]; len(up) != 1 || up[0].sha256 != fileSHA(t, path) {
		t.Errorf("stored %+v", up)
	}
}

// TestBandwidthLimiterApplied: the limit becomes a shared limiter every PATCH body goes
// through, in pieces no larger than its burst.
func TestBandwidthLimiterApplied(t *testing.T) {
	cfg := Config{ServerURL: "http://x", Token: "t", VideoDir: t.TempDir(), StateDir: t.TempDir(), BandwidthBytesPerSecond: 4 << 20}
	a, err := newAgent(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.limiter == nil || float64(a.limiter.Limit()) != 4<<20 {
		t.Fatalf("limiter %v", a.limiter)
	}
	burst := a.limiter.Burst()
	tr := a.prog.begin("x", 1<<20)
	var counted int
	r := &countingReader{r: bytes.NewReader(make([]byte, 1<<20)), ctx: context.Background(), limiter: a.limiter, tr: tr,
		counted: func(n int) { counted += n }}
	buf := make([]byte, 1<<20)
	n, _ := r.Read(buf)
	if n > burst || n == 0 {
		t.Fatalf("read %d bytes at once, burst %d", n, burst)
	}
	if tokens := a.limiter.Tokens(); tokens > float64(burst-n)+float64(burst)/10 {
		t.Errorf("limiter has %.0f tokens after %d bytes (burst %d): not charged", tokens, n, burst)
	}
	unlimited, _ := newAgent(Config{ServerURL: "http://x", Token: "t", VideoDir: t.TempDir(), StateDir: t.TempDir()}, nil)
	if unlimited.limiter != nil {
		t.Errorf("limiter without a limit")
	}
}

// BenchmarkUploadLimited reports the upload rate under a 20 MB/s limit over loopback.
func BenchmarkUploadLimited(b *testing.B) {
	video := b.TempDir()
	const size = 20 << 20
	writeFile(b, filepath.Join(dayDir(video), "m_.avi"), size, ended)
	for b.Loop() {
		ts := newTestServer(b, endedSession(12, "m_"))
		cfg := testConfig(b, ts.srv.URL, video)
		cfg.BandwidthBytesPerSecond = 20e6
		cfg.ChunkBytes = 8 << 20
		start := time.Now()
		sum, err := RunOnce(context.Background(), cfg, nil)
		if err != nil || sum.Uploaded != 1 {
			b.Fatal(sum, err)
		}
		b.ReportMetric(float64(size)/1e6/time.Since(start).Seconds(), "MB/s")
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

func boolStr(b bool) string { return strconv.FormatBool(b) }

func ioLimit(r io.Reader, n int64) io.Reader { return io.LimitReader(r, n) }

// BenchmarkUploadLoopback reports the agent's upload rate over loopback into a real tusd
// (hashing included) next to a plain copy of the same file, as a ratio.
func BenchmarkUploadLoopback(b *testing.B) {
	video := b.TempDir()
	const size = 64 << 20
	src := filepath.Join(dayDir(video), "m_.avi")
	writeFile(b, src, size, ended)
	copyStart := time.Now()
	in, _ := os.Open(src)
	out, _ := os.Create(filepath.Join(b.TempDir(), "copy"))
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	_ = out.Sync()
	_, _ = in.Close(), out.Close()
	copyRate := float64(size) / 1e6 / time.Since(copyStart).Seconds()
	var total time.Duration
	for b.Loop() {
		ts := newTestServer(b, endedSession(12, "m_"))
		cfg := testConfig(b, ts.srv.URL, video)
		cfg.ChunkBytes = 16 << 20
		start := time.Now()
		sum, err := RunOnce(context.Background(), cfg, nil)
		total += time.Since(start)
		if err != nil || sum.Uploaded != 1 {
			b.Fatal(sum, err)
		}
	}
	rate := float64(size) * float64(b.N) / 1e6 / total.Seconds()
	b.ReportMetric(rate, "MB/s")
	b.ReportMetric(copyRate, "copy-MB/s")
	b.ReportMetric(rate/copyRate, "x-copy")
}
