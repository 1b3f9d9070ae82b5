package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/workflows"
)

// TestTemporalOutageAcrossThePlannedEnd cuts the worker, dispatcher and fleet monitor off
// Temporal while the enclosures record, and keeps them cut past the planned end and its grace
// (issue 13): the API keeps answering heartbeats, the enclosures finish on their own, and once
// Temporal is back the session ends COMPLETE on what they reported, each enclosure recorded once.
func TestTemporalOutageAcrossThePlannedEnd(t *testing.T) {
	temporal := testenv.NewOutage(t, testenv.TemporalAddress(t))
	temporal.End()
	s := newStackOn(t, temporal.Addr(), func(s *stack) { s.settings.EndGrace = 3 * time.Second })
	s.startFleetMonitor(10 * time.Second)
	sim, ids := s.enclosures(2, "E2ET")
	const duration = 6
	sid := s.createSession(ids, duration)
	s.waitRecording(sid)

	var firstStart, lastStart time.Time
	for _, d := range s.session(sid).DeviceStatuses {
		require.NotNil(t, d.StartedAt, d.Device.Name)
		if firstStart.IsZero() || d.StartedAt.Before(firstStart) {
			firstStart = *d.StartedAt
		}
		if d.StartedAt.After(lastStart) {
			lastStart = *d.StartedAt
		}
	}
	temporal.Cut()
	if time.Since(firstStart) >= duration*time.Second {
		t.Skipf("the machine is too slow: the recordings started %v ago, past their planned end, before Temporal could be cut", time.Since(firstStart))
	}
	before := sim.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, err := s.temporal.CheckHealth(ctx, &client.CheckHealthRequest{})
	cancel()
	require.Error(t, err, "the stack still reaches Temporal after the cut")

	// The enclosures finish their recordings while Temporal is down, answered all along.
	require.Eventually(t, func() bool { return sim.Stats().RecordingsFinished == 2 }, 60*time.Second, 100*time.Millisecond,
		"the enclosures finish recording during the outage")
	// Past the planned end and its grace, and a little: the end timers are due by then.
	time.Sleep(time.Until(lastStart.Add(duration*time.Second + s.settings.EndGrace + 3*time.Second)))
	during := sim.Stats()
	require.Greater(t, during.HeartbeatsSent, before.HeartbeatsSent)
	for _, kind := range []string{"error", "network", "violation"} {
		require.Equal(t, before.Replies[kind], during.Replies[kind], "%s replies to heartbeats while Temporal was down", kind)
	}
	require.Equal(t, recording.SessionInProgress, s.session(sid).Status, "nothing ends the session while Temporal is down")
	temporal.End()

	x := s.waitSession(sid, recording.SessionComplete, 90*time.Second)
	for _, d := range x.DeviceStatuses {
		require.Equal(t, recording.DeviceComplete, d.Status, "%s: %s", d.Device.Name, d.Message)
		require.GreaterOrEqual(t, d.RecordingTime, int64(duration), d.Device.Name)
	}
	require.Eventually(t, func() bool { return sim.Stats().Recording == 0 }, 30*time.Second, 100*time.Millisecond)
	onlyOnce(t, sim)
	require.Equal(t, string(recording.SessionComplete), s.waitCompleted(workflows.SessionWorkflowID(sid)), "the session's MbaStatus")
	for _, id := range ids {
		require.Equal(t, string(recording.DeviceComplete), s.waitCompleted(workflows.DeviceWorkflowID(sid, id)), "enclosure %d's MbaStatus", id)
	}
}
