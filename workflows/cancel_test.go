package workflows

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
)

// TestSessionCanceledFromTheCLIWritesCanceled: `temporal workflow cancel` cancels the session
// and, with it, its enclosures' workflows; the status write that follows the last enclosure's
// end must not fail on the canceled context (it did: "writing the session status: canceled",
// and the read model said IN_PROGRESS until the orphan sweep), and it says CANCELED, not FAILED. The cancel itself is
// written first, as the API's cancel is (the clean-up may wait for an enclosure out of reach).
func TestSessionCanceledFromTheCLIWritesCanceled(t *testing.T) {
	for _, devices := range [][]activities.PlannedDevice{{nv1}, {nv1, nv2}} {
		st := newSessionTest(t, devices...)
		st.env.RegisterDelayedCallback(st.env.CancelWorkflow, 10*time.Minute)
		st.env.ExecuteWorkflow(RecordingSession, SessionInput{SessionID: 7, Settings: testSettings})
		require.True(t, st.env.IsWorkflowCompleted())
		var canceled *temporal.CanceledError
		require.True(t, errors.As(st.env.GetWorkflowError(), &canceled), "%v", st.env.GetWorkflowError())
		require.Equal(t, []string{"cancel: workflow canceled", string(recording.SessionCanceled)}, st.statuses, "%d enclosures", len(devices))
	}
}
