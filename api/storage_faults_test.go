package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/storage"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/internal/testenv"
)

// uploadFixture is an enclosure with a token and a session, uploading to staging and storage
// under root.
type uploadFixture struct {
	h       *harness
	files   storage.Storage
	staging string
	sid     int64
	dev     int64
}

const faultToken = "the token of NV31"

func newUploadFixture(t *testing.T, root string, wrap func(storage.Storage) storage.Storage) *uploadFixture {
	files, err := storage.New(context.Background(), storage.Config{Kind: "dir", Dir: filepath.Join(root, "files")})
	require.NoError(t, err)
	if wrap != nil {
		files = wrap(files)
	}
	staging := filepath.Join(root, "staging")
	h := newHarness(t, func(d *Deps) {
		d.Storage = files
		d.Config.Uploads = UploadConfig{StagingDir: staging, MaxFileBytes: 1 << 30, ManifestSince: time.Hour, DownloadTTL: time.Minute}
	})
	h.send(beat("NV31", 0, false, ""))
	dev := h.deviceID("NV31")
	require.NoError(t, h.store.SetDeviceToken(context.Background(), dev, auth.HashLinkToken(faultToken)))
	return &uploadFixture{h: h, files: files, staging: staging, sid: h.session(dev), dev: dev}
}

func (u *uploadFixture) create(content []byte) response {
	sum := sha256.Sum256(content)
	return u.h.agentCall("POST", "/api/agent/uploads/", "NV31", faultToken, map[string]string{
		"Upload-Length":   strconv.Itoa(len(content)),
		"Upload-Metadata": tusMetadata("session_id", fmt.Sprint(u.sid), "filename", "cage_.avi", "sha256", hex.EncodeToString(sum[:])),
	}, nil)
}

func uploadPath(res response) string {
	loc := res.header.Get("Location")
	return loc[strings.Index(loc, uploadsRoute):]
}

func (u *uploadFixture) patch(path string, offset int, part []byte) response {
	return u.h.agentCall("PATCH", path, "NV31", faultToken, map[string]string{"Upload-Offset": strconv.Itoa(offset),
		"Content-Type": "application/offset+octet-stream"}, part)
}

func (u *uploadFixture) head(path string) response {
	return u.h.agentCall("HEAD", path, "NV31", faultToken, nil, nil)
}

func (u *uploadFixture) file(t *testing.T) store.SessionFile {
	f, err := u.h.store.SessionFile(context.Background(), u.sid, u.dev, "cage_.avi")
	require.NoError(t, err)
	return f
}

// requireFull checks a full disk's answer: 507, a clear message (a HEAD has no body), and no
// server path.
func requireFull(t *testing.T, res response, root string) {
	t.Helper()
	require.Equal(t, http.StatusInsufficientStorage, res.status, "%s", res.body)
	if len(res.body) > 0 {
		require.Contains(t, res.json(t)["message"], "storage is full")
	}
	require.NotEmpty(t, res.header.Get("Retry-After"))
	require.NotContains(t, string(res.body), root)
	require.NotContains(t, string(res.body), "/")
}

// TestFullDiskUploadsHeal: uploads onto a full disk (a 2 MB tmpfs holding staging and
// storage) get a clear 507 without paths, never leave an .info that breaks the upload for
// good, an upload that is broken anyway is gone (404, the agent starts a new one), and once
// space is freed the file is uploaded.
func TestFullDiskUploadsHeal(t *testing.T) {
	root := testenv.Tmpfs(t, "2m") // else TestFinishAfterAFullDiskHeals still injects the error
	u := newUploadFixture(t, root, nil)
	content := make([]byte, 300<<10)
	_, _ = rand.Read(content)

	filler := testenv.Fill(t, root, 0)
	requireFull(t, u.create(content), root)
	infos, _ := filepath.Glob(filepath.Join(u.staging, "*.info*"))
	require.Empty(t, infos, "nothing half-written is left behind")
	f := u.file(t)
	require.NotNil(t, f.UploadID)
	requireFull(t, u.head(uploadsRoute+*f.UploadID), root) // its lock file cannot be written either
	require.NoError(t, os.Remove(filler))
	require.Equal(t, http.StatusNotFound, u.head(uploadsRoute+*f.UploadID).status, "the upload the disk refused is gone, not broken")

	// An upload broken by an older version (its .info written empty) is gone too, and cleaned up.
	require.NoError(t, os.WriteFile(filepath.Join(u.staging, *f.UploadID+".info"), nil, 0o640))
	require.NoError(t, os.WriteFile(filepath.Join(u.staging, *f.UploadID), nil, 0o640))
	res := u.head(uploadsRoute + *f.UploadID)
	require.Equal(t, http.StatusNotFound, res.status, "%s", res.body)
	_, err := os.Stat(filepath.Join(u.staging, *f.UploadID+".info"))
	require.True(t, errors.Is(err, os.ErrNotExist))

	// Room to begin the upload but not for its bytes: the PATCH is refused clearly.
	filler = testenv.Fill(t, root, 64<<10)
	res = u.create(content)
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	path := uploadPath(res)
	requireFull(t, u.patch(path, 0, content), root)

	// Space returns: the agent asks where it stands and sends the rest.
	require.NoError(t, os.Remove(filler))
	res = u.head(path)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	offset, err := strconv.Atoi(res.header.Get("Upload-Offset"))
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, u.patch(path, offset, content[offset:]).status)
	require.Equal(t, recording.FileUploaded, u.file(t).State)
	r, err := u.files.Open(context.Background(), storage.Key(u.sid, "NV31", "cage_.avi"), 0)
	require.NoError(t, err)
	defer r.Close()
	stored, err := io.ReadAll(r)
	require.NoError(t, err)
	require.True(t, bytes.Equal(content, stored), "stored intact")
}

// fullOnce is storage whose first move of a finished upload fails as a full disk does.
type fullOnce struct {
	storage.Storage
	failed atomic.Bool
}

func (f *fullOnce) PutFile(ctx context.Context, key, path string) error {
	if f.failed.CompareAndSwap(false, true) {
		return fmt.Errorf("storage: put file %s: %w", key, &os.PathError{Op: "rename", Path: path, Err: syscall.ENOSPC})
	}
	return f.Storage.PutFile(ctx, key, path)
}

// TestFinishAfterAFullDiskHeals: when the last bytes arrived but storage was full, the agent
// gets 507 (no path) and its next HEAD finishes the upload instead of reporting it complete
// while the file stays UPLOADING for good.
func TestFinishAfterAFullDiskHeals(t *testing.T) {
	root := t.TempDir()
	u := newUploadFixture(t, root, func(s storage.Storage) storage.Storage { return &fullOnce{Storage: s} })
	content := []byte("RIFF a small video")
	res := u.create(content)
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	path := uploadPath(res)
	requireFull(t, u.patch(path, 0, content), root)
	require.Equal(t, recording.FileUploading, u.file(t).State)

	res = u.head(path)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, strconv.Itoa(len(content)), res.header.Get("Upload-Offset"))
	require.Equal(t, recording.FileUploaded, u.file(t).State, "the HEAD finished it")
	_, err := u.files.Stat(context.Background(), storage.Key(u.sid, "NV31", "cage_.avi"))
	require.NoError(t, err)
	require.Contains(t, u.h.outbox(), "file-uploaded/", "the workflow is told, and verifies it")
}
