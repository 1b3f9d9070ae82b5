package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// contrastJS returns, for every visible element with text of its own on the page, its WCAG
// contrast ratio against the background it sits on (the first ancestor with an opaque one),
// as [{what, ratio}] for those under 4.5.
const contrastJS = `(() => {
  const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const bgOf = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || c[3] > 0.9) return c.slice(0, 3);
    }
    return rgb(getComputedStyle(document.documentElement).backgroundColor).slice(0, 3);
  };
  const low = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length || getComputedStyle(el).visibility === 'hidden') continue;
    const a = lum(rgb(getComputedStyle(el).color)), b = lum(bgOf(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) low.push({ what: el.tagName + '.' + el.className + ': ' + el.textContent.trim().slice(0, 40), ratio: Math.round(ratio * 100) / 100 });
  }
  return JSON.stringify(low);
})()`

// TestUIThemesAreReadable: the UI follows the system's colour scheme (a dark one when asked),
// and in both every text on the dashboard, the fleet and the account page has a contrast of at
// least 4.5:1 against what it sits on (WCAG AA), measured in the browser.
func TestUIThemesAreReadable(t *testing.T) {
	requireChromium(t)
	s := newStack(t)
	s.enclosures(2, "UIT")
	const long = 90 * time.Second
	b := newBrowser(t, s.api.URL)
	b.login("ann@lab.example", "correct horse")
	for _, scheme := range []string{"light", "dark"} {
		b.do(chromedp.Func(func(ctx context.Context, target *chromedp.Target) error {
			_, err := cdp.Call(ctx, target, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
			return err
		}))
		dark := b.eval(`String(matchMedia('(prefers-color-scheme: dark)').matches)`)
		require.Equal(t, scheme == "dark", dark == "true")
		bg := b.eval(`getComputedStyle(document.documentElement).backgroundColor`)
		if scheme == "dark" {
			require.Equal(t, "rgb(20, 24, 28)", bg, "the dark background")
		} else {
			require.Equal(t, "rgb(244, 246, 248)", bg)
		}
		for _, page := range []string{"#/", "#/enclosures", "#/account"} {
			b.goTo(page)
			b.waitJS("the page "+page, `!!document.querySelector('main h1') && !document.querySelector('main .loading')`, long)
			b.waitJS("the page's content "+page, `document.querySelectorAll('main *').length > 10`, long)
			var low []struct {
				What  string
				Ratio float64
			}
			require.NoError(t, json.Unmarshal([]byte(b.eval(contrastJS)), &low))
			require.Empty(t, low, "%s in the %s theme: text under 4.5:1", page, scheme)
		}
		b.shot("theme-" + scheme)
	}
	b.noExceptions()
}
