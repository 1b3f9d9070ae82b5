package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/auth"
)

// auditRow is one row of the audit page's table as a person reads it: the action code is the
// title of the "What" cell, whose text is its label.
type auditRow struct {
	Action, Label, Who, Subject, Href string
}

// auditRows reads the audit page's table.
func (b *browser) auditRows() []auditRow {
	b.t.Helper()
	var rows []auditRow
	require.NoError(b.t, json.Unmarshal([]byte(b.eval(`JSON.stringify([...document.querySelectorAll('tr.audit-row')].map(r => ({
		Action: r.cells[2].querySelector('span').title, Label: r.cells[2].innerText,
		Who: r.cells[1].innerText.split('\n')[0], Subject: r.cells[3].innerText,
		Href: r.cells[3].querySelector('a')?.getAttribute('href') || '' })))`)), &rows))
	return rows
}

// TestUIAudit drives the audit log page in headless Chromium, in a lab whose time zone is not
// UTC: an administrator's changes through the API (a session created and cancelled, an
// enclosure changed, a user invited) and the sign-ins are listed newest first with who and what
// in plain words, the subjects linked; the action, actor and subject filters, kept in the hash,
// show only matching rows; a range in the lab's time zone finds them and one after them none; a
// range that ends before it starts shows the API's message; a long log pages with Load more up
// to the API's 500. A non-administrator has no link to the page and gets the API's 403 message.
func TestUIAudit(t *testing.T) {
	requireChromium(t)
	kolkata, err := time.LoadLocation("Asia/Kolkata") // +05:30 all year: a wrong zone shifts by hours
	require.NoError(t, err)
	s := newStack(t, func(s *stack) { s.timeZone = kolkata })
	_, ids := s.enclosures(1, "UIAU")
	const long = 90 * time.Second
	ctx := context.Background()

	hash, err := auth.Hasher{MemoryKiB: 1024, Time: 1, Threads: 1}.Hash("battery staple")
	require.NoError(t, err)
	_, err = s.store.CreateUser(ctx, "carl@lab.example", hash, false)
	require.NoError(t, err)
	sid := s.createSession(ids, 600)
	require.Equal(t, http.StatusNoContent, s.call("DELETE", fmt.Sprintf("/api/recording-session/%d", sid), nil, nil))
	require.Equal(t, http.StatusOK, s.call("PATCH", fmt.Sprintf("/api/device/%d", ids[0]), map[string]any{"bound_address": "registered"}, nil))
	require.Equal(t, http.StatusNoContent, s.call("POST", "/api/user/invite",
		map[string]any{"email": "bob@lab.example", "admin": false, "url": linkOrigin + "/reset"}, nil))
	require.Equal(t, http.StatusOK, s.call("POST", "/api/auth/login", map[string]string{"email_address": "carl@lab.example", "password": "battery staple"}, nil))

	b := newBrowser(t, s.api.URL)
	b.login("ann@lab.example", "correct horse")
	b.waitJS("the nav link of an administrator", `!!document.querySelector('#nav a[href="#/audit"]')`, long)
	b.do(chromedp.Click(chromedp.CSS(`#nav a[href="#/audit"]`)))
	b.waitJS("the audit rows", `document.querySelectorAll('tr.audit-row').length >= 7`, long)
	b.waitText("From and To are in the lab's time zone, Asia/Kolkata", long)
	b.waitText("Rows older than 30 days are deleted", long)
	b.shot("audit")

	// Newest first, exactly the rows of the log.
	want := []auditRow{
		{Action: "login", Label: "signed in", Who: "ann@lab.example", Subject: "ann@lab.example", Href: "#/users"}, // the browser's
		{Action: "login", Label: "signed in", Who: "carl@lab.example", Subject: "carl@lab.example", Href: "#/users"},
		{Action: "user.invite", Label: "invited a user", Who: "ann@lab.example", Subject: "bob@lab.example", Href: "#/users"},
		{Action: "device.update", Label: "changed an enclosure", Who: "ann@lab.example", Subject: "UIAU1", Href: fmt.Sprintf("#/enclosures/%d", ids[0])},
		{Action: "session.cancel", Label: "cancelled a session", Who: "ann@lab.example", Subject: fmt.Sprintf("session %d", sid), Href: fmt.Sprintf("#/sessions/%d", sid)},
		{Action: "session.create", Label: "created a session", Who: "ann@lab.example", Subject: fmt.Sprintf("session %d", sid), Href: fmt.Sprintf("#/sessions/%d", sid)},
		{Action: "login", Label: "signed in", Who: "ann@lab.example", Subject: "ann@lab.example", Href: "#/users"}, // newStack's
	}
	require.Equal(t, want, b.auditRows())

	// By action, from the form: the hash keeps the filter, and only cancellations are listed.
	b.setValue("#audit-f-action", "session.cancel")
	b.do(chromedp.Click(chromedp.CSS("#audit-f-apply")))
	b.waitJS("only the cancellation", `location.hash.includes('action=session.cancel') &&
		document.querySelectorAll('tr.audit-row').length === 1`, long)
	require.Equal(t, want[4:5], b.auditRows())

	// By actor, from a link (a filtered view can be shared): the form shows the filter.
	b.goTo("#/audit?actor=carl%40lab.example")
	b.waitJS("only carl's rows", `document.querySelector('#audit-f-actor')?.value === 'carl@lab.example' &&
		document.querySelectorAll('tr.audit-row').length === 1`, long)
	require.Equal(t, want[1:2], b.auditRows())
	b.waitJS("the action filter cleared", `document.querySelector('#audit-f-action').value === ''`, long)

	// By subject: the enclosure's change, linked to its page by the name the row names it by.
	b.goTo("#/audit?subject=UIAU1")
	b.waitJS("only the enclosure's row", `document.querySelector('#audit-f-subject')?.value === 'UIAU1' &&
		document.querySelectorAll('tr.audit-row').length === 1`, long)
	require.Equal(t, want[3:4], b.auditRows())

	// A range in the lab's time zone: the last hour to the next one holds every row; from an
	// hour ahead, none (read as UTC, both would be 5.5 hours off and swap).
	now := time.Now().In(kolkata)
	local := func(t time.Time) string { return t.In(kolkata).Format("2006-01-02T15:04") }
	b.goTo("#/audit")
	b.waitJS("the whole log", `document.querySelectorAll('tr.audit-row').length === 7 && !location.hash.includes('?')`, long)
	b.setValue("#audit-f-from", local(now.Add(-time.Hour)))
	b.setValue("#audit-f-to", local(now.Add(time.Hour)))
	b.do(chromedp.Click(chromedp.CSS("#audit-f-apply")))
	b.waitJS("every row within the hour", `location.hash.includes('from=') && document.querySelectorAll('tr.audit-row').length === 7`, long)
	b.goTo(fmt.Sprintf("#/audit?from=%s", local(now.Add(time.Hour))))
	b.waitText("No audit row matches the filter.", long)

	// To before From: the API's message.
	b.goTo("#/audit")
	b.waitJS("the whole log", `document.querySelectorAll('tr.audit-row').length === 7`, long)
	b.setValue("#audit-f-from", local(now))
	b.setValue("#audit-f-to", local(now.Add(-24*time.Hour)))
	b.do(chromedp.Click(chromedp.CSS("#audit-f-apply")))
	b.waitJS("the API's message", `(document.querySelector('main .alert-error')?.textContent || '').includes('until: must be after since')`, long)
	b.shot("audit-bad-range")

	// A long log (older failed sign-ins of an unknown address): a page of 100 with Load more,
	// then 200, the limit kept in the hash; at 500, the most one search gives, the page says
	// to narrow the filter.
	_, err = s.pool.Exec(ctx, `INSERT INTO audit_log (at, action, subject, client_ip)
		SELECT now() - interval '1 day' - n * interval '1 second', 'login.failed', 'mallory@elsewhere.example', '192.0.2.7'
		FROM generate_series(1, 600) n`)
	require.NoError(t, err)
	b.goTo("#/audit")
	b.waitJS("a page of 100 and Load more", `document.querySelectorAll('tr.audit-row').length === 100 && !!document.querySelector('#audit-load-more')`, long)
	b.do(chromedp.Click(chromedp.CSS("#audit-load-more")))
	b.waitJS("200 rows, the limit in the hash", `document.querySelectorAll('tr.audit-row').length === 200 && location.hash === '#/audit?limit=200'`, long)
	rows := b.auditRows()
	require.Equal(t, want, rows[:len(want)], "still newest first")
	require.Equal(t, auditRow{Action: "login.failed", Label: "sign-in failed", Who: "nobody signed in", Subject: "mallory@elsewhere.example"}, rows[len(want)],
		"an unknown address is not linked")
	b.goTo("#/audit?limit=500")
	b.waitJS("500 rows and no Load more", `document.querySelectorAll('tr.audit-row').length === 500 && !document.querySelector('#audit-load-more')`, long)
	b.waitText("Showing the newest 500 rows, the most one search gives; narrow the filter", long)

	// A template's rows link to the template.
	var tpl struct{ ID int64 }
	require.Equal(t, http.StatusOK, s.call("POST", "/api/templates", map[string]any{"name": "night", "duration": 3600, "target_fps": 30,
		"prefix_pattern": "{enclosure}_{date}", "device_ids": []int64{ids[0]}}, &tpl))
	require.Equal(t, http.StatusNoContent, s.call("DELETE", fmt.Sprintf("/api/templates/%d", tpl.ID), nil, nil))
	b.goTo("#/audit?subject=template%2F" + fmt.Sprint(tpl.ID))
	b.waitJS("the template's rows", `document.querySelectorAll('tr.audit-row').length === 2`, long)
	tplRow := func(action, label string) auditRow {
		return auditRow{Action: action, Label: label, Who: "ann@lab.example", Subject: fmt.Sprintf("template %d", tpl.ID),
			Href: fmt.Sprintf("#/templates/%d", tpl.ID)}
	}
	require.Equal(t, []auditRow{tplRow("template.archive", "archived a template"), tplRow("template.create", "created a template")},
		b.auditRows())

	// A non-administrator: no link, and the page says what the API said.
	b.do(chromedp.Click(chromedp.CSS("#logout")))
	b.login("carl@lab.example", "battery staple")
	require.Equal(t, "false", b.eval(`String(!!document.querySelector('#nav a[href="#/audit"]'))`), "no audit link for a non-administrator")
	b.goTo("#/audit")
	b.waitJS("the API's 403 message", `(document.querySelector('main .alert-error')?.textContent || '').includes('administrator role required')`, long)
	require.False(t, strings.Contains(b.eval(`document.querySelector('main').innerText`), "signed in"), "no row shown")
	b.shot("audit-not-admin")
	b.noExceptions()
}
