package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestUITemplates drives the Templates pages in headless Chromium: a refused template shows the
// reason by its field; a template is created, edited (version 2), and starts a session from the
// new-session form pre-filled with its settings, its pattern making the prefixes and a subject
// typed in. The session page names the template, edits the subject and downloads the
// manifest; the sessions' search finds it by subject and by template; its Clone button
// pre-fills the form again; the template is archived.
func TestUITemplates(t *testing.T) {
	requireChromium(t)
	s := newStack(t)
	_, ids := s.enclosures(2, "UIT")
	const long = 90 * time.Second
	b := newBrowser(t, s.api.URL)
	b.login("ann@lab.example", "correct horse")

	b.goTo("#/templates")
	b.waitText("No template yet", long)
	b.waitJS("the enclosures to choose", `document.querySelectorAll('.template-form .tpl-device').length === 2`, long)
	b.do(chromedp.Click(chromedp.CSS(`.template-form button[type=submit]`)))
	b.waitJS("the name's reason", `!!document.querySelector('.template-form [data-error-for="name"]')?.textContent`, long)
	b.shot("template-invalid")

	b.do(chromedp.SendKeys(chromedp.CSS(`.template-form #f-name`), "Night run"))
	b.setValue(`.template-form #f-duration`, "2")
	b.setValue(`.template-form #f-prefix-pattern`, "{subject}_{enclosure}")
	b.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`.template-form .tpl-device[value="%d"]`, ids[0]))),
		chromedp.Click(chromedp.CSS(`.template-form button[type=submit]`)))
	b.waitJS("the template's page", `document.querySelector('h1')?.textContent === 'Night run' && /^#\/templates\/\d+$/.test(location.hash)`, long)
	b.waitJS("version 1", `!!document.querySelector('tr.version-1')`, long)
	b.shot("template")

	// An edit is a new version.
	b.setValue(`.template-form #f-target-fps`, "15")
	b.do(chromedp.Click(chromedp.CSS(`.template-form button[type=submit]`)))
	b.waitText("Saved as version 2.", long)
	b.waitJS("both versions listed", `!!document.querySelector('tr.version-2') && !!document.querySelector('tr.version-1')`, long)

	// A session from the template: its settings and enclosures pre-filled, the prefix left to
	// the pattern, a subject typed in.
	b.do(chromedp.Click(chromedp.CSS(`#template-new-session`)))
	b.waitText("New recording session", long)
	b.waitText("From template “Night run” version 2", long)
	b.waitJS("the template's enclosure chosen", fmt.Sprintf(`document.querySelector('#pick-%d')?.checked === true`, ids[0]), long)
	require.Equal(t, "15", b.eval(`document.querySelector('#f-target-fps').value`))
	b.do(chromedp.SendKeys(chromedp.CSS(`#f-name`), "night 1"),
		chromedp.SendKeys(chromedp.CSS(fmt.Sprintf(`#subject-%d`, ids[0])), "M42"),
		chromedp.SendKeys(chromedp.CSS(fmt.Sprintf(`#strain-%d`, ids[0])), "C57BL/6J"))
	b.shot("new-session-from-template")
	b.do(chromedp.Click(chromedp.CSS(`form button[type=submit]`)))
	b.waitJS("the session page", `/^#\/sessions\/\d+$/.test(location.hash)`, long)
	b.waitText("M42_UIT1", long)
	var sid int64
	var version int
	var prefix string
	var subjects []string
	require.NoError(t, s.pool.QueryRow(context.Background(), `
		SELECT s.id, s.template_version, sd.file_prefix, ss.subject_ids FROM sessions s
		JOIN session_devices sd ON sd.session_id = s.id JOIN session_subjects ss ON ss.session_id = s.id
		WHERE s.name = 'night 1'`).Scan(&sid, &version, &prefix, &subjects))
	require.Equal(t, 2, version)
	require.Equal(t, "M42_UIT1", prefix)
	require.Equal(t, []string{"M42"}, subjects)

	// The session page: its template, its subject edited (PATCH), its manifest downloaded.
	b.waitText("Night run v2", long)
	b.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#subject-edit-%d`, ids[0]))))
	b.waitJS("the subject form", `!!document.querySelector('#subject-form')`, long)
	b.setValue(`#subject-form #f-cage`, "C7")
	b.setValue(`#subject-form #f-date-of-birth`, "2025-09-30")
	b.do(chromedp.Click(chromedp.CSS(`#subject-form button[type=submit]`)))
	b.waitText("Subject in UIT1 saved.", long)
	b.waitJS("the subject's cage in the table", fmt.Sprintf(`document.querySelector('#subject-text-%d')?.textContent.includes('cage C7')`, ids[0]), long)
	var cage string
	require.NoError(t, s.pool.QueryRow(context.Background(), `SELECT cage FROM session_subjects WHERE session_id = $1`, sid).Scan(&cage))
	require.Equal(t, "C7", cage)
	b.eval(`(() => { window.mbaDownloads = []; const click = HTMLAnchorElement.prototype.click;
		HTMLAnchorElement.prototype.click = function () { if (this.download) window.mbaDownloads.push(this.download); else click.call(this); }; return ''; })()`)
	b.do(chromedp.Click(chromedp.CSS(`#manifest-json`)))
	b.waitJS("the manifest saved", fmt.Sprintf(`(window.mbaDownloads || []).includes('session-%d-manifest.json')`, sid), long)
	b.shot("session-from-template")

	// The sessions' search: by subject, by template, none found.
	b.goTo("#/sessions")
	b.waitJS("the search form", `!!document.querySelector('#session-search #search-template option[value]:not([value=""])')`, long)
	b.setValue(`#search-subject`, "m42")
	b.do(chromedp.Click(chromedp.CSS(`#session-search button[type=submit]`)))
	// The search form's Clear link: the page redrawn for the search, not the one before it.
	b.waitJS("found by subject", `!!document.querySelector('#search-clear') && [...document.querySelectorAll('tr.session-row')].length === 1 &&
		document.querySelector('tr.session-row').innerText.includes('night 1')`, long)
	b.do(chromedp.Click(chromedp.CSS(`#search-clear`)))
	b.waitJS("cleared", `location.hash === '#/sessions' && document.querySelector('#search-subject')?.value === ''`, long)
	b.eval(`(() => { const s = document.querySelector('#search-template'); s.value = s.options[1].value; return ''; })()`)
	b.do(chromedp.Click(chromedp.CSS(`#session-search button[type=submit]`)))
	b.waitJS("found by template", `!!document.querySelector('#search-clear') && [...document.querySelectorAll('tr.session-row')].length === 1 &&
		document.querySelector('tr.session-row').innerText.includes('Night run v2')`, long)
	b.setValue(`#search-q`, "no such session")
	b.do(chromedp.Click(chromedp.CSS(`#session-search button[type=submit]`)))
	b.waitText("No session matches the search.", long)
	b.shot("sessions-search")

	// A clone pre-fills the form from the session.
	b.goTo(fmt.Sprintf("#/sessions/%d", sid))
	b.waitJS("the clone button", `!!document.querySelector('#clone-session')`, long)
	b.do(chromedp.Click(chromedp.CSS(`#clone-session`)))
	b.waitText(fmt.Sprintf("Pre-filled from session %d.", sid), long)
	b.waitJS("the clone's subject", fmt.Sprintf(`document.querySelector('#subject-%d')?.value === 'M42'`, ids[0]), long)
	b.shot("clone")

	// Archived, it leaves the list.
	b.goTo("#/templates")
	b.waitJS("the list", `[...document.querySelectorAll('a')].some(a => a.textContent === 'Night run')`, long)
	b.do(chromedp.Click(chromedp.Search(`//a[text()="Night run"]`)))
	b.waitJS("the template's page", `document.querySelector('h1')?.textContent === 'Night run'`, long)
	b.do(chromedp.Click(chromedp.CSS(`#archive-template`)))
	b.waitText("No template yet", long)
	b.noExceptions()
}
