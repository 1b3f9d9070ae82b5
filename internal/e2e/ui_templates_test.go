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
// typed in; a clone of that session pre-fills the form again; the template is archived.
func TestUITemplates(t *testing.T) {
	requireChromium(t)
	s := newStack(t)
	_, ids := s.enclosures(2, "UIT")
	const long = 90 * time.Second
	b := newBrowser(t, s.api.URL)
	b.waitJS("the login form", `!!document.querySelector('input[type=email]')`, long)
	b.do(chromedp.SendKeys(chromedp.CSS(`input[type=email]`), "ann@lab.example"),
		chromedp.SendKeys(chromedp.CSS(`input[type=password]`), "correct horse"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitText("Fleet", long)

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

	// A clone pre-fills the form from the session.
	b.goTo(fmt.Sprintf("#/sessions/new?clone=%d", sid))
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
