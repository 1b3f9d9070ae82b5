package api

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFleetAndSessionMetrics: /metrics shows the fleet by state as the API judges it, each
// approved enclosure's latest telemetry under its name (none for pending or retired ones),
// and the sessions and their enclosures by status.
func TestFleetAndSessionMetrics(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, name := range []string{"NV1", "NV2", "NV3", "NV4", "NV5"} {
		h.send(beat(name, 0, false, ""))
	}
	sid := h.session(h.deviceID("NV1"))
	for _, q := range []string{
		`UPDATE devices SET last_seen_at = last_seen_at - interval '1 hour' WHERE name = 'NV2'`,
		`UPDATE devices SET admission = 'pending' WHERE name = 'NV3'`,
		`UPDATE devices SET retired_at = now() WHERE name = 'NV4'`,
	} {
		_, err := h.store.Pool().Exec(ctx, q)
		require.NoError(t, err)
	}

	require.Equal(t, `mba_enclosures{state="BUSY"} 1
mba_enclosures{state="DOWN"} 1
mba_enclosures{state="IDLE"} 1
mba_enclosures_pending_admission 1`, h.metric("mba_enclosures"))
	require.Equal(t, `mba_enclosure_down{enclosure="NV1"} 0
mba_enclosure_down{enclosure="NV2"} 1
mba_enclosure_down{enclosure="NV5"} 0`, h.metric("mba_enclosure_down"), "no series for pending or retired enclosures")
	require.Equal(t, fmt.Sprintf(`mba_enclosure_session_id{enclosure="NV1"} %d
mba_enclosure_session_id{enclosure="NV2"} 0
mba_enclosure_session_id{enclosure="NV5"} 0`, sid), h.metric("mba_enclosure_session_id"))
	require.Equal(t, `mba_enclosure_target_fps{enclosure="NV1"} 30`, h.metric("mba_enclosure_target_fps"), "only in a session")
	require.Contains(t, h.metric("mba_enclosure_fps"), `mba_enclosure_fps{enclosure="NV1"} 29.9`)
	require.Contains(t, h.metric("mba_enclosure_free_disk_bytes"), `mba_enclosure_free_disk_bytes{enclosure="NV1"} 4e+11`, "the MB it reported, in bytes")
	require.Contains(t, h.metric("mba_enclosure_total_disk_bytes"), `mba_enclosure_total_disk_bytes{enclosure="NV1"} 5e+11`)
	require.Contains(t, h.metric("mba_enclosure_recording"), `mba_enclosure_recording{enclosure="NV1"} 0`)
	require.Contains(t, h.metric("mba_enclosure_clock_skew_seconds"), `mba_enclosure_clock_skew_seconds{enclosure="NV1"} `)

	age := h.metric(`mba_enclosure_last_heartbeat_age_seconds{enclosure="NV2"}`)
	v, err := strconv.ParseFloat(strings.Fields(age)[1], 64)
	require.NoError(t, err, age)
	require.GreaterOrEqual(t, v, 3600.0)

	require.Contains(t, h.metric("mba_sessions"), `mba_sessions{status="IN_PROGRESS"} 1`)
	require.Contains(t, h.metric("mba_sessions"), `mba_sessions{status="COMPLETE"} 0`, "every status, zero included")
	require.Contains(t, h.metric("mba_session_enclosures"), `mba_session_enclosures{status="PENDING"} 1`)
	require.Contains(t, h.metric("mba_session_enclosures"), `mba_session_enclosures{status="FAILED"} 0`)
}
