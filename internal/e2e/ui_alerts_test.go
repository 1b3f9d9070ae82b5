package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/dispatch"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/workflows"
)

// TestUIAlerts: an alert raised on the stack's worker is in "Needs attention" and on the
// Alerts page; a too-long note is refused with the API's message shown, a person acknowledges
// it with a note and it moves to the acknowledged tab with who and the note, its timeline
// saying so; channel health shows a broken webhook with a red badge. The same person sets
// their notification settings, a bad time zone refused.
func TestUIAlerts(t *testing.T) {
	requireChromium(t)
	s := newStack(t)
	_, ids := s.enclosures(1, "UIA")
	subject := dispatch.AlertSubject{Kind: recording.AlertLowDisk, DeviceID: ids[0]}
	require.NoError(t, s.alerts().Raise(context.Background(), subject, "UIA1 has 2 GB left"))
	t.Cleanup(func() {
		_ = s.temporal.TerminateWorkflow(context.Background(), workflows.AlertWorkflowID(s.queue, subject.Kind, 0, ids[0]), "", "test done")
	})
	const long = 90 * time.Second
	var alert api.AlertView
	require.Eventually(t, func() bool {
		var list []api.AlertView
		s.call("GET", fmt.Sprintf("/api/alerts?kind=low_disk&device=%d", ids[0]), nil, &list)
		if len(list) == 1 {
			alert = list[0]
		}
		return len(list) == 1
	}, long, 200*time.Millisecond, "the alert was never recorded")

	// A webhook whose last three deliveries failed: broken, by the stack's channel-failures 3.
	for i := range 3 {
		require.NoError(t, s.store.RecordDelivery(context.Background(), store.Delivery{AlertKey: "k", Channel: "webhook",
			Target: "pager", Notice: "notify", Attempt: i + 1, Outcome: "failed", Error: "503 Service Unavailable"}))
	}

	b := newBrowser(t, s.api.URL)
	b.login("ann@lab.example", "correct horse")
	b.waitJS("the alert under Needs attention", fmt.Sprintf(`!!document.querySelector('li.alert-item[data-alert="%d"]')`, alert.ID), long)
	b.waitText("disk running out: UIA1 has 2 GB left", long)
	b.shot("dashboard-alert")

	b.goTo("#/alerts")
	ack := fmt.Sprintf("#alert-ack-%d", alert.ID)
	note := fmt.Sprintf("#alert-note-%d", alert.ID)
	b.waitJS("the open alert with its buttons", fmt.Sprintf(`!!document.querySelector(%q)`, ack), long)
	b.waitText("UIA1 has 2 GB left", long)
	b.waitText("Channel health", long) // ann is an administrator
	b.waitJS("the broken webhook's red badge, since when and its last error", `(() => {
		const row = [...document.querySelectorAll('tr')].find(tr => [...tr.cells].some(td => td.textContent === 'pager'));
		return !!row && !!row.querySelector('.badge-broken') && row.innerText.includes('3 failed in a row') &&
			row.innerText.includes('since ') && row.innerText.includes('503 Service Unavailable');
	})()`, long)
	b.shot("channel-broken")

	// A note past the limit: the API's message, not a generic failure.
	b.setValue(note, strings.Repeat("x", workflows.MaxAlertNote+1))
	b.do(chromedp.Click(chromedp.CSS(ack)))
	b.waitJS("the API's message", fmt.Sprintf(`(document.querySelector('[data-alert="%d"] .alert-error')?.textContent || '').includes('at most %d bytes')`,
		alert.ID, workflows.MaxAlertNote), long)

	b.setValue(note, "swapping the disk")
	b.do(chromedp.Click(chromedp.CSS(ack)))
	b.waitText("Acknowledged.", long)
	require.Eventually(t, func() bool {
		var got api.AlertView
		return s.call("GET", fmt.Sprintf("/api/alerts/%d", alert.ID), nil, &got) == http.StatusOK &&
			got.State == recording.AlertAcknowledged
	}, long, 200*time.Millisecond, "the acknowledgement was never recorded")

	b.goTo("#/alerts?tab=taken")
	b.waitJS("the acknowledged alert with who and the note", fmt.Sprintf(`(() => {
		const row = document.querySelector('[data-alert="%d"]')?.closest('tr');
		return !!row && row.innerText.includes('acknowledged') && row.innerText.includes('ann@lab.example') && row.innerText.includes('swapping the disk');
	})()`, alert.ID), long)
	b.do(chromedp.Click(chromedp.CSS(fmt.Sprintf("#alert-timeline-%d", alert.ID))))
	b.waitJS("the timeline's acknowledgement", fmt.Sprintf(`(() => {
		const items = [...document.querySelectorAll('#alert-events-%d li')].map(li => li.innerText);
		return items.some(x => x.includes('acknowledged') && x.includes('by ann@lab.example') && x.includes('swapping the disk'));
	})()`, alert.ID), long)
	b.shot("alert-acknowledged")

	b.goTo("#/account")
	b.waitJS("the notification settings", `!!document.querySelector('#pref-tz')`, long)
	b.do(chromedp.Click(chromedp.CSS("#pref-kind-low_disk")))
	b.setValue("#pref-channel", "none")
	b.setValue("#pref-quiet-start", "22:00")
	b.setValue("#pref-quiet-end", "07:00")
	b.setValue("#pref-tz", "Mars/Olympus")
	b.do(chromedp.Click(chromedp.CSS(`#notification-settings button[type=submit]`)))
	b.waitJS("the time zone refused", `(document.querySelector('[data-error-for="time_zone"]')?.textContent || '').includes('IANA time zone')`, long)
	b.setValue("#pref-tz", "Europe/Berlin")
	b.setValue("#pref-digest", "false")
	b.do(chromedp.Click(chromedp.CSS(`#notification-settings button[type=submit]`)))
	b.waitText("Notification settings saved.", long)
	var prefs api.NotificationPrefsView
	require.Equal(t, http.StatusOK, s.call("GET", "/api/users/me/notification-prefs", nil, &prefs))
	no := false
	require.Equal(t, api.NotificationPrefsView{Kinds: []string{"low_disk"}, Channel: "none", QuietStart: "22:00", QuietEnd: "07:00",
		TimeZone: "Europe/Berlin", Digest: &no}, prefs)
	// Reloaded, the page shows the saved choice (a save must not turn the digest back to the default).
	b.setValue("#pref-digest", "true") // unsaved: only a fresh page shows 'false' again
	b.goTo("#/")
	b.waitJS("away from the account page", `!document.querySelector('#pref-digest')`, long)
	b.goTo("#/account")
	b.waitJS("the saved digest choice", `document.querySelector('#pref-digest')?.value === 'false'`, long)
	b.noExceptions()
}
