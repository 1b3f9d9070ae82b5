package activities_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/notify"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/worker"
	"github.com/jax-mba/mba/workflows"
)

// receiver is a real webhook receiver: it checks every request's signature as a lab's own
// receiver would (notify.Verify) and answers from a script of statuses.
type receiver struct {
	t       *testing.T
	secret  []byte
	mu      sync.Mutex
	answers []int // statuses to answer in turn; then 204
	got     []received
}

type received struct {
	body     string
	verified error
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	require.NoError(rc.t, err)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var verified error
	if rc.secret != nil {
		verified = notify.Verify(rc.secret, r.Header, body, time.Now(), 5*time.Minute)
	}
	rc.got = append(rc.got, received{body: string(body), verified: verified})
	status := http.StatusNoContent
	if len(rc.answers) > 0 {
		status, rc.answers = rc.answers[0], rc.answers[1:]
	}
	w.WriteHeader(status)
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

// alertWorld is a database with a session created by ann, an administrator, the suite's
// Mailpit and webhook receivers.
type alertWorld struct {
	st        *store.Store
	mailpit   *testenv.Mailpit
	sessionID int64
	ann       string
}

func newAlertWorld(t *testing.T) alertWorld {
	ctx := context.Background()
	st := store.New(testenv.MigratedPool(t))
	ann := testenv.RandomName("ann-") + "@lab.example"
	u, err := st.CreateUser(ctx, ann, "", false)
	require.NoError(t, err)
	_, err = st.CreateUser(ctx, "admin@lab.example", "", true)
	require.NoError(t, err)
	var sid int64
	require.NoError(t, st.Pool().QueryRow(ctx, `
		INSERT INTO sessions (name, duration, fragment_hourly, target_fps, apply_filter, created_by)
		VALUES ('night', 3600, false, 30, false, @uid) RETURNING id`, pgx.NamedArgs{"uid": u.ID}).Scan(&sid))
	return alertWorld{st: st, mailpit: testenv.NewMailpit(t), sessionID: sid, ann: ann}
}

// TestAlertNoticesReachRealChannels runs an alert end to end through its real activities: the
// e-mail arrives in Mailpit, the signed webhook is retried with backoff until the receiver
// takes it, a refusing receiver (400) is not retried, and every attempt is in the store.
func TestAlertNoticesReachRealChannels(t *testing.T) {
	ctx := context.Background()
	w := newAlertWorld(t)
	secret := []byte("webhook secret")
	flaky := &receiver{t: t, secret: secret, answers: []int{503, 429}}
	refusing := &receiver{t: t, answers: []int{400, 400, 400}}
	slack := &receiver{t: t}
	urls := map[*receiver]string{}
	for _, rc := range []*receiver{flaky, refusing, slack} {
		srv := httptest.NewServer(rc)
		t.Cleanup(srv.Close)
		urls[rc] = srv.URL
	}

	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	deps := worker.StoreDeps(w.st)
	deps.Channels = activities.Alerts{Mail: w.mailpit.Sender(), AlertsURL: "https://mba.lab.example/", Webhooks: []activities.Webhook{
		{Name: "lab-receiver", Kind: activities.ChannelWebhook, URL: urls[flaky], Secret: secret},
		{Name: "broken", Kind: activities.ChannelWebhook, URL: urls[refusing], Secret: secret},
		{Name: "chat", Kind: activities.ChannelSlack, URL: urls[slack]},
	}}
	worker.Register(env, deps)
	env.SetTestTimeout(2 * time.Minute)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(workflows.SignalAlertCondition, workflows.AlertCondition{Active: false})
	}, 30*time.Minute)
	policy := workflows.DefaultAlertPolicy
	env.ExecuteWorkflow(workflows.AlertLifecycle, workflows.AlertInput{Kind: recording.AlertEnclosureDown,
		SessionID: w.sessionID, Summary: "NV3 is DOWN", Policy: policy})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var st workflows.AlertLifecycleState
	require.NoError(t, env.GetWorkflowResult(&st))

	// E-mail: the session's creator got the alert and the recovery notice.
	mails := w.mailpit.WaitForMessages(w.ann, 2)
	require.Equal(t, "[MBA ALERT] enclosure_down: NV3 is DOWN", mails[0].Subject)
	text := strings.ReplaceAll(mails[0].Text, "\r\n", "\n") // the mail's lines end in CRLF
	require.Contains(t, text, fmt.Sprintf("Session:    night (id %d)\n", w.sessionID), "named, not only numbered")
	require.Contains(t, text, fmt.Sprintf("Alerts page: https://mba.lab.example/#/alerts?kind=enclosure_down&session=%d\n", w.sessionID))
	require.Contains(t, mails[1].Text, "tab=resolved", "the recovery links to the resolved alerts")
	require.Equal(t, "[MBA RESOLVED] enclosure_down: NV3 is DOWN", mails[1].Subject)

	// The signed webhook: two failures (503, 429) retried, then taken; every request verified.
	got := flaky.requests()
	require.Len(t, got, 4, "3 attempts for the alert, 1 for the recovery")
	for _, r := range got {
		require.NoError(t, r.verified, "the receiver verifies the signature")
	}
	require.Contains(t, got[0].body, `"notice":"opened"`)
	require.Contains(t, got[3].body, `"notice":"recovered"`)
	// The refusing receiver: a 400 is final, for each notice.
	require.Len(t, refusing.requests(), 2)
	// The Slack-compatible one: {"text": ...}.
	chat := slack.requests()
	require.Len(t, chat, 2)
	require.True(t, strings.HasPrefix(chat[0].body, `{"text":"[MBA ALERT]`), chat[0].body)

	// The store: the alert's row and transitions, and every delivery attempt.
	list, err := w.st.ListAlerts(ctx, store.AlertFilter{SessionID: w.sessionID})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, recording.AlertResolved, list[0].State)
	require.Equal(t, st.Key, list[0].Key)
	require.NotNil(t, list[0].ResolvedAt)
	events, err := w.st.AlertEvents(ctx, list[0].ID)
	require.NoError(t, err)
	require.Equal(t, recording.AlertOpen, events[0].State)
	require.Equal(t, recording.AlertResolved, events[len(events)-1].State)

	deliveries, err := w.st.Deliveries(ctx, st.Key)
	require.NoError(t, err)
	var outcomes []string
	for _, d := range deliveries {
		if d.Target == "lab-receiver" && d.Notice == notify.NoticeOpened {
			outcomes = append(outcomes, d.Outcome)
		}
	}
	require.Equal(t, []string{"failed", "failed", "sent"}, outcomes, "each attempt recorded")
	var broken int
	for _, d := range deliveries {
		if d.Target == "broken" {
			broken++
			require.Equal(t, "failed", d.Outcome)
			require.Contains(t, d.Error, "400")
		}
	}
	require.Equal(t, 2, broken)

	// The administrators' view: the refusing receiver first, as broken.
	health, err := w.st.ChannelHealth(ctx, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, "broken", health[0].Target)
	require.Equal(t, "failed", health[0].LastOutcome)
	require.Equal(t, int64(2), health[0].Failures)
	require.Contains(t, health[0].LastError, "400 Bad Request")
	i := slices.IndexFunc(health, func(h store.ChannelHealth) bool { return h.Target == "lab-receiver" })
	require.Equal(t, store.ChannelHealth{Channel: "webhook", Target: "lab-receiver", Attempts: 4, Failures: 2,
		LastOutcome: "sent", LastAt: health[i].LastAt}, health[i], "it recovered")
}

// TestRecipientsFollowPreferences: a session's alerts go to its creator, fleet alerts to the
// administrators, escalation tiers to their lists; people who opted out or are in their quiet
// hours are skipped.
func TestRecipientsFollowPreferences(t *testing.T) {
	ctx := context.Background()
	w := newAlertWorld(t)
	boss, err := w.st.CreateUser(ctx, "boss@lab.example", "", false)
	require.NoError(t, err)
	a := &activities.Alerts{Store: worker.StoreDeps(w.st).Alerts,
		Webhooks: []activities.Webhook{{Name: "chat", Kind: activities.ChannelSlack, URL: "http://127.0.0.1:1"}},
		Tiers:    [][]string{{"boss@lab.example", "outsider@elsewhere.example"}, {"admins", "chat"}},
		Now:      func() time.Time { return time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC) }}
	var s testsuite.WorkflowTestSuite
	who := func(q activities.RecipientQuery) []activities.Recipient {
		env := s.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		v, err := env.ExecuteActivity(a.AlertRecipients, q)
		require.NoError(t, err)
		var out []activities.Recipient
		require.NoError(t, v.Get(&out))
		return out
	}
	email := func(addr string) activities.Recipient {
		return activities.Recipient{Channel: activities.ChannelEmail, Target: addr}
	}
	chat := activities.Recipient{Channel: activities.ChannelSlack, Target: "chat"}
	kind := recording.AlertEnclosureDown

	require.Equal(t, []activities.Recipient{email(w.ann), chat}, who(activities.RecipientQuery{Kind: kind, SessionID: w.sessionID}))
	require.Equal(t, []activities.Recipient{email("admin@lab.example"), chat}, who(activities.RecipientQuery{Kind: kind}),
		"a fleet alert: the administrators")
	require.Equal(t, []activities.Recipient{email("boss@lab.example"), email("outsider@elsewhere.example")},
		who(activities.RecipientQuery{Kind: kind, SessionID: w.sessionID, Tier: 1}))
	require.Equal(t, []activities.Recipient{email("admin@lab.example"), chat},
		who(activities.RecipientQuery{Kind: kind, SessionID: w.sessionID, Tier: 2}))
	require.Empty(t, who(activities.RecipientQuery{Kind: kind, SessionID: w.sessionID, Tier: 3}), "no such tier")

	// Quiet hours 22:00-07:00 in New York: 03:00 UTC is 22:00 there.
	require.NoError(t, w.st.SetNotificationPrefs(ctx, boss.ID, store.NotificationPrefs{Channel: "email",
		QuietStart: 22 * 60, QuietEnd: 7 * 60, TZ: "America/New_York"}))
	require.Equal(t, []activities.Recipient{email("outsider@elsewhere.example")},
		who(activities.RecipientQuery{Kind: kind, SessionID: w.sessionID, Tier: 1}))
	// Only some kinds.
	require.NoError(t, w.st.SetNotificationPrefs(ctx, boss.ID, store.NotificationPrefs{Channel: "email",
		Kinds: []string{string(recording.AlertLowDisk)}, TZ: "UTC"}))
	require.Len(t, who(activities.RecipientQuery{Kind: kind, SessionID: w.sessionID, Tier: 1}), 1)
	require.Len(t, who(activities.RecipientQuery{Kind: recording.AlertLowDisk, SessionID: w.sessionID, Tier: 1}), 2)
	// Opted out.
	u, err := w.st.UserByEmail(ctx, w.ann)
	require.NoError(t, err)
	require.NoError(t, w.st.SetNotificationPrefs(ctx, u.ID, store.NotificationPrefs{Channel: "none", TZ: "UTC"}))
	require.Equal(t, []activities.Recipient{chat}, who(activities.RecipientQuery{Kind: kind, SessionID: w.sessionID}))
}

func TestQuietHours(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 12, 2, h, m, 0, 0, time.UTC) }
	night := activities.NotificationPrefs{QuietStart: 22 * 60, QuietEnd: 7 * 60, TZ: "UTC"}
	require.False(t, night.Wants(recording.AlertLowDisk, at(23, 0)))
	require.False(t, night.Wants(recording.AlertLowDisk, at(3, 0)))
	require.True(t, night.Wants(recording.AlertLowDisk, at(7, 0)))
	require.True(t, night.Wants(recording.AlertLowDisk, at(21, 59)))
	lunch := activities.NotificationPrefs{QuietStart: 12 * 60, QuietEnd: 13 * 60}
	require.False(t, lunch.Wants(recording.AlertLowDisk, at(12, 30)))
	require.True(t, lunch.Wants(recording.AlertLowDisk, at(13, 0)))
	require.True(t, activities.NotificationPrefs{}.Wants(recording.AlertLowDisk, at(3, 0)), "no preferences: always")
}
