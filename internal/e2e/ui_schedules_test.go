package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/api"
)

// TestUISchedules drives the Schedules page in headless Chromium: a refused form shows the
// reasons by the fields, a recurring schedule is created with the lab's time zone stated, is
// paused and resumed, run now (its fire creates a session the schedule's page lists), and
// deleted. The new-session form submitted twice (a double click that beats the disabled
// button, or a retry) creates one session: the form's Idempotency-Key.
func TestUISchedules(t *testing.T) {
	requireChromium(t)
	s := newStack(t)
	s.enclosures(2, "UIS")
	const long = 90 * time.Second
	b := newBrowser(t, s.api.URL)
	b.login("ann@lab.example", "correct horse")

	b.goTo("#/schedules")
	b.waitText("Times are in the lab's time zone, UTC.", long)
	b.waitText("No schedule yet.", long)
	b.do(chromedp.Click(chromedp.CSS(`#new-schedule button[type=submit]`)))
	b.waitJS("the name's reason", `document.querySelector('#new-schedule [data-error-for="name"]')?.textContent.includes('required')`, long)
	b.waitJS("the enclosures' reason", `document.querySelector('#new-schedule [data-error-for="session.device_spec"]')?.textContent.includes('at least one')`, long)
	b.shot("schedule-invalid")

	b.do(chromedp.SendKeys(chromedp.CSS(`#new-schedule #f-name`), "nightly"))
	b.setValue(`#new-schedule #f-every`, "120")
	b.setValue(`#new-schedule #f-session-duration`, "1")
	b.do(chromedp.Click(chromedp.CSS(`#new-schedule input[id^="sched-pick-"]`)),
		chromedp.Click(chromedp.CSS(`#new-schedule button[type=submit]`)))
	b.waitText(`Schedule “nightly” created.`, long)
	b.waitJS("the schedule listed with its next run", `[...document.querySelectorAll('tr.schedule-row')].some(r =>
		r.innerText.includes('nightly') && r.innerText.includes('every 120 min') && r.innerText.includes('ACTIVE') && /UTC/.test(r.innerText))`, long)
	b.shot("schedules")

	b.do(chromedp.Click(chromedp.CSS(`tr.schedule-row button[data-action=pause]`)))
	b.waitJS("paused", `document.querySelector('tr.schedule-row')?.innerText.includes('PAUSED')`, long)
	b.do(chromedp.Click(chromedp.CSS(`tr.schedule-row button[data-action=resume]`)))
	b.waitJS("resumed", `document.querySelector('tr.schedule-row')?.innerText.includes('ACTIVE')`, long)

	// Run now: the fire creates a session, which the schedule's page lists.
	b.do(chromedp.Click(chromedp.CSS(`tr.schedule-row button[data-action=trigger]`)))
	b.waitText("trigger done", long)
	b.do(chromedp.Click(chromedp.Search(`//a[text()="nightly"]`)))
	b.waitJS("the schedule's page", `document.querySelector('h1')?.textContent === 'nightly'`, long)
	b.waitText("times in UTC", long)
	b.waitJS("the fire's outcome", `[...document.querySelectorAll('td')].some(td => td.textContent === 'CREATED')`, long)
	b.waitJS("the session it created", `[...document.querySelectorAll('a')].some(a => /^#\d+ nightly$/.test(a.textContent))`, long)
	b.shot("schedule")
	b.do(chromedp.Click(chromedp.CSS(`button[data-action=delete]`)))
	b.waitJS("back on the list, empty", `location.hash === '#/schedules' && document.body.innerText.includes('No schedule yet.')`, long)

	// Two submits of one opening of the new-session form: one session.
	b.goTo("#/sessions/new")
	b.waitText("New recording session", long)
	b.do(chromedp.SendKeys(chromedp.CSS(`#f-name`), "double"))
	b.waitJS("the chooser", `!!document.querySelector('table.chooser tbody input[type=checkbox]')`, long)
	b.do(chromedp.Click(chromedp.CSS(`table.chooser tbody input[type=checkbox]`)))
	b.eval(`(() => { const f = document.querySelector('form'); f.requestSubmit(); f.requestSubmit(); return ''; })()`)
	b.waitJS("the session page", `/^#\/sessions\/\d+$/.test(location.hash)`, long)
	var n int
	require.Eventually(t, func() bool {
		require.NoError(t, s.pool.QueryRow(context.Background(), `SELECT count(*) FROM sessions WHERE name = 'double'`).Scan(&n))
		return n > 0
	}, long, 100*time.Millisecond)
	require.Equal(t, 1, n, "one session for two submits")
	var requests int
	require.NoError(t, s.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM audit_log WHERE action = 'session.create'`).Scan(&requests))
	require.Equal(t, 2, requests, fmt.Sprint("both submits are audited, the second as replayed: ", requests))
	b.noExceptions()
}

// TestUIScheduleFromTemplate picks a template in the Schedules form: the schedule states the
// template version it runs, keeps it when the template gets a new version, and its fire
// creates a session of that version.
func TestUIScheduleFromTemplate(t *testing.T) {
	requireChromium(t)
	s := newStack(t)
	_, ids := s.enclosures(1, "UIT")
	const long = 90 * time.Second
	var tpl api.TemplateView
	require.Equal(t, http.StatusOK, s.call("POST", "/api/templates", map[string]any{"name": "Lights off", "duration": 60,
		"target_fps": 25, "prefix_pattern": "{enclosure}_{session}", "device_ids": ids}, &tpl))
	b := newBrowser(t, s.api.URL)
	b.login("ann@lab.example", "correct horse")

	b.goTo("#/schedules")
	b.waitText("No schedule yet.", long)
	b.do(chromedp.SendKeys(chromedp.CSS(`#new-schedule #f-name`), "from template"))
	b.setValue(`#new-schedule #f-every`, "120")
	b.setValue(`#f-session-from`, fmt.Sprint(tpl.ID))
	b.waitJS("the form says the version is pinned and hides its own settings",
		`document.querySelector('#session-from-hint').textContent.includes('version 1 of the template') && document.querySelector('#f-session-duration').closest('[hidden]') !== null`, long)
	b.do(chromedp.Click(chromedp.CSS(`#new-schedule button[type=submit]`)))
	b.waitText(`Schedule “from template” created.`, long)
	b.waitJS("the list names the template version", `[...document.querySelectorAll('tr.schedule-row')].some(r => r.innerText.includes('template Lights off v1'))`, long)

	// A new version of the template does not change what the schedule runs.
	require.Equal(t, http.StatusOK, s.call("POST", fmt.Sprintf("/api/templates/%d/versions", tpl.ID), map[string]any{"name": "Lights off",
		"duration": 120, "target_fps": 15, "prefix_pattern": "v2_{session}", "device_ids": ids}, nil))
	b.do(chromedp.Click(chromedp.Search(`//a[text()="from template"]`)))
	b.waitJS("the schedule's page names version 1", `document.querySelector('#schedule-session')?.innerText.includes('template Lights off v1')`, long)
	b.do(chromedp.Click(chromedp.CSS(`button[data-action=trigger]`)))
	b.waitJS("the session it created", `[...document.querySelectorAll('a')].some(a => /^#\d+ Lights off$/.test(a.textContent))`, long)
	b.shot("schedule-from-template")
	var list []api.SessionView
	require.Equal(t, http.StatusOK, s.call("GET", "/api/recording-session", nil, &list))
	require.Len(t, list, 1)
	x := s.session(list[0].ID)
	require.Equal(t, &api.TemplateRefView{ID: tpl.ID, Version: 1, Name: "Lights off"}, x.Template)
	require.EqualValues(t, 60, x.Duration, "the session has version 1's settings")
	b.noExceptions()
}
