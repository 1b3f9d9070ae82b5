package activities_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
)

// fakeFacts serves fixed condition facts and open alerts.
type fakeFacts struct {
	open    map[recording.AlertKind][]activities.AlertSubjectRef
	disk    []activities.DiskFacts
	fps     []activities.FPSFacts
	backlog []activities.BacklogFacts
	channel []activities.ChannelFacts
}

func (f fakeFacts) OpenAlertSubjects(_ context.Context, kind recording.AlertKind) ([]activities.AlertSubjectRef, error) {
	return f.open[kind], nil
}
func (f fakeFacts) DiskFacts(context.Context, time.Time, time.Time, time.Duration) ([]activities.DiskFacts, error) {
	return f.disk, nil
}
func (f fakeFacts) FPSFacts(context.Context, float64, time.Time) ([]activities.FPSFacts, error) {
	return f.fps, nil
}
func (f fakeFacts) BacklogFacts(context.Context, time.Time, time.Time) ([]activities.BacklogFacts, error) {
	return f.backlog, nil
}
func (f fakeFacts) ChannelFacts(context.Context, int, time.Time) ([]activities.ChannelFacts, error) {
	return f.channel, nil
}

// recordedSignals keeps the alert signals of a scan.
type recordedSignals struct {
	mu   sync.Mutex
	sigs []activities.AlertSignal
}

func (r *recordedSignals) SignalAlert(_ context.Context, s activities.AlertSignal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.sigs {
		if x == s {
			return nil // a scan of several rounds repeats itself
		}
	}
	r.sigs = append(r.sigs, s)
	return nil
}

var testLimits = activities.ConditionLimits{DiskMargin: 0.2, DiskFloor: 2e9, DiskWindow: 30 * time.Minute, DiskRate: 1e6,
	FPSMargin: 0.1, FPSFor: 2 * time.Minute, BacklogFiles: 3, BacklogGrace: time.Hour, BacklogWithin: 72 * time.Hour,
	ChannelFailures: 3}

func scanConditions(t *testing.T, facts fakeFacts) []activities.AlertSignal {
	t.Helper()
	raiser := &recordedSignals{}
	f := &activities.Fleet{Devices: quietFleet{}, Facts: facts, Limits: testLimits, Raiser: raiser}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f)
	_, err := env.ExecuteActivity(f.WatchSilence, activities.FleetWatch{Every: 10 * time.Millisecond, Down: time.Minute,
		Run: 5 * time.Millisecond})
	require.NoError(t, err)
	return raiser.sigs
}

// quietFleet has no silent enclosures.
type quietFleet struct{}

func (quietFleet) MarkSilent(context.Context, time.Time, time.Time) ([]string, error) {
	return nil, nil
}
func (quietFleet) Listening(context.Context, time.Duration) (time.Duration, bool, error) {
	return time.Hour, true, nil
}

func ptr[T any](v T) *T { return &v }

func TestDiskProjectionRaisesWhenTheDiskWillNotLast(t *testing.T) {
	sub := func(d int64) activities.AlertSubjectRef { return activities.AlertSubjectRef{SessionID: 5, DeviceID: d} }
	sigs := scanConditions(t, fakeFacts{
		open: map[recording.AlertKind][]activities.AlertSubjectRef{recording.AlertLowDisk: {sub(3), sub(4), sub(7), sub(9)}},
		disk: []activities.DiskFacts{
			// 100 GB at 2 MB/s lasts 13.9 h; 12 h left need 103.7 GB with the margin.
			{SessionID: 5, DeviceID: 1, Name: "NV1", FreeDisk: 100e9, Remaining: 12 * time.Hour, SlopeBPS: ptr(2e6), FilesBPS: ptr(1.0)},
			// Its uploaded files: 1 MB/s for 10 h needs 43.2 GB: fine, nothing to do (no open alert).
			{SessionID: 5, DeviceID: 2, Name: "NV2", FreeDisk: 100e9, Remaining: 10 * time.Hour, FilesBPS: ptr(1e6)},
			// Under the floor, whatever the projection; already open: not raised again.
			{SessionID: 5, DeviceID: 3, Name: "NV3", FreeDisk: 1e9, Remaining: time.Minute},
			// The disk frees up (negative slope): fine again, its open alert clears.
			{SessionID: 5, DeviceID: 4, Name: "NV4", FreeDisk: 10e9, Remaining: 10 * time.Hour, SlopeBPS: ptr(-5.0)},
			// No slope and no files: the configured 1 MB/s for 20 h needs 86.4 GB.
			{SessionID: 5, DeviceID: 6, Name: "NV6", FreeDisk: 50e9, Remaining: 20 * time.Hour},
			// DOWN: its last figures say fine, but they are old; its open alert stays (no false
			// recovery notice), and a DOWN one's low figures raise nothing (its DOWN alert tells).
			{SessionID: 5, DeviceID: 7, Name: "NV7", FreeDisk: 100e9, Remaining: time.Hour, Down: true},
			{SessionID: 5, DeviceID: 8, Name: "NV8", FreeDisk: 1e6, Remaining: time.Hour, Down: true},
		},
	})
	require.Equal(t, []activities.AlertSignal{
		{Kind: recording.AlertLowDisk, SessionID: 5, DeviceID: 1, Active: true, Summary: "NV1 in session 5: free disk lasts 13.9 h " +
			"at 2.0 MB/s (its free-disk trend); 12.0 h of recording left (needs 103.7 GB with a 20 % margin, 100.0 GB free)"},
		{Kind: recording.AlertLowDisk, SessionID: 5, DeviceID: 4},
		{Kind: recording.AlertLowDisk, SessionID: 5, DeviceID: 6, Active: true, Summary: "NV6 in session 5: free disk lasts 13.9 h " +
			"at 1.0 MB/s (the configured rate); 20.0 h of recording left (needs 86.4 GB with a 20 % margin, 50.0 GB free)"},
		{Kind: recording.AlertLowDisk, SessionID: 5, DeviceID: 9}, // left the session
	}, sigs)
}

func TestLowFPSRaisesOnlyAfterItsTime(t *testing.T) {
	now := time.Now()
	sigs := scanConditions(t, fakeFacts{
		open: map[recording.AlertKind][]activities.AlertSubjectRef{recording.AlertLowFPS: {{SessionID: 5, DeviceID: 3}}},
		fps: []activities.FPSFacts{
			{SessionID: 5, DeviceID: 1, Name: "NV1", FPS: 12, TargetFPS: 30, LowSince: ptr(now.Add(-3 * time.Minute))},
			{SessionID: 5, DeviceID: 2, Name: "NV2", FPS: 12, TargetFPS: 30, LowSince: ptr(now.Add(-time.Minute))}, // not yet
			{SessionID: 5, DeviceID: 3, Name: "NV3", FPS: 30, TargetFPS: 30},                                       // back
			{SessionID: 5, DeviceID: 4, Name: "NV4", FPS: 1, TargetFPS: 30, Down: true},                            // DOWN: no news
		},
	})
	require.Len(t, sigs, 2, "%v", sigs)
	require.Equal(t, activities.AlertSignal{Kind: recording.AlertLowFPS, SessionID: 5, DeviceID: 3}, sigs[1])
	require.Regexp(t, `^NV1 in session 5 records at 12.0 fps, below its target of 30 by more than 10 % for 3m0s$`, sigs[0].Summary)
	require.True(t, sigs[0].Active)
}

func TestUploadBacklogAndBrokenChannels(t *testing.T) {
	broken := activities.ChannelSubject("email", "a@lab.example")
	sigs := scanConditions(t, fakeFacts{
		open: map[recording.AlertKind][]activities.AlertSubjectRef{
			recording.AlertUploadBacklog: {{SessionID: 5, DeviceID: 2}, {SessionID: 5, DeviceID: 3}},
			recording.AlertChannelBroken: {{Subject: activities.ChannelSubject("webhook", "chat")}, {Subject: "slack:gone"}},
		},
		backlog: []activities.BacklogFacts{
			{SessionID: 5, DeviceID: 1, Name: "NV1", Files: 4, Bytes: 3e9}, // past the limit
			{SessionID: 5, DeviceID: 2, Name: "NV2", Files: 3},             // at the limit: stays open
			{SessionID: 5, DeviceID: 3, Name: "NV3", Files: 2},             // under: clears
		},
		channel: []activities.ChannelFacts{
			{Channel: "email", Target: "a@lab.example", LastOutcome: "failed", LastError: "550 no such user", Failed: 3},
			{Channel: "email", Target: "b@lab.example", LastOutcome: "failed", Failed: 2},
			{Channel: "webhook", Target: "chat", LastOutcome: "sent"},
		},
	})
	require.Equal(t, []activities.AlertSignal{
		{Kind: recording.AlertUploadBacklog, SessionID: 5, DeviceID: 1, Active: true,
			Summary: "NV1 in session 5: 4 files due more than 1h0m0s ago are not uploaded (3.0 GB known) (limit 3)"},
		{Kind: recording.AlertUploadBacklog, SessionID: 5, DeviceID: 3},
		{Kind: recording.AlertChannelBroken, Subject: broken, Active: true,
			Summary: "notification channel email a@lab.example is broken: its last 3 deliveries failed (last error: 550 no such user)"},
		{Kind: recording.AlertChannelBroken, Subject: "webhook:chat"},
		// slack:gone has no deliveries any more: only one that goes through clears it.
	}, sigs)
}
