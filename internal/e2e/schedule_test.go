package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/workflows"
)

// createSchedule creates an interval schedule over ids through the API.
func (s *stack) createSchedule(name string, every int, ids []int64, extra map[string]any) api.ScheduleView {
	s.t.Helper()
	var spec []map[string]any
	for i, id := range ids {
		spec = append(spec, map[string]any{"device_id": id, "filename_prefix": fmt.Sprintf("cage%d", i)})
	}
	body := map[string]any{"name": name, "kind": "interval", "every": every,
		"session": map[string]any{"name": name, "duration": 3, "target_fps": 30, "device_spec": spec}}
	for k, v := range extra {
		body[k] = v
	}
	var v api.ScheduleView
	require.Equal(s.t, http.StatusCreated, s.call("POST", "/api/schedules", body, &v))
	s.t.Cleanup(func() { s.call("DELETE", fmt.Sprintf("/api/schedules/%d", v.ID), nil, nil) })
	return v
}

func (s *stack) schedule(id int64) api.ScheduleView {
	s.t.Helper()
	var v api.ScheduleView
	require.Equal(s.t, http.StatusOK, s.call("GET", fmt.Sprintf("/api/schedules/%d", id), nil, &v))
	return v
}

// TestScheduleFiresOnTimeAndSkipsABusyEnclosure runs on the real Temporal dev server: a
// schedule every 15 s creates its sessions at its fire times (through the fire workflow and the
// one creation operation), without the enclosure that is busy in another session (its policy),
// told to the owner as a schedule_skipped notice; a paused schedule creates nothing; both are
// Temporal Schedules of their own.
func TestScheduleFiresOnTimeAndSkipsABusyEnclosure(t *testing.T) {
	s := newStack(t)
	_, ids := s.enclosures(3, "SCH")
	busy := s.createSession(ids[2:], 3600) // SCH3 records for an hour elsewhere
	const every = 15
	sched := s.createSchedule("every 15 s", every, []int64{ids[0], ids[2]}, map[string]any{"busy_policy": "skip_enclosure"})
	paused := s.createSchedule("paused", 10, ids[1:2], map[string]any{"paused": true, "note": "not yet"})
	require.NotEmpty(t, sched.NextRuns, "Temporal tells the next runs")
	require.True(t, paused.Paused)
	require.Equal(t, "not yet", paused.Note)
	for _, v := range []api.ScheduleView{sched, paused} {
		_, err := s.temporal.ScheduleClient().GetHandle(context.Background(), workflows.ScheduleID(s.queue, v.ID)).Describe(context.Background())
		require.NoError(t, err, "schedule %d is a Temporal Schedule", v.ID)
	}

	var v api.ScheduleView
	require.Eventually(t, func() bool {
		v = s.schedule(sched.ID)
		return len(v.Fires) >= 2 && len(v.Sessions) >= 2
	}, 3*every*time.Second+30*time.Second, 250*time.Millisecond, "two fires with their sessions")
	for _, f := range v.Fires[:2] {
		require.Equal(t, "created_partial", f.Outcome, "%s", f.Message)
		require.Contains(t, f.Message, fmt.Sprintf("without SCH3 (busy in session %d)", busy))
		require.NotNil(t, f.SessionID)
		require.Zero(t, f.FiredAt.Unix()%every, "fired on the interval's times: %s", f.FiredAt)
		x := s.session(*f.SessionID)
		require.Len(t, x.DeviceStatuses, 1, "only SCH1")
		require.Equal(t, "SCH1", x.DeviceStatuses[0].Device.Name)
		require.False(t, x.CreationTime.Before(f.FiredAt), "never created before its time")
		require.Less(t, x.CreationTime.Sub(f.FiredAt), 10*time.Second, "created on time")
	}
	gap := v.Fires[0].FiredAt.Sub(v.Fires[1].FiredAt)
	require.Equal(t, 0, int(gap.Seconds())%every, "fires %s apart", gap)
	require.NotEmpty(t, v.RecentRuns, "Temporal's recent actions")

	// The owner was told of the skipped enclosure, once per fire.
	require.Eventually(t, func() bool {
		var list []api.AlertView
		s.call("GET", "/api/alerts?kind=schedule_skipped", nil, &list)
		return len(list) >= 2 && strings.Contains(list[0].Summary, `schedule "every 15 s"`)
	}, 30*time.Second, 250*time.Millisecond, "schedule_skipped notices")

	p := s.schedule(paused.ID)
	require.Empty(t, p.Fires, "a paused schedule does not fire")
	require.Empty(t, p.Sessions)
	require.True(t, p.Paused)
	var n int
	require.NoError(t, s.pool.QueryRow(context.Background(), `SELECT count(*) FROM sessions WHERE schedule_id = $1`, paused.ID).Scan(&n))
	require.Zero(t, n)
	require.Equal(t, recording.SessionInProgress, s.session(busy).Status, "the busy session was left alone")
}

// TestScheduleFromATemplate: a schedule naming a template version (instead of a session body)
// makes each fire a session of that version, through the one creation operation: the template's
// settings, enclosures and prefix pattern, the session naming the version; an edit of the
// template afterwards (version 2) changes nothing for the schedule, which is pinned.
func TestScheduleFromATemplate(t *testing.T) {
	s := newStack(t)
	_, ids := s.enclosures(1, "TPS")
	var tpl api.TemplateView
	require.Equal(t, http.StatusOK, s.call("POST", "/api/templates", map[string]any{"name": "Short night", "duration": 3,
		"target_fps": 25, "prefix_pattern": "{enclosure}_{session}", "device_ids": ids}, &tpl))
	sched := s.createSchedule("from a template", 10, nil, map[string]any{"session": nil,
		"template": map[string]any{"id": tpl.ID, "version": 0}})
	require.Equal(t, http.StatusOK, s.call("POST", fmt.Sprintf("/api/templates/%d/versions", tpl.ID), map[string]any{
		"name": "Short night", "duration": 5, "target_fps": 15, "prefix_pattern": "v2_{session}", "device_ids": ids}, nil))

	var spec struct {
		Template struct{ ID, Version int64 }
	}
	require.NoError(t, json.Unmarshal(sched.Spec, &spec))
	require.Equal(t, []int64{tpl.ID, 1}, []int64{spec.Template.ID, spec.Template.Version}, "the latest version, pinned")
	var v api.ScheduleView
	require.Eventually(t, func() bool {
		v = s.schedule(sched.ID)
		return len(v.Sessions) >= 1
	}, 60*time.Second, 250*time.Millisecond, "a fire with its session")
	require.Equal(t, "created", v.Fires[0].Outcome, "%s", v.Fires[0].Message)
	x := s.session(v.Sessions[0].ID)
	require.NotNil(t, x.Template)
	require.Equal(t, api.TemplateRefView{ID: tpl.ID, Version: 1, Name: "Short night"}, *x.Template)
	require.Equal(t, "Short night", x.Name)
	require.EqualValues(t, 3, x.Duration)
	require.Equal(t, 25, x.TargetFPS, "version 1's, not the edit's")
	require.Len(t, x.DeviceStatuses, 1)
	require.Equal(t, fmt.Sprintf("TPS1_%d", x.ID), x.DeviceStatuses[0].FilenamePrefix, "the pattern, expanded per fire")
}
