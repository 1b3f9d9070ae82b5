package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// postSession sends a new session with an Idempotency-Key header.
func (h *harness) postSession(token, key string, body any) response {
	h.t.Helper()
	return h.postWithKey("/api/recording-session", token, key, body)
}

// postWithKey POSTs body to path with an Idempotency-Key header.
func (h *harness) postWithKey(path, token, key string, body any) response {
	h.t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(h.t, err)
	req, err := http.NewRequestWithContext(context.Background(), "POST", h.http.URL+path, bytes.NewReader(raw))
	require.NoError(h.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", key)
	return h.roundTrip(req)
}

// TestIdempotencyKeyCreatesOneSession: the same user and key is the same session, whether the
// requests come one after another or at once; another body with the key is a 422; another user
// with the same key gets a session of their own; a bad key is a 400 naming the header.
func TestIdempotencyKeyCreatesOneSession(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	h.user("bob@lab.example", "correct horse", false)
	ann, _ := h.login("ann@lab.example", "correct horse")
	bob, _ := h.login("bob@lab.example", "correct horse")
	h.send(beat("NV1", 0, false, ""))
	body := map[string]any{"name": "exp", "duration": 3600, "target_fps": 30,
		"device_spec": []map[string]any{{"device_id": h.deviceID("NV1"), "filename_prefix": "cage1"}}}

	first := h.postSession(ann, "form-1", body)
	require.Equal(t, http.StatusOK, first.status, "%s", first.body)
	require.Empty(t, first.header.Get("Idempotent-Replayed"))
	id := first.json(t)["id"]

	// A double click: both at once, one session.
	var wg sync.WaitGroup
	replies := make([]response, 4)
	for i := range replies {
		wg.Add(1)
		go func() { defer wg.Done(); replies[i] = h.postSession(ann, "form-1", body) }()
	}
	wg.Wait()
	for _, res := range replies {
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.Equal(t, id, res.json(t)["id"], "the first request's session")
		require.Equal(t, "true", res.header.Get("Idempotent-Replayed"))
	}
	var n int
	require.NoError(t, h.srv.pool.QueryRow(context.Background(), `SELECT count(*) FROM sessions`).Scan(&n))
	require.Equal(t, 1, n)

	other := map[string]any{"name": "another", "duration": 60, "target_fps": 30, "device_spec": body["device_spec"]}
	res := h.postSession(ann, "form-1", other)
	require.Equal(t, http.StatusUnprocessableEntity, res.status, "%s", res.body)
	require.Contains(t, res.json(t)["message"], "Idempotency-Key was used for a different request")

	res = h.postSession(bob, "form-1", other)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.NotEqual(t, id, res.json(t)["id"], "keys are per user")

	for _, bad := range []string{"has space", string(bytes.Repeat([]byte("k"), 101)), "ü"} {
		res := h.postSession(ann, bad, body)
		require.Equal(t, http.StatusBadRequest, res.status, bad)
		require.Contains(t, res.json(t)["errors"], "Idempotency-Key")
	}
}

// TestIdempotencyKeyOnATemplateSession: a session made from a template takes the key as
// POST /api/recording-session does: the same key is the same session, replayed.
func TestIdempotencyKeyOnATemplateSession(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	ann, _ := h.login("ann@lab.example", "correct horse")
	h.send(beat("NV1", 0, false, ""))
	res := h.do("POST", "/api/templates", ann, map[string]any{"name": "Night", "duration": 600, "target_fps": 30,
		"prefix_pattern": "{enclosure}_{session}", "device_ids": []int64{h.deviceID("NV1")}})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	path := fmt.Sprintf("/api/templates/%d/sessions", int64(res.json(t)["id"].(float64)))

	first := h.postWithKey(path, ann, "tpl-1", map[string]any{})
	require.Equal(t, http.StatusOK, first.status, "%s", first.body)
	again := h.postWithKey(path, ann, "tpl-1", map[string]any{})
	require.Equal(t, http.StatusOK, again.status, "%s", again.body)
	require.Equal(t, first.json(t)["id"], again.json(t)["id"])
	require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	res = h.postWithKey(path, ann, "has space", map[string]any{})
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Contains(t, res.json(t)["errors"], "Idempotency-Key")
}
