package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/agent"
	"github.com/jax-mba/mba/internal/manifest"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/storage"
	"github.com/jax-mba/mba/workflows"
)

// TestManifestLandsBesideTheFiles: a session made from a template, with a subject, records and
// uploads to S3 (MinIO); when it ends its manifest (JSON and CSV) is in storage beside the
// files, naming the subject, the template version and every file with its size, SHA-256 and
// state; a subject edited after the end is in the manifest stored again.
func TestManifestLandsBesideTheFiles(t *testing.T) {
	files := s3Storage(t, "e2e-manifests")
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

	var tpl api.TemplateView
	require.Equal(t, http.StatusOK, s.call("POST", "/api/templates", map[string]any{"name": "night", "duration": 3 * 3600,
		"target_fps": 30, "fragment_hourly": true, "prefix_pattern": "{subject}_{date}", "device_ids": []int64{dev.ID}}, &tpl))
	var x api.SessionView
	require.Equal(t, http.StatusOK, s.call("POST", fmt.Sprintf("/api/templates/%d/sessions", tpl.ID), map[string]any{
		"device_spec": []map[string]any{{"device_id": dev.ID, "subject": map[string]any{"subject_ids": []string{"M42"},
			"strain": "C57BL/6J", "sex": "male", "cage": "C1", "extra": map[string]string{"cohort": "3"}}}}}, &x))
	sid := x.ID
	require.Equal(t, &api.TemplateRefView{ID: tpl.ID, Version: 1, Name: "night"}, x.Template)

	s.waitSession(sid, recording.SessionComplete, time.Minute)
	require.Eventually(t, func() bool { return slices.Contains(s.eventKinds(sid), "files-verified") }, time.Minute, 200*time.Millisecond)
	wctx, cancelWait := context.WithTimeout(context.Background(), time.Minute)
	defer cancelWait()
	require.NoError(t, s.temporal.GetWorkflow(wctx, workflows.SessionWorkflowID(sid), "").Get(wctx, nil),
		"the session's workflow ends once its files are settled and its manifest written")

	jsonKey, csvKey := manifest.Keys(sid)
	m := readManifest(t, files, jsonKey)
	require.Equal(t, sid, m.SessionID)
	require.Equal(t, &manifest.Template{ID: tpl.ID, Version: 1, Name: "night"}, m.Template)
	require.Len(t, m.Enclosures, 1)
	e := m.Enclosures[0]
	require.Equal(t, []string{"M42"}, e.Subject.SubjectIDs)
	require.Equal(t, map[string]string{"cohort": "3"}, e.Subject.Extra)
	require.True(t, strings.HasPrefix(e.FilePrefix, "M42_"), e.FilePrefix)
	require.GreaterOrEqual(t, len(e.Files), 3, "hourly fragments")
	for _, f := range e.Files {
		require.Equal(t, string(recording.FileVerified), f.State, f.Name)
		require.Len(t, f.SHA256, 64, f.Name)
		info, err := files.Stat(context.Background(), f.Key)
		require.NoError(t, err, "the file the manifest names is beside it: %s", f.Key)
		require.Equal(t, *f.Size, info.Size, f.Name)
		require.Equal(t, storage.Key(sid, dev.Name, f.Name), f.Key)
	}
	csvInfo, err := files.Stat(context.Background(), csvKey)
	require.NoError(t, err)
	require.Positive(t, csvInfo.Size)

	// Edited after the end: the stored manifest follows.
	require.Equal(t, http.StatusOK, s.call("PATCH", fmt.Sprintf("/api/recording-session/%d/device-status/%d/subject", sid, dev.ID),
		map[string]any{"notes": "found in cage C2 at the end"}, nil))
	m = readManifest(t, files, jsonKey)
	require.Equal(t, "found in cage C2 at the end", m.Enclosures[0].Subject.Notes)
	require.Equal(t, "C57BL/6J", m.Enclosures[0].Subject.Strain, "the fields left out stay")
}

func readManifest(t *testing.T, files storage.Storage, key string) manifest.Manifest {
	t.Helper()
	r, err := files.Open(context.Background(), key, 0)
	require.NoError(t, err, key)
	defer r.Close()
	var m manifest.Manifest
	require.NoError(t, json.NewDecoder(r).Decode(&m))
	return m
}
