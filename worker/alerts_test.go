package worker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/dispatch"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/worker"
	"github.com/jax-mba/mba/workflows"
)

// signalAlerts calls the SignalAlert activity as DeviceRecording does on "silent" and "returned".
func signalAlerts(ctx workflow.Context, sigs []activities.AlertSignal) error {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 30 * time.Second})
	var a *activities.Alerts
	for _, s := range sigs {
		if err := workflow.ExecuteLocalActivity(ctx, a.SignalAlert, s).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// alertFixture is a database with a session created by a user of its own, a Temporal client,
// the suite's Mailpit and a task queue of the test's own.
type alertFixture struct {
	st      *store.Store
	c       client.Client
	mailpit *testenv.Mailpit
	queue   string
	creator string
	sid     int64
}

func newAlertFixture(t *testing.T) alertFixture {
	ctx := context.Background()
	f := alertFixture{st: store.New(testenv.MigratedPool(t)), mailpit: testenv.NewMailpit(t),
		queue: testenv.RandomName("alerts-"), creator: testenv.RandomName("carl-") + "@lab.example"}
	u, err := f.st.CreateUser(ctx, f.creator, "", false)
	require.NoError(t, err)
	require.NoError(t, f.st.Pool().QueryRow(ctx, `
		INSERT INTO sessions (name, duration, fragment_hourly, target_fps, apply_filter, created_by)
		VALUES ('night', 3600, false, 30, false, @uid) RETURNING id`, pgx.NamedArgs{"uid": u.ID}).Scan(&f.sid))
	f.c, err = client.Dial(client.Options{HostPort: testenv.TemporalAddress(t)})
	require.NoError(t, err)
	t.Cleanup(f.c.Close)
	return f
}

// TestDownEnclosureAlertOpensAndResolves: the worker's SignalAlert, on a real Temporal and
// database, opens one alert for an enclosure that went DOWN in a session (raised twice), mails
// the session's creator through Mailpit, and resolves it with a recovery mail when it returns.
func TestDownEnclosureAlertOpensAndResolves(t *testing.T) {
	ctx := context.Background()
	f := newAlertFixture(t)
	st, c, mailpit, queue, creator, sid := f.st, f.c, f.mailpit, f.queue, f.creator, f.sid
	var did int64
	require.NoError(t, st.Pool().QueryRow(ctx, `INSERT INTO devices (name) VALUES ('NV1') RETURNING id`).Scan(&did))
	deps := worker.StoreDeps(st)
	deps.Channels = activities.Alerts{Mail: mailpit.Sender()}
	deps.AlertPolicy = workflows.AlertPolicy{EscalateAfter: time.Hour, Tiers: 1, Damping: time.Second, MaxSilence: time.Hour, NotifyAttempts: 3}
	w := worker.New(c, queue, deps)
	w.RegisterWorkflow(signalAlerts)
	require.NoError(t, w.Start())
	defer w.Stop()

	run := func(sigs ...activities.AlertSignal) {
		t.Helper()
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, signalAlerts, sigs)
		require.NoError(t, err)
		require.NoError(t, r.Get(ctx, nil))
	}
	state := func() (recording.AlertState, int) {
		list, err := st.ListAlerts(ctx, store.AlertFilter{SessionID: sid, DeviceID: did})
		require.NoError(t, err)
		if len(list) != 1 {
			return "", len(list)
		}
		return list[0].State, 1
	}
	down := activities.AlertSignal{Kind: recording.AlertEnclosureDown, SessionID: sid, DeviceID: did, Active: true,
		Summary: "NV1 is DOWN in session"}
	run(down, down)
	require.Eventually(t, func() bool { s, _ := state(); return s == recording.AlertNotified }, 30*time.Second, 50*time.Millisecond)
	mails := mailpit.WaitForMessages(creator, 1)
	require.Equal(t, "[MBA ALERT] enclosure_down: NV1 is DOWN in session", mails[0].Subject)

	returned := down
	returned.Active = false
	run(returned)
	require.Eventually(t, func() bool { s, n := state(); return s == recording.AlertResolved && n == 1 }, 30*time.Second, 50*time.Millisecond)
	mails = mailpit.WaitForMessages(creator, 2)
	require.Equal(t, "[MBA RESOLVED] enclosure_down: NV1 is DOWN in session", mails[1].Subject)
}

// TestEscalationSurvivesAWorkerRestart: the escalation timer is Temporal's, so an alert opened
// by one worker escalates on the next after the first stopped, and acknowledging and
// resolving it work there too. (enclosure_down clears when the enclosure is back; a one-shot kind
// such as enclosure_lost would resolve on the acknowledgement.)
func TestEscalationSurvivesAWorkerRestart(t *testing.T) {
	ctx := context.Background()
	f := newAlertFixture(t)
	st, c, mailpit, queue, creator, sid := f.st, f.c, f.mailpit, f.queue, f.creator, f.sid
	boss := testenv.RandomName("boss-") + "@lab.example"
	deps := worker.StoreDeps(st)
	deps.Channels = activities.Alerts{Mail: mailpit.Sender(), Tiers: [][]string{{boss}}}
	deps.AlertPolicy = workflows.AlertPolicy{EscalateAfter: 2 * time.Second, Tiers: 2, Damping: time.Second,
		MaxSilence: time.Hour, NotifyAttempts: 3}
	alerts := dispatch.Alerts{Temporal: c, TaskQueue: queue, Policy: deps.AlertPolicy}

	first := worker.New(c, queue, deps)
	require.NoError(t, first.Start())
	subject := dispatch.AlertSubject{Kind: recording.AlertEnclosureDown, SessionID: sid}
	require.NoError(t, alerts.Raise(ctx, subject, "NV2 is DOWN"))
	mailpit.WaitForMessages(creator, 1)
	first.Stop()

	second := worker.New(c, queue, deps)
	require.NoError(t, second.Start())
	defer second.Stop()
	mails := mailpit.WaitForMessages(boss, 1)
	require.Equal(t, "[MBA ESCALATED] enclosure_down: NV2 is DOWN", mails[0].Subject)

	list, err := st.ListAlerts(ctx, store.AlertFilter{SessionID: sid})
	require.NoError(t, err)
	require.Len(t, list, 1)
	got, err := alerts.Acknowledge(ctx, list[0].WorkflowID, workflows.AckRequest{Key: list[0].Key, Who: "boss", Note: "on it"})
	require.NoError(t, err)
	require.Equal(t, recording.AlertAcknowledged, got.State)
	require.Equal(t, 1, got.Tier)
	_, err = alerts.Acknowledge(ctx, list[0].WorkflowID, workflows.AckRequest{Key: list[0].Key, Who: ""})
	var refused *dispatch.RefusedError
	require.ErrorAs(t, err, &refused)
	require.Contains(t, refused.Reason, "who must name the person")

	require.NoError(t, alerts.Clear(ctx, subject))
	require.Equal(t, "[MBA RESOLVED] enclosure_down: NV2 is DOWN", mailpit.WaitForMessages(creator, 2)[1].Subject)
	require.Equal(t, "[MBA RESOLVED] enclosure_down: NV2 is DOWN", mailpit.WaitForMessages(boss, 2)[1].Subject)
	require.Eventually(t, func() bool {
		_, err = alerts.Acknowledge(ctx, list[0].WorkflowID, workflows.AckRequest{Key: list[0].Key, Who: "boss"})
		return errors.Is(err, dispatch.ErrAlertClosed)
	}, 30*time.Second, 50*time.Millisecond, "a resolved alert's workflow is closed: %v", err)
}

// TestIdleEnclosureDownIsAFleetAlert: the fleet monitor's scan, on a real database and
// Temporal, opens a fleet alert (no session) for an idle enclosure that went DOWN, mails the
// administrators, and resolves it with a recovery mail once the enclosure heartbeats again.
func TestIdleEnclosureDownIsAFleetAlert(t *testing.T) {
	ctx := context.Background()
	f := newAlertFixture(t)
	st, c, mailpit, queue := f.st, f.c, f.mailpit, f.queue
	admin := testenv.RandomName("ada-") + "@lab.example"
	_, err := st.CreateUser(ctx, admin, "", true)
	require.NoError(t, err)
	var did int64
	require.NoError(t, st.Pool().QueryRow(ctx, `
		INSERT INTO devices (name, last_seen_at) VALUES ('NV9', now() - interval '10 minutes') RETURNING id`).Scan(&did))
	deps := worker.StoreDeps(st)
	deps.Channels = activities.Alerts{Mail: mailpit.Sender()}
	deps.AlertPolicy = workflows.AlertPolicy{EscalateAfter: time.Hour, Tiers: 1, Damping: time.Second, MaxSilence: time.Hour, NotifyAttempts: 3}
	w := worker.New(c, queue, deps)
	require.NoError(t, w.Start())
	defer w.Stop()

	scan := fleetScan(t, st, deps, c, queue, activities.FleetWatch{Every: 20 * time.Millisecond, Down: time.Minute,
		Run: 100 * time.Millisecond})
	alert := func() store.Alert { return onlyAlert(t, st, store.AlertFilter{DeviceID: did}) }

	scan()
	mails := mailpit.WaitForMessages(admin, 1)
	require.Regexp(t, `^\[MBA ALERT\] enclosure_down: NV9 is DOWN \(idle; marked \S+Z: no heartbeat past the DOWN threshold\)$`, mails[0].Subject)
	require.Eventually(t, func() bool { return alert().State == recording.AlertNotified }, 30*time.Second, 50*time.Millisecond)
	require.Nil(t, alert().SessionID, "a fleet alert")

	// It heartbeats again (the heartbeat path clears down_since): the next scans clear the alert.
	_, err = st.Pool().Exec(ctx, `UPDATE devices SET down_since = NULL, last_seen_at = now() WHERE id = @id`, pgx.NamedArgs{"id": did})
	require.NoError(t, err)
	require.Eventually(t, func() bool { scan(); return alert().State == recording.AlertResolved }, 30*time.Second, 50*time.Millisecond)
	require.Regexp(t, `^\[MBA RESOLVED\] enclosure_down: NV9 is DOWN`, mailpit.WaitForMessages(admin, 2)[1].Subject)
}

// TestSessionFinishedNoticeIsMailedOnce: a notice, through the worker's SignalAlert on a real
// Temporal and database, mails the session's creator once and is resolved at once, with no
// recovery mail.
func TestSessionFinishedNoticeIsMailedOnce(t *testing.T) {
	ctx := context.Background()
	f := newAlertFixture(t)
	st, c, mailpit, queue, creator, sid := f.st, f.c, f.mailpit, f.queue, f.creator, f.sid
	deps := worker.StoreDeps(st)
	deps.Channels = activities.Alerts{Mail: mailpit.Sender()}
	deps.AlertPolicy = workflows.AlertPolicy{EscalateAfter: time.Hour, Tiers: 1, Damping: time.Second, MaxSilence: time.Hour, NotifyAttempts: 3}
	w := worker.New(c, queue, deps)
	w.RegisterWorkflow(signalAlerts)
	require.NoError(t, w.Start())
	defer w.Stop()

	notice := activities.AlertSignal{Kind: recording.AlertSessionFinished, SessionID: sid, Active: true, Notice: true,
		Summary: "session finished COMPLETE"}
	r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, signalAlerts, []activities.AlertSignal{notice})
	require.NoError(t, err)
	require.NoError(t, r.Get(ctx, nil))
	require.Equal(t, "[MBA ALERT] session_finished: session finished COMPLETE", mailpit.WaitForMessages(creator, 1)[0].Subject)
	var list []store.Alert
	require.Eventually(t, func() bool {
		list, err = st.ListAlerts(ctx, store.AlertFilter{SessionID: sid})
		require.NoError(t, err)
		return len(list) == 1 && list[0].State == recording.AlertResolved
	}, 30*time.Second, 50*time.Millisecond)
	// Its workflow ended with the notice delivered: nothing more is sent.
	require.NoError(t, c.GetWorkflow(ctx, list[0].WorkflowID, "").Get(ctx, nil))
	require.Len(t, mailpit.WaitForMessages(creator, 1), 1)
}

// fleetScan returns a function that runs one short fleet scan (the fleet monitor's activity)
// with w, raising alerts on the worker's task queue.
func fleetScan(t *testing.T, st *store.Store, deps worker.Deps, c client.Client, queue string, w activities.FleetWatch) func() {
	fleet := &activities.Fleet{Devices: st, Conditions: deps.FleetConditions, Facts: deps.ConditionFacts, Limits: deps.ConditionLimits,
		Raiser: dispatch.Alerts{Temporal: c, TaskQueue: queue, Policy: deps.AlertPolicy}}
	var s testsuite.WorkflowTestSuite
	return func() {
		t.Helper()
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(fleet)
		_, err := env.ExecuteActivity(fleet.WatchSilence, w)
		require.NoError(t, err)
	}
}

// onlyAlert is the one alert matching filter, or the zero Alert while there is not exactly one.
func onlyAlert(t *testing.T, st *store.Store, filter store.AlertFilter) store.Alert {
	list, err := st.ListAlerts(context.Background(), filter)
	require.NoError(t, err)
	if len(list) != 1 {
		return store.Alert{}
	}
	return list[0]
}

// TestClockSkewInASessionIsAnAlert: the fleet scan raises a session alert for an enclosure in
// a session whose clock is off past the threshold, mailing the session's creator, and clears
// it once its clock is back within.
func TestClockSkewInASessionIsAnAlert(t *testing.T) {
	ctx := context.Background()
	f := newAlertFixture(t)
	st, c, mailpit, queue, creator, sid := f.st, f.c, f.mailpit, f.queue, f.creator, f.sid
	var did int64
	require.NoError(t, st.Pool().QueryRow(ctx, `
		INSERT INTO devices (name, last_seen_at, clock_skew_ms) VALUES ('NV8', now(), 120000) RETURNING id`).Scan(&did))
	_, err := st.Pool().Exec(ctx, `INSERT INTO device_assignments (device_id, session_id, phase, workflow_id)
		VALUES (@did, @sid, 'recording', 'clock-skew-test')`, pgx.NamedArgs{"did": did, "sid": sid})
	require.NoError(t, err)
	deps := worker.StoreDeps(st)
	deps.Channels = activities.Alerts{Mail: mailpit.Sender()}
	deps.AlertPolicy = workflows.AlertPolicy{EscalateAfter: time.Hour, Tiers: 1, Damping: time.Second, MaxSilence: time.Hour, NotifyAttempts: 3}
	w := worker.New(c, queue, deps)
	require.NoError(t, w.Start())
	defer w.Stop()
	scan := fleetScan(t, st, deps, c, queue, activities.FleetWatch{Every: 20 * time.Millisecond, Down: time.Minute,
		Run: 100 * time.Millisecond, ClockSkew: 30 * time.Second})
	alert := func() store.Alert {
		return onlyAlert(t, st, store.AlertFilter{SessionID: sid, Kind: recording.AlertClockSkew})
	}

	scan()
	require.Equal(t, fmt.Sprintf("[MBA ALERT] clock_skew: NV8's clock is off by 2m0s in session %d (threshold 30s)", sid),
		mailpit.WaitForMessages(creator, 1)[0].Subject)
	require.Eventually(t, func() bool { return alert().State == recording.AlertNotified }, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, did, *alert().DeviceID)

	_, err = st.Pool().Exec(ctx, `UPDATE devices SET clock_skew_ms = 1000 WHERE id = @id`, pgx.NamedArgs{"id": did})
	require.NoError(t, err)
	require.Eventually(t, func() bool { scan(); return alert().State == recording.AlertResolved }, 30*time.Second, 50*time.Millisecond)
	require.Regexp(t, `^\[MBA RESOLVED\] clock_skew: NV8's clock is off`, mailpit.WaitForMessages(creator, 2)[1].Subject)
}

// TestLowFrameRateWhileRecordingIsAnAlert: the fleet scan, on a real database and Temporal,
// raises low_fps for an enclosure recording below its session's target for the set time,
// mails the session's creator, and clears it once the rate is back.
func TestLowFrameRateWhileRecordingIsAnAlert(t *testing.T) {
	ctx := context.Background()
	f := newAlertFixture(t)
	st, c, mailpit, queue, creator, sid := f.st, f.c, f.mailpit, f.queue, f.creator, f.sid
	var did int64
	require.NoError(t, st.Pool().QueryRow(ctx, `
		INSERT INTO devices (name, last_seen_at, recording, fps) VALUES ('NV7', now(), true, 11.5) RETURNING id`).Scan(&did))
	_, err := st.Pool().Exec(ctx, `INSERT INTO device_assignments (device_id, session_id, phase, workflow_id)
		VALUES (@did, @sid, 'recording', 'low-fps-test')`, pgx.NamedArgs{"did": did, "sid": sid})
	require.NoError(t, err)
	deps := worker.StoreDeps(st)
	deps.Channels = activities.Alerts{Mail: mailpit.Sender()}
	deps.AlertPolicy = workflows.AlertPolicy{EscalateAfter: time.Hour, Tiers: 1, Damping: time.Second, MaxSilence: time.Hour, NotifyAttempts: 3}
	deps.ConditionLimits = activities.ConditionLimits{FPSMargin: 0.1, FPSFor: time.Second}
	w := worker.New(c, queue, deps)
	require.NoError(t, w.Start())
	defer w.Stop()
	scan := fleetScan(t, st, deps, c, queue, activities.FleetWatch{Every: 20 * time.Millisecond, Down: time.Minute,
		Run: 100 * time.Millisecond})
	alert := func() store.Alert {
		return onlyAlert(t, st, store.AlertFilter{SessionID: sid, Kind: recording.AlertLowFPS})
	}

	scan()
	require.Zero(t, alert().ID, "low for less than its time")
	require.Eventually(t, func() bool { scan(); return alert().State == recording.AlertNotified }, 30*time.Second, 50*time.Millisecond)
	require.Regexp(t, `^\[MBA ALERT\] low_fps: NV7 in session \d+ records at 11.5 fps, below its target of 30 by more than 10 % for \ds$`,
		mailpit.WaitForMessages(creator, 1)[0].Subject)

	_, err = st.Pool().Exec(ctx, `UPDATE devices SET fps = 29.9 WHERE id = @id`, pgx.NamedArgs{"id": did})
	require.NoError(t, err)
	require.Eventually(t, func() bool { scan(); return alert().State == recording.AlertResolved }, 30*time.Second, 50*time.Millisecond)
	require.Regexp(t, `^\[MBA RESOLVED\] low_fps: NV7`, mailpit.WaitForMessages(creator, 2)[1].Subject)
}

// TestBrokenChannelIsAFleetAlert: a mail address whose last deliveries failed raises one
// channel_broken fleet alert (its subject the channel, no session or enclosure) that the
// other administrators are told of, never the broken address itself; a delivery to it that
// goes through resolves it.
func TestBrokenChannelIsAFleetAlert(t *testing.T) {
	ctx := context.Background()
	f := newAlertFixture(t)
	st, c, mailpit, queue := f.st, f.c, f.mailpit, f.queue
	admin := testenv.RandomName("ada-") + "@lab.example"
	brokenAdmin := testenv.RandomName("bob-") + "@lab.example"
	for _, a := range []string{admin, brokenAdmin} {
		_, err := st.CreateUser(ctx, a, "", true)
		require.NoError(t, err)
	}
	deps := worker.StoreDeps(st)
	deps.Channels = activities.Alerts{Mail: mailpit.Sender()}
	deps.AlertPolicy = workflows.AlertPolicy{EscalateAfter: time.Hour, Tiers: 1, Damping: time.Second, MaxSilence: time.Hour, NotifyAttempts: 3}
	deps.ConditionLimits = activities.ConditionLimits{ChannelFailures: 3}
	w := worker.New(c, queue, deps)
	require.NoError(t, w.Start())
	defer w.Stop()
	scan := fleetScan(t, st, deps, c, queue, activities.FleetWatch{Every: 20 * time.Millisecond, Down: time.Minute,
		Run: 100 * time.Millisecond})
	deliver := func(outcome string) {
		t.Helper()
		require.NoError(t, st.RecordDelivery(ctx, store.Delivery{AlertKey: "earlier", Channel: activities.ChannelEmail, Target: brokenAdmin,
			Notice: "opened", Attempt: 1, Outcome: outcome, Error: map[string]string{"failed": "550 mailbox unavailable"}[outcome]}))
	}
	subject := activities.ChannelSubject(activities.ChannelEmail, brokenAdmin)
	alert := func() store.Alert { return onlyAlert(t, st, store.AlertFilter{Kind: recording.AlertChannelBroken}) }

	deliver("failed")
	deliver("failed")
	scan()
	require.Zero(t, alert().ID, "two failures of three")
	deliver("failed")
	scan()
	mails := mailpit.WaitForMessages(admin, 1)
	require.Equal(t, "[MBA ALERT] channel_broken: notification channel email "+brokenAdmin+
		" is broken: its last 3 deliveries failed (last error: 550 mailbox unavailable)", mails[0].Subject)
	require.Eventually(t, func() bool { return alert().State == recording.AlertNotified }, 30*time.Second, 50*time.Millisecond)
	got := alert()
	require.Equal(t, subject, got.Subject)
	require.Nil(t, got.SessionID)
	require.Nil(t, got.DeviceID)
	require.Equal(t, workflows.AlertSubjectWorkflowID(queue, recording.AlertChannelBroken, 0, 0, subject), got.WorkflowID)
	scan() // raised once: the open alert is not raised again

	deliver("sent")
	require.Eventually(t, func() bool { scan(); return alert().State == recording.AlertResolved }, 30*time.Second, 50*time.Millisecond)
	require.Regexp(t, `^\[MBA RESOLVED\] channel_broken: `, mailpit.WaitForMessages(admin, 2)[1].Subject)
	list, err := st.ListAlerts(ctx, store.AlertFilter{Kind: recording.AlertChannelBroken})
	require.NoError(t, err)
	require.Len(t, list, 1, "one alert for the channel")
	for _, d := range mustDeliveries(t, st, got.Key) {
		require.NotEqual(t, brokenAdmin, d.Target, "the broken channel is not told of itself")
	}
}

func mustDeliveries(t *testing.T, st *store.Store, key string) []store.Delivery {
	list, err := st.Deliveries(context.Background(), key)
	require.NoError(t, err)
	require.NotEmpty(t, list)
	return list
}
