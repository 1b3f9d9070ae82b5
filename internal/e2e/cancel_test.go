package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/workflows"
)

// waitRecording waits until every enclosure of the session records.
func (s *stack) waitRecording(sid int64) {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		for _, d := range s.session(sid).DeviceStatuses {
			if d.Status != recording.DeviceRecording {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond)
}

// waitClosed waits until the workflow is no longer running and returns how it ended.
func (s *stack) waitClosed(workflowID string) enumspb.WorkflowExecutionStatus {
	s.t.Helper()
	var status enumspb.WorkflowExecutionStatus
	require.Eventually(s.t, func() bool {
		d, err := s.temporal.DescribeWorkflowExecution(context.Background(), workflowID, "")
		if err != nil {
			return false
		}
		status = d.WorkflowExecutionInfo.Status
		return status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}, 60*time.Second, 100*time.Millisecond, "%s still running", workflowID)
	return status
}

// TestCancelDuringATemporalOutage: with nothing reaching Temporal (the dispatcher stopped), a
// cancel is answered 204, the session and its enclosures are CANCELED at once and the
// enclosures stop; once delivery resumes the workflows end and the session stays CANCELED.
func TestCancelDuringATemporalOutage(t *testing.T) {
	s := newStack(t)
	sim, ids := s.enclosures(2, "E2EX")
	sid := s.createSession(ids, 600)
	s.waitRecording(sid)

	s.stopDispatcher()
	require.Equal(t, http.StatusNoContent, s.call("DELETE", fmt.Sprintf("/api/recording-session/%d", sid), nil, nil))
	x := s.session(sid)
	require.Equal(t, recording.SessionCanceled, x.Status, "canceled in the request")
	for _, d := range x.DeviceStatuses {
		require.Equal(t, recording.DeviceCanceled, d.Status, d.Device.Name)
	}
	require.Eventually(t, func() bool {
		for _, e := range sim.Enclosures() {
			if st := e.State(); st.Recording || st.StopsReceived == 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "STOP reaches the enclosures without Temporal")

	s.startDispatcher()
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, s.waitClosed(workflows.SessionWorkflowID(sid)))
	for _, id := range ids {
		s.waitClosed(workflows.DeviceWorkflowID(sid, id))
	}
	x = s.session(sid)
	require.Equal(t, recording.SessionCanceled, x.Status, "the workflow's end keeps CANCELED")
	for _, d := range x.DeviceStatuses {
		require.Equal(t, recording.DeviceCanceled, d.Status, d.Device.Name)
		require.False(t, d.StopPending)
	}
}

// TestCancelFromTheCLI: `temporal workflow cancel` of a session (the same request through the
// client) ends it CANCELED in the read model, not IN_PROGRESS until the orphan sweep.
func TestCancelFromTheCLI(t *testing.T) {
	s := newStack(t)
	sim, ids := s.enclosures(1, "E2EY")
	sid := s.createSession(ids, 600)
	s.waitRecording(sid)

	require.NoError(t, s.temporal.CancelWorkflow(context.Background(), workflows.SessionWorkflowID(sid), ""))
	x := s.waitSession(sid, recording.SessionCanceled, 30*time.Second)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, s.waitClosed(workflows.SessionWorkflowID(sid)))
	require.Eventually(t, func() bool { return !sim.Enclosures()[0].State().Recording }, 30*time.Second, 100*time.Millisecond,
		"the enclosure is stopped")
	require.NotNil(t, x.EndedAt)
}

// TestCancelFromTheCLIAtOnce: `temporal workflow cancel` of a session makes it and its
// enclosures CANCELED in the read model at once, as the API's cancel does, even while an
// enclosure that records is out of reach (a network outage the fleet monitor has not called
// DOWN yet): the read model does not wait out the STOP handshake (up to the end grace, 10 min
// here). STOP stays pending until the enclosure is back; then it stops, and the workflow ends.
func TestCancelFromTheCLIAtOnce(t *testing.T) {
	s := newStack(t, func(s *stack) { s.settings.EndGrace = 10 * time.Minute })
	sim, ids := s.enclosures(2, "E2EC")
	sid := s.createSession(ids, 600)
	s.waitRecording(sid)
	away := sim.Enclosures()[1]
	away.GoSilent(time.Hour)
	t.Cleanup(func() { away.GoSilent(0) })

	s.temporalCLI("workflow", "cancel", "-w", workflows.SessionWorkflowID(sid))
	x := s.waitSession(sid, recording.SessionCanceled, time.Minute)
	for _, d := range x.DeviceStatuses {
		require.Equal(t, recording.DeviceCanceled, d.Status, d.Device.Name)
	}
	require.NotNil(t, x.EndedAt)
	require.Eventually(t, func() bool {
		for _, d := range s.session(sid).DeviceStatuses {
			if d.Device.ID == ids[1] {
				return d.StopPending // STOP waits for the enclosure out of reach
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "STOP is pending for the enclosure out of reach")

	away.GoSilent(0)
	require.Eventually(t, func() bool { return sim.Stats().Recording == 0 }, time.Minute, 100*time.Millisecond,
		"both enclosures stop")
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, s.waitClosed(workflows.SessionWorkflowID(sid)))
	x = s.session(sid)
	require.Equal(t, recording.SessionCanceled, x.Status, "the workflow's end keeps CANCELED")
	for _, d := range x.DeviceStatuses {
		require.Equal(t, recording.DeviceCanceled, d.Status, d.Device.Name)
		require.False(t, d.StopPending, d.Device.Name)
	}
	_, _, tag := s.runOf(workflows.SessionWorkflowID(sid))
	require.Equal(t, string(recording.SessionCanceled), tag)
	s.recordHistory(workflows.SessionWorkflowID(sid), "session_canceled_at_once")
}
