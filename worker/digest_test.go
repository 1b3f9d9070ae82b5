package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/worker"
	"github.com/jax-mba/mba/workflows"
)

// TestDigestMailsWhatHappened: the digest activities, on a real database and Mailpit, tell the
// administrator about the whole lab (an alert escalated and acknowledged, one still open, a
// session finished, a broken channel), the session's creator about their session only, and
// nobody who turned the digest off or had nothing happen to them.
func TestDigestMailsWhatHappened(t *testing.T) {
	ctx := context.Background()
	f := newAlertFixture(t)
	st, creator, sid := f.st, f.creator, f.sid
	admin := testenv.RandomName("ada-") + "@lab.example"
	_, err := st.CreateUser(ctx, admin, "", true)
	require.NoError(t, err)
	off := testenv.RandomName("olga-") + "@lab.example"
	o, err := st.CreateUser(ctx, off, "", true)
	require.NoError(t, err)
	no := false
	require.NoError(t, st.SetNotificationPrefs(ctx, o.ID, store.NotificationPrefs{Channel: "email", TZ: "UTC", Digest: &no}))
	_, err = st.CreateUser(ctx, testenv.RandomName("bystander-")+"@lab.example", "", false)
	require.NoError(t, err)

	now := time.Now().UTC().Truncate(time.Second)
	since := now.Add(-24 * time.Hour)
	var did int64
	require.NoError(t, st.Pool().QueryRow(ctx, `INSERT INTO devices (name) VALUES ('NV7') RETURNING id`).Scan(&did))
	opened := now.Add(-3 * time.Hour)
	resolved := now.Add(-time.Hour)
	acked := now.Add(-2 * time.Hour)
	require.NoError(t, st.RecordAlert(ctx, store.AlertRecord{Key: "down/1", WorkflowID: "down", Kind: recording.AlertEnclosureDown,
		SessionID: sid, DeviceID: did, Summary: "NV7 is DOWN", State: recording.AlertResolved, OpenedAt: opened, UpdatedAt: resolved,
		ResolvedAt: &resolved, AckedBy: "ada", AckedAt: &acked, Events: []store.AlertEvent{
			{Seq: 1, State: recording.AlertOpen, At: opened}, {Seq: 2, State: recording.AlertEscalated, At: opened.Add(time.Minute)},
			{Seq: 3, State: recording.AlertAcknowledged, Actor: admin, Note: "replugged it", At: acked},
			{Seq: 4, State: recording.AlertResolved, At: resolved}}}))
	require.NoError(t, st.RecordAlert(ctx, store.AlertRecord{Key: "skew/1", WorkflowID: "skew", Kind: recording.AlertClockSkew,
		SessionID: sid, DeviceID: did, Summary: "NV7's clock is off by 45s", State: recording.AlertNotified, OpenedAt: opened,
		UpdatedAt: opened}))
	old := now.Add(-72 * time.Hour)
	require.NoError(t, st.RecordAlert(ctx, store.AlertRecord{Key: "old/1", WorkflowID: "old", Kind: recording.AlertLowDisk,
		DeviceID: did, Summary: "long gone", State: recording.AlertResolved, OpenedAt: old, UpdatedAt: old, ResolvedAt: &old}))
	_, err = st.Pool().Exec(ctx, `UPDATE sessions SET status = 'PARTIAL', ended_at = @at WHERE id = @id`,
		pgx.NamedArgs{"at": now.Add(-30 * time.Minute), "id": sid})
	require.NoError(t, err)
	require.NoError(t, st.RecordDelivery(ctx, store.Delivery{AlertKey: "down/1", Channel: "webhook", Target: "chat",
		Notice: "opened", Attempt: 8, Outcome: "failed", Error: "webhook chat answered 502 Bad Gateway"}))

	d := activities.Digest{Store: st, Mail: f.mailpit.Sender()}
	mails, err := d.DigestMails(ctx, activities.DigestPeriod{Since: since, Until: now.Add(time.Second), TimeZone: "Europe/Berlin"})
	require.NoError(t, err)
	to := map[string]activities.DigestMail{}
	for _, m := range mails {
		to[m.To] = m
		require.NoError(t, d.MailDigest(ctx, m))
	}
	require.Len(t, mails, 2, "the admin and the creator; not the one who turned it off, nor the bystander")

	got := f.mailpit.WaitForMessages(admin, 1)[0]
	require.Equal(t, "MBA digest: 1 still open, 2 opened, 1 sessions finished, 1 channels broken", got.Subject)
	body := got.Text
	for _, want := range []string{"(Europe/Berlin, CE", "Alerts still open (1)", "[clock_skew] NV7's clock is off by 45s",
		"Alerts escalated", "acknowledged by " + admin, `"replugged it"`, "Alerts resolved (1)", "[enclosure_down] NV7 is DOWN",
		`"night" (session`, "PARTIAL", "webhook chat: 1 failed deliveries", "502 Bad Gateway"} {
		require.Contains(t, body, want)
	}
	require.NotContains(t, body, "long gone", "an alert resolved before the period is no news")

	mine := f.mailpit.WaitForMessages(creator, 1)[0].Text
	require.Contains(t, mine, "NV7 is DOWN")
	require.NotContains(t, mine, "Broken notification channels", "channels are the administrators' business")
	require.Empty(t, f.mailpit.Messages(off))

	quiet, err := d.DigestMails(ctx, activities.DigestPeriod{Since: now.Add(time.Hour), Until: now.Add(2 * time.Hour), TimeZone: "UTC"})
	require.NoError(t, err)
	var readers []string
	for _, m := range quiet {
		readers = append(readers, m.To)
		require.Contains(t, m.Body, "NV7's clock is off by 45s")
	}
	require.ElementsMatch(t, []string{admin, creator}, readers,
		"the still-open alert is told even in a quiet period, to the admin and to its session's creator")
}

// TestWorkerCreatesTheDigestSchedule: the schedule is created on a real Temporal, a second
// start updates it instead of adding another, and triggering it runs the digest workflow on the
// worker, which mails the administrator.
func TestWorkerCreatesTheDigestSchedule(t *testing.T) {
	ctx := context.Background()
	f := newAlertFixture(t)
	admin := testenv.RandomName("ada-") + "@lab.example"
	_, err := f.st.CreateUser(ctx, admin, "", true)
	require.NoError(t, err)
	deps := worker.StoreDeps(f.st)
	deps.Channels = activities.Alerts{Mail: f.mailpit.Sender()}
	w := worker.New(f.c, f.queue, deps)
	require.NoError(t, w.Start())
	defer w.Stop()

	id := workflows.DigestScheduleID(f.queue)
	s := worker.DigestSchedule{Enabled: true, At: 7*60 + 30, TimeZone: "Europe/Berlin", SendEmpty: true}
	require.NoError(t, worker.EnsureDigestSchedule(ctx, f.c, f.queue, s))
	s.At = 6 * 60
	require.NoError(t, worker.EnsureDigestSchedule(ctx, f.c, f.queue, s), "a second start updates the schedule")
	h := f.c.ScheduleClient().GetHandle(ctx, id)
	t.Cleanup(func() { _ = h.Delete(context.Background()) })
	desc, err := h.Describe(ctx)
	require.NoError(t, err)
	spec := desc.Schedule.Spec
	require.Equal(t, "Europe/Berlin", spec.TimeZoneName)
	require.Len(t, spec.Calendars, 1)
	require.Equal(t, 6, spec.Calendars[0].Hour[0].Start)
	require.Equal(t, 0, spec.Calendars[0].Minute[0].Start)
	require.Equal(t, enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, desc.Schedule.Policy.Overlap)
	require.Eventually(t, func() bool {
		n := 0
		list, err := f.c.ScheduleClient().List(ctx, client.ScheduleListOptions{Query: "ScheduleId = '" + id + "'"})
		require.NoError(t, err)
		for list.HasNext() {
			e, err := list.Next()
			require.NoError(t, err)
			if e.ID == id {
				n++
			}
		}
		return n == 1
	}, 20*time.Second, 200*time.Millisecond, "one schedule, listed once")

	require.NoError(t, h.Trigger(ctx, client.ScheduleTriggerOptions{}))
	got := f.mailpit.WaitForMessages(admin, 1)[0]
	require.Equal(t, "MBA digest: nothing happened", got.Subject, "send-empty mails a quiet day too")

	require.NoError(t, worker.EnsureDigestSchedule(ctx, f.c, f.queue, worker.DigestSchedule{}), "disabled: deleted")
	_, err = h.Describe(ctx)
	require.Error(t, err)
}
