package api

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/internal/dispatch"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/internal/testenv"
)

// scheduleBy stores a schedule of user uid in the read model only (no Temporal Schedule).
func (h *harness) scheduleBy(uid int64) int64 {
	h.t.Helper()
	id, err := h.store.CreateSchedule(context.Background(), store.NewSchedule{Name: "nightly", OwnerID: uid,
		Spec: []byte(`{"kind":"interval","every":3600}`), Session: []byte(`{}`)}, func(int64) error { return nil })
	require.NoError(h.t, err)
	return id
}

func scheduleBody(deviceID int64) map[string]any {
	return map[string]any{"name": "every 2 h", "kind": "interval", "every": 7200, "busy_policy": "skip_enclosure",
		"session": map[string]any{"name": "ten minutes", "duration": 600, "target_fps": 30,
			"device_spec": []map[string]any{{"device_id": deviceID, "filename_prefix": "cage1"}}}}
}

// TestScheduleValidation: every bad field of a schedule is a 400 naming it, before Temporal is
// asked anything (this server has none).
func TestScheduleValidation(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	token, _ := h.login("ann@lab.example", "correct horse")
	h.send(beat("NV1", 0, false, ""))
	nv1 := h.deviceID("NV1")
	for field, change := range map[string]func(m map[string]any){
		"name":        func(m map[string]any) { m["name"] = "" },
		"kind":        func(m map[string]any) { m["kind"] = "hourly" },
		"every":       func(m map[string]any) { m["every"] = 5 },
		"at":          func(m map[string]any) { m["kind"] = "once"; m["at"] = "2020-01-01T18:00" },
		"time_of_day": func(m map[string]any) { m["kind"] = "calendar"; m["time_of_day"] = "25:00" },
		"days_of_week[0]": func(m map[string]any) {
			m["kind"] = "calendar"
			m["time_of_day"] = "18:00"
			m["days_of_week"] = []int{7}
		},
		"end_at":              func(m map[string]any) { m["end_at"] = "yesterday" },
		"count":               func(m map[string]any) { m["count"] = -1 },
		"overlap":             func(m map[string]any) { m["overlap"] = "whatever" },
		"catchup_window":      func(m map[string]any) { m["catchup_window"] = 1 },
		"busy_policy":         func(m map[string]any) { m["busy_policy"] = "hope" },
		"wait_limit":          func(m map[string]any) { m["busy_policy"] = "wait" },
		"session.duration":    func(m map[string]any) { m["session"].(map[string]any)["duration"] = 0 },
		"session.device_spec": func(m map[string]any) { delete(m["session"].(map[string]any), "device_spec") },
	} {
		t.Run(field, func(t *testing.T) {
			body := scheduleBody(nv1)
			change(body)
			res := h.do("POST", "/api/schedules", token, body)
			require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
			require.Contains(t, res.json(t)["errors"], field)
		})
	}
	res := h.do("POST", "/api/schedules", token, scheduleBody(nv1))
	require.Equal(t, http.StatusServiceUnavailable, res.status, "a valid schedule without Temporal: %s", res.body)
	var n int
	require.NoError(t, h.srv.pool.QueryRow(context.Background(), `SELECT count(*) FROM schedules`).Scan(&n))
	require.Zero(t, n, "a schedule Temporal did not take leaves no row")
}

// TestSchedulesOnTemporal drives every schedule route against the real Temporal dev server:
// the Temporal Schedule exists with its spec, pauses and resumes with a note, and every change
// leaves its audit row. (The fires themselves run in the end-to-end test, with a worker.)
func TestSchedulesOnTemporal(t *testing.T) {
	c, err := client.Dial(client.Options{HostPort: testenv.TemporalAddress(t)})
	require.NoError(t, err)
	defer c.Close()
	queue := fmt.Sprintf("sched-api-%d", time.Now().UnixNano())
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	h := newHarness(t, func(d *Deps) {
		d.ScheduleTemporal = dispatch.Schedules{Temporal: c, TaskQueue: queue}
		d.Config.Schedules.TimeZone = berlin
	})
	h.user("ann@lab.example", "correct horse", false)
	ann, _ := h.login("ann@lab.example", "correct horse")
	h.send(beat("NV1", 0, false, ""))
	nv1 := h.deviceID("NV1")

	audited := func(action recording.AuditAction, call func() response) response {
		t.Helper()
		before := h.lastAuditID()
		res := call()
		require.Less(t, res.status, 300, "%s: %s", action, res.body)
		require.Equal(t, []recording.AuditAction{action}, h.auditActionsSince(before))
		return res
	}
	body := scheduleBody(nv1)
	body["kind"], body["time_of_day"], body["count"] = "calendar", "18:00", 14
	delete(body, "every")
	res := audited(recording.AuditScheduleCreate, func() response { return h.do("POST", "/api/schedules", ann, body) })
	require.Equal(t, http.StatusCreated, res.status)
	v := res.json(t)
	id := int64(v["id"].(float64))
	path := fmt.Sprintf("/api/schedules/%d", id)
	require.Equal(t, "Europe/Berlin", v["time_zone"])
	require.EqualValues(t, 14, v["remaining_runs"])
	next := v["next_runs"].([]any)
	require.NotEmpty(t, next)
	first, err := time.Parse(time.RFC3339, next[0].(string))
	require.NoError(t, err)
	require.Equal(t, 18, first.In(berlin).Hour(), "18:00 in the lab's time zone")

	desc, err := c.ScheduleClient().GetHandle(context.Background(), fmt.Sprintf("mba-%s-schedule-%d", queue, id)).Describe(context.Background())
	require.NoError(t, err, "a Temporal Schedule of its own")
	require.Equal(t, "Europe/Berlin", desc.Schedule.Spec.TimeZoneName)

	body["time_of_day"] = "19:30"
	res = audited(recording.AuditScheduleUpdate, func() response { return h.do("PUT", path, ann, body) })
	first, err = time.Parse(time.RFC3339, res.json(t)["next_runs"].([]any)[0].(string))
	require.NoError(t, err)
	require.Equal(t, []int{19, 30}, []int{first.In(berlin).Hour(), first.In(berlin).Minute()})

	res = audited(recording.AuditSchedulePause, func() response {
		return h.do("POST", path+"/pause", ann, map[string]string{"note": "cage change"})
	})
	require.Equal(t, true, res.json(t)["paused"])
	require.Equal(t, "cage change", res.json(t)["note"])
	res = audited(recording.AuditScheduleResume, func() response { return h.do("POST", path+"/resume", ann, nil) })
	require.Equal(t, false, res.json(t)["paused"])
	audited(recording.AuditScheduleTrigger, func() response { return h.do("POST", path+"/trigger", ann, nil) })

	list := h.do("GET", "/api/schedules", ann, nil)
	require.Equal(t, http.StatusOK, list.status)
	require.Contains(t, string(list.body), `"every 2 h"`)

	audited(recording.AuditScheduleDelete, func() response { return h.do("DELETE", path, ann, nil) })
	require.Equal(t, http.StatusNotFound, h.do("GET", path, ann, nil).status)
	_, err = c.ScheduleClient().GetHandle(context.Background(), fmt.Sprintf("mba-%s-schedule-%d", queue, id)).Describe(context.Background())
	require.Error(t, err, "gone from Temporal")
}

// TestScheduleFromATemplateValidation: a schedule may name a template version instead of a
// session; an unknown template or version, or both a template and a session, is a 400 naming
// the field, before Temporal is asked (this server has none: a valid one is a 503).
func TestScheduleFromATemplateValidation(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	token, _ := h.login("ann@lab.example", "correct horse")
	h.send(beat("NV1", 0, false, ""))
	nv1 := h.deviceID("NV1")
	res := h.do("POST", "/api/templates", token, map[string]any{"name": "Night", "duration": 600, "target_fps": 30,
		"prefix_pattern": "{enclosure}_{date}", "device_ids": []int64{nv1}})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	tid := int64(res.json(t)["id"].(float64))
	fromTemplate := func(id int64, version int) map[string]any {
		body := scheduleBody(nv1)
		delete(body, "session")
		body["template"] = map[string]any{"id": id, "version": version}
		return body
	}
	both := fromTemplate(tid, 1)
	both["session"] = scheduleBody(nv1)["session"]
	for field, body := range map[string]map[string]any{
		"template.id":      fromTemplate(tid+100, 0),
		"template.version": fromTemplate(tid, 9),
		"template":         both,
	} {
		res := h.do("POST", "/api/schedules", token, body)
		require.Equal(t, http.StatusBadRequest, res.status, "%s: %s", field, res.body)
		require.Contains(t, res.json(t)["errors"], field)
	}
	res = h.do("POST", "/api/schedules", token, fromTemplate(tid, 1))
	require.Equal(t, http.StatusServiceUnavailable, res.status, "a valid schedule without Temporal: %s", res.body)
}
