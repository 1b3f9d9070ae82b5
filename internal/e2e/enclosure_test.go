package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/agent"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/simulator"
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
		if x.Status == recording.SessionInProgress && st.Status == recording.DeviceRecording {
			live = max(live, st.RecordingTime)
		}
		return live >= 3
	}, 30*time.Second, 100*time.Millisecond, "recording_time stayed at 0 while recording")
	x := s.waitSession(sid, recording.SessionComplete, time.Minute)
	require.GreaterOrEqual(t, x.DeviceStatuses[0].RecordingTime, max(live, 8), "the final figure never goes back")
}

// An enclosure behind its relay (mba agent on its loopback, the client's api pointed at it)
// records a whole session; once marked relayed, a tokenless heartbeat in its name (someone
// else on the network) is refused, while the relay's keep working.
func TestRelayedEnclosureRecords(t *testing.T) {
	s := newStack(t)
	body := `{"name":"RL1","timestamp":"2026-01-02T03:04:05Z","sensor_status":{"camera":{"recording":false}},
		"system_info":{"uptime":1,"load":0,"total_ram":2,"free_ram":1,"total_disk":4,"free_disk":3,"release":""},"err_msg":"made up"}`
	beat := func() int {
		res, err := http.Post(s.api.URL+"/api/device/heartbeat", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	// Registered tokenless, before its relay is in place; then its token and relayed.
	require.Equal(t, http.StatusNoContent, beat())
	d, err := s.store.DeviceByName(t.Context(), "RL1", time.Now(), time.Minute)
	require.NoError(t, err)
	ids := []int64{d.ID}
	var tok map[string]string
	require.Equal(t, http.StatusOK, s.call("PUT", fmt.Sprintf("/api/device/%d/token", ids[0]), nil, &tok))
	require.Equal(t, http.StatusOK, s.call("PATCH", fmt.Sprintf("/api/device/%d", ids[0]), map[string]any{"relayed": true}, nil))

	relay, err := agent.NewRelay(agent.RelayConfig{Addr: "127.0.0.1:0", ServerURL: s.api.URL, Token: tok["token"], Timeout: 5 * time.Second},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	rs := httptest.NewServer(relay)
	t.Cleanup(rs.Close)
	sim, err := simulator.New(simulator.Config{BaseURL: rs.URL + "/api", Count: 1, NamePrefix: "RL", FirstNumber: 1,
		Interval: 200 * time.Millisecond, FollowUp: 50 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sim.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	sid := s.createSession(ids, 3)
	x := s.waitSession(sid, recording.SessionComplete, time.Minute)
	require.Equal(t, recording.DeviceComplete, x.DeviceStatuses[0].Status, x.DeviceStatuses[0].Message)
	require.Zero(t, sim.Stats().Violations, "the relay's replies are ones the client survives")
	require.Equal(t, http.StatusUnauthorized, beat(), "a relayed enclosure must authenticate")
}
