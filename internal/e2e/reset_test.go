package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/simulator"
	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/workflows"
)

// temporalCLI runs the pinned temporal CLI (the one an operator uses) against the test server,
// failing the test with its output when it fails.
func (s *stack) temporalCLI(args ...string) string {
	s.t.Helper()
	bin := os.Getenv("TEMPORAL_BIN")
	if bin == "" {
		bin = "../../.tools/bin/temporal"
	}
	if _, err := os.Stat(bin); err != nil {
		s.t.Skipf("no temporal CLI at %s (scripts/test.sh builds it)", bin)
	}
	args = append(args, "--address", testenv.TemporalAddress(s.t), "--namespace", "default")
	out, err := exec.Command(bin, args...).CombinedOutput()
	require.NoError(s.t, err, "temporal %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

// runOf is a workflow's current run: its id, status and MbaStatus.
func (s *stack) runOf(workflowID string) (runID string, status enumspb.WorkflowExecutionStatus, tag string) {
	s.t.Helper()
	d, err := s.temporal.DescribeWorkflowExecution(context.Background(), workflowID, "")
	require.NoError(s.t, err)
	info := d.WorkflowExecutionInfo
	if f := info.GetSearchAttributes().GetIndexedFields()[workflows.AttrStatus.GetName()]; f != nil {
		tag = strings.Trim(string(f.GetData()), `"`)
	}
	return info.Execution.RunId, info.Status, tag
}

// waitNewRun waits until workflowID runs in a run other than old, and that run answers the
// status query: a run whose replay of the reset history failed (non-determinism) cannot.
func (s *stack) waitNewRun(workflowID, old string) string {
	s.t.Helper()
	var run string
	require.Eventually(s.t, func() bool {
		run, _, _ = s.runOf(workflowID)
		if run == old {
			return false
		}
		_, err := s.temporal.QueryWorkflow(context.Background(), workflowID, run, workflows.QueryStatus)
		return err == nil
	}, 60*time.Second, 200*time.Millisecond, "%s: no healthy run after the reset", workflowID)
	return run
}

// waitCompleted waits until the workflow's current run completed, and returns its MbaStatus.
func (s *stack) waitCompleted(workflowID string) string {
	s.t.Helper()
	var tag string
	require.Eventually(s.t, func() bool {
		var st enumspb.WorkflowExecutionStatus
		_, st, tag = s.runOf(workflowID)
		require.NotEqual(s.t, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, st, workflowID)
		require.NotEqual(s.t, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, st, workflowID)
		return st == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	}, 90*time.Second, 200*time.Millisecond, "%s did not complete", workflowID)
	return tag
}

// onlyOnce checks that every enclosure recorded exactly once and holds no session.
func onlyOnce(t *testing.T, sim *simulator.Simulator) {
	t.Helper()
	for _, e := range sim.Enclosures() {
		st := e.State()
		require.Equal(t, 1, st.Recordings, "%s recorded more than once", st.Name)
		require.Zero(t, st.Violations, "%s: %s", st.Name, st.LastErr)
	}
}

// TestResetFinishedWorkflowsWithTheCLI resets a finished session's workflows with the real CLI,
// as an operator does: each new run replays, settles with what the enclosure reported instead of
// starting it again, and leaves the read model and the search attributes as they were.
func TestResetFinishedWorkflowsWithTheCLI(t *testing.T) {
	s := newStack(t)
	sim, ids := s.enclosures(1, "E2EX")
	sid := s.createSession(ids, 2)
	s.waitSession(sid, recording.SessionComplete, 60*time.Second)
	e := sim.Enclosures()[0]
	require.Eventually(t, func() bool { return e.State().SessionID == 0 }, 30*time.Second, 100*time.Millisecond)
	dwid, swid := workflows.DeviceWorkflowID(sid, ids[0]), workflows.SessionWorkflowID(sid)
	require.Equal(t, string(recording.DeviceComplete), s.waitCompleted(dwid), "an ended enclosure workflow is tagged with its end")
	require.Equal(t, string(recording.SessionComplete), s.waitCompleted(swid))
	before := s.session(sid).DeviceStatuses[0]

	for _, reset := range [][]string{
		{"-w", dwid, "--type", "FirstWorkflowTask"},
		{"-w", dwid, "--type", "LastWorkflowTask"},
		{"-w", swid, "--type", "FirstWorkflowTask"},
		{"-w", swid, "--type", "LastWorkflowTask"},
	} {
		t.Logf("reset %v", reset)
		old, _, _ := s.runOf(reset[1])
		s.temporalCLI(append([]string{"workflow", "reset", "--reason", "e2e test"}, reset...)...)
		s.waitNewRun(reset[1], old)
		require.NotEmpty(t, s.waitCompleted(reset[1]))
		require.Equal(t, string(recording.DeviceComplete), s.waitCompleted(dwid))
	}
	require.Equal(t, string(recording.SessionComplete), s.waitCompleted(swid))
	x := s.session(sid)
	require.Equal(t, recording.SessionComplete, x.Status)
	after := x.DeviceStatuses[0]
	require.Equal(t, recording.DeviceComplete, after.Status, after.Message)
	require.Equal(t, before.RecordingTime, after.RecordingTime, "the recorded time is what the enclosure reported")
	require.Equal(t, 1, after.Segments)
	time.Sleep(time.Second) // a START sent by mistake would have gone out on these heartbeats
	onlyOnce(t, sim)
	require.Zero(t, e.State().SessionID)
}

// TestResetRunningWorkflowsWithTheCLI resets the workflows of a session while its enclosures
// record: to the first and the last workflow task, to a chosen event, and in a batch by search
// attribute. Each new run replays and carries on; no enclosure is started twice, and the
// session completes with the time recorded.
func TestResetRunningWorkflowsWithTheCLI(t *testing.T) {
	s := newStack(t)
	sim, ids := s.enclosures(2, "E2EY")
	const duration = 60 // long enough for every reset below, under load
	sid := s.createSession(ids, duration)
	require.Eventually(t, func() bool {
		for _, d := range s.session(sid).DeviceStatuses {
			if d.Status != recording.DeviceRecording { // written by the workflow once START is acknowledged
				return false
			}
		}
		return sim.Stats().Recording == 2
	}, 30*time.Second, 50*time.Millisecond)
	dwid, swid := workflows.DeviceWorkflowID(sid, ids[0]), workflows.SessionWorkflowID(sid)

	// A chosen event: the last WorkflowTaskCompleted of the enclosure's history.
	var chosen int64
	it := s.temporal.GetWorkflowHistory(context.Background(), dwid, "", false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if ev.EventType == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			chosen = ev.EventId
		}
	}
	require.NotZero(t, chosen)
	for _, reset := range [][]string{
		{"-w", dwid, "--event-id", fmt.Sprint(chosen)}, // first: the id is of the run read above
		{"-w", dwid, "--type", "FirstWorkflowTask"},
		{"-w", dwid, "--type", "LastWorkflowTask"},
		{"-w", swid, "--type", "LastWorkflowTask"},
		{"-w", swid, "--type", "FirstWorkflowTask"},
	} {
		t.Logf("reset %v", reset)
		old, _, _ := s.runOf(reset[1])
		s.temporalCLI(append([]string{"workflow", "reset", "--reason", "e2e test"}, reset...)...)
		s.waitNewRun(reset[1], old)
		require.Equal(t, 2, sim.Stats().Recording, "the enclosures go on recording")
	}

	// Batch reset of every running workflow of the session.
	olds := map[string]string{}
	for _, id := range []string{swid, dwid, workflows.DeviceWorkflowID(sid, ids[1])} {
		olds[id], _, _ = s.runOf(id)
	}
	query := fmt.Sprintf("MbaSessionId = %d AND ExecutionStatus = 'Running'", sid)
	require.Eventually(t, func() bool { // visibility is eventually consistent
		n, err := s.temporal.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: query})
		return err == nil && n.Count == int64(len(olds))
	}, 30*time.Second, 200*time.Millisecond, "the query finds the session's workflows")
	out := s.temporalCLI("workflow", "reset", "--query", query, "--type", "LastWorkflowTask", "--reason", "e2e batch", "--yes")
	t.Log(out)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(s.temporalCLI("batch", "list"))
			t.Log(s.temporalCLI("workflow", "list", "--query", fmt.Sprintf("MbaSessionId = %d", sid)))
		}
	})
	for id, old := range olds {
		s.waitNewRun(id, old)
	}

	x := s.waitSession(sid, recording.SessionComplete, 2*duration*time.Second)
	for _, d := range x.DeviceStatuses {
		require.Equal(t, recording.DeviceComplete, d.Status, "%s: %s", d.Device.Name, d.Message)
		require.Equal(t, 1, d.Segments)
		require.GreaterOrEqual(t, d.RecordingTime, int64(duration))
	}
	require.Eventually(t, func() bool {
		for _, e := range sim.Enclosures() {
			if e.State().SessionID != 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond)
	onlyOnce(t, sim)
	require.Equal(t, string(recording.SessionComplete), s.waitCompleted(swid))
	require.Equal(t, string(recording.DeviceComplete), s.waitCompleted(dwid))
	s.recordHistory(dwid, "device_reset_while_recording")
	s.recordHistory(swid, "session_reset_adopted_children")
}

// TestSessionEndsBeforeItsWorkflowRuns holds the workflows back (the worker starts late, as
// with a slow or restarting Temporal) until the enclosures have recorded the whole session and
// forgotten it: the late workflows settle with what the enclosures reported, none is started a
// second time, and the session ends COMPLETE with the time recorded.
func TestSessionEndsBeforeItsWorkflowRuns(t *testing.T) {
	s := newStack(t, func(s *stack) { s.workerLater = true })
	sim, ids := s.enclosures(3, "E2EL")
	const duration = 2
	sid := s.createSession(ids, duration)
	require.Eventually(t, func() bool {
		for _, e := range sim.Enclosures() {
			if st := e.State(); st.Recordings != 1 || st.SessionID != 0 {
				return false
			}
		}
		return true
	}, 60*time.Second, 100*time.Millisecond, "recorded and released without any workflow")
	require.Equal(t, recording.SessionInProgress, s.session(sid).Status)

	s.startWorker()
	x := s.waitSession(sid, recording.SessionComplete, 60*time.Second)
	for _, d := range x.DeviceStatuses {
		require.Equal(t, recording.DeviceComplete, d.Status, "%s: %s", d.Device.Name, d.Message)
		require.Equal(t, 1, d.Segments)
		require.GreaterOrEqual(t, d.RecordingTime, int64(duration))
	}
	for _, id := range ids {
		require.Equal(t, string(recording.DeviceComplete), s.waitCompleted(workflows.DeviceWorkflowID(sid, id)))
	}
	time.Sleep(time.Second) // a second START would have gone out on these heartbeats
	onlyOnce(t, sim)
	s.recordHistory(workflows.DeviceWorkflowID(sid, ids[0]), "device_settled_late")
}

// TestLateReportsStillCount cancels a session while one enclosure is away for longer than the
// STOP may take: its workflow ends without its report, and when it returns, stops and reports
// what it recorded, the seconds reach the read model all the same.
func TestLateReportsStillCount(t *testing.T) {
	s := newStack(t)
	sim, ids := s.enclosures(2, "E2EZ")
	sid := s.createSession(ids, 600)
	s.waitRecording(sid)
	away := sim.Enclosures()[0]
	time.Sleep(2 * time.Second) // something recorded
	away.GoSilent(s.settings.EndGrace + 15*time.Second)

	require.Equal(t, 204, s.call("DELETE", fmt.Sprintf("/api/recording-session/%d", sid), nil, nil))
	s.waitSession(sid, recording.SessionCanceled, 60*time.Second)
	require.Eventually(t, func() bool {
		st := away.State()
		return !st.Silent && !st.Recording && st.SessionID == 0
	}, 90*time.Second, 100*time.Millisecond, "the enclosure came back, stopped and forgot the session")
	recorded := away.State().Elapsed
	var d api.SessionDeviceView
	require.Eventually(t, func() bool {
		for _, x := range s.session(sid).DeviceStatuses {
			if x.Device.Name == away.Name() {
				d = x
			}
		}
		return d.RecordingTime > 0
	}, 30*time.Second, 100*time.Millisecond, "the late report counted")
	require.Equal(t, recording.DeviceCanceled, d.Status)
	require.GreaterOrEqual(t, d.RecordingTime, int64(2))
	if recorded > 0 {
		require.Equal(t, recorded, d.RecordingTime, "what the enclosure reported")
	}
	require.Equal(t, recording.SessionCanceled, s.session(sid).Status)
}

// TestOutageAcrossThePlannedEnd takes the API down (every request refused, as with serve
// stopped) from before a session's planned end until past its end grace: the end timer fires
// while the enclosures cannot report, and once they can, their reports of a complete recording
// decide, not the timer.
func TestOutageAcrossThePlannedEnd(t *testing.T) {
	s := newStack(t)
	sim, ids := s.enclosures(2, "E2EO")
	const duration = 4
	sid := s.createSession(ids, duration)
	s.waitRecording(sid)

	up := *s.handler.Load()
	var down http.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	s.handler.Store(&down)
	// Past the planned end and its grace, and a little: the end timers have fired by then.
	time.Sleep(duration*time.Second + s.settings.EndGrace + 3*time.Second)
	s.handler.Store(&up)

	x := s.waitSession(sid, recording.SessionComplete, 60*time.Second)
	for _, d := range x.DeviceStatuses {
		require.Equal(t, recording.DeviceComplete, d.Status, "%s: %s", d.Device.Name, d.Message)
		require.GreaterOrEqual(t, d.RecordingTime, int64(duration))
	}
	require.Eventually(t, func() bool { return sim.Stats().Recording == 0 }, 30*time.Second, 100*time.Millisecond)
	onlyOnce(t, sim)
	s.waitCompleted(workflows.DeviceWorkflowID(sid, ids[0]))
	s.recordHistory(workflows.DeviceWorkflowID(sid, ids[0]), "device_end_judged_by_report")
}

// TestCanceledSessionsAreTaggedCanceled cancels one session through the API and one from the
// temporal CLI: both end CANCELED in the read model and in MbaStatus, their enclosures' ended
// workflows say CANCELED too (they said IN_PROGRESS and FAILED).
func TestCanceledSessionsAreTaggedCanceled(t *testing.T) {
	s := newStack(t)
	sim, ids := s.enclosures(2, "E2EK")
	byAPI, byCLI := s.createSession(ids[:1], 600), s.createSession(ids[1:], 600)
	require.Eventually(t, func() bool {
		for _, sid := range []int64{byAPI, byCLI} {
			if s.session(sid).DeviceStatuses[0].Status != recording.DeviceRecording {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond)

	require.Equal(t, http.StatusNoContent, s.call("DELETE", fmt.Sprintf("/api/recording-session/%d", byAPI), nil, nil))
	s.temporalCLI("workflow", "cancel", "-w", workflows.SessionWorkflowID(byCLI))
	for i, sid := range []int64{byAPI, byCLI} {
		x := s.waitSession(sid, recording.SessionCanceled, 60*time.Second)
		require.Equal(t, recording.DeviceCanceled, x.DeviceStatuses[0].Status)
		var tag string
		require.Eventually(t, func() bool {
			var st enumspb.WorkflowExecutionStatus
			_, st, tag = s.runOf(workflows.SessionWorkflowID(sid))
			return st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
		}, 60*time.Second, 200*time.Millisecond)
		require.Equal(t, string(recording.SessionCanceled), tag, "session %d's MbaStatus", sid)
		require.Eventually(t, func() bool {
			_, _, tag = s.runOf(workflows.DeviceWorkflowID(sid, ids[i]))
			return tag == string(recording.DeviceCanceled)
		}, 60*time.Second, 200*time.Millisecond, "the enclosure workflow's MbaStatus")
	}
	require.Eventually(t, func() bool { return sim.Stats().Recording == 0 }, 30*time.Second, 100*time.Millisecond)
	s.recordHistory(workflows.SessionWorkflowID(byCLI), "session_canceled_from_cli")
}
