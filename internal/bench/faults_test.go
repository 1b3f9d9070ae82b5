package bench

import (
	"encoding/xml"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The fault scenario's accounting: what a fault excuses and what it does not.
func TestBenchFaultTally(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	events := []beatEvent{
		{at: at(1), name: "A", status: 204},
		{at: at(2), name: "A", status: 503},                   // before the fault: an error
		{at: at(11), name: "A", status: 0},                    // serve down: excused
		{at: at(12), name: "B", status: 503},                  // in the outage: excused
		{at: at(13), name: "B", status: 500},                  // never excused
		{at: at(21), name: "A", status: 200, command: "STOP"}, // answered again 1 s after the heal
		{at: at(23), name: "B", status: 204},                  // 3 s after
		{at: at(60), name: "B", status: 0},                    // after the excuse: an error
	}
	o := outage{from: at(10), serveDown: true, excuseUntil: at(35), phaseFrom: at(0), at: at(100)}
	require.Equal(t, beatTally{Sent: 8, OK: 3, Outage503: 1, Unanswered: 1, Errors: 3}, tally(events, o))

	o.serveDown = false // the API was up: silence is an error
	require.Equal(t, 4, tally(events, o).Errors)

	require.Equal(t, 3.0, answeredAgain(events, []string{"A", "B"}, at(10), at(20)))
	require.Equal(t, -1.0, answeredAgain(events, []string{"A", "C"}, at(10), at(20)), "C never answered")
	require.Equal(t, 0.0, answeredAgain(events, []string{"A"}, at(21), at(22)), "nothing failed in the fault")

	require.Equal(t, at(21), firstCommand(events, "A", "STOP", at(0)))
	require.True(t, firstCommand(events, "A", "STOP", at(22)).IsZero())

	svg := timelineSVG(events, t0, []FaultPhase{{Fault: "serve kill -9 & <restart>", InjectAtS: 10, HealAtS: 20}})
	var doc struct {
		XMLName xml.Name
	}
	require.NoError(t, xml.Unmarshal(svg, &doc), "the timeline is well-formed XML")
	require.Equal(t, "svg", doc.XMLName.Local)
}
