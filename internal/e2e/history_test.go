package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/workflows"
)

// TestLongSessionHistoryStaysBounded runs a 30-day session and sends its enclosure's workflow
// far more transitions than a month of incidents would: the workflow continues as new, its
// history stays under the limit, and its state survives each new run.
func TestLongSessionHistoryStaysBounded(t *testing.T) {
	const limit = 150
	s := newStack(t, func(s *stack) { s.settings.HistoryLimit = limit })
	sim, ids := s.enclosures(1, "E2EH")
	sid := s.createSession(ids, 30*24*3600)
	require.Eventually(t, func() bool { return sim.Stats().Recording == 1 }, 30*time.Second, 50*time.Millisecond)
	ctx := context.Background()
	wid := workflows.DeviceWorkflowID(sid, ids[0])
	first, err := s.temporal.DescribeWorkflowExecution(ctx, wid, "")
	require.NoError(t, err)

	// A month of incidents, a few at a time (a burst lands in one run's history whatever the
	// workflow does; continue-as-new bounds what accumulates across them).
	id := int64(1 << 40) // above any outbox id of this test
	var st workflows.DeviceState
	for batch := 0; batch < 12; batch++ {
		for i := 0; i < 5; i++ {
			for _, kind := range []recording.EventKind{recording.EventSilent, recording.EventReturned} {
				id++
				require.NoError(t, s.temporal.SignalWorkflow(ctx, wid, "", workflows.SignalDeviceEvent,
					recording.Event{ID: id, Kind: kind, At: time.Now(), SessionID: sid}))
			}
		}
		require.Eventually(t, func() bool {
			v, err := s.temporal.QueryWorkflow(ctx, wid, "", workflows.QueryStatus)
			return err == nil && v.Get(&st) == nil && st.LastEventID == id
		}, 60*time.Second, 100*time.Millisecond, "every transition handled")
	}

	now, err := s.temporal.DescribeWorkflowExecution(ctx, wid, "")
	require.NoError(t, err)
	require.NotEqual(t, first.WorkflowExecutionInfo.Execution.RunId, now.WorkflowExecutionInfo.Execution.RunId, "continued as new")
	require.Less(t, now.WorkflowExecutionInfo.HistoryLength, int64(limit+60), "history bounded, not growing with the incidents")
	require.Equal(t, recording.DeviceRecording, st.Status)
	require.Equal(t, 30*24*time.Hour, st.PlannedEnd.Sub(st.StartedAt), "the plan survives each new run")
	require.True(t, st.SilentSince.IsZero())

	require.Equal(t, http.StatusNoContent, s.call("DELETE", fmt.Sprintf("/api/recording-session/%d", sid), nil, nil))
	s.waitSession(sid, recording.SessionCanceled, 30*time.Second)
	s.recordHistory(wid, "device_continued_then_canceled")
	s.recordHistory(workflows.SessionWorkflowID(sid), "session_canceled")
}

// recordHistory writes a finished workflow's history to $MBA_RECORD_HISTORIES/<name>.json,
// for the replay tests in workflows/testdata (make record-histories).
func (s *stack) recordHistory(workflowID, name string) {
	dir := os.Getenv("MBA_RECORD_HISTORIES")
	if dir == "" {
		return
	}
	s.t.Helper()
	var h historypb.History
	it := s.temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, 0)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(s.t, err)
		h.Events = append(h.Events, ev)
	}
	raw, err := protojson.MarshalOptions{Indent: " "}.Marshal(&h)
	require.NoError(s.t, err)
	require.NoError(s.t, os.WriteFile(filepath.Join(dir, name+".json"), raw, 0o644))
}
