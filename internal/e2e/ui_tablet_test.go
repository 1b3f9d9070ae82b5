package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// cutOffJS lists the controls (buttons, links, fields) of main that end beyond the window's
// right edge, or are clipped by a scrolling box: a person on a tablet cannot see them whole.
const cutOffJS = `(() => {
  const out = [];
  for (const el of document.querySelectorAll('main button, main a, main input, main select, main textarea')) {
    const r = el.getBoundingClientRect();
    if (!r.width || getComputedStyle(el).visibility === 'hidden' || el.closest('[hidden], details:not([open]) > :not(summary)')) continue;
    let clipped = r.right > innerWidth + 1 || r.left < -1;
    for (let p = el.parentElement; p && !clipped; p = p.parentElement) {
      const s = getComputedStyle(p);
      if (s.overflowX !== 'visible') {
        const b = p.getBoundingClientRect();
        clipped = r.right > b.right + 1 || r.left < b.left - 1;
      }
    }
    if (clipped) out.push(el.tagName + ' "' + (el.textContent || el.value || el.id || '').trim().slice(0, 30) + '" right ' + Math.round(r.right));
  }
  return JSON.stringify(out);
})()`

// TestUIFitsATablet: at 820x1180 (a tablet held upright) every control of the main pages,
// and of a running session's page with its Live view and Remove buttons, is on the screen,
// none cut off by the edge or a scrolling table; the page never scrolls sideways.
func TestUIFitsATablet(t *testing.T) {
	requireChromium(t)
	s := newStack(t)
	_, ids := s.enclosures(3, "UITAB")
	sid := s.createSession(ids, 600)
	s.waitRecording(sid)
	const long = 90 * time.Second
	b := newBrowser(t, s.api.URL)
	b.do(chromedp.EmulateViewport(820, 1180))
	b.login("ann@lab.example", "correct horse")
	for _, page := range []string{"#/", fmt.Sprintf("#/sessions/%d", sid), "#/sessions", "#/enclosures", "#/sessions/new",
		"#/alerts", "#/schedules", "#/templates", "#/account"} {
		b.goTo(page)
		b.waitJS("the page "+page, `!!document.querySelector('main h1')`, long)
		if page == fmt.Sprintf("#/sessions/%d", sid) {
			b.waitJS("the enclosures' buttons", `[...document.querySelectorAll('main button')].some(x => x.textContent === 'Live view')`, long)
			// A 600 s session that is recording ends in at most 10 minutes, and says so.
			b.waitJS("the planned end and the time left", `/\((10 min|[1-9] min( \d+ s)?|\d+ s) left\)/.test(document.querySelector('#planned-end')?.textContent || '')`, long)
		}
		if page == "#/sessions" {
			b.waitJS("the running session's planned end", `document.querySelectorAll('tr.session-row .planned-end').length === 1`, long)
		}
		b.waitJS("the page's content "+page, `document.querySelectorAll('main *').length > 10`, long)
		var cut []string
		require.NoError(t, json.Unmarshal([]byte(b.eval(cutOffJS)), &cut))
		require.Empty(t, cut, "%s at 820 px: controls cut off", page)
		require.Equal(t, "true", b.eval(`String(document.documentElement.scrollWidth <= innerWidth)`), "%s scrolls sideways", page)
		b.shot("tablet-" + strings.ReplaceAll(page[2:], "/", "-"))
	}
	// The navigation's link to the API docs is on screen and opens Swagger UI.
	b.waitJS("the API docs link in view", `(() => { const r = document.querySelector('#api-docs')?.getBoundingClientRect();
		return !!r && r.width > 0 && r.right <= innerWidth && r.bottom <= innerHeight; })()`, long)
	b.eval(`(() => { fetch(document.querySelector('#api-docs').href).then(async (r) => {
		window.apiDocs = r.ok && /swagger/i.test(await r.text()) ? 'swagger' : 'status ' + r.status; }); return ''; })()`)
	b.waitJS("the API docs answer with Swagger UI", `window.apiDocs === 'swagger'`, long)
	b.noExceptions()
}
