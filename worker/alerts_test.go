package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
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

// TestDownEnclosureAlertOpensAndResolves: the worker's SignalAlert, on a real Temporal and
// database, opens one alert for an enclosure that went DOWN in a session (raised twice), mails
// the session's creator through Mailpit, and resolves it with a recovery mail when it returns.
func TestDownEnclosureAlertOpensAndResolves(t *testing.T) {
	ctx := context.Background()
	st := store.New(testenv.MigratedPool(t))
	creator := testenv.RandomName("carl-") + "@lab.example"
	u, err := st.CreateUser(ctx, creator, "", false)
	require.NoError(t, err)
	var sid, did int64
	require.NoError(t, st.Pool().QueryRow(ctx, `INSERT INTO devices (name) VALUES ('NV1') RETURNING id`).Scan(&did))
	require.NoError(t, st.Pool().QueryRow(ctx, `
		INSERT INTO sessions (name, duration, fragment_hourly, target_fps, apply_filter, created_by)
		VALUES ('night', 3600, false, 30, false, @uid) RETURNING id`, pgx.NamedArgs{"uid": u.ID}).Scan(&sid))

	c, err := client.Dial(client.Options{HostPort: testenv.TemporalAddress(t)})
	require.NoError(t, err)
	defer c.Close()
	mailpit := testenv.NewMailpit(t)
	queue := testenv.RandomName("alerts-")
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
