package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

// recordingFor puts a new enclosure into a session that records, started an hour ago, of
// duration seconds, and returns the ids.
func (f *fixture) recordingFor(name string, duration int64) (sessionID, deviceID int64) {
	f.t.Helper()
	deviceID = f.device(name)
	sessionID, _ = f.session(deviceID)
	args := pgx.NamedArgs{"sid": sessionID, "did": deviceID, "duration": duration, "now": f.now}
	f.exec(`UPDATE sessions SET duration = @duration WHERE id = @sid`, args)
	f.exec(`UPDATE device_assignments SET phase = 'recording' WHERE session_id = @sid`, args)
	f.exec(`UPDATE session_devices SET status = 'RECORDING', started_at = @now::timestamptz - interval '1 hour', recording_time = 3600
		WHERE session_id = @sid`, args)
	f.exec(`UPDATE devices SET recording = true, last_seen_at = @now, free_disk = 99000, fps = 30 /* MB, as the client reports it */ WHERE id = @did`, args)
	return sessionID, deviceID
}

func (f *fixture) exec(sql string, args pgx.NamedArgs) {
	f.t.Helper()
	_, err := f.pool.Exec(context.Background(), sql, args)
	require.NoError(f.t, err, sql)
}

func TestDiskFactsEstimateTheRecordingRate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sid, did := f.recordingFor("NV1", 10*3600)
	// No telemetry yet, no files: no rate.
	list, err := f.store.DiskFacts(ctx, f.now, f.now.Add(-30*time.Minute), 15*time.Minute)
	require.NoError(t, err)
	require.Equal(t, []store.DiskFacts{{SessionID: sid, DeviceID: did, Name: "NV1", FreeDisk: 99e9, Remaining: 9 * time.Hour}}, list)

	// Its uploaded videos: 3.6 GB in the hour recorded.
	f.exec(`INSERT INTO session_files (session_id, device_id, name, state, expected, size)
		VALUES (@sid, @did, 'cage_2026-12-01_10-00-00.avi', 'VERIFIED', true, 3600000000),
		       (@sid, @did, 'cage_timestamps.txt', 'VERIFIED', true, 999999999)`, pgx.NamedArgs{"sid": sid, "did": did})
	list, err = f.store.DiskFacts(ctx, f.now, f.now.Add(-30*time.Minute), 15*time.Minute)
	require.NoError(t, err)
	require.Nil(t, list[0].SlopeBPS)
	require.InDelta(t, 1e6, *list[0].FilesBPS, 1, "only the videos count")

	// Its telemetry: 1 GB used in the 25 minutes since the oldest sample of the window while
	// recording (a sample from before the window and one not recording are ignored).
	f.exec(`INSERT INTO device_telemetry (device_id, bucket, recording, free_disk) VALUES
		(@did, @now::timestamptz - interval '40 minutes', true, 200000),
		(@did, @now::timestamptz - interval '25 minutes', true, 100000),
		(@did, @now::timestamptz - interval '20 minutes', false, 50000),
		(@did, @now::timestamptz - interval '5 minutes', true, 99500)`, pgx.NamedArgs{"did": did, "now": f.now})
	list, err = f.store.DiskFacts(ctx, f.now, f.now.Add(-30*time.Minute), 15*time.Minute)
	require.NoError(t, err)
	require.InDelta(t, 1e9/(25*60.0), *list[0].SlopeBPS, 1)

	// A DOWN enclosure is listed, marked (its alert stays as it is while it says nothing).
	f.exec(`UPDATE devices SET down_since = @now WHERE id = @did`, pgx.NamedArgs{"did": did, "now": f.now})
	list, err = f.store.DiskFacts(ctx, f.now, f.now.Add(-30*time.Minute), 15*time.Minute)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.True(t, list[0].Down)
}

func TestFPSFactsKeepSinceWhenTheRateIsLow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sid, did := f.recordingFor("NV2", 3600)
	facts := func(now time.Time) store.FPSFacts {
		t.Helper()
		list, err := f.store.FPSFacts(ctx, 0.1, now)
		require.NoError(t, err)
		require.Len(t, list, 1)
		return list[0]
	}
	setFPS := func(fps float64) {
		f.exec(`UPDATE devices SET fps = @fps WHERE id = @did`, pgx.NamedArgs{"did": did, "fps": fps})
	}
	require.Nil(t, facts(f.now).LowSince, "30 of 30 fps")
	setFPS(27.5)
	require.Nil(t, facts(f.now).LowSince, "within the 10 % margin")

	setFPS(12)
	first := f.tick()
	got := facts(first)
	require.True(t, first.Equal(*got.LowSince), "%s", got.LowSince)
	got.LowSince = nil
	require.Equal(t, store.FPSFacts{SessionID: sid, DeviceID: did, Name: "NV2", FPS: 12, TargetFPS: 30}, got)
	require.True(t, first.Equal(*facts(f.tick()).LowSince), "low since it was first seen low")

	setFPS(29)
	require.Nil(t, facts(f.tick()).LowSince)
	setFPS(5)
	again := f.tick()
	require.True(t, again.Equal(*facts(again).LowSince), "a rate that recovered counts again from the start")

	// Not recording (as reported): not listed, and its count is forgotten.
	f.exec(`UPDATE devices SET recording = false WHERE id = @did`, pgx.NamedArgs{"did": did})
	list, err := f.store.FPSFacts(ctx, 0.1, f.tick())
	require.NoError(t, err)
	require.Empty(t, list)
	var kept int
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM alert_condition_since`).Scan(&kept))
	require.Zero(t, kept)
}

func TestBacklogFactsCountDueFilesNotUploaded(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sid, did := f.recordingFor("NV3", 10*3600)
	// Segment 1 ended (its timestamps file arrived two hours ago); segment 2 is recording.
	f.exec(`INSERT INTO session_files (session_id, device_id, name, state, expected, size, uploaded_at) VALUES
		(@sid, @did, 'cage_timestamps.txt', 'VERIFIED', true, 10, @now::timestamptz - interval '2 hours'),
		(@sid, @did, 'cage_start_timestamp.txt', 'VERIFIED', true, 10, @now::timestamptz - interval '2 hours'),
		(@sid, @did, 'cage_2026-12-01_10-00-00.avi', 'PENDING', true, NULL, NULL),
		(@sid, @did, 'cage_2026-12-01_11-00-00.avi', 'UPLOADING', true, 1000, NULL),
		(@sid, @did, 'cage_2026-12-01_12-00-00.avi', 'CORRUPT', true, 500, @now::timestamptz - interval '1 hour'),
		(@sid, @did, 'cage_2026-12-01_13-00-00.avi', 'VERIFIED', true, 500, @now::timestamptz - interval '1 hour'),
		(@sid, @did, 'cage_s2_timestamps.txt', 'PENDING', true, NULL, NULL),
		(@sid, @did, 'cage_s2_start_timestamp.txt', 'PENDING', true, NULL, NULL)`,
		pgx.NamedArgs{"sid": sid, "did": did, "now": f.now})
	f.exec(`UPDATE session_files SET reupload = true WHERE name = 'cage_2026-12-01_12-00-00.avi'`, nil)
	backlog := func(dueBefore time.Time) []store.BacklogFacts {
		t.Helper()
		list, err := f.store.BacklogFacts(ctx, dueBefore, f.now.Add(-72*time.Hour))
		require.NoError(t, err)
		return list
	}
	require.Equal(t, []store.BacklogFacts{{SessionID: sid, DeviceID: did, Name: "NV3", Files: 3, Bytes: 1500}}, backlog(f.now.Add(-time.Hour)),
		"segment 1's waiting videos (and the corrupt one asked again); not segment 2's files, still being written")
	require.Empty(t, backlog(f.now.Add(-3*time.Hour)), "not due yet with a grace of three hours")

	// The recording ended half an hour ago: segment 2's files are due from then.
	f.exec(`UPDATE session_devices SET ended_at = @now::timestamptz - interval '30 minutes' WHERE session_id = @sid`,
		pgx.NamedArgs{"sid": sid, "now": f.now})
	require.Equal(t, 5, backlog(f.now.Add(-10 * time.Minute))[0].Files)
	require.Empty(t, backlog(f.now.Add(-time.Hour))[1:], "segment 1's only")
	list, err := f.store.BacklogFacts(ctx, f.now, f.now)
	require.NoError(t, err)
	require.Empty(t, list, "a recording that ended before the window is left to the files' deadline")
}

func TestChannelFactsCountFailuresInARow(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, d := range []store.Delivery{
		{Channel: "email", Target: "a@lab.example", Outcome: "sent"},
		{Channel: "email", Target: "a@lab.example", Outcome: "failed", Error: "550 1"},
		{Channel: "email", Target: "a@lab.example", Outcome: "failed", Error: "550 2"},
		{Channel: "email", Target: "a@lab.example", Outcome: "failed", Error: "550 3"},
		{Channel: "webhook", Target: "chat", Outcome: "failed", Error: "503"},
		{Channel: "webhook", Target: "chat", Outcome: "sent"},
		{Channel: "email", Target: "b@lab.example", Outcome: "sent"},
		{Channel: "email", Target: "b@lab.example", Outcome: "failed", Error: "timeout"},
	} {
		d.AlertKey, d.Notice, d.Attempt = "k", "opened", 1
		require.NoError(t, f.store.RecordDelivery(ctx, d))
	}
	list, err := f.store.ChannelFacts(ctx, 3, f.now.Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, []store.ChannelFacts{
		{Channel: "email", Target: "a@lab.example", LastOutcome: "failed", LastError: "550 3", Failed: 3},
		{Channel: "email", Target: "b@lab.example", LastOutcome: "failed", LastError: "timeout", Failed: 1},
		{Channel: "webhook", Target: "chat", LastOutcome: "sent", Failed: 0},
	}, list)

	// An open channel_broken alert keeps its channel listed after its deliveries left the window.
	require.NoError(t, f.store.RecordAlert(ctx, store.AlertRecord{Key: "wf/run", WorkflowID: "wf", Kind: recording.AlertChannelBroken,
		Subject: "email:a@lab.example", State: recording.AlertNotified, OpenedAt: f.now, UpdatedAt: f.now}))
	list, err = f.store.ChannelFacts(ctx, 3, f.now.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, []store.ChannelFacts{{Channel: "email", Target: "a@lab.example", LastOutcome: "failed", LastError: "550 3", Failed: 3}}, list)
	open, err := f.store.OpenAlertSubjects(ctx, recording.AlertChannelBroken)
	require.NoError(t, err)
	require.Equal(t, []store.OpenAlertSubject{{Subject: "email:a@lab.example"}}, open)
	alerts, err := f.store.ListAlerts(ctx, store.AlertFilter{Kind: recording.AlertChannelBroken})
	require.NoError(t, err)
	require.Equal(t, "email:a@lab.example", alerts[0].Subject)
}
