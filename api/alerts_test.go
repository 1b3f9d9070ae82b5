package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/dispatch"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/worker"
	"github.com/jax-mba/mba/workflows"
)

// TestAlertLifecycleThroughTheAPI drives a real alert workflow on the Temporal dev server: raised
// twice (one alert), mailed to the session's creator through Mailpit, silenced and acknowledged
// by another user through the API (the workflow's validator answering a second ack), resolved
// when the condition clears, with a recovery mail and the deliveries in /metrics.
func TestAlertLifecycleThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	c, err := client.Dial(client.Options{HostPort: testenv.TemporalAddress(t)})
	require.NoError(t, err)
	defer c.Close()
	queue := testenv.RandomName("alerts-")
	policy := workflows.AlertPolicy{EscalateAfter: time.Hour, Tiers: 1, Damping: time.Second, MaxSilence: 7 * 24 * time.Hour,
		NotifyAttempts: 3}
	alerts := dispatch.Alerts{Temporal: c, TaskQueue: queue, Policy: policy}
	h := newHarness(t, func(d *Deps) { d.AlertWorkflows = alerts })
	mailpit := testenv.NewMailpit(t)
	deps := worker.StoreDeps(h.store)
	deps.Channels = activities.Alerts{Mail: mailpit.Sender()}
	w := worker.New(c, queue, deps)
	require.NoError(t, w.Start())
	defer w.Stop()

	carlEmail := testenv.RandomName("carl-") + "@lab.example"
	carl := h.user(carlEmail, "correct horse", false)
	h.user("ann@lab.example", "correct horse", false)
	ann, _ := h.login("ann@lab.example", "correct horse")
	h.send(beat("NV1", 0, false, ""))
	sid := h.sessionBy(carl.ID, h.deviceID("NV1"))
	subject := dispatch.AlertSubject{Kind: recording.AlertEnclosureDown, SessionID: sid, DeviceID: h.deviceID("NV1")}
	require.NoError(t, alerts.Raise(ctx, subject, "NV1 is DOWN"))
	require.NoError(t, alerts.Raise(ctx, subject, "NV1 is DOWN"), "raising again is harmless")
	t.Cleanup(func() {
		_ = c.TerminateWorkflow(context.Background(), workflows.AlertWorkflowID(queue, subject.Kind, sid, subject.DeviceID), "", "test done")
	})

	list := func(query string) []AlertView {
		t.Helper()
		var out []AlertView
		res := h.do("GET", "/api/alerts"+query, ann, nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		require.NoError(t, json.Unmarshal(res.body, &out))
		return out
	}
	require.Eventually(t, func() bool { return len(list(fmt.Sprintf("?state=notified&session=%d", sid))) == 1 },
		30*time.Second, 50*time.Millisecond, "the alert is open and its creator told")
	a := list(fmt.Sprintf("?session=%d", sid))
	require.Len(t, a, 1, "one alert per condition and subject")
	id := a[0].ID
	require.Equal(t, recording.AlertEnclosureDown, a[0].Kind)
	require.Equal(t, "NV1", *a[0].DeviceName)
	mails := mailpit.WaitForMessages(carlEmail, 1)
	require.Equal(t, "[MBA ALERT] enclosure_down: NV1 is DOWN", mails[0].Subject)

	// Bad requests are refused with a message naming the problem.
	for query, want := range map[string]string{"?state=bogus": "state: must be a comma-separated list of open",
		"?kind=bogus": "kind: is not a kind of alert", "?session=x": "session: must be a positive id",
		"?limit=0": "limit: must be between 1 and 500"} {
		res := h.do("GET", "/api/alerts"+query, ann, nil)
		require.Equal(t, http.StatusBadRequest, res.status, query)
		require.Contains(t, res.json(t)["message"], want, query)
	}
	silence := fmt.Sprintf("/api/alerts/%d/silence", id)
	ack := fmt.Sprintf("/api/alerts/%d/acknowledge", id)
	for body, want := range map[string]string{`{}`: "give either until (RFC 3339) or minutes",
		`{"minutes": 0}`: "minutes: must be between 1 and 10080", `{"until": "2001-01-01T00:00:00Z"}`: "must be in the future",
		`{"minutes": 5, "until": "2101-01-01T00:00:00Z"}`: "give either", `{"minutes": 5, "why": "x"}`: `unknown field "why"`} {
		res := h.do("POST", silence, ann, body)
		require.Equal(t, http.StatusBadRequest, res.status, body)
		require.Contains(t, res.json(t)["message"], want, body)
	}
	res := h.do("POST", ack, ann, map[string]string{"note": strings.Repeat("x", 2001)})
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, http.StatusNotFound, h.do("POST", "/api/alerts/999999/acknowledge", ann, map[string]string{}).status)

	res = h.do("POST", silence, ann, map[string]any{"minutes": 30, "note": "rebooting it"})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, "silenced", res.json(t)["state"])

	res = h.do("POST", ack, ann, map[string]string{"note": "on my way"})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, "acknowledged", res.json(t)["state"])
	require.Equal(t, "ann@lab.example", res.json(t)["acked_by"])

	res = h.do("POST", ack, ann, map[string]string{})
	require.Equal(t, http.StatusConflict, res.status, "the workflow's validator refuses a second ack")
	require.Contains(t, res.json(t)["message"], "already acknowledged by ann@lab.example")
	require.Equal(t, 1, h.auditCount(string(recording.AuditAlertSilence)), "the silence is audited")
	require.Equal(t, 1, h.auditCount(string(recording.AuditAlertAcknowledge)), "the ack is audited, the refused one not")

	require.Eventually(t, func() bool {
		var v AlertDetailView
		require.NoError(t, json.Unmarshal(h.do("GET", fmt.Sprintf("/api/alerts/%d", id), ann, nil).body, &v))
		for _, e := range v.Events {
			if e.State == recording.AlertAcknowledged && e.Actor == "ann@lab.example" && e.Note == "on my way" {
				return v.State == recording.AlertAcknowledged
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "the acknowledgement is recorded with who and the note")

	require.NoError(t, alerts.Clear(ctx, subject))
	require.Eventually(t, func() bool { return len(list(fmt.Sprintf("?state=resolved&session=%d", sid))) == 1 },
		30*time.Second, 50*time.Millisecond, "resolved once clear for the damping window")
	mails = mailpit.WaitForMessages(carlEmail, 2)
	require.Equal(t, "[MBA RESOLVED] enclosure_down: NV1 is DOWN", mails[1].Subject)
	res = h.do("POST", ack, ann, map[string]string{})
	require.Equal(t, http.StatusConflict, res.status)
	require.Contains(t, res.json(t)["message"], "is resolved")
	require.NoError(t, alerts.Clear(ctx, subject), "clearing what is not open is harmless")
	cut := strings.LastIndex(a[0].Key, "/")
	wid, run := a[0].Key[:cut], a[0].Key[cut+1:]
	require.NoError(t, c.GetWorkflow(ctx, wid, run).Get(ctx, nil), "the run ends once its recovery notices are out")
	testenv.RecordHistory(t, c, wid, run, "alert_silenced_acknowledged_resolved")

	require.Contains(t, h.metrics(), `mba_notifications_total{channel="email",outcome="sent"} 2`)
	h.user("admin@lab.example", "correct horse", true)
	admin, _ := h.login("admin@lab.example", "correct horse")
	res = h.do("GET", "/api/alerts/channels?days=1", admin, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	var health []ChannelHealthView
	require.NoError(t, json.Unmarshal(res.body, &health))
	require.Len(t, health, 1)
	require.Equal(t, "email", health[0].Channel)
	require.Equal(t, carlEmail, health[0].Target)
	require.Equal(t, int64(2), health[0].Attempts)
	require.Equal(t, "sent", health[0].LastOutcome)
	require.Equal(t, http.StatusForbidden, h.do("GET", "/api/alerts/channels", ann, nil).status)
	require.Equal(t, http.StatusBadRequest, h.do("GET", "/api/alerts/channels?days=0", admin, nil).status)
	require.Contains(t, h.metrics(), `mba_alerts_open{kind="enclosure_down"} 0`)

	// The condition returning after the resolution is a new alert.
	require.NoError(t, alerts.Raise(ctx, subject, "NV1 is DOWN again"))
	require.Eventually(t, func() bool { return len(list(fmt.Sprintf("?session=%d", sid))) == 2 },
		30*time.Second, 50*time.Millisecond)
	require.Contains(t, h.metrics(), `mba_alerts_open{kind="enclosure_down"} 1`)
}

// TestChannelHealthSaysBroken: with alerts channel-failures 3, a target whose last three
// deliveries failed is broken, in GET /api/alerts/channels (since its first failure in a row)
// and in mba_notification_channel_broken; one that failed as often but then went through, and
// one with fewer failures in a row, are not; a configured target has its gauge, at 0, before
// any delivery. With the condition off nothing is broken and there is no gauge.
func TestChannelHealthSaysBroken(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, func(d *Deps) {
		d.Config.Alerts = AlertConfig{ChannelFailures: 3,
			Channels: []ChannelTarget{{Channel: "webhook", Target: "oncall"}, {Channel: "webhook", Target: "lab"}}}
	})
	deliver := func(h *harness, channel, target string, outcomes ...string) {
		t.Helper()
		for i, o := range outcomes {
			d := store.Delivery{AlertKey: "mba-alert-q-low_disk/run", Channel: channel, Target: target, Notice: "notify",
				Attempt: i + 1, Outcome: o}
			if o == "failed" {
				d.Error = fmt.Sprintf("503 from %s (%d)", target, i+1)
			}
			require.NoError(t, h.store.RecordDelivery(ctx, d))
		}
	}
	deliver(h, "webhook", "lab", "sent", "failed", "failed", "failed")
	deliver(h, "email", "ann@lab.example", "failed", "failed", "failed", "sent")
	deliver(h, "slack", "chat", "failed", "failed")

	h.user("admin@lab.example", "correct horse", true)
	admin, _ := h.login("admin@lab.example", "correct horse")
	health := func(h *harness) map[string]ChannelHealthView {
		t.Helper()
		res := h.do("GET", "/api/alerts/channels", admin, nil)
		require.Equal(t, http.StatusOK, res.status, "%s", res.body)
		var list []ChannelHealthView
		require.NoError(t, json.Unmarshal(res.body, &list))
		out := map[string]ChannelHealthView{}
		for _, c := range list {
			out[c.Channel+":"+c.Target] = c
		}
		require.Len(t, out, len(list))
		return out
	}
	got := health(h)
	require.Len(t, got, 3, "only targets with deliveries")
	lab := got["webhook:lab"]
	require.True(t, lab.Broken, "its last 3 deliveries failed")
	require.Equal(t, 3, lab.Failing)
	require.Equal(t, "503 from lab (4)", lab.LastError)
	require.NotNil(t, lab.FailingSince)
	require.False(t, lab.FailingSince.After(lab.LastAt))
	ann := got["email:ann@lab.example"]
	require.False(t, ann.Broken, "it recovered")
	require.Equal(t, 0, ann.Failing)
	require.Nil(t, ann.FailingSince)
	require.Equal(t, int64(3), ann.Failures, "its failures still count in the period")
	chat := got["slack:chat"]
	require.False(t, chat.Broken, "two failures in a row are not three")
	require.Equal(t, 2, chat.Failing)

	m := h.metrics()
	require.Contains(t, m, "# TYPE mba_notification_channel_broken gauge")
	for series, v := range map[string]string{`channel="webhook",target="lab"`: "1", `channel="email",target="ann@lab.example"`: "0",
		`channel="slack",target="chat"`: "0", `channel="webhook",target="oncall"`: "0"} {
		require.Contains(t, m, "mba_notification_channel_broken{"+series+"} "+v+"\n")
	}

	off := newHarness(t)
	off.user("admin@lab.example", "correct horse", true)
	admin, _ = off.login("admin@lab.example", "correct horse")
	deliver(off, "webhook", "lab", "failed", "failed", "failed", "failed")
	got = health(off)
	require.False(t, got["webhook:lab"].Broken, "channel-failures 0: the condition is off")
	require.Equal(t, 4, got["webhook:lab"].Failing)
	require.NotContains(t, off.metrics(), "mba_notification_channel_broken{")
}
