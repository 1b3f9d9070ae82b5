package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/workflows"
)

// deviceStatus is the enclosure's status in the session view.
func deviceStatus(x api.SessionView, deviceID int64) (api.SessionDeviceView, bool) {
	for _, d := range x.DeviceStatuses {
		if d.Device.ID == deviceID {
			return d, true
		}
	}
	return api.SessionDeviceView{}, false
}

// sessionAuditActions are the actions of the sessions' audit rows, oldest first.
func (s *stack) sessionAuditActions() []recording.AuditAction {
	s.t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT action FROM audit_log WHERE action LIKE 'session.%' ORDER BY id`)
	require.NoError(s.t, err)
	actions, err := pgx.CollectRows(rows, pgx.RowTo[recording.AuditAction])
	require.NoError(s.t, err)
	return actions
}

// TestChangingARunningSession: through the API, an enclosure joins a running session and
// records, the session is extended and its enclosures record to the new end, a FAILED
// enclosure is retried; refusals are 4xx naming the field, each accepted change is audited.
func TestChangingARunningSession(t *testing.T) {
	s := newStack(t)
	sim, ids := s.enclosures(3, "E2EU")
	first, added, spare := ids[0], ids[1], ids[2]
	sid := s.createSession([]int64{first}, 6)
	s.waitRecording(sid)
	path := fmt.Sprintf("/api/recording-session/%d", sid)
	started := time.Now()

	var x api.SessionView
	require.Equal(t, http.StatusOK, s.call("POST", path+"/devices",
		map[string]any{"device_spec": []map[string]any{{"device_id": added, "filename_prefix": "late"}}}, &x))
	_, ok := deviceStatus(x, added)
	require.True(t, ok, "the answer lists the added enclosure")
	require.Eventually(t, func() bool {
		d, _ := deviceStatus(s.session(sid), added)
		return d.Status == recording.DeviceRecording
	}, 20*time.Second, 100*time.Millisecond, "the added enclosure records")

	// Extend to 12 s: both enclosures record to the new end.
	require.Equal(t, http.StatusOK, s.call("PUT", path+"/duration", map[string]any{"duration": 12}, &x))
	require.Equal(t, int64(12), x.Duration)

	// Refusals, each a 4xx naming its field; nothing changes.
	var refusal api.Error
	require.Equal(t, http.StatusBadRequest, s.call("PUT", path+"/duration", map[string]any{"duration": 12}, &refusal))
	require.Contains(t, refusal.Fields, "duration", refusal.Message)
	require.Equal(t, http.StatusBadRequest, s.call("PUT", path+"/duration", map[string]any{"duration": 0}, &refusal))
	require.Contains(t, refusal.Fields, "duration", refusal.Message)
	require.Equal(t, http.StatusConflict, s.call("POST", fmt.Sprintf("%s/device-status/%d/retry", path, added), nil, &refusal),
		"a recording enclosure is not retried")
	require.NotEmpty(t, refusal.Fields, refusal.Message)
	require.Equal(t, http.StatusNotFound, s.call("POST", fmt.Sprintf("%s/device-status/%d/retry", path, spare), nil, &refusal),
		"an enclosure not in the session")
	require.Equal(t, http.StatusBadRequest, s.call("POST", path+"/devices", map[string]any{"device_spec": []map[string]any{}}, &refusal))
	require.NotEmpty(t, refusal.Fields, refusal.Message)

	// The first enclosure fails; retried, it records again for the rest of the session.
	sim.Enclosures()[0].FailRecording("camera unplugged") // ids[0]: the enclosures' order
	require.Eventually(t, func() bool {
		d, _ := deviceStatus(s.session(sid), first)
		return d.Status == recording.DeviceFailed
	}, 20*time.Second, 100*time.Millisecond, "the failed recording is FAILED")
	// The read model says FAILED a moment before the session's workflow hears of it: until
	// then the retry is a 409.
	var last map[string]any
	require.Eventually(t, func() bool {
		last = nil
		status := s.call("POST", fmt.Sprintf("%s/device-status/%d/retry", path, first), nil, &last)
		require.Contains(t, []int{http.StatusOK, http.StatusConflict}, status, "%v", last)
		return status == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond, "retry: %v", last)
	require.Eventually(t, func() bool {
		d, _ := deviceStatus(s.session(sid), first)
		return d.Status == recording.DeviceRecording
	}, 20*time.Second, 100*time.Millisecond, "the retried enclosure records again")

	x = s.waitSession(sid, recording.SessionComplete, 60*time.Second)
	require.GreaterOrEqual(t, time.Since(started), 10*time.Second, "the session ran to its new end")
	require.Len(t, x.DeviceStatuses, 2, "both enclosures")
	for _, d := range x.DeviceStatuses {
		require.Equal(t, recording.DeviceComplete, d.Status, "%s: %s", d.Device.Name, d.Message)
	}
	d, _ := deviceStatus(x, added)
	require.GreaterOrEqual(t, d.RecordingTime, int64(9), "the added enclosure recorded to the extended end")

	require.Equal(t, http.StatusConflict, s.call("PUT", path+"/duration", map[string]any{"duration": 20}, &refusal),
		"an ended session no longer changes")
	require.Contains(t, refusal.Fields, "status", refusal.Message)

	require.Equal(t, []recording.AuditAction{recording.AuditSessionCreate, recording.AuditSessionAddDevices,
		recording.AuditSessionDuration, recording.AuditSessionRetryDevice}, s.sessionAuditActions())
	s.recordHistory(workflows.SessionWorkflowID(sid), "session_changed")
	s.recordHistory(workflows.DeviceWorkflowID(sid, added), "device_added_then_extended")
	s.recordHistory(workflows.RetryWorkflowID(sid, first, 1), "device_retried")
}
