package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestUITablesSortNaturally: the fleet table lists NV2 before NV10; a click on a column's
// header sorts by it (numbers by value: 1.5 TB above 900 GB), a second click the other way,
// and the choice survives the page's refresh every few seconds.
func TestUITablesSortNaturally(t *testing.T) {
	requireChromium(t)
	s := newStack(t)
	_, err := s.pool.Exec(context.Background(), `
		INSERT INTO devices (name, free_disk, total_disk, last_seen_at) VALUES
		    ('NV10', 900000, 2000000, now()), ('NV2', 5000, 2000000, now()), ('nv1', 1500000, 2000000, now())`)
	require.NoError(t, err)
	const long = 90 * time.Second

	b := newBrowser(t, s.api.URL)
	b.login("ann@lab.example", "correct horse")
	b.goTo("#/enclosures")
	names := func(want string) {
		t.Helper()
		b.waitJS("the fleet table in order "+want, `[...document.querySelectorAll('main tbody tr td:first-child')].map(td => td.textContent).join(' ') === `+
			"'"+want+"'", long)
	}
	names("nv1 NV2 NV10")
	b.do(chromedp.Click(chromedp.CSS(`th:nth-child(1) button.sort`)))
	b.waitJS("name ascending", `document.querySelector('th:nth-child(1)').getAttribute('aria-sort') === 'ascending'`, long)
	names("nv1 NV2 NV10")
	b.do(chromedp.Click(chromedp.CSS(`th:nth-child(1) button.sort`)))
	names("NV10 NV2 nv1")
	b.waitJS("name descending", `document.querySelector('th:nth-child(1)').getAttribute('aria-sort') === 'descending'`, long)

	// Free disk by its bytes, not its text ("1.5 TB" < "900 GB" as text).
	b.do(chromedp.Click(chromedp.CSS(`th:nth-child(5) button.sort`)))
	names("NV2 NV10 nv1")
	b.shot("fleet-sorted-by-free-disk")
	// The list redraws every 5 s (a new table): the order stays.
	b.eval(`window.seenTable = document.querySelector('main tbody'), ''`)
	b.waitJS("the list redrawn", `document.querySelector('main tbody') !== window.seenTable`, long)
	names("NV2 NV10 nv1")
	b.noExceptions()
}
