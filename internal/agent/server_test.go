package agent

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tus/tusd/v2/pkg/filelocker"
	"github.com/tus/tusd/v2/pkg/filestore"
	"github.com/tus/tusd/v2/pkg/handler"
)

const (
	testToken     = "enclosure-token"
	testEnclosure = "NV1"
)

// testServer serves the agent contract: the manifest, and a real tusd handler at
// /api/agent/uploads/ with the server's rules (metadata checked, unknown session 404, already
// verified 409). Like the real server, it records UPLOADING when an upload is created and
// UPLOADED when its last byte arrives.
type testServer struct {
	t        testing.TB
	srv      *httptest.Server
	storeDir string

	mu       sync.Mutex
	sessions []ManifestSession
	verified map[string]bool // file names the server answers 409 for
	refused  map[int64]bool  // sessions creation answers 404 for (not this enclosure's)

	received atomic.Int64 // PATCH body bytes received by tusd
	posts    atomic.Int32
	onBytes  atomic.Pointer[func(total int64)] // called as PATCH bytes arrive
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func newTestServer(t testing.TB, sessions ...ManifestSession) *testServer {
	t.Helper()
	ts := &testServer{t: t, storeDir: t.TempDir(), sessions: sessions, verified: map[string]bool{}, refused: map[int64]bool{}}
	store := filestore.New(ts.storeDir)
	locker := filelocker.New(ts.storeDir)
	composer := handler.NewStoreComposer()
	store.UseIn(composer)
	locker.UseIn(composer)
	h, err := handler.NewHandler(handler.Config{
		BasePath:      uploadsPath,
		StoreComposer: composer,
		PreUploadCreateCallback: func(hook handler.HookEvent) (handler.HTTPResponse, handler.FileInfoChanges, error) {
			md := hook.Upload.MetaData
			sid, err := strconv.ParseInt(md["session_id"], 10, 64)
			if err != nil || md["filename"] == "" || !hex64.MatchString(md["sha256"]) {
				return handler.HTTPResponse{}, handler.FileInfoChanges{},
					handler.NewError("ERR_METADATA", "session_id, filename and sha256 are required", http.StatusBadRequest)
			}
			ts.mu.Lock()
			defer ts.mu.Unlock()
			if ts.session(sid) == nil || ts.refused[sid] {
				return handler.HTTPResponse{}, handler.FileInfoChanges{},
					handler.NewError("ERR_SESSION", "unknown session", http.StatusNotFound)
			}
			if ts.verified[md["filename"]] {
				return handler.HTTPResponse{}, handler.FileInfoChanges{},
					handler.NewError("ERR_VERIFIED", "already verified", http.StatusConflict)
			}
			return handler.HTTPResponse{}, handler.FileInfoChanges{}, nil
		},
		PreFinishResponseCallback: func(hook handler.HookEvent) (handler.HTTPResponse, error) {
			md := hook.Upload.MetaData
			sid, _ := strconv.ParseInt(md["session_id"], 10, 64)
			ts.setFile(sid, ManifestFile{Name: md["filename"], State: StateUploaded, Size: hook.Upload.Size,
				SHA256: md["sha256"], UploadURL: uploadsPath + hook.Upload.ID})
			return handler.HTTPResponse{}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tus := http.StripPrefix(uploadsPath, h)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/agent/manifest", func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		m := Manifest{Enclosure: testEnclosure, Sessions: ts.sessions}
		b, _ := json.Marshal(m)
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	mux.HandleFunc(uploadsPath, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPatch:
			r.Body = &serverCounter{r: r.Body, ts: ts}
		case http.MethodPost:
			ts.posts.Add(1)
			rw := &locationRecorder{ResponseWriter: w}
			tus.ServeHTTP(rw, r)
			if rw.status == http.StatusCreated && r.Header.Get("Upload-Length") != "0" { // (an empty upload is finished at once)
				md := parseMetadata(r.Header.Get("Upload-Metadata"))
				sid, _ := strconv.ParseInt(md["session_id"], 10, 64)
				size, _ := strconv.ParseInt(r.Header.Get("Upload-Length"), 10, 64)
				id := rw.Header().Get("Location")
				id = id[strings.LastIndex(id, "/")+1:]
				ts.setFile(sid, ManifestFile{Name: md["filename"], State: StateUploading, Size: size,
					SHA256: md["sha256"], UploadURL: uploadsPath + id})
			}
			return
		}
		tus.ServeHTTP(w, r)
	})
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken || r.Header.Get("X-Mba-Enclosure") != testEnclosure {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"wrong enclosure token"}`)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.srv.Close)
	return ts
}

func parseMetadata(h string) map[string]string {
	md := map[string]string{}
	for _, kv := range strings.Split(h, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), " ")
		b, _ := decodeB64(v)
		md[k] = string(b)
	}
	return md
}

// session returns the session with id (mu held).
func (ts *testServer) session(id int64) *ManifestSession {
	for i := range ts.sessions {
		if ts.sessions[i].SessionID == id {
			return &ts.sessions[i]
		}
	}
	return nil
}

// setFile records the server's state of a file.
func (ts *testServer) setFile(sid int64, f ManifestFile) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	s := ts.session(sid)
	if s == nil {
		return
	}
	for i := range s.Files {
		if s.Files[i].Name == f.Name {
			s.Files[i] = f
			return
		}
	}
	s.Files = append(s.Files, f)
}

// file returns the server's entry for a file.
func (ts *testServer) file(sid int64, name string) ManifestFile {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if s := ts.session(sid); s != nil {
		f, _ := s.file(name)
		return f
	}
	return ManifestFile{}
}

// clearFiles makes the server forget its files of a session (a stale manifest).
func (ts *testServer) clearFiles(sid int64) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.session(sid).Files = nil
}

// stored is one upload in the tusd store.
type stored struct {
	info   handler.FileInfo
	sha256 string
}

// uploads lists the uploads in the tusd store by file name (the newest per name).
func (ts *testServer) uploads() map[string][]stored {
	ts.t.Helper()
	infos, _ := filepath.Glob(filepath.Join(ts.storeDir, "*.info"))
	out := map[string][]stored{}
	for _, p := range infos {
		var info handler.FileInfo
		b, err := os.ReadFile(p)
		if err != nil {
			ts.t.Fatal(err)
		}
		if err := json.Unmarshal(b, &info); err != nil {
			ts.t.Fatal(err)
		}
		out[info.MetaData["filename"]] = append(out[info.MetaData["filename"]],
			stored{info: info, sha256: fileSHA(ts.t, strings.TrimSuffix(p, ".info"))})
	}
	return out
}

type serverCounter struct {
	r  io.ReadCloser
	ts *testServer
}

func (c *serverCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	total := c.ts.received.Add(int64(n))
	if f := c.ts.onBytes.Load(); f != nil && n > 0 {
		(*f)(total)
	}
	return n, err
}

func (c *serverCounter) Close() error { return c.r.Close() }

type locationRecorder struct {
	http.ResponseWriter
	status int
}

func (l *locationRecorder) WriteHeader(code int) {
	l.status = code
	l.ResponseWriter.WriteHeader(code)
}

// cutProxy forwards TCP connections to target and, once armed, cuts every connection when
// the client has sent cutAfter more bytes: a network drop in the middle of a PATCH.
type cutProxy struct {
	ln       net.Listener
	target   string
	cutAfter atomic.Int64 // bytes from the client before the cut; <= 0: no cut
	sent     atomic.Int64
	cuts     atomic.Int32
	// stall: at the cut, close only the server's side and leave the client's connection open
	// and silent (a network that stops answering).
	stall  bool
	silent chan struct{}
}

func newCutProxy(t testing.TB, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: strings.TrimPrefix(target, "http://"), silent: make(chan struct{})}
	t.Cleanup(func() { _ = ln.Close(); close(p.silent) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *cutProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	stalled := atomic.Bool{}
	go func() {
		_, _ = io.Copy(c, s)
		if !stalled.Load() {
			_ = c.Close()
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			total := p.sent.Add(int64(n))
			if lim := p.cutAfter.Load(); lim > 0 && total >= lim {
				p.cutAfter.Store(0) // cut once
				p.cuts.Add(1)
				_, _ = s.Write(buf[:n-int(total-lim)])
				if p.stall {
					stalled.Store(true)
					_ = s.Close()
					<-p.silent // the client hears nothing more on this connection
				}
				return // both closed by the defers
			}
			if _, werr := s.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// helpers

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeFile writes size pseudo-random bytes (seeded by name) and sets the mtime.
func writeFile(t testing.TB, path string, size int64, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var seed [32]byte
	copy(seed[:], filepath.Base(path))
	h := sha256.Sum256(seed[:])
	buf := make([]byte, 0, 1<<20)
	for written := int64(0); written < size; {
		buf = buf[:0]
		for len(buf) < cap(buf) {
			h = sha256.Sum256(h[:])
			buf = append(buf, h[:]...)
		}
		n := min(int64(len(buf)), size-written)
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatal(err)
		}
		written += n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// testConfig is a config for the test server with fast retries and UTC date directories.
func testConfig(t testing.TB, serverURL, videoDir string) Config {
	return Config{
		ServerURL: serverURL, Enclosure: testEnclosure, Token: testToken,
		VideoDir: videoDir, StateDir: t.TempDir(),
		ChunkBytes: 1 << 20, StableFor: 30 * time.Second, Location: time.UTC,
		RetryBase: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func runOnce(t *testing.T, cfg Config) (Summary, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return RunOnce(ctx, cfg, testLogger(t))
}

func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

func TestMain(m *testing.M) {
	// tusd logs through the standard logger (golang.org/x/exp/slog's default): keep test
	// output to the agent's own log.
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}
