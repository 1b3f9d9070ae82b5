package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
)

// TestUIShowsSecondsLost: an enclosure reboots mid-recording and is resumed; the session's page
// shows what the reboot cost beside the session's status.
func TestUIShowsSecondsLost(t *testing.T) {
	requireChromium(t)
	s := newStack(t)
	sim, ids := s.enclosures(1, "UIL")
	sid := s.createSession(ids, 8)
	e := sim.Enclosures()[0]
	require.Eventually(t, func() bool { return e.State().Recording }, 30*time.Second, 50*time.Millisecond)
	s.waitResumePlan(ids[0]) // the service knows it records (a reboot before that is a START not acknowledged)
	e.GoSilent(3 * time.Second)
	e.Reboot()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("session: %+v", s.session(sid))
			t.Logf("enclosure: %+v", e.State())
		}
	})
	x := s.waitSession(sid, recording.SessionPartial, 60*time.Second)
	require.Positive(t, x.SecondsLost)
	require.Equal(t, x.DeviceStatuses[0].SecondsLost, x.SecondsLost)

	const long = 90 * time.Second
	b := newBrowser(t, s.api.URL)
	b.login("ann@lab.example", "correct horse")
	b.goTo(fmt.Sprintf("#/sessions/%d", sid))
	b.waitJS("the seconds lost beside the status", fmt.Sprintf(`(() => {
		const row = document.querySelector('.title-row');
		const badges = [...(row?.querySelectorAll('.badge') || [])].map(x => x.textContent);
		return badges.includes('PARTIAL') && row.innerText.includes(%q);
	})()`, fmt.Sprintf("%d s lost", x.SecondsLost)), long)
	b.shot("session-seconds-lost")
	b.noExceptions()
}
