package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEditSessionAndChangeRefusals: a session's name and notes change with 400s naming a bad
// field; the Temporal changes refuse bad values before asking, and answer 503 without Temporal.
func TestEditSessionAndChangeRefusals(t *testing.T) {
	h := newHarness(t)
	h.user("carl@lab.example", "correct horse", false)
	carl, _ := h.login("carl@lab.example", "correct horse")
	h.send(beat("NV1", 0, false, ""))
	res := h.do("POST", "/api/recording-session", carl, map[string]any{"name": "exp", "duration": 3600, "target_fps": 30,
		"device_spec": []map[string]any{{"device_id": h.deviceID("NV1"), "filename_prefix": "a"}}})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	path := fmt.Sprintf("/api/recording-session/%d", int64(res.json(t)["id"].(float64)))

	res = h.do("PATCH", path, carl, map[string]any{"notes": "mouse 3 sleeps"})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, "mouse 3 sleeps", res.json(t)["notes"])
	require.Equal(t, "exp", res.json(t)["name"], "only the notes changed")

	for _, c := range []struct {
		method, path string
		body         any
		status       int
		field        string
	}{
		{"PATCH", path, map[string]any{"name": "  "}, http.StatusBadRequest, "name"},
		{"PATCH", path, map[string]any{}, http.StatusBadRequest, "name"},
		{"PATCH", path, map[string]any{"notes": strings.Repeat("x", maxNotes+1)}, http.StatusBadRequest, "notes"},
		{"PUT", path + "/duration", map[string]any{"duration": 0}, http.StatusBadRequest, "duration"},
		{"PUT", path + "/duration", map[string]any{"duration": "long"}, http.StatusBadRequest, "duration"},
		{"POST", path + "/devices", map[string]any{"device_spec": []any{}, "duration": -1}, http.StatusBadRequest, "duration"},
	} {
		res := h.do(c.method, c.path, carl, c.body)
		require.Equal(t, c.status, res.status, "%s %s %v: %s", c.method, c.path, c.body, res.body)
		require.Contains(t, res.json(t)["errors"], c.field, "%s %s: %s", c.method, c.path, res.body)
	}
	res = h.do("PUT", path+"/duration", carl, map[string]any{"duration": 7200})
	require.Equal(t, http.StatusServiceUnavailable, res.status, "no Temporal: %s", res.body)
	res = h.do("PUT", "/api/recording-session/999999/duration", carl, map[string]any{"duration": 7200})
	require.Equal(t, http.StatusNotFound, res.status, "%s", res.body)
}
