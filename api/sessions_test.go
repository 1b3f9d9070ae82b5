package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

func TestCreateSessionValidation(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	token, _ := h.login("ann@lab.example", "correct horse")
	h.send(beat("NV1", 0, false, ""))
	nv1 := h.deviceID("NV1")
	ok := func() map[string]any {
		return map[string]any{"name": "exp", "duration": 3600, "target_fps": 30,
			"device_spec": []map[string]any{{"device_id": nv1, "filename_prefix": "cage1"}}}
	}
	for field, tc := range map[string]struct {
		change func(map[string]any)
		want   string
	}{
		"duration":    {func(m map[string]any) { m["duration"] = 0 }, "must be at least 1 second"},
		"target_fps":  {func(m map[string]any) { m["target_fps"] = 500 }, "must be between 1 and 120"},
		"name":        {func(m map[string]any) { m["name"] = " " }, "is required"},
		"device_spec": {func(m map[string]any) { delete(m, "device_spec") }, "must list at least one enclosure"},
		"device_spec[0].filename_prefix": {func(m map[string]any) {
			m["device_spec"] = []map[string]any{{"device_id": nv1, "filename_prefix": "../etc/passwd"}}
		}, ""},
		"device_spec[1].device_id": {func(m map[string]any) {
			m["device_spec"] = []map[string]any{{"device_id": nv1, "filename_prefix": "a"}, {"device_id": nv1, "filename_prefix": "b"}}
		}, "is listed twice"},
	} {
		t.Run(field, func(t *testing.T) {
			body := ok()
			tc.change(body)
			res := h.do("POST", "/api/recording-session", token, body)
			require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
			errs := res.json(t)["errors"].(map[string]any)
			require.Contains(t, errs, field)
			require.Contains(t, errs[field], tc.want)
		})
	}
	tooMany := ok()
	var spec []map[string]any
	for i := 0; i < 6; i++ {
		spec = append(spec, map[string]any{"device_id": i + 100, "filename_prefix": fmt.Sprint("p", i)})
	}
	tooMany["device_spec"] = spec
	require.Contains(t, h.do("POST", "/api/recording-session", token, tooMany).json(t)["errors"], "device_spec")

	unknown := ok()
	unknown["device_spec"] = []map[string]any{{"device_id": nv1, "filename_prefix": "a"}, {"device_id": 4711, "filename_prefix": "b"}}
	res := h.do("POST", "/api/recording-session", token, unknown)
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, "Invalid device IDs: [4711]", res.json(t)["message"])
	var n int
	require.NoError(t, h.store.Pool().QueryRow(t.Context(), `SELECT count(*) FROM sessions`).Scan(&n))
	require.Zero(t, n, "nothing created")
}

func TestSessionLifecycleRoutes(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	token, _ := h.login("ann@lab.example", "correct horse")
	h.send(beat("NV1", 0, false, ""))
	h.send(beat("NV2", 0, false, ""))
	nv1, nv2 := h.deviceID("NV1"), h.deviceID("NV2")

	create := func(prefix string) map[string]any {
		res := h.do("POST", "/api/recording-session", token, map[string]any{"name": "exp " + prefix, "duration": 3600,
			"target_fps": 30, "fragment_hourly": true,
			"device_spec": []map[string]any{{"device_id": nv2, "filename_prefix": prefix + "2"}, {"device_id": nv1, "filename_prefix": prefix + "1"}}})
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		return res.json(t)
	}
	first := create("a")
	require.Equal(t, "IN_PROGRESS", first["status"])
	require.Equal(t, "ann@lab.example", first["created_by"])
	statuses := first["device_statuses"].([]any)
	require.Len(t, statuses, 2)
	s0 := statuses[0].(map[string]any)
	require.Equal(t, "NV1", s0["device"].(map[string]any)["name"], "sorted by device name")
	require.Equal(t, "a1", s0["filename_prefix"], "the prefix is returned (the original always sent null)")
	require.Equal(t, "PENDING", s0["status"])

	// Both enclosures are busy now: a second session lists them FAILED with the original's message.
	second := create("b")
	sid1 := int64(first["id"].(float64))
	for _, st := range second["device_statuses"].([]any) {
		st := st.(map[string]any)
		require.Equal(t, "FAILED", st["status"])
		require.Equal(t, fmt.Sprintf("device %s is already assigned to a recording session (%d)",
			st["device"].(map[string]any)["name"], sid1), st["message"])
	}
	require.Len(t, second["warnings"], 2)

	// Lists: newest first; archive is separate and reversible.
	var list []map[string]any
	require.NoError(t, json.Unmarshal(h.do("GET", "/api/recording-session", token, nil).body, &list))
	require.Len(t, list, 2)
	require.Equal(t, second["id"], list[0]["id"])
	path := fmt.Sprintf("/api/recording-session/%d", sid1)
	require.Equal(t, http.StatusNoContent, h.do("DELETE", path+"?archive=true", token, nil).status)
	require.Equal(t, []string{store.KindStartSession + "/", store.KindStartSession + "/", store.KindCancelSession + "/"}, h.outbox(),
		"the cancel is queued for the session's workflow")
	require.NoError(t, json.Unmarshal(h.do("GET", "/api/recording-session?archived=true", token, nil).body, &list))
	require.Len(t, list, 1)
	require.Equal(t, true, list[0]["archived"])
	require.Equal(t, "ann@lab.example", list[0]["canceled_by"])
	require.Equal(t, http.StatusNoContent, h.do("POST", path+"/unarchive", token, nil).status)
	require.NoError(t, json.Unmarshal(h.do("GET", "/api/recording-session", token, nil).body, &list))
	require.Len(t, list, 2)
	require.Equal(t, http.StatusBadRequest, h.do("GET", "/api/recording-session?archived=maybe", token, nil).status)

	// Per-enclosure routes and their 404s.
	res := h.do("GET", fmt.Sprintf("%s/device-status/%d", path, nv1), token, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, "a1", res.json(t)["filename_prefix"])
	require.Equal(t, http.StatusNoContent, h.do("DELETE", fmt.Sprintf("%s/device-status/%d", path, nv2), token, nil).status)
	require.Len(t, h.outbox(), 3, "an enclosure already canceled has nothing left to remove")
	res = h.do("GET", path+"/device-status/999", token, nil)
	require.Equal(t, http.StatusNotFound, res.status)
	require.Equal(t, fmt.Sprintf("Device 999 is not in recording session %d", sid1), res.json(t)["message"])
	res = h.do("GET", "/api/recording-session/999999", token, nil)
	require.Equal(t, http.StatusNotFound, res.status)
	require.Equal(t, "Recording session 999999 Not Found", res.json(t)["message"])
	require.Equal(t, http.StatusNotFound, h.do("GET", "/api/recording-session/abc", token, nil).status)

	events := h.do("GET", path+"/events", token, nil)
	require.Equal(t, http.StatusOK, events.status)
	require.True(t, strings.Contains(string(events.body), `"kind":"created"`))
}

// TestSessionSecondsLost: the session's JSON carries what reboots cost it, the sum of its
// enclosures' seconds_lost (as the workflows write them), in the detail and in the list; a
// session that lost nothing says 0.
func TestSessionSecondsLost(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	token, _ := h.login("ann@lab.example", "correct horse")
	h.send(beat("NV1", 0, false, ""))
	h.send(beat("NV2", 0, false, ""))
	h.send(beat("NV3", 0, false, ""))
	nv1, nv2, nv3 := h.deviceID("NV1"), h.deviceID("NV2"), h.deviceID("NV3")
	create := func(ids ...int64) int64 {
		var spec []map[string]any
		for _, id := range ids {
			spec = append(spec, map[string]any{"device_id": id, "filename_prefix": fmt.Sprintf("c%d", id)})
		}
		res := h.do("POST", "/api/recording-session", token, map[string]any{"name": "exp", "duration": 3600,
			"target_fps": 30, "fragment_hourly": true, "device_spec": spec})
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		x := res.json(t)
		require.Equal(t, float64(0), x["seconds_lost"], "a new session lost nothing: %s", res.body)
		return int64(x["id"].(float64))
	}
	lossy, clean := create(nv1, nv2), create(nv3)
	ctx := context.Background()
	for id, lost := range map[int64]int64{nv1: 7, nv2: 35} {
		require.NoError(t, h.store.UpdateSessionDevice(ctx, store.DeviceUpdate{SessionID: lossy, DeviceID: id, SecondsLost: &lost,
			Gaps: []recording.Gap{{From: time.Now().Add(-time.Minute), To: time.Now(), Seconds: lost}}, At: time.Now()}))
	}

	res := h.do("GET", fmt.Sprintf("/api/recording-session/%d", lossy), token, nil)
	require.Equal(t, http.StatusOK, res.status)
	x := res.json(t)
	require.Equal(t, float64(42), x["seconds_lost"], "%s", res.body)
	for _, ds := range x["device_statuses"].([]any) {
		require.Contains(t, []float64{7, 35}, ds.(map[string]any)["seconds_lost"], "the enclosures keep theirs")
	}
	var list []map[string]any
	require.NoError(t, json.Unmarshal(h.do("GET", "/api/recording-session", token, nil).body, &list))
	lost := map[float64]any{}
	for _, s := range list {
		lost[s["id"].(float64)] = s["seconds_lost"]
	}
	require.Equal(t, map[float64]any{float64(lossy): float64(42), float64(clean): float64(0)}, lost)
}
