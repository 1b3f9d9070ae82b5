package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/workflows"
)

// operatorEvents are a session's timeline entries of kind, as the API shows them.
func (s *stack) operatorEvents(sid int64, kind string) []api.SessionEventView {
	s.t.Helper()
	var events, out []api.SessionEventView
	require.Equal(s.t, http.StatusOK, s.call("GET", fmt.Sprintf("/api/recording-session/%d/events", sid), nil, &events))
	for _, e := range events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// TestTemporalCLIActionsShowInTheTimeline: an operator resets an enclosure's workflow, cancels
// one session's workflow and terminates another's with the real temporal CLI; the fleet
// monitor puts each on the session's timeline once, with the identity and reason Temporal
// recorded (the CLI's pid@host, or the user an authorizing server knows), and the API shows them.
func TestTemporalCLIActionsShowInTheTimeline(t *testing.T) {
	s := newStack(t)
	s.startFleetMonitor(time.Minute)
	_, ids := s.enclosures(3, "E2EOP")
	reset, canceled, terminated := s.createSession(ids[:1], 600), s.createSession(ids[1:2], 600), s.createSession(ids[2:], 600)
	for _, sid := range []int64{reset, canceled, terminated} {
		s.waitRecording(sid)
	}

	dwid := workflows.DeviceWorkflowID(reset, ids[0])
	old, _, _ := s.runOf(dwid)
	s.temporalCLI("workflow", "reset", "-w", dwid, "--type", "LastWorkflowTask", "--reason", "replaying after a fix")
	run := s.waitNewRun(dwid, old)
	s.temporalCLI("workflow", "cancel", "-w", workflows.SessionWorkflowID(canceled))
	s.temporalCLI("workflow", "terminate", "-w", workflows.SessionWorkflowID(terminated), "--reason", "stuck enclosure")

	want := []struct {
		sid      int64
		kind     string
		contains []string
	}{
		// Temporal writes a reset's event itself and records the authenticated user, not the
		// CLI's --identity: with no authorization on the dev server, no one.
		{reset, "temporal.reset", []string{dwid, "reset in Temporal by an operator (Temporal recorded no user): replaying after a fix", run, old}},
		// The CLI sends its client identity (pid@host) with a cancel or terminate, whatever
		// --identity says.
		{canceled, "temporal.cancel", []string{workflows.SessionWorkflowID(canceled), "canceled in Temporal by "}},
		{terminated, "temporal.terminate", []string{workflows.SessionWorkflowID(terminated), "terminated in Temporal by ", ": stuck enclosure"}},
	}
	for _, w := range want {
		var got []api.SessionEventView
		require.Eventually(t, func() bool { got = s.operatorEvents(w.sid, w.kind); return len(got) > 0 },
			60*time.Second, 200*time.Millisecond, "session %d has no %s event", w.sid, w.kind)
		for _, c := range w.contains {
			require.Contains(t, got[0].Message, c)
		}
		require.False(t, got[0].At.IsZero())
		if w.kind == "temporal.reset" {
			require.NotNil(t, got[0].Device, "an enclosure's workflow: the entry names the enclosure")
		}
	}
	// The monitor reconciles every half second: a few more rounds write nothing twice.
	require.Never(t, func() bool {
		for _, w := range want {
			if len(s.operatorEvents(w.sid, w.kind)) != 1 {
				return true
			}
		}
		return false
	}, 3*time.Second, 250*time.Millisecond, "an action is on the timeline more than once (or a workflow its parent canceled counts as an operator's)")
	require.Nil(t, s.operatorEvents(canceled, "temporal.cancel")[0].Device, "the session's own workflow")
}
