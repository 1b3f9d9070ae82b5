package e2e

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/agent"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/storage"
	"github.com/jax-mba/mba/internal/testenv"
)

// TestUploadsOntoAFullDiskAreVerifiedOnceSpaceReturns: the agent uploads while the disk that
// holds staging and storage is full (a small tmpfs); nothing is left broken, and once space
// is freed every file ends VERIFIED.
func TestUploadsOntoAFullDiskAreVerifiedOnceSpaceReturns(t *testing.T) {
	root := testenv.Tmpfs(t, "16m")
	files, err := storage.New(context.Background(), storage.Config{Kind: "dir", Dir: filepath.Join(root, "files")})
	require.NoError(t, err)
	s, dev, videoDir, token := newUploadStack(t, files, 3600)
	s.staging = filepath.Join(root, "staging")
	s.restartAPI()

	sid := s.createSession([]int64{dev.ID}, 3600)
	s.waitSession(sid, recording.SessionComplete, time.Minute)
	cfg := agent.Config{ServerURL: s.api.URL, Enclosure: dev.Name, Token: token, VideoDir: videoDir, StateDir: t.TempDir(),
		ChunkBytes: 256 << 10, StableFor: time.Millisecond, ScanEvery: 100 * time.Millisecond,
		RetryBase: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	filler := testenv.Fill(t, root, 32<<10)
	runCtx, stop := context.WithTimeout(context.Background(), 3*time.Second)
	_, err = agent.RunOnce(runCtx, cfg, log)
	stop()
	require.Error(t, err, "nothing can be stored on a full disk")
	for _, f := range s.session(sid).DeviceStatuses[0].Files {
		require.NotEqual(t, recording.FileVerified, f.State, f.Name)
	}
	infos, _ := filepath.Glob(filepath.Join(s.staging, "*.info"))
	for _, p := range infos {
		st, err := os.Stat(p)
		require.NoError(t, err)
		require.Positive(t, st.Size(), "%s written empty", p)
	}

	require.NoError(t, os.Remove(filler))
	require.Eventually(t, func() bool {
		_, _ = agent.RunOnce(context.Background(), cfg, log)
		return slices.Contains(s.eventKinds(sid), "files-verified")
	}, 2*time.Minute, 500*time.Millisecond, "events: %v", s.eventKinds(sid))
	var local []string
	require.NoError(t, filepath.WalkDir(videoDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			local = append(local, d.Name())
		}
		return err
	}))
	d := s.session(sid).DeviceStatuses[0]
	require.Len(t, d.Files, len(local))
	for _, f := range d.Files {
		require.Equal(t, recording.FileVerified, f.State, "%s: %s", f.Name, f.Reason)
		require.Contains(t, local, f.Name)
	}
}
