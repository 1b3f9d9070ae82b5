package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

// sessionOf reads a session as the API shows it, with its enclosures by name.
func (h *harness) sessionOf(token string, sid int64) (SessionView, map[string]SessionDeviceView) {
	h.t.Helper()
	res := h.do("GET", fmt.Sprintf("/api/recording-session/%d", sid), token, nil)
	require.Equal(h.t, http.StatusOK, res.status, "%s", res.body)
	var x SessionView
	require.NoError(h.t, json.Unmarshal(res.body, &x))
	byName := map[string]SessionDeviceView{}
	for _, d := range x.DeviceStatuses {
		byName[d.Device.Name] = d
	}
	return x, byName
}

// sessionOver signs ann in and creates a session over new enclosures named names.
func (h *harness) sessionOver(names ...string) (token string, sid int64, ids []int64) {
	h.t.Helper()
	h.user("ann@lab.example", "correct horse", false)
	token, _ = h.login("ann@lab.example", "correct horse")
	var spec []map[string]any
	for i, name := range names {
		h.send(beat(name, 0, false, ""))
		ids = append(ids, h.deviceID(name))
		spec = append(spec, map[string]any{"device_id": ids[i], "filename_prefix": fmt.Sprintf("p%d", i)})
	}
	res := h.do("POST", "/api/recording-session", token, map[string]any{"name": "exp", "duration": 3600, "target_fps": 30,
		"device_spec": spec})
	require.Equal(h.t, http.StatusOK, res.status, "%s", res.body)
	return token, int64(res.json(h.t)["id"].(float64)), ids
}

// TestCancelTakesEffectAtOnce: DELETE makes the session and its enclosures CANCELED in the
// request itself (no workflow answers in this test, as when Temporal is down), shows the
// STOP still to deliver, and frees an enclosure that never started at once; the workflow's
// later writes never turn the cancel back.
func TestCancelTakesEffectAtOnce(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	token, sid, ids := h.sessionOver("NV21", "NV22")
	nv21, nv22 := ids[0], ids[1]
	require.Equal(t, "START", command(t, h.send(beat("NV21", 0, false, ""))))
	require.Equal(t, "", command(t, h.send(beat("NV21", sid, true, ""))), "NV21 records; NV22 never heard its START")

	path := fmt.Sprintf("/api/recording-session/%d", sid)
	require.Equal(t, http.StatusNoContent, h.do("DELETE", path, token, nil).status)
	x, devs := h.sessionOf(token, sid)
	require.Equal(t, recording.SessionCanceled, x.Status, "canceled in the request itself")
	require.Equal(t, "ann@lab.example", *x.CanceledBy)
	require.Equal(t, recording.DeviceCanceled, devs["NV21"].Status)
	require.True(t, devs["NV21"].StopPending, "STOP is still to reach the recording enclosure")
	require.Equal(t, recording.DeviceCanceled, devs["NV22"].Status)
	require.False(t, devs["NV22"].StopPending, "nothing to stop on an enclosure that never started")
	require.Equal(t, []string{store.KindStartSession + "/", store.KindCancelSession + "/"}, h.outbox())
	require.Equal(t, http.StatusNoContent, h.do("DELETE", path, token, nil).status, "a second cancel changes nothing")
	require.Len(t, h.outbox(), 2)

	// No START ever reaches the enclosure that never started, and it is free.
	require.Equal(t, "", command(t, h.send(beat("NV22", 0, false, ""))))
	d, err := h.store.DeviceByName(ctx, "NV22", time.Now(), time.Minute)
	require.NoError(t, err)
	require.Equal(t, recording.EnclosureIdle, d.State)
	// The recording one gets STOP, then COMPLETE.
	require.Equal(t, "STOP", command(t, h.send(beat("NV21", sid, true, ""))))
	require.Equal(t, "COMPLETE", command(t, h.send(beat("NV21", sid, false, ""))))
	_, devs = h.sessionOf(token, sid)
	require.False(t, devs["NV21"].StopPending, "the STOP was delivered")

	// NV22 joins a new session at once.
	res := h.do("POST", "/api/recording-session", token, map[string]any{"name": "next", "duration": 60, "target_fps": 30,
		"device_spec": []map[string]any{{"device_id": nv22, "filename_prefix": "c"}}})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	next := int64(res.json(t)["id"].(float64))
	_, nextDevs := h.sessionOf(token, next)
	require.Equal(t, recording.DevicePending, nextDevs["NV22"].Status)

	// The old session's workflow, learning of the cancel late: its START is settled as stopped
	// and leaves the new session's mailbox alone; its read-model writes keep CANCELED.
	settled, err := h.store.AssignStart(ctx, nv22, recording.Start{SessionID: sid, Duration: 3600, FilePrefix: "p1", TargetFPS: 30},
		"wf-old", "start-late", time.Now())
	require.NoError(t, err)
	require.NotNil(t, settled)
	require.True(t, settled.Stopped)
	require.Equal(t, "START", command(t, h.send(beat("NV22", 0, false, ""))), "the new session's START")
	recorded := int64(150) // more than its heartbeats showed live (a live figure is never taken back)
	require.NoError(t, h.store.UpdateSessionDevice(ctx, store.DeviceUpdate{SessionID: sid, DeviceID: nv21,
		Status: recording.DeviceRecording, RecordingTime: &recorded}))
	require.NoError(t, h.store.UpdateSessionDevice(ctx, store.DeviceUpdate{SessionID: sid, DeviceID: nv22,
		Status: recording.DeviceRecording}), "would break the one-session-per-enclosure index if it were applied")
	ended := time.Now()
	require.NoError(t, h.store.SetSessionStatus(ctx, sid, recording.SessionFailed, &ended))
	x, devs = h.sessionOf(token, sid)
	require.Equal(t, recording.SessionCanceled, x.Status)
	require.Equal(t, recording.DeviceCanceled, devs["NV21"].Status)
	require.Equal(t, recorded, devs["NV21"].RecordingTime, "what it recorded is still added")
	require.Equal(t, recording.DeviceCanceled, devs["NV22"].Status)
}

// TestRemoveTakesEffectAtOnce: removing a pending enclosure releases it in the request; the
// session goes on.
func TestRemoveTakesEffectAtOnce(t *testing.T) {
	h := newHarness(t)
	token, sid, ids := h.sessionOver("NV23", "NV24")
	nv24 := ids[1]

	require.Equal(t, http.StatusNoContent, h.do("DELETE", fmt.Sprintf("/api/recording-session/%d/device-status/%d", sid, nv24), token, nil).status)
	x, devs := h.sessionOf(token, sid)
	require.Equal(t, recording.SessionInProgress, x.Status)
	require.Equal(t, recording.DevicePending, devs["NV23"].Status)
	require.Equal(t, recording.DeviceCanceled, devs["NV24"].Status)
	require.Equal(t, "removed from the session by ann@lab.example", devs["NV24"].Message)
	require.Equal(t, []string{store.KindStartSession + "/", store.KindRemoveDevice + "/"}, h.outbox())
	require.Equal(t, "", command(t, h.send(beat("NV24", 0, false, ""))), "no START for the removed enclosure")
	require.Equal(t, "START", command(t, h.send(beat("NV23", 0, false, ""))), "the other still starts")
	rows, err := h.store.PendingOutbox(context.Background(), 10)
	require.NoError(t, err)
	var req store.StopRequest
	require.NoError(t, json.Unmarshal(rows[1].Payload, &req))
	require.Equal(t, []int64{sid, nv24}, []int64{req.SessionID, req.DeviceID})
	require.NotZero(t, req.UserID, "who removed it reaches the workflow")
}
