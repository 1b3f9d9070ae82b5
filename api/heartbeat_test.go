package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/heartbeat"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/protocol"
)

// beat is the heartbeat body the real client sends, with the fields tests vary.
func beat(name string, sessionID int64, recording bool, extra string) string {
	sid := ""
	if sessionID != 0 {
		sid = fmt.Sprintf(`"session_id": %d,`, sessionID)
	}
	return fmt.Sprintf(`{"name": %q, "location": "rack 2", "timestamp": "%s", %s %s "state": "X",
		"sensor_status": {"camera": {"recording": %v, "duration": 120, "fps": 29.9}},
		"system_info": {"uptime": 1000, "load": 0.5, "total_ram": 8000000, "free_ram": 4000000,
		                "total_disk": 500000, "free_disk": 400000, "release": "R32.7.1"}}`,
		name, time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), sid, extra, recording)
}

// send posts a heartbeat and checks the reply is one the real client survives.
func (h *harness) send(body string) response {
	h.t.Helper()
	res := h.do("POST", "/api/device/heartbeat", "", body)
	require.NoError(h.t, protocol.CheckReply(res.status, res.header.Get("Content-Type"), res.body),
		"reply %d %s would crash the client", res.status, res.body)
	return res
}

func command(t *testing.T, res response) string {
	t.Helper()
	if res.status == http.StatusNoContent {
		return ""
	}
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	return res.json(t)["command_name"].(string)
}

// outbox lists the undispatched transitions as kind/activity.
func (h *harness) outbox() []string {
	h.t.Helper()
	rows, err := h.store.PendingOutbox(context.Background(), 100)
	require.NoError(h.t, err)
	var out []string
	for _, r := range rows {
		out = append(out, r.Kind+"/"+r.ActivityID)
	}
	return out
}

func (h *harness) deviceID(name string) int64 {
	h.t.Helper()
	d, err := h.store.DeviceByName(context.Background(), name, time.Now(), time.Minute)
	require.NoError(h.t, err)
	return d.ID
}

// assignStart registers the START activity as the workflow would.
func (h *harness) assignStart(dev int64, params recording.Start, workflowID, activityID string, now time.Time) {
	h.t.Helper()
	settled, err := h.store.AssignStart(context.Background(), dev, params, workflowID, activityID, now)
	require.NoError(h.t, err)
	require.Nil(h.t, settled)
}

// session makes a session with the enclosure in it, as the API would.
func (h *harness) session(deviceID int64) int64 {
	h.t.Helper()
	return h.sessionBy(0, deviceID)
}

// sessionBy makes a session created by user uid (0: nobody) with the enclosure in it.
func (h *harness) sessionBy(uid, deviceID int64) int64 {
	h.t.Helper()
	created, err := h.store.CreateSession(context.Background(), recording.NewSession{Name: "s", Duration: 3600, TargetFPS: 30, CreatedBy: uid,
		Devices: []recording.NewSessionDevice{{DeviceID: &deviceID, FilePrefix: "cage"}}}, h.srv.cfg.Sessions.Rules,
		store.WorkflowIDs{Session: func(id int64) string { return fmt.Sprint("wf-", id) }, Device: func(s, d int64) string { return fmt.Sprint("wf-", s, "-", d) }},
		h.srv.now(), h.srv.cfg.Enclosures.DownAfter)
	require.NoError(h.t, err)
	return created.ID
}

func TestHeartbeatHandshake(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()

	require.Equal(t, "", command(t, h.send(beat("NV7", 0, false, ""))), "an idle, new enclosure registers and gets 204")
	dev := h.deviceID("NV7")
	sid := h.session(dev)
	require.Equal(t, "START", command(t, h.send(beat("NV7", 0, false, ""))),
		"START goes out on the first heartbeat after the session is created, before any workflow runs")
	params := recording.Start{SessionID: sid, Duration: 3600, FragmentHourly: true, FilePrefix: "cage", TargetFPS: 30}
	h.assignStart(dev, params, "wf-dev", "start-1", time.Now())

	// 5.1: START on every heartbeat without a session, until acknowledged.
	for i := 0; i < 2; i++ {
		res := h.send(beat("NV7", 0, false, ""))
		require.Equal(t, "START", command(t, res))
		var got recording.Start
		require.NoError(t, json.Unmarshal([]byte(res.json(t)["parameters"].(string)), &got))
		require.Equal(t, params, got)
	}
	// 5.2: acknowledged: the START activity completes, once.
	require.Equal(t, "", command(t, h.send(beat("NV7", sid, true, ""))))
	require.Equal(t, "", command(t, h.send(beat("NV7", sid, true, ""))))
	require.Len(t, h.outbox(), 2) // start_session + started
	require.Equal(t, "started/start-1", h.outbox()[1])

	// A viewer keeps STREAM going.
	require.NoError(t, h.store.KeepStreamAlive(ctx, dev, time.Now().Add(time.Minute)))
	require.Equal(t, "STREAM", command(t, h.send(beat("NV7", sid, true, ""))))

	// 5.4: the recording ends: COMPLETE, again while the session is held (lost COMPLETE).
	require.Equal(t, "COMPLETE", command(t, h.send(beat("NV7", sid, false, `"err_msg": "camera lost",`))))
	require.Equal(t, "COMPLETE", command(t, h.send(beat("NV7", sid, false, `"err_msg": "camera lost",`))))
	require.Equal(t, []string{store.KindStartSession + "/", "started/start-1", "ended/"}, h.outbox(), "one ended signal, not one per COMPLETE")
	rows, err := h.store.PendingOutbox(ctx, 10)
	require.NoError(t, err)
	var ev recording.Event
	require.NoError(t, json.Unmarshal(rows[2].Payload, &ev))
	require.Equal(t, "camera lost", ev.ErrMsg)

	// The COMPLETE activity registers, then the enclosure forgets the session: released.
	settled, err := h.store.AssignComplete(ctx, dev, sid, "complete-1", time.Now())
	require.NoError(t, err)
	require.Nil(t, settled, "waits for the enclosure")
	require.Equal(t, "", command(t, h.send(beat("NV7", 0, false, ""))))
	require.Equal(t, "released/complete-1", h.outbox()[3])
	require.Equal(t, "", command(t, h.send(beat("NV7", 0, false, ""))), "no START again: the session is over")
}

func TestHeartbeatStop(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.send(beat("NV8", 0, false, ""))
	dev := h.deviceID("NV8")
	sid := h.session(dev)
	h.assignStart(dev, recording.Start{SessionID: sid, Duration: 60, FilePrefix: "p", TargetFPS: 30}, "wf", "start-1", time.Now())
	h.send(beat("NV8", sid, true, ""))

	settled, err := h.store.AssignStop(ctx, dev, sid, "stop-1", time.Now())
	require.NoError(t, err)
	require.Nil(t, settled)
	require.Equal(t, "STOP", command(t, h.send(beat("NV8", sid, true, ""))), "5.3: STOP while still recording")
	require.Equal(t, "STOP", command(t, h.send(beat("NV8", sid, true, ""))))
	require.Equal(t, "COMPLETE", command(t, h.send(beat("NV8", sid, false, ""))))
	out := h.outbox()
	require.Equal(t, "ended/stop-1", out[len(out)-1], "the STOP activity learns the recording ended")
}

func TestHeartbeatStaleSession(t *testing.T) {
	h := newHarness(t)
	require.Equal(t, "STOP", command(t, h.send(beat("NV9", 4242, true, ""))), "5.5: recording a session nobody wants")
	require.Equal(t, "COMPLETE", command(t, h.send(beat("NV9", 4242, false, ""))), "5.5: holding a finished session")
	require.Empty(t, h.outbox(), "nothing for Temporal when nothing changes")
}

func TestHeartbeatRebootAndSilence(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.send(beat("NV10", 0, false, ""))
	dev := h.deviceID("NV10")
	sid := h.session(dev)
	h.assignStart(dev, recording.Start{SessionID: sid, Duration: 60, FilePrefix: "p", TargetFPS: 30}, "wf", "a", time.Now())
	h.send(beat("NV10", sid, true, ""))

	// 5.6: the enclosure comes back without its session.
	require.Equal(t, "", command(t, h.send(beat("NV10", 0, false, ""))))
	require.Equal(t, "", command(t, h.send(beat("NV10", 0, false, ""))), "no START until the workflow decides")
	out := h.outbox()
	require.Equal(t, "reset/", out[len(out)-1])

	// The fleet monitor marks it silent; the next heartbeat reports the return.
	names, err := h.store.MarkSilent(ctx, time.Now().Add(time.Hour), time.Now())
	require.NoError(t, err)
	require.Equal(t, []string{"NV10"}, names)
	out = h.outbox()
	require.Equal(t, "silent/", out[len(out)-1])
	h.send(beat("NV10", 0, false, ""))
	out = h.outbox()
	require.Equal(t, "returned/", out[len(out)-1])
}

func TestHeartbeatValidation(t *testing.T) {
	h := newHarness(t)
	res := h.send(`{"name": "NV1", "timestamp": "yesterday", "sensor_status": {"camera": {"recording": "yes"}}}`)
	require.Equal(t, http.StatusBadRequest, res.status)
	errs := res.json(t)["errors"].(map[string]any)
	require.Contains(t, errs, "timestamp")
	require.Contains(t, errs, "sensor_status.camera.recording")
	require.Contains(t, errs, "system_info.free_disk")
	require.Equal(t, http.StatusBadRequest, h.send(`not json`).status)
	require.Equal(t, http.StatusBadRequest, h.send(`{"name": "../etc", "timestamp": "2026-01-01T00:00:00Z"}`).status)
	require.Equal(t, http.StatusRequestEntityTooLarge, h.send(`{"name": "`+strings.Repeat("a", 70<<10)+`"}`).status)
}

func TestHeartbeatRegistrationOffAndTokens(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Config.Enclosures.AutoRegister = false })
	res := h.send(beat("NV11", 0, false, ""))
	require.Equal(t, http.StatusForbidden, res.status)
	require.Contains(t, res.json(t)["message"], `unknown enclosure "NV11"`)
}

func TestDeviceRoutes(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	token, _ := h.login("ann@lab.example", "correct horse")
	h.send(beat("NV2", 0, false, ""))
	h.send(beat("NV1", 0, true, `"session_id": 5,`))

	res := h.do("GET", "/api/device", token, nil)
	require.Equal(t, http.StatusOK, res.status)
	var list []map[string]any
	require.NoError(t, json.Unmarshal(res.body, &list))
	require.Len(t, list, 2)
	require.Equal(t, "NV1", list[0]["name"], "ordered by name")
	require.Equal(t, "IDLE", list[0]["state"])
	require.Equal(t, "rack 2", list[0]["location"])

	id := h.deviceID("NV2")
	require.Equal(t, "NV2", h.do("GET", fmt.Sprintf("/api/device/%d", id), token, nil).json(t)["name"])
	require.Equal(t, "NV2", h.do("GET", "/api/device/NV2", token, nil).json(t)["name"])
	res = h.do("GET", "/api/device/999", token, nil)
	require.Equal(t, http.StatusNotFound, res.status)
	require.Equal(t, "Device 999 Not Found", res.json(t)["message"])

	require.Equal(t, http.StatusServiceUnavailable, h.do("GET", "/api/device/stream/NV2", token, nil).status, "not recording")
	require.Equal(t, http.StatusOK, h.do("GET", "/api/device/stream/NV1", token, nil).status)

	h.clock.Advance(2 * time.Minute)
	require.Equal(t, "DOWN", h.do("GET", "/api/device/NV2", token, nil).json(t)["state"], "DOWN on the server clock")
}

func TestEnclosureTokenAndTelemetry(t *testing.T) {
	h := newHarness(t)
	h.user("admin@lab.example", "correct horse", true)
	token, _ := h.login("admin@lab.example", "correct horse")
	h.send(beat("NV12", 0, false, ""))

	res := h.do("PUT", "/api/device/NV12/token", token, nil)
	require.Equal(t, http.StatusOK, res.status)
	secret := res.json(t)["token"].(string)

	require.Equal(t, http.StatusNoContent, h.send(beat("NV12", 0, false, "")).status,
		"an upload token never locks out the client, which sends none")
	require.Equal(t, http.StatusNoContent, h.do("POST", "/api/device/heartbeat", secret, beat("NV12", 0, false, "")).status)
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/device/heartbeat", "wrong", beat("NV12", 0, false, "")).status)
	require.Equal(t, http.StatusNoContent, h.do("DELETE", "/api/device/NV12/token", token, nil).status)
	require.Equal(t, http.StatusNoContent, h.send(beat("NV12", 0, false, "")).status)

	res = h.do("GET", "/api/device/NV12/telemetry", token, nil)
	require.Equal(t, http.StatusOK, res.status)
	points := res.json(t)["points"].([]any)
	require.Len(t, points, 1, "heartbeats in one bucket make one point")
	require.Equal(t, 400000.0, points[0].(map[string]any)["free_disk"])
	require.Equal(t, http.StatusBadRequest, h.do("GET", "/api/device/NV12/telemetry?since=yesterday", token, nil).status)
}

func TestRequestStopReachesTheNextHeartbeat(t *testing.T) {
	h := newHarness(t)
	h.send(beat("NV13", 0, false, ""))
	dev := h.deviceID("NV13")
	sid := h.session(dev)
	require.Equal(t, "START", command(t, h.send(beat("NV13", 0, false, ""))))
	require.Equal(t, "", command(t, h.send(beat("NV13", sid, true, ""))))
	_, err := h.store.RequestStop(context.Background(), store.StopRequest{SessionID: sid, Reason: "test"}, "wf", time.Now())
	require.NoError(t, err)
	require.Equal(t, "STOP", command(t, h.send(beat("NV13", sid, true, ""))), "a cancel reaches the enclosure at once")
	require.Equal(t, "COMPLETE", command(t, h.send(beat("NV13", sid, false, ""))))

	// The workflow's START activity, running late, learns the enclosure already acknowledged.
	settled, err := h.store.AssignStart(context.Background(), dev, recording.Start{SessionID: sid, Duration: 60, FilePrefix: "p", TargetFPS: 30}, "wf", "late", time.Now())
	require.NoError(t, err)
	require.NotNil(t, settled)
	require.Equal(t, recording.EventEnded, settled.Kind)
}

// TestRequestStopKeepsTheReportedSeconds (found by `mba bench --scenarios faults`): serve was
// down while an enclosure recorded, so its live seconds stopped at 7; right after the restart a
// cancel made it CANCELED and its STOP went out from the mailbox; it reported 33 s and forgot
// the session before the workflow's STOP activity ran, which then settled as released, without
// the report. The report alone must bring the read model to what the enclosure recorded.
func TestRequestStopKeepsTheReportedSeconds(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.send(beat("NV14", 0, false, ""))
	dev := h.deviceID("NV14")
	sid := h.session(dev)
	at := func(recording bool, secs int) string {
		return strings.Replace(beat("NV14", sid, recording, ""), `"duration": 120`, fmt.Sprintf(`"duration": %d`, secs), 1)
	}
	recorded := func() int64 {
		d, err := h.store.SessionDevice(ctx, sid, dev, time.Now(), time.Minute)
		require.NoError(t, err)
		return d.RecordingTime
	}
	require.Equal(t, "START", command(t, h.send(beat("NV14", 0, false, ""))))
	require.Equal(t, "", command(t, h.send(at(true, 7))))
	require.Equal(t, int64(7), recorded())
	_, err := h.store.RequestStop(ctx, store.StopRequest{SessionID: sid, Reason: "test"}, "wf", time.Now())
	require.NoError(t, err)
	require.Equal(t, "STOP", command(t, h.send(at(true, 32))))
	require.Equal(t, "COMPLETE", command(t, h.send(at(false, 33))))
	require.Equal(t, "", command(t, h.send(beat("NV14", 0, false, ""))), "it forgot the session")
	require.Equal(t, int64(33), recorded(), "what the enclosure reported at its end")

	settled, err := h.store.AssignStop(ctx, dev, sid, "stop-2", time.Now())
	require.NoError(t, err)
	require.Equal(t, recording.EventReleased, settled.Kind, "the workflow's STOP finds the enclosure gone")
	seven, one := int64(7), 1
	require.NoError(t, h.store.UpdateSessionDevice(ctx, store.DeviceUpdate{SessionID: sid, DeviceID: dev, Status: recording.DeviceCanceled,
		RecordingTime: &seven, Segments: &one, Final: true}))
	require.Equal(t, int64(33), recorded(), "the workflow's final write, which missed the report, keeps it")
	d, err := h.store.SessionDevice(ctx, sid, dev, time.Now(), time.Minute)
	require.NoError(t, err)
	require.Equal(t, recording.DeviceCanceled, d.Status)
}

// TestRequestStopByTheWorkflow: a cancel the session's workflow learned of from Temporal (the
// CLI) is recorded like the API's (session and enclosure CANCELED, STOP on the next heartbeat,
// on the timeline), but queues nothing: the workflows are being canceled already.
func TestRequestStopByTheWorkflow(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.send(beat("NV15", 0, false, ""))
	dev := h.deviceID("NV15")
	sid := h.session(dev)
	require.Equal(t, "START", command(t, h.send(beat("NV15", 0, false, ""))))
	require.Equal(t, "", command(t, h.send(beat("NV15", sid, true, ""))))
	queued := h.outbox()
	changed, err := h.store.RequestStop(ctx, store.StopRequest{SessionID: sid, Reason: "workflow canceled"}, "", time.Now())
	require.NoError(t, err)
	require.True(t, changed)
	require.Equal(t, queued, h.outbox(), "nothing queued for the workflows")
	x, err := h.store.Session(ctx, sid, time.Now(), time.Minute)
	require.NoError(t, err)
	require.Equal(t, recording.SessionCanceled, x.Status)
	require.Equal(t, recording.DeviceCanceled, x.DeviceStatuses[0].Status)
	require.True(t, x.DeviceStatuses[0].StopPending)
	require.Equal(t, "STOP", command(t, h.send(beat("NV15", sid, true, ""))), "the cancel reaches the enclosure at once")

	changed, err = h.store.RequestStop(ctx, store.StopRequest{SessionID: sid, Reason: "workflow canceled"}, "", time.Now())
	require.NoError(t, err)
	require.False(t, changed, "a second cancel changes nothing")
}

// TestHeartbeatDecidesAgainWhenTheMailboxMoved: a command activity commits while a heartbeat
// waits for the enclosure's lock; the heartbeat's write must not undo it.
func TestHeartbeatDecidesAgainWhenTheMailboxMoved(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.send(beat("NV14", 0, false, ""))
	dev := h.deviceID("NV14")
	sid := h.session(dev)
	h.send(beat("NV14", 0, false, ""))                                             // START
	h.send(beat("NV14", sid, true, ""))                                            // recording
	require.Equal(t, "COMPLETE", command(t, h.send(beat("NV14", sid, false, "")))) // ended: completing

	// The COMPLETE activity registers while holding the enclosure's row, as activities do...
	tx, err := h.store.Pool().Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT 1 FROM devices WHERE id = $1 FOR UPDATE`, dev)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE device_assignments SET activity_id = 'complete-9' WHERE device_id = $1`, dev)
	require.NoError(t, err)
	// ...while the heartbeat that forgot the session waits for that row.
	done := make(chan response)
	go func() { done <- h.do("POST", "/api/device/heartbeat", "", beat("NV14", 0, false, "")) }()
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, http.StatusNoContent, (<-done).status)

	out := h.outbox()
	require.Equal(t, "released/complete-9", out[len(out)-1], "the activity registered meanwhile is completed, not lost")
}

// TestHeartbeatsArrivingTogether drives the group commit: many enclosures at once, and one
// enclosure from several clients at once; every reply is right and every enclosure recorded.
func TestHeartbeatsArrivingTogether(t *testing.T) {
	h := newHarness(t)
	var wg sync.WaitGroup
	statuses := make(chan int, 200)
	for i := 0; i < 30; i++ {
		for j := 0; j < 5; j++ {
			name := fmt.Sprintf("TOG%d", i)
			if j == 4 {
				name = "TOGSAME" // one enclosure seen by several clients at once
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses <- h.send(beat(name, 0, false, "")).status
			}()
		}
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		require.Equal(t, http.StatusNoContent, st)
	}
	var n int
	require.NoError(t, h.store.Pool().QueryRow(context.Background(), `SELECT count(*) FROM devices WHERE last_seen_at IS NOT NULL`).Scan(&n))
	require.Equal(t, 31, n)
}

func TestTelemetryRecordsHeartbeatGaps(t *testing.T) {
	h := newHarness(t)
	h.clock.mu.Lock()
	h.clock.now = h.clock.now.Truncate(5 * time.Minute).Add(time.Second) // start of a 5-minute bucket
	h.clock.mu.Unlock()
	h.user("admin@lab.example", "correct horse", true)
	token, _ := h.login("admin@lab.example", "correct horse")
	gaps := func() []any {
		res := h.do("GET", "/api/device/NV13/telemetry", token, nil)
		require.Equal(t, http.StatusOK, res.status)
		var out []any
		for _, p := range res.json(t)["points"].([]any) {
			out = append(out, p.(map[string]any)["max_gap_ms"])
		}
		return out
	}
	h.send(beat("NV13", 0, false, ""))
	for _, d := range []time.Duration{10 * time.Second, 70 * time.Second, 10 * time.Second} {
		h.clock.Advance(d)
		h.send(beat("NV13", 0, false, ""))
	}
	require.Equal(t, []any{70000.0}, gaps(), "the bucket so far: its longest gap")
	h.clock.Advance(4 * time.Minute) // into the next bucket
	h.send(beat("NV13", 0, false, ""))
	h.clock.Advance(10 * time.Second)
	h.send(beat("NV13", 0, false, ""))
	require.Equal(t, []any{70000.0, 240000.0}, gaps())
}

// TestHeartbeatResumesAtOnce: with the workflow's resume plan in the mailbox, the heartbeat
// that shows a reboot mid-recording gets the resume START itself (the next segment's prefix,
// the time left), the reset tells the workflow so, and the workflow's SendStart for that
// segment names its activity without writing another START: the acknowledgement settles it.
func TestHeartbeatResumesAtOnce(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.send(beat("NV11", 0, false, ""))
	dev := h.deviceID("NV11")
	sid := h.session(dev)
	first := recording.Start{SessionID: sid, Duration: 3600, FragmentHourly: true, FilePrefix: "cage", TargetFPS: 30}
	h.assignStart(dev, first, "wf", "start-1", h.clock.Now())
	h.send(beat("NV11", sid, true, ""))
	end := h.clock.Now().Add(time.Hour)
	require.NoError(t, h.store.PlanResume(ctx, dev, sid, heartbeat.ResumePlan{PlannedEnd: end, MinSegment: time.Minute, Segments: 1, First: first}))
	require.NoError(t, h.store.PlanResume(ctx, dev, sid, heartbeat.ResumePlan{PlannedEnd: end, Segments: 7, First: first}),
		"a plan already there is kept")

	h.clock.Advance(20 * time.Minute)
	resumed := first.Resumed(2, 40*60)
	startOf := func(res response) recording.Start {
		t.Helper()
		require.Equal(t, "START", command(t, res))
		var got recording.Start
		require.NoError(t, json.Unmarshal([]byte(res.json(t)["parameters"].(string)), &got))
		return got
	}
	require.Equal(t, resumed, startOf(h.send(beat("NV11", 0, false, ""))), "the first heartbeat after the reboot")
	rows, err := h.store.PendingOutbox(ctx, 100)
	require.NoError(t, err)
	last := rows[len(rows)-1]
	require.Equal(t, "reset", last.Kind)
	require.Empty(t, last.ActivityID)
	var ev recording.Event
	require.NoError(t, json.Unmarshal(last.Payload, &ev))
	require.True(t, ev.Resumed)
	require.Equal(t, int64(120), ev.Duration, "the lost segment's last report")

	// A lost reply: the same START again. The workflow's SendStart (its parameters computed a
	// little later) keeps the START that went out and waits for the acknowledgement.
	h.clock.Advance(time.Second)
	require.Equal(t, resumed, startOf(h.send(beat("NV11", 0, false, ""))))
	later := first.Resumed(2, 40*60-3)
	h.assignStart(dev, later, "wf", "start-2", h.clock.Now())
	require.Equal(t, resumed, startOf(h.send(beat("NV11", 0, false, ""))), "one START for one segment")
	require.Equal(t, "", command(t, h.send(beat("NV11", sid, true, ""))))
	out := h.outbox()
	require.Equal(t, "started/start-2", out[len(out)-1])
	settled, err := h.store.AssignStart(ctx, dev, later, "wf", "start-3", h.clock.Now())
	require.NoError(t, err)
	require.Equal(t, recording.EventStarted, settled.Kind, "a SendStart after the acknowledgement settles at once")

	// A second reboot resumes segment 3, for what is left; past the planned end nothing is resumed.
	h.clock.Advance(10 * time.Minute)
	require.Equal(t, first.Resumed(3, int64(end.Sub(h.clock.Now())/time.Second)), startOf(h.send(beat("NV11", 0, false, ""))))
	h.send(beat("NV11", sid, true, ""))
	h.clock.Advance(time.Hour)
	require.Equal(t, "", command(t, h.send(beat("NV11", 0, false, ""))), "after the planned end the workflow decides")
	out = h.outbox()
	require.Equal(t, "reset/", out[len(out)-1])
}

// TestHeartbeatRebootBeforeTheWorkflowRan: the enclosure acknowledged START and rebooted before
// its workflow's SendStart ran: that START settles as started (when it started) instead of
// going out again on the same prefix, which would overwrite the files it wrote; the resume's
// START, on a prefix of its own, goes out.
func TestHeartbeatRebootBeforeTheWorkflowRan(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.send(beat("NV12", 0, false, ""))
	dev := h.deviceID("NV12")
	sid := h.session(dev)
	require.Equal(t, "START", command(t, h.send(beat("NV12", 0, false, ""))), "the session's first START, before any workflow")
	started := h.clock.Now()
	require.Equal(t, "", command(t, h.send(beat("NV12", sid, true, ""))))
	h.clock.Advance(time.Minute)
	require.Equal(t, "", command(t, h.send(beat("NV12", 0, false, ""))), "rebooted: reset, for the workflow")

	first := recording.Start{SessionID: sid, Duration: 3600, FilePrefix: "cage", TargetFPS: 30}
	settled, err := h.store.AssignStart(ctx, dev, first, "wf", "start-1", h.clock.Now())
	require.NoError(t, err)
	require.NotNil(t, settled)
	require.Equal(t, recording.EventStarted, settled.Kind)
	require.WithinDuration(t, started, settled.At, time.Second, "when it started, not when it rebooted")
	require.Equal(t, "", command(t, h.send(beat("NV12", 0, false, ""))), "no second START of the first segment")

	h.assignStart(dev, first.Resumed(2, 3540), "wf", "start-2", h.clock.Now())
	res := h.send(beat("NV12", 0, false, ""))
	require.Equal(t, "START", command(t, res))
	require.Contains(t, res.json(t)["parameters"], `"file_prefix":"cage_s2"`)
}
