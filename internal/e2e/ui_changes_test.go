package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
)

// TestUIChangesARunningSession: on the session's page a user extends a running session, sees
// a refused change in the error box, adds an enclosure, and retries one that failed.
func TestUIChangesARunningSession(t *testing.T) {
	requireChromium(t)
	s := newStack(t)
	sim, ids := s.enclosures(2, "UIC")
	sid := s.createSession(ids[:1], 30)
	s.waitRecording(sid)

	const long = 90 * time.Second
	b := newBrowser(t, s.api.URL)
	b.login("ann@lab.example", "correct horse")
	b.goTo(fmt.Sprintf("#/sessions/%d", sid))
	b.waitJS("the changes of a running session", `!document.querySelector('#session-changes')?.hidden`, long)
	b.do(chromedp.Click(chromedp.CSS(`#session-changes summary`)))
	b.waitJS("the enclosures to add", `document.querySelectorAll('#add-device option').length === 2`, long)

	// The same duration is refused: the error box says why.
	b.setValue(`#new-duration`, "30")
	b.do(chromedp.Click(chromedp.CSS(`#extend`)))
	b.waitText("the session's duration is already 30 s", long)

	b.setValue(`#new-duration`, "40")
	b.do(chromedp.Click(chromedp.CSS(`#extend`)))
	require.Eventually(t, func() bool { return s.session(sid).Duration == 40 }, long, 100*time.Millisecond)

	b.setValue(`#add-device`, fmt.Sprint(ids[1]))
	b.setValue(`#add-prefix`, "late")
	b.do(chromedp.Click(chromedp.CSS(`#add-devices`)))
	b.waitJS("the added enclosure in the table", `[...document.querySelectorAll('table a')].some((a) => a.textContent === 'UIC2')`, long)
	b.waitJS("the new duration in the facts", `document.querySelector('.facts')?.innerText.includes('40 s')`, long)
	b.shot("session-changed")

	sim.Enclosures()[0].FailRecording("camera unplugged")
	b.waitJS("a Retry button on the failed enclosure", fmt.Sprintf(`!!document.querySelector('#retry-%d')`, ids[0]), long)
	// The session's workflow hears of the failure a moment after the page: click until accepted.
	require.Eventually(t, func() bool {
		b.eval(fmt.Sprintf(`(() => { document.querySelector('#retry-%d')?.click(); return ''; })()`, ids[0]))
		d, _ := deviceStatus(s.session(sid), ids[0])
		return d.Status == recording.DeviceRecording || d.Status == recording.DevicePending
	}, long, 500*time.Millisecond, "the retried enclosure records again")
	b.noExceptions()
}
