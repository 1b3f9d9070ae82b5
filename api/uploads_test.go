package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/storage"
	"github.com/jax-mba/mba/internal/store"
)

// agentCall is a request of the upload agent: enclosure name, token and tus headers.
func (h *harness) agentCall(method, path, name, token string, header map[string]string, body []byte) response {
	h.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, h.http.URL+path, bytes.NewReader(body))
	require.NoError(h.t, err)
	if name != "" {
		req.Header.Set(agentHeader, name)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return h.roundTrip(req)
}

func tusMetadata(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+" "+base64.StdEncoding.EncodeToString([]byte(kv[i+1])))
	}
	return strings.Join(parts, ",")
}

func TestUploadsAuthenticateAndValidate(t *testing.T) {
	files, err := storage.New(context.Background(), storage.Config{Kind: "dir", Dir: t.TempDir()})
	require.NoError(t, err)
	h := newHarness(t, func(d *Deps) {
		d.Storage = files
		d.Config.Uploads = UploadConfig{StagingDir: t.TempDir(), MaxFileBytes: 1 << 20, ManifestSince: time.Hour, DownloadTTL: time.Minute}
	})
	h.send(beat("NV7", 0, false, ""))
	h.send(beat("NV8", 0, false, ""))
	dev := h.deviceID("NV7")
	const token = "the token of NV7"
	require.NoError(t, h.store.SetDeviceToken(context.Background(), dev, auth.HashLinkToken(token)))
	sid := h.session(dev)

	// Who may talk to the agent routes.
	require.Equal(t, http.StatusUnauthorized, h.agentCall("GET", "/api/agent/manifest", "", token, nil, nil).status)
	require.Equal(t, http.StatusUnauthorized, h.agentCall("GET", "/api/agent/manifest", "NV7", "wrong", nil, nil).status)
	require.Equal(t, http.StatusUnauthorized, h.agentCall("GET", "/api/agent/manifest", "NV9", token, nil, nil).status)
	res := h.agentCall("GET", "/api/agent/manifest", "NV8", "any", nil, nil)
	require.Equal(t, http.StatusForbidden, res.status)
	require.Contains(t, string(res.body), "has no token yet")

	res = h.agentCall("GET", "/api/agent/manifest", "NV7", token, nil, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Contains(t, string(res.body), `"prefixes":["cage_"]`)

	content := []byte("RIFF a small video")
	sum := sha256.Sum256(content)
	sha := hex.EncodeToString(sum[:])
	create := func(length int, meta string) response {
		return h.agentCall("POST", "/api/agent/uploads/", "NV7", token,
			map[string]string{"Upload-Length": strconv.Itoa(length), "Upload-Metadata": meta}, nil)
	}
	// Bad input is a 4xx naming the problem; nothing is recorded.
	for _, c := range []struct {
		meta, want string
		status     int
	}{
		{tusMetadata("session_id", "x", "filename", "cage_.avi", "sha256", sha), "session_id", 400},
		{tusMetadata("session_id", fmt.Sprint(sid), "filename", "../etc/passwd", "sha256", sha), "filename", 400},
		{tusMetadata("session_id", fmt.Sprint(sid), "filename", "cage_.avi", "sha256", "abc"), "sha256", 400},
		{tusMetadata("session_id", fmt.Sprint(sid), "filename", "other_.avi", "sha256", sha), "not a file of this enclosure", 400},
		{tusMetadata("session_id", fmt.Sprint(sid+1000), "filename", "cage_.avi", "sha256", sha), "not in recording session", 404},
	} {
		res := create(len(content), c.meta)
		require.Equal(t, c.status, res.status, "%s: %s", c.meta, res.body)
		require.Contains(t, string(res.body), c.want)
	}
	require.Equal(t, http.StatusRequestEntityTooLarge, create(2<<20, tusMetadata("session_id", fmt.Sprint(sid), "filename", "cage_.avi", "sha256", sha)).status)

	// A whole upload in two PATCHes.
	res = create(len(content), tusMetadata("session_id", fmt.Sprint(sid), "filename", "cage_.avi", "sha256", sha))
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	loc := res.header.Get("Location")
	require.Contains(t, loc, uploadsRoute)
	path := loc[strings.Index(loc, uploadsRoute):]
	patch := func(offset int, part []byte) response {
		return h.agentCall("PATCH", path, "NV7", token, map[string]string{"Upload-Offset": strconv.Itoa(offset),
			"Content-Type": "application/offset+octet-stream"}, part)
	}
	require.Equal(t, http.StatusNoContent, patch(0, content[:5]).status)
	// Another enclosure cannot touch it.
	require.NoError(t, h.store.SetDeviceToken(context.Background(), h.deviceID("NV8"), auth.HashLinkToken("t8")))
	require.Equal(t, http.StatusNotFound, h.agentCall("HEAD", path, "NV8", "t8", nil, nil).status)
	res = h.agentCall("HEAD", path, "NV7", token, nil, nil)
	require.Equal(t, "5", res.header.Get("Upload-Offset"))
	require.Equal(t, http.StatusNoContent, patch(5, content[5:]).status)

	// Stored, recorded UPLOADED, and the workflow told.
	r, err := files.Open(context.Background(), storage.Key(sid, "NV7", "cage_.avi"), 0)
	require.NoError(t, err)
	stored, _ := io.ReadAll(r)
	r.Close()
	require.Equal(t, content, stored)
	f, err := h.store.SessionFile(context.Background(), sid, dev, "cage_.avi")
	require.NoError(t, err)
	require.Equal(t, recording.FileUploaded, f.State)
	require.Equal(t, sha, *f.SHA256)
	require.Contains(t, h.outbox(), "file-uploaded/")
	metrics := h.metrics()
	require.Contains(t, metrics, `mba_uploaded_total{unit="bytes"} 18`)
	require.Contains(t, metrics, `mba_session_files{state="UPLOADED"} 1`)
	// The agent that lost the final reply learns it is complete, and re-sends nothing.
	res = h.agentCall("HEAD", path, "NV7", token, nil, nil)
	require.Equal(t, strconv.Itoa(len(content)), res.header.Get("Upload-Offset"))

	// Uploads are outside the API's body limit (64 KiB here): tusd bounds their size itself.
	big := bytes.Repeat([]byte("0.033333\n"), 100<<10/9)
	bigSum := sha256.Sum256(big)
	res = create(len(big), tusMetadata("session_id", fmt.Sprint(sid), "filename", "cage_timestamps.txt", "sha256", hex.EncodeToString(bigSum[:])))
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	loc = res.header.Get("Location")
	res = h.agentCall("PATCH", loc[strings.Index(loc, uploadsRoute):], "NV7", token, map[string]string{"Upload-Offset": "0",
		"Content-Type": "application/offset+octet-stream"}, big)
	require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)

	// Once verified, the same content is refused as done.
	require.NoError(t, h.store.RecordFileResult(context.Background(), store.FileResult{SessionID: sid, DeviceID: dev,
		Name: "cage_.avi", State: recording.FileVerified, At: time.Now()}))
	require.Equal(t, http.StatusConflict, create(len(content), tusMetadata("session_id", fmt.Sprint(sid), "filename", "cage_.avi", "sha256", sha)).status)

	// A verified file is immutable: other bytes under its name are refused and recorded, and the
	// stored bytes stay the verified ones.
	forged := []byte("RIFF something else")
	forgedSum := sha256.Sum256(forged)
	res = create(len(forged), tusMetadata("session_id", fmt.Sprint(sid), "filename", "cage_.avi", "sha256", hex.EncodeToString(forgedSum[:])))
	require.Equal(t, http.StatusConflict, res.status, "%s", res.body)
	require.Contains(t, res.json(t)["message"], "never replaced")
	var refusals int
	require.NoError(t, h.srv.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM audit_log WHERE action = 'upload.refused_verified' AND subject LIKE '%cage_.avi%'`).Scan(&refusals))
	require.Equal(t, 1, refusals)
	f, err = h.store.SessionFile(context.Background(), sid, dev, "cage_.avi")
	require.NoError(t, err)
	require.Equal(t, recording.FileVerified, f.State)
	require.Equal(t, sha, *f.SHA256)
	r, err = files.Open(context.Background(), storage.Key(sid, "NV7", "cage_.avi"), 0)
	require.NoError(t, err)
	stored, _ = io.ReadAll(r)
	r.Close()
	require.Equal(t, content, stored)

	// tusd's own errors are JSON like every other error (here: a PATCH at the wrong offset).
	res = create(len(forged), tusMetadata("session_id", fmt.Sprint(sid), "filename", "cage_timestamps.txt", "sha256", hex.EncodeToString(forgedSum[:])))
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	loc = res.header.Get("Location")
	res = h.agentCall("PATCH", loc[strings.Index(loc, uploadsRoute):], "NV7", token, map[string]string{"Upload-Offset": "7",
		"Content-Type": "application/offset+octet-stream"}, forged[7:])
	require.Equal(t, http.StatusConflict, res.status)
	require.Equal(t, "application/json", res.header.Get("Content-Type"))
	require.Contains(t, res.json(t)["message"], "offset")
	require.Equal(t, "no-store", res.header.Get("Cache-Control"))
}

// TestDownloadLinksEndWithTheUser: a disabled user's download links stop working, and
// enabling the user again does not revive them.
func TestDownloadLinksEndWithTheUser(t *testing.T) {
	files, err := storage.New(context.Background(), storage.Config{Kind: "dir", Dir: t.TempDir()})
	require.NoError(t, err)
	h := newHarness(t, func(d *Deps) {
		d.Storage = files
		d.Config.Uploads = UploadConfig{StagingDir: t.TempDir(), MaxFileBytes: 1 << 20, ManifestSince: time.Hour, DownloadTTL: time.Hour}
	})
	h.user("admin@lab.example", "correct horse", true)
	ann := h.user("ann@lab.example", "correct horse", false)
	adminToken, _ := h.login("admin@lab.example", "correct horse")
	annToken, _ := h.login("ann@lab.example", "correct horse")
	h.send(beat("NV7", 0, false, ""))
	dev := h.deviceID("NV7")
	sid := h.session(dev)
	content := []byte("RIFF a small video")
	sum := sha256.Sum256(content)
	res := h.agentCall("POST", "/api/agent/uploads/", "NV7", "", nil, nil)
	require.Equal(t, http.StatusUnauthorized, res.status)
	require.NoError(t, h.store.SetDeviceToken(context.Background(), dev, auth.HashLinkToken("tok7")))
	res = h.agentCall("POST", "/api/agent/uploads/", "NV7", "tok7", map[string]string{"Upload-Length": strconv.Itoa(len(content)),
		"Upload-Metadata": tusMetadata("session_id", fmt.Sprint(sid), "filename", "cage_.avi", "sha256", hex.EncodeToString(sum[:]))}, nil)
	require.Equal(t, http.StatusCreated, res.status, "%s", res.body)
	loc := res.header.Get("Location")
	require.Equal(t, http.StatusNoContent, h.agentCall("PATCH", loc[strings.Index(loc, uploadsRoute):], "NV7", "tok7",
		map[string]string{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}, content).status)

	link := func(token string) string {
		res := h.do("GET", fmt.Sprintf("/api/recording-session/%d", sid), token, nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		f := res.json(t)["device_statuses"].([]any)[0].(map[string]any)["files"].([]any)[0].(map[string]any)
		return f["download_url"].(string)
	}
	old := link(annToken)
	require.Equal(t, http.StatusOK, h.do("GET", old, "", nil).status)
	userPath := fmt.Sprintf("/api/user/%d", ann.ID)
	require.Equal(t, http.StatusOK, h.do("PATCH", userPath, adminToken, map[string]any{"disabled": true}).status)
	require.Equal(t, http.StatusUnauthorized, h.do("GET", old, "", nil).status, "disabled: the link ends")
	require.Equal(t, http.StatusOK, h.do("PATCH", userPath, adminToken, map[string]any{"disabled": false}).status)
	require.Equal(t, http.StatusUnauthorized, h.do("GET", old, "", nil).status, "enabling again does not revive it")
	require.Equal(t, http.StatusUnauthorized, h.do("GET", "/api/user/"+fmt.Sprint(ann.ID), annToken, nil).status,
		"nor the access token issued before")
	annToken, _ = h.login("ann@lab.example", "correct horse")
	require.Equal(t, http.StatusOK, h.do("GET", link(annToken), "", nil).status, "a fresh link works")
}
