package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/auth"
)

// chromiumPath is Debian's chromium (scripts/devenv.sh installs it for make test);
// MBA_CHROMIUM points elsewhere.
func chromiumPath() string {
	if p := os.Getenv("MBA_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// artifactsDir is where the screenshots go: MBA_TEST_ARTIFACTS, else artifacts/screenshots
// in the checkout (gitignored), so they are there to look at after make test.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("MBA_TEST_ARTIFACTS")
	if dir == "" {
		wd, err := os.Getwd()
		require.NoError(t, err)
		dir = filepath.Join(wd, "..", "..", "artifacts", "screenshots")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	// Screenshots of an earlier run would mix with this one's.
	old, err := filepath.Glob(filepath.Join(dir, "[0-9][0-9]-*.png"))
	require.NoError(t, err)
	for _, f := range old {
		require.NoError(t, os.Remove(f))
	}
	abs, err := filepath.Abs(dir)
	require.NoError(t, err)
	return abs
}

// browser is one headless Chromium tab on the stack's web UI.
type browser struct {
	t      *testing.T
	ctx    context.Context
	base   string
	shots  string
	nshot  int
	errors chan string // uncaught JavaScript exceptions
}

// requireChromium skips (-short) or fails the test when there is no Chromium to drive.
func requireChromium(t *testing.T) string {
	t.Helper()
	path := chromiumPath()
	if _, err := os.Stat(path); err != nil {
		if testing.Short() {
			t.Skipf("no Chromium at %s (the browser tests need Debian's chromium; make test installs it)", path)
		}
		t.Fatalf("no Chromium at %s: install Debian's chromium (scripts/test.sh does) or set MBA_CHROMIUM", path)
	}
	return path
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path := requireChromium(t)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })

	b := &browser{t: t, ctx: ctx, base: base, shots: artifactsDir(t), errors: make(chan string, 100)}
	// confirm() dialogs (cancel, remove) are accepted as a user would.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			select {
			case b.errors <- (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error():
			default:
			}
		}
	}()
	b.do(chromedp.Navigate(base + "/"))
	t.Logf("screenshots in %s", b.shots)
	return b
}

// do runs browser actions, failing the test (with a screenshot) on error.
func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail("browser action failed: %v", err)
	}
}

// eval evaluates a JavaScript expression.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.fail("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript condition until it holds.
func (b *browser) waitJS(what, cond string, within time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(200*time.Millisecond)))
	if err != nil {
		b.fail("waiting for %s: %v", what, err)
	}
}

// waitText waits until the text is on the page.
func (b *browser) waitText(text string, within time.Duration) {
	b.t.Helper()
	b.waitJS(fmt.Sprintf("text %q", text), fmt.Sprintf("document.body.innerText.includes(%q)", text), within)
}

// setValue replaces the value of an input as typing would (input event included).
func (b *browser) setValue(selector, value string) {
	b.t.Helper()
	b.eval(fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.value = %q;
		el.dispatchEvent(new Event('input', {bubbles: true})); return ''; })()`, selector, value))
}

// login signs in on the login form the page shows and waits for the dashboard.
func (b *browser) login(email, password string) {
	b.t.Helper()
	const within = 90 * time.Second
	b.waitJS("the login form", `!!document.querySelector('input[type=email]')`, within)
	b.do(chromedp.SendKeys(chromedp.CSS(`input[type=email]`), email),
		chromedp.SendKeys(chromedp.CSS(`input[type=password]`), password),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitText("Fleet", within)
}

func (b *browser) goTo(hash string) {
	b.t.Helper()
	b.eval(fmt.Sprintf("location.hash = %q, ''", hash))
}

// shot saves a full-page screenshot as NN-name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	b.nshot++
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.nshot, name)), buf, 0o644))
}

func (b *browser) fail(format string, args ...any) {
	b.t.Helper()
	b.shot("failure")
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("location.href + '\\n' + document.body.innerText"))
	b.t.Fatalf("%s\npage:\n%s", fmt.Sprintf(format, args...), text)
}

// noExceptions fails the test if the page threw any uncaught JavaScript exception.
func (b *browser) noExceptions() {
	b.t.Helper()
	var seen []string
	for {
		select {
		case e := <-b.errors:
			seen = append(seen, e)
		default:
			require.Empty(b.t, seen, "uncaught JavaScript exceptions")
			return
		}
	}
}

// TestUI drives the web UI in headless Chromium through a researcher's day: log in, see the
// simulated enclosures, start a session over several with the form (after one refused
// attempt), watch them record, remove one, see the session end, archive it, log out.
func TestUI(t *testing.T) {
	requireChromium(t)
	s := newStack(t)
	b := newBrowser(t, s.api.URL)
	s.enclosures(4, "UIA")
	const long = 90 * time.Second

	// Signed out, every page leads to the login form.
	b.waitJS("the login form", `!!document.querySelector('input[type=email]') && location.hash.startsWith('#/login')`, long)
	b.shot("login")
	b.do(chromedp.SendKeys(chromedp.CSS(`input[type=email]`), "ann@lab.example"),
		chromedp.SendKeys(chromedp.CSS(`input[type=password]`), "wrong password"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitText("unable to authenticate user", long)
	b.setValue(`input[type=password]`, "correct horse")
	b.do(chromedp.Click(chromedp.CSS(`button[type=submit]`)))

	// The dashboard counts the simulated enclosures as they report.
	b.waitText("Fleet", long)
	b.waitJS("four IDLE enclosures on the dashboard", `document.querySelector('.tile-idle .tile-count')?.textContent === '4'`, long)
	b.waitText("All clear", long)
	b.shot("dashboard")

	// An access token that no longer works is renewed with the refresh token, which rotates: the
	// UI stays signed in and holds a new refresh token.
	oldRefresh := b.eval(`JSON.parse(sessionStorage.getItem('mba.tokens')).refresh`)
	b.eval(`(() => { const t = JSON.parse(sessionStorage.getItem('mba.tokens')); t.access = t.access.slice(0, -6) + 'AAAAAA'; // bad signature
		sessionStorage.setItem('mba.tokens', JSON.stringify(t)); return ''; })()`)
	b.do(chromedp.Reload())
	b.waitJS("a rotated refresh token", fmt.Sprintf(`(JSON.parse(sessionStorage.getItem('mba.tokens') || '{}').refresh || %q) !== %q`,
		oldRefresh, oldRefresh), long)
	b.waitText("Fleet", long)
	b.waitJS("still signed in", `!location.hash.startsWith('#/login')`, long)

	b.goTo("#/enclosures")
	for i := 1; i <= 4; i++ {
		b.waitText(fmt.Sprintf("UIA%d", i), long)
	}
	b.do(chromedp.SendKeys(chromedp.CSS(`input[type=search]`), "UIA3"))
	b.waitText("1 of 4 enclosures", long)
	b.shot("enclosures")
	b.do(chromedp.Click(chromedp.Search(`//a[text()="UIA3"]`)))
	b.waitJS("the enclosure page", `document.querySelector('h1')?.textContent === 'UIA3'`, long)
	b.waitText("Frame rate", long)
	b.waitText("This enclosure has not been in a session yet.", long)
	// An administrator binds it to the address it registered from, and lifts the binding.
	b.waitText("Registered from", long)
	b.do(chromedp.Click(chromedp.Search(`//button[text()="Bind to registered address"]`)))
	b.waitText("Unbind address", long)
	b.waitJS("bound to loopback", `document.body.innerText.includes('127.0.0.1')`, long)
	b.do(chromedp.Click(chromedp.Search(`//button[text()="Unbind address"]`)))
	b.waitText("any allowed address", long)
	b.shot("enclosure")

	// A session without a name or enclosures is refused, and the reasons stand next to the fields.
	b.goTo("#/sessions/new")
	b.waitText("New recording session", long)
	b.do(chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitJS("the name's validation message", `document.querySelector('[data-error-for="name"]')?.textContent.includes('required')`, long)
	b.waitJS("the enclosures' validation message", `document.querySelector('[data-error-for="device_spec"]')?.textContent.includes('at least one')`, long)
	b.waitJS("one summary above, not the reasons twice", `document.querySelector('.form-error')?.textContent === 'Check the fields marked below.'`, long)
	b.shot("new-session-invalid")

	// Choose the enclosures with the filter, prefixes by bulk paste, one minute long.
	b.setValue(`#f-duration-days`, "0")
	b.setValue(`#f-duration-minutes`, "1")
	b.do(chromedp.SendKeys(chromedp.CSS(`#f-name`), "UI session"),
		chromedp.SendKeys(chromedp.CSS(`input[type=search]`), "UIA"))
	b.waitJS("the chooser filtered", `document.querySelectorAll('table.chooser tbody tr').length === 4`, long)
	b.do(chromedp.Click(chromedp.CSS(`table.chooser thead input[type=checkbox]`)))
	b.waitText("4 enclosures chosen", long)
	b.do(chromedp.Click(chromedp.CSS(`details.bulk summary`)),
		chromedp.SendKeys(chromedp.CSS(`#f-bulk`), "UIA2 cage-two\nUIA1 cage-one\n"),
		chromedp.Click(chromedp.Search(`//button[text()="Apply prefixes"]`)))
	b.waitText("Applied 2 prefixes.", long)
	require.Equal(t, "cage-two", b.eval(`document.querySelector('input[aria-label="File prefix for UIA2"]').value`))
	b.shot("new-session")
	b.do(chromedp.Click(chromedp.CSS(`button[type=submit]`)))

	// The session page: every enclosure goes RECORDING.
	b.waitJS("the session page", `/^#\/sessions\/\d+$/.test(location.hash)`, long)
	sid := strings.TrimPrefix(b.eval(`location.hash`), "#/sessions/")
	recording := `[...document.querySelectorAll('tbody tr')].filter(r => r.className === 'row-recording').length`
	b.waitJS("four enclosures RECORDING", recording+` === 4`, long)
	b.waitText("cage-one", long)
	href := b.eval(`[...document.querySelectorAll('a')].find(a => a.textContent === 'Workflow in Temporal')?.href || ''`)
	require.Equal(t, "http://127.0.0.1:8233/namespaces/default/workflows/recording-session-"+sid, href)
	b.shot("session-recording")

	// Remove one enclosure right away (the session lasts a minute); the others record on.
	b.do(chromedp.Click(chromedp.Search(`//tr[td/a[text()="UIA4"]]//button[text()="Remove"]`)))
	b.waitJS("UIA4 CANCELED", `[...document.querySelectorAll('tr.row-canceled a')].some(a => a.textContent === 'UIA4')`, long)

	// Live view of one enclosure: the stream request is kept alive and its address shown.
	b.do(chromedp.Click(chromedp.Search(`//tr[td/a[text()="UIA1"]]//button[text()="Live view"]`)))
	b.waitText("Streaming UIA1 live", long)
	b.waitJS("the stream kept alive", `document.querySelectorAll('.live-panel .live-dot').length === 1`, long)
	b.waitText("/uia1", long)
	b.shot("live-view")
	b.do(chromedp.Click(chromedp.Search(`//tr[td/a[text()="UIA1"]]//button[text()="Close live view"]`)))

	// A new session flags an enclosure that is busy before it is submitted.
	b.goTo("#/sessions/new")
	b.do(chromedp.Click(chromedp.Search(`//tr[td/label[text()="UIA2"]]//input[@type="checkbox"]`)))
	b.waitText("Busy in another session (they will be listed FAILED): UIA2", long)
	b.shot("new-session-busy-flagged")

	// The dashboard shows the session in progress.
	b.goTo("#/")
	b.waitText("UI session", long)
	// UIA4 stays BUSY until it has taken COMPLETE: three or four.
	b.waitJS("BUSY enclosures", `Number(document.querySelector('.tile-busy .tile-count')?.textContent) >= 3`, long)
	b.shot("dashboard-busy")
	// The same on a tablet.
	b.do(chromedp.EmulateViewport(768, 1024))
	b.shot("dashboard-tablet")
	b.goTo("#/sessions/" + sid)
	b.waitJS("the session page with UIA4 canceled", `document.querySelectorAll('tr.row-canceled').length === 1`, long)
	b.shot("session-tablet")
	b.do(chromedp.EmulateViewport(1280, 900))

	// The others finish the minute, and the session ends COMPLETE: UIA4 was removed on purpose.
	b.waitJS("the session over", `document.querySelector('.title-row .badge')?.textContent === 'COMPLETE'`, 3*time.Minute)
	b.waitJS("three enclosures COMPLETE", `document.querySelectorAll('tr.row-complete').length === 3`, long)
	b.shot("session-finished")

	// The enclosure's page now lists the session, and plots what it recorded.
	b.do(chromedp.Click(chromedp.Search(`//a[text()="UIA1"]`)))
	b.waitJS("the enclosure page", `document.querySelector('h1')?.textContent === 'UIA1'`, long)
	b.waitJS("the session in its recent sessions", `[...document.querySelectorAll('td a')].some(a => a.textContent === 'UI session')`, long)
	b.shot("enclosure-after-session")
	b.goTo("#/sessions/" + sid)
	b.waitJS("the finished session", `document.querySelector('.title-row .badge')?.textContent === 'COMPLETE'`, long)

	// Archive it: it leaves the active list for the archived one.
	b.do(chromedp.Click(chromedp.Search(`//button[text()="Archive"]`)))
	b.waitJS("the archived badge", `[...document.querySelectorAll('.title-row .badge')].some(x => x.textContent === 'ARCHIVED')`, long)
	b.waitJS("the unarchive button", `[...document.querySelectorAll('button')].some(x => x.textContent === 'Unarchive')`, long)
	b.goTo("#/sessions")
	b.waitText("No session yet.", long)
	b.goTo("#/sessions?archived=true")
	b.waitText("UI session", long)
	b.shot("sessions-archived")

	// The admin pages and the account page render.
	b.goTo("#/users")
	b.waitText("ann@lab.example", long)
	b.waitText("Send invitation", long)
	b.shot("users")
	b.goTo("#/account")
	b.waitText("Signed in as ann@lab.example", long)
	b.shot("account")

	// Log out: tokens are gone and the app asks to log in again.
	b.do(chromedp.Click(chromedp.CSS(`#logout`)))
	b.waitJS("the login form", `location.hash.startsWith('#/login') && !!document.querySelector('input[type=email]')`, long)
	require.Equal(t, "none", b.eval(`sessionStorage.getItem('mba.tokens') || 'none'`))

	// The link of an invite or reset e-mail is a plain path; the app takes it over. A used or
	// forged token is refused with the server's message.
	b.do(chromedp.Navigate(b.base + "/reset/1/not-a-real-token"))
	b.waitText("Choose your password", long)
	require.Equal(t, "#/reset/1/not-a-real-token", b.eval(`location.hash`))
	b.setValue(`#f-password`, "a new password")
	b.setValue(`#f-again`, "a new password")
	b.do(chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitText("the link is invalid, used or expired", long)
	b.shot("reset-password-refused")
	b.goTo("#/forgot")
	b.waitText("Forgot password", long)
	b.shot("forgot-password")

	// A researcher who is no administrator has no Users page.
	hash, err := auth.Hasher{MemoryKiB: 1024, Time: 1, Threads: 1}.Hash("another horse")
	require.NoError(t, err)
	_, err = s.store.CreateUser(context.Background(), "bo@lab.example", hash, false)
	require.NoError(t, err)
	b.goTo("#/login")
	b.waitJS("the login form", `!!document.querySelector('input[type=email]')`, long)
	b.do(chromedp.SendKeys(chromedp.CSS(`input[type=email]`), "bo@lab.example"),
		chromedp.SendKeys(chromedp.CSS(`input[type=password]`), "another horse"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitText("Fleet", long)
	require.Equal(t, "no", b.eval(`document.querySelector('#nav a[href="#/users"]') ? 'yes' : 'no'`))
	b.goTo("#/users")
	b.waitText("Administrators only", long)
	b.noExceptions()
}

// TestUIShowsOutages: what the UI shows is current. An enclosure that went silent mid-recording
// is DOWN since its last heartbeat (no stale RECORDING badge, fps or live view), its heartbeat
// gaps plot the outage, and a session whose enclosures are all DOWN and a FAILED session are
// listed under "Needs attention".
func TestUIShowsOutages(t *testing.T) {
	requireChromium(t)
	// Silent recording enclosures stay in their session for the test's length (not "lost").
	s := newStack(t, func(s *stack) { s.settings.SilenceTimeout, s.settings.EndGrace = time.Hour, time.Hour })
	sim, ids := s.enclosures(3, "UIB")
	down := s.createSession(ids[:2], 3600)
	failed := s.createSession(ids[2:], 3600)
	const long = 90 * time.Second
	require.Eventually(t, func() bool {
		for _, sid := range []int64{down, failed} {
			for _, st := range s.session(sid).DeviceStatuses {
				if st.Status != "RECORDING" {
					return false
				}
			}
		}
		return true
	}, long, 100*time.Millisecond, "the sessions never recorded")

	b := newBrowser(t, s.api.URL)
	b.waitJS("the login form", `!!document.querySelector('input[type=email]')`, long)
	b.do(chromedp.SendKeys(chromedp.CSS(`input[type=email]`), "ann@lab.example"),
		chromedp.SendKeys(chromedp.CSS(`input[type=password]`), "correct horse"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.waitText("Fleet", long)

	// While it records, the enclosure's page shows it recording with its frame rate and live view.
	b.goTo(fmt.Sprintf("#/enclosures/%d", ids[0]))
	b.waitJS("UIB1 recording", `[...document.querySelectorAll('.title-row .badge')].some(x => x.textContent === 'RECORDING')`, long)
	b.waitJS("the live view button", `[...document.querySelectorAll('.title-row button')].some(x => x.textContent === 'Live view')`, long)

	sim.Enclosure("UIB3").FailRecording("camera unplugged")
	s.waitSession(failed, "FAILED", long)
	for _, e := range sim.Enclosures()[:2] {
		e.GoSilent(time.Hour)
	}

	b.waitJS("UIB1 DOWN", `[...document.querySelectorAll('.title-row .badge')].map(x => x.textContent).join() === 'DOWN'`, long)
	b.waitJS("since when", `/^since /.test(document.querySelector('.title-row .down-since')?.textContent || '')`, long)
	require.Equal(t, "no", b.eval(`[...document.querySelectorAll('button')].some(x => x.textContent === 'Live view') ? 'yes' : 'no'`),
		"no live view of a DOWN enclosure")
	b.waitText("unknown (DOWN)", long)
	require.NotContains(t, b.eval(`document.querySelector('.facts').innerText`), " fps", "no stale frame rate")
	// The heartbeat gap plot ends with the outage so far: seconds, where heartbeats came every 0.2 s.
	gap := `Number((([...document.querySelectorAll('figure.chart')].find(f => f.querySelector('figcaption')?.textContent === 'Heartbeat gaps')
		?.querySelector('.chart-latest')?.textContent || '').match(/latest ([\d.]+) s/) || [0, 0])[1])`
	b.waitJS("the outage on the heartbeat gap plot", gap+` >= 5`, long)
	b.shot("enclosure-down")

	b.goTo("#/enclosures")
	b.waitJS("DOWN and no stale fps in the list", `[...document.querySelectorAll('tbody tr')].some(r =>
		r.cells[0].textContent === 'UIB1' && r.cells[2].textContent === 'DOWN' && r.cells[5].textContent === '–')`, long)

	b.goTo("#/")
	b.waitText("Needs attention", long)
	b.waitText(`Session “e2e”: all 2 of its enclosures still recording are DOWN`, long)
	b.waitText(`Session “e2e” failed: no enclosure recorded`, long)
	b.waitText("UIB1 is DOWN", long)
	b.shot("dashboard-outage")
	b.noExceptions()
}
