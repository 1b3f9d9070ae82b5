package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/simulator"
	"github.com/jax-mba/mba/worker"
	"github.com/jax-mba/mba/workflows"
)

// enclosures starts n simulated enclosures against the stack and waits until all registered.
func (s *stack) enclosures(n int, prefix string) (*simulator.Simulator, []int64) {
	s.t.Helper()
	sim, ids, _ := s.enclosuresVia(s.api.URL+"/api", n, prefix)
	return sim, ids
}

// enclosuresVia is enclosures with the API at base (e.g. through a proxy); stop silences them
// before the test ends.
func (s *stack) enclosuresVia(base string, n int, prefix string) (sim *simulator.Simulator, ids []int64, stop func()) {
	s.t.Helper()
	sim, err := simulator.New(simulator.Config{BaseURL: base, Count: n, NamePrefix: prefix,
		Interval: 200 * time.Millisecond, FollowUp: 50 * time.Millisecond})
	require.NoError(s.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sim.Run(ctx) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	s.t.Cleanup(stop)

	require.Eventually(s.t, func() bool {
		ids = ids[:0]
		for _, e := range sim.Enclosures() {
			d, err := s.store.DeviceByName(context.Background(), e.Name(), time.Now(), time.Minute)
			if err != nil {
				return false
			}
			ids = append(ids, d.ID)
		}
		return true
	}, 20*time.Second, 50*time.Millisecond)
	return sim, ids, stop
}

func (s *stack) createSession(ids []int64, duration int) int64 {
	s.t.Helper()
	var spec []map[string]any
	for i, id := range ids {
		spec = append(spec, map[string]any{"device_id": id, "filename_prefix": fmt.Sprintf("cage%d", i)})
	}
	var x api.SessionView
	require.Equal(s.t, http.StatusOK, s.call("POST", "/api/recording-session",
		map[string]any{"name": "e2e", "duration": duration, "target_fps": 30, "fragment_hourly": true, "device_spec": spec}, &x))
	return x.ID
}

func TestSessionOfTwentyEnclosuresCompletes(t *testing.T) {
	s := newStack(t)
	sim, ids := s.enclosures(20, "E2EA")
	sid := s.createSession(ids, 3)

	x := s.waitSession(sid, recording.SessionComplete, 60*time.Second)
	require.Len(t, x.DeviceStatuses, 20)
	for _, d := range x.DeviceStatuses {
		require.Equal(t, recording.DeviceComplete, d.Status, "%s: %s", d.Device.Name, d.Message)
		require.Equal(t, 1, d.Segments)
		require.GreaterOrEqual(t, d.RecordingTime, int64(3))
	}
	// Every enclosure recorded exactly once, and forgets the session (COMPLETE was not lost).
	require.Eventually(t, func() bool {
		for _, e := range sim.Enclosures() {
			if e.State().SessionID != 0 {
				return false
			}
		}
		return true
	}, 20*time.Second, 100*time.Millisecond)
	for _, e := range sim.Enclosures() {
		st := e.State()
		require.Equal(t, 1, st.Recordings, "%s recorded more than once", st.Name)
		require.Zero(t, st.Violations, "%s: %s", st.Name, st.LastErr)
	}
	require.Zero(t, sim.Stats().Violations)
	s.recordHistory(workflows.SessionWorkflowID(sid), "session_complete")
	s.recordHistory(workflows.DeviceWorkflowID(sid, ids[0]), "device_complete")
}

func TestCancelAndRemove(t *testing.T) {
	s := newStack(t)
	sim, ids := s.enclosures(3, "E2EB")
	sid := s.createSession(ids, 600)
	s.waitRecording(sid)

	// Heartbeats that change nothing reach neither the outbox nor any workflow's history.
	history := func() int64 {
		d, err := s.temporal.DescribeWorkflowExecution(context.Background(), workflows.DeviceWorkflowID(sid, ids[1]), "")
		require.NoError(t, err)
		return d.WorkflowExecutionInfo.HistoryLength
	}
	time.Sleep(time.Second) // let the start settle
	before, beats := history(), sim.Stats().HeartbeatsSent
	time.Sleep(2 * time.Second)
	require.Greater(t, sim.Stats().HeartbeatsSent, beats+20, "the enclosures kept heartbeating")
	require.Equal(t, before, history(), "idle heartbeats add no workflow history")

	path := fmt.Sprintf("/api/recording-session/%d", sid)
	require.Equal(t, http.StatusNoContent, s.call("DELETE", fmt.Sprintf("%s/device-status/%d", path, ids[0]), nil, nil))
	require.Eventually(t, func() bool {
		for _, d := range s.session(sid).DeviceStatuses {
			if d.Device.ID == ids[0] {
				return d.Status == recording.DeviceCanceled
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, recording.SessionInProgress, s.session(sid).Status, "the others go on")

	require.Equal(t, http.StatusNoContent, s.call("DELETE", path, nil, nil))
	x := s.waitSession(sid, recording.SessionCanceled, 30*time.Second)
	require.Equal(t, "ann@lab.example", *x.CanceledBy)
	require.Eventually(t, func() bool {
		for _, e := range sim.Enclosures() {
			if st := e.State(); st.StopsReceived == 0 || st.Recording {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "every enclosure got STOP and stopped")
	for _, e := range sim.Enclosures() {
		st := e.State()
		require.Equal(t, 1, st.Recordings, "%s recorded once", st.Name)
	}
}

// waitResumePlan waits until the enclosure's workflow knows it records and has written its
// resume plan in the mailbox (it does once the recording started).
func (s *stack) waitResumePlan(deviceID int64) {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		var planned bool
		err := s.pool.QueryRow(context.Background(), `SELECT resume IS NOT NULL FROM device_assignments WHERE device_id = $1`, deviceID).Scan(&planned)
		return err == nil && planned
	}, 30*time.Second, 50*time.Millisecond)
}

func TestRebootResumes(t *testing.T) {
	s := newStack(t)
	sim, ids := s.enclosures(1, "E2EC")
	sid := s.createSession(ids, 8)
	e := sim.Enclosures()[0]
	require.Eventually(t, func() bool { return e.State().Recording }, 30*time.Second, 50*time.Millisecond)
	s.waitResumePlan(ids[0])
	time.Sleep(2 * time.Second)
	e.GoSilent(3 * time.Second) // booting: a gap of seconds, whatever the workflow's speed
	e.Reboot()

	// It recorded to the end, but not every second: the session says so.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("session: %+v", s.session(sid))
		}
	})
	x := s.waitSession(sid, recording.SessionPartial, 60*time.Second)
	d := x.DeviceStatuses[0]
	require.Equal(t, recording.DeviceComplete, d.Status)
	require.Equal(t, 2, d.Segments, "resumed once")
	require.Len(t, d.Gaps, 1)
	require.GreaterOrEqual(t, d.SecondsLost, int64(3), "from its last heartbeat to the next segment's start")
	require.Equal(t, d.SecondsLost, d.Gaps[0].Seconds)
	require.Contains(t, d.Message, fmt.Sprintf("lost %ds", d.SecondsLost))
	require.InDelta(t, 8, d.RecordingTime+d.SecondsLost, 2, "recorded and lost add up to the planned time")
	require.Equal(t, 2, e.State().Recordings)
	// The resume START answered the first heartbeat after the reboot (not one heartbeat later,
	// once the workflow had decided), for no more than the time left; each segment got one START.
	st := e.State()
	var started, afterReboot []simulator.StartSeen
	for _, s := range st.Starts {
		if s.Started {
			started = append(started, s)
		}
		if s.Boot == 2 {
			afterReboot = append(afterReboot, s)
		}
	}
	require.Len(t, started, 2, "one recording per segment: %+v", st.Starts)
	require.Equal(t, started[0].FilePrefix+"_s2", started[1].FilePrefix)
	require.Len(t, afterReboot, 1, "one START after the reboot: %+v", st.Starts)
	require.Equal(t, int64(1), afterReboot[0].Heartbeat, "the reply to the first heartbeat after the reboot: %+v", st.Starts)
	require.True(t, afterReboot[0].Started)
	require.LessOrEqual(t, afterReboot[0].Duration, int64(8-2-3), "the time left to the planned end")
	var events []api.SessionEventView
	require.Equal(t, http.StatusOK, s.call("GET", fmt.Sprintf("/api/recording-session/%d/events", sid), nil, &events))
	var kinds []string
	for _, ev := range events {
		kinds = append(kinds, ev.Kind)
	}
	require.Subset(t, kinds, []string{"created", "started", "reset", "resumed", "gap", "ended"})
	require.Eventually(t, func() bool { return e.State().SessionID == 0 }, 30*time.Second, 100*time.Millisecond)
	time.Sleep(time.Second) // the workflow ends once the enclosure took COMPLETE
	s.recordHistory(workflows.DeviceWorkflowID(sid, ids[0]), "device_reboot_resumed_at_once")
}

// startFleetMonitor starts the singletons serve starts (the fleet monitor, here marking DOWN
// after down and releasing what a terminated workflow left within a second or so) until the
// test ends.
func (s *stack) startFleetMonitor(down time.Duration) {
	s.t.Helper()
	fleet := activities.FleetWatch{Every: 200 * time.Millisecond, Down: down, Run: time.Minute,
		ReconcileEvery: 500 * time.Millisecond, Settle: time.Second}
	require.NoError(s.t, worker.StartSingletons(context.Background(), s.temporal, s.queue, fleet))
	s.t.Cleanup(func() {
		_ = s.temporal.TerminateWorkflow(context.Background(), workflows.FleetMonitorWorkflowID(s.queue), "", "test done")
		_ = s.temporal.TerminateWorkflow(context.Background(), workflows.HousekeepingWorkflowID(s.queue), "", "test done")
	})
}

// TestTerminatedWorkflowsAreCleanedUp terminates a session's workflow from "the CLI": its
// enclosures stop (their workflows are canceled with it and clean up), and the fleet monitor
// releases what the terminated workflow itself could not: the session's status.
func TestTerminatedWorkflowsAreCleanedUp(t *testing.T) {
	s := newStack(t)
	s.startFleetMonitor(time.Minute)
	sim, ids := s.enclosures(2, "E2ET")
	sid := s.createSession(ids, 600)
	require.Eventually(t, func() bool { return sim.Stats().Recording == 2 }, 30*time.Second, 50*time.Millisecond)

	require.NoError(t, s.temporal.TerminateWorkflow(context.Background(), workflows.SessionWorkflowID(sid), "", "operator"))
	x := s.waitSession(sid, recording.SessionCanceled, 30*time.Second)
	for _, d := range x.DeviceStatuses {
		require.Equal(t, recording.DeviceCanceled, d.Status)
	}
	require.Eventually(t, func() bool { return sim.Stats().Recording == 0 }, 30*time.Second, 50*time.Millisecond, "enclosures stopped")
	var left int
	require.NoError(t, s.pool.QueryRow(context.Background(), `SELECT count(*) FROM device_assignments`).Scan(&left))
	require.Eventually(t, func() bool {
		require.NoError(t, s.pool.QueryRow(context.Background(), `SELECT count(*) FROM device_assignments`).Scan(&left))
		return left == 0
	}, 30*time.Second, 100*time.Millisecond, "no mailbox left behind")
}
