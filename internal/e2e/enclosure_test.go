package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/store"
)

// The unmodified client's progress: recording_time grows from its heartbeats while it records
// (the front ends show it as progress), and the workflow's final figure does not take it back.
// The simulated client starts with its uninitialised duration, which is never shown.
func TestRecordingTimeIsLiveWhileRecording(t *testing.T) {
	s := newStack(t)
	_, ids := s.enclosures(1, "nv0") // nv01: a zero-padded name, like many labs'
	d, err := s.store.DeviceByID(t.Context(), ids[0], time.Now(), time.Minute)
	require.NoError(t, err)
	require.Nil(t, d.SensorStatus.Camera.Duration, "the client's garbage duration after start is not shown")

	sid := s.createSession(ids, 8)
	var live int64
	require.Eventually(t, func() bool {
		x := s.session(sid)
		st := x.DeviceStatuses[0]
		if x.Status == store.SessionInProgress && st.Status == store.DeviceRecording {
			live = max(live, st.RecordingTime)
		}
		return live >= 3
	}, 30*time.Second, 100*time.Millisecond, "recording_time stayed at 0 while recording")
	x := s.waitSession(sid, store.SessionComplete, time.Minute)
	require.GreaterOrEqual(t, x.DeviceStatuses[0].RecordingTime, max(live, 8), "the final figure never goes back")
}
