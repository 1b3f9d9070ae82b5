package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/agent"
	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/simulator"
	"github.com/jax-mba/mba/internal/storage"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/workflows"
)

// The upload path end to end: the simulator writes a recording's files in the client's layout,
// the agent uploads them, the workflow verifies them, on each storage backend.

func TestUploadsVerifiedOnDirectoryStorage(t *testing.T) {
	files, err := storage.New(context.Background(), storage.Config{Kind: "dir", Dir: t.TempDir()})
	require.NoError(t, err)
	testUploads(t, files, "device_files_checked")
}

func TestUploadsVerifiedOnS3Storage(t *testing.T) {
	testUploads(t, s3Storage(t, "e2e-uploads"), "")
}

// s3Storage is storage in bucket of the S3 server make test starts (MinIO), under a prefix of
// the run's own; the test is skipped without one.
func s3Storage(t *testing.T, bucket string) storage.Storage {
	endpoint := os.Getenv("MBA_TEST_S3_ENDPOINT")
	if endpoint == "" {
		if os.Getenv("MBA_TEST_REQUIRE_S3") == "1" {
			t.Fatal("MBA_TEST_S3_ENDPOINT is not set but MBA_TEST_REQUIRE_S3=1")
		}
		t.Skip("no S3 server: set MBA_TEST_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY (make test starts MinIO)")
	}
	files, err := storage.New(context.Background(), storage.Config{Kind: "s3", S3Endpoint: endpoint,
		S3Bucket: bucket, S3Prefix: fmt.Sprintf("run-%d", time.Now().UnixNano()),
		S3AccessKey: os.Getenv("MBA_TEST_S3_ACCESS_KEY"), S3SecretKey: os.Getenv("MBA_TEST_S3_SECRET_KEY")})
	require.NoError(t, err)
	return files
}

// flipOnce is storage that flips a byte of the first copy of one file stored: bit rot, or a
// bad disk, between the upload and the verification.
type flipOnce struct {
	storage.Storage
	name string
	mu   sync.Mutex
	done bool
}

func (f *flipOnce) PutFile(ctx context.Context, key, path string) error {
	if err := f.Storage.PutFile(ctx, key, path); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done || !strings.HasSuffix(key, "/"+f.name) {
		return nil
	}
	f.done = true
	r, err := f.Open(ctx, key, 0)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		return err
	}
	data[len(data)/2] ^= 0x01
	return f.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
}

// newUploadStack is the stack with files storage, and one simulated enclosure with a token of
// its own that writes its files into videoDir, its clock timeScale times faster. It is the
// unmodified client: its heartbeats stay tokenless after the token is set, and its hostname is
// zero-padded (up07), so it writes NV7-lab/ (PROTOCOL.md 6), where the agent must find them.
func newUploadStack(t *testing.T, files storage.Storage, timeScale float64) (s *stack, dev store.Device, videoDir, token string) {
	s = newStack(t, func(s *stack) {
		s.files, s.staging = files, t.TempDir()
		s.settings.UploadDeadline = 20 * time.Second
	})
	videoDir = t.TempDir()
	token = "enclosure token of the upload test"
	sim, err := simulator.New(simulator.Config{BaseURL: s.api.URL + "/api", Count: 1, NamePrefix: "up0", FirstNumber: 7,
		Interval: 200 * time.Millisecond, FollowUp: 50 * time.Millisecond, TimeScale: timeScale, Location: "lab",
		VideoDir: videoDir, FileBytesPerSecond: 1000, Token: token})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sim.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	require.Eventually(t, func() bool {
		dev, err = s.store.DeviceByName(context.Background(), sim.Enclosures()[0].Name(), time.Now(), time.Minute)
		return err == nil
	}, 20*time.Second, 50*time.Millisecond)
	require.NoError(t, s.store.SetDeviceToken(context.Background(), dev.ID, auth.HashLinkToken(token)))
	return s, dev, videoDir, token
}

// TestFragmentsVerifiedDuringTheRecording runs the agent beside the enclosure all along: the
// first fragments are VERIFIED before the recording ends.
func TestFragmentsVerifiedDuringTheRecording(t *testing.T) {
	files, err := storage.New(context.Background(), storage.Config{Kind: "dir", Dir: t.TempDir()})
	require.NoError(t, err)
	s, dev, videoDir, token := newUploadStack(t, files, 900) // three hours in 12 s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = agent.Run(ctx, agent.Config{ServerURL: s.api.URL, Enclosure: dev.Name, Token: token, VideoDir: videoDir,
			StateDir: t.TempDir(), StableFor: time.Millisecond, ScanEvery: 200 * time.Millisecond},
			slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	t.Cleanup(func() { cancel(); <-done })

	sid := s.createSession([]int64{dev.ID}, 3*3600)
	s.waitSession(sid, recording.SessionComplete, time.Minute)
	if !assert.Eventually(t, func() bool { return slices.Contains(s.eventKinds(sid), "files-verified") }, time.Minute, 200*time.Millisecond) {
		// Seen once under a fully loaded machine: say where verification stood, to find why.
		for _, f := range s.session(sid).DeviceStatuses[0].Files {
			t.Logf("file %s: %s %s", f.Name, f.State, f.Reason)
		}
		t.Fatalf("no files-verified event; the session's events: %v", s.eventKinds(sid))
	}
	d := s.session(sid).DeviceStatuses[0]
	early := 0
	for _, f := range d.Files {
		require.Equal(t, recording.FileVerified, f.State, f.Name)
		if f.VerifiedAt.Before(*d.EndedAt) {
			early++
		}
	}
	require.Positive(t, early, "no fragment was verified before the recording ended at %s", d.EndedAt)
}

// testUploads runs the scenario; history, if set, names the recorded history of the enclosure's
// workflow (make record-histories).
func testUploads(t *testing.T, files storage.Storage, history string) {
	flip := &flipOnce{Storage: files}
	s, dev, videoDir, token := newUploadStack(t, flip, 3600)
	name := dev.Name

	// Three simulated hours with hourly fragments: four fragments of up to 3.6 MB.
	sid := s.createSession([]int64{dev.ID}, 3*3600)
	s.waitSession(sid, recording.SessionComplete, time.Minute)

	// What the enclosure wrote.
	local := map[string]string{} // name -> path
	require.NoError(t, filepath.WalkDir(videoDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			local[d.Name()] = path
		}
		return err
	}))
	var fragments []string
	for n := range local {
		if strings.HasSuffix(n, ".avi") {
			fragments = append(fragments, n)
		}
	}
	slices.Sort(fragments)
	require.GreaterOrEqual(t, len(fragments), 3, "%v", local)
	flip.name = fragments[0] // corrupted in storage once
	lost := fragments[1]     // the enclosure's disk loses it before the upload
	require.NoError(t, os.Remove(local[lost]))
	delete(local, lost)
	var want int64
	for _, p := range local {
		st, err := os.Stat(p)
		require.NoError(t, err)
		want += st.Size()
	}

	cfg := agent.Config{ServerURL: s.api.URL, Enclosure: name, Token: token, VideoDir: videoDir, StateDir: t.TempDir(),
		Concurrency: 2, ChunkBytes: 256 << 10, StableFor: time.Millisecond, ScanEvery: 100 * time.Millisecond,
		RetryBase: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// First run, slowed down, killed mid-upload; the API is redeployed meanwhile.
	slow := cfg
	slow.BandwidthBytesPerSecond = 1 << 20
	runCtx, stop := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	_, err := agent.RunOnce(runCtx, slow, log)
	stop()
	require.Error(t, err, "the first run should have been cut short")
	firstRun := s.patchBytes.Load()
	require.Positive(t, firstRun)
	s.restartAPI()

	// Then the agent runs until the workflow has settled every file (its summary event).
	require.Eventually(t, func() bool {
		_, _ = agent.RunOnce(context.Background(), cfg, log)
		kinds := s.eventKinds(sid)
		return slices.Contains(kinds, "files-verified") || slices.Contains(kinds, "files-incomplete")
	}, 2*time.Minute, 500*time.Millisecond)

	x := s.session(sid)
	d := x.DeviceStatuses[0]
	states := map[string]api.FileView{}
	for _, f := range d.Files {
		states[f.Name] = f
	}
	require.Len(t, d.Files, len(local)+1, "every file written, and the lost one")
	for n := range local {
		require.Equal(t, recording.FileVerified, states[n].State, "%s: %s", n, states[n].Reason)
	}
	require.Equal(t, recording.FileMissing, states[lost].State)
	require.Contains(t, states[lost].Reason, "not uploaded")
	require.Equal(t, 2, states[fragments[0]].Uploads, "the corrupt copy was replaced")
	require.Equal(t, api.FilesSummaryView{Expected: len(local) + 1, Verified: len(local), Missing: 1}, *d.FilesSummary)

	kinds := s.eventKinds(sid)
	require.Contains(t, kinds, "file-reupload")
	require.Contains(t, kinds, "file-missing")
	require.Contains(t, kinds, "files-incomplete")

	// Resumed, not restarted: all bytes once, plus the corrupt file again, plus at most one
	// chunk per upload slot cut off by the kill.
	corrupt, err := os.Stat(local[fragments[0]])
	require.NoError(t, err)
	sent := s.patchBytes.Load()
	require.LessOrEqual(t, sent, want+corrupt.Size()+2*cfg.ChunkBytes, "sent %d bytes for %d", sent, want)

	// The download link serves exactly the enclosure's bytes.
	f := states[fragments[2]]
	require.NotEmpty(t, f.DownloadURL)
	res, err := http.Get(s.api.URL + f.DownloadURL)
	require.NoError(t, err)
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	orig, err := os.ReadFile(local[fragments[2]])
	require.NoError(t, err)
	require.True(t, bytes.Equal(orig, got), "downloaded %d bytes, the enclosure has %d", len(got), len(orig))
	res, err = http.Get(s.api.URL + strings.Replace(f.DownloadURL, "token=", "token=x", 1))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)

	// With every file settled, the enclosure's workflow and then the session's end.
	ctx, cancelWait := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelWait()
	var result workflows.DeviceResult
	require.NoError(t, s.temporal.GetWorkflow(ctx, workflows.DeviceWorkflowID(sid, dev.ID), "").Get(ctx, &result))
	require.Equal(t, recording.DeviceComplete, result.Status)
	require.NoError(t, s.temporal.GetWorkflow(ctx, workflows.SessionWorkflowID(sid), "").Get(ctx, nil))
	if history != "" {
		s.recordHistory(workflows.DeviceWorkflowID(sid, dev.ID), history)
	}
}

// eventKinds lists the kinds of a session's timeline events.
func (s *stack) eventKinds(sid int64) []string {
	s.t.Helper()
	var events []api.SessionEventView
	require.Equal(s.t, http.StatusOK, s.call("GET", fmt.Sprintf("/api/recording-session/%d/events", sid), nil, &events))
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.Kind)
	}
	return kinds
}
