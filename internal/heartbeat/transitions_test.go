package heartbeat

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/protocol"
)

// TestDecideTransitions: Decide says everything the workflow learns from a heartbeat, in order
// (the outbox rows), which of them completes the pending activity, and which end the enclosure
// reported is kept with its session.
func TestDecideTransitions(t *testing.T) {
	at := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	heard := at.Add(-time.Minute)
	lastDuration := int64(3000)
	silent := Previous{Silent: true, LastSeen: &heard}
	for _, tc := range []struct {
		name  string
		a     *Assignment
		r     Report
		want  []Transition
		ended *recording.Event // the end report kept
	}{
		{"idle enclosure: nothing", nil, Report{At: at}, nil, nil},
		{"START acknowledged: started completes the START activity", assigned(recording.PhaseStarting, "a1"), Report{SessionID: 12, Recording: true, Duration: 2, At: at},
			[]Transition{{Event: recording.Event{Kind: recording.EventStarted, At: at, SessionID: 12, Duration: 2}, ActivityID: "a1"}}, nil},
		{"acknowledged before the activity registered: nothing to send", assigned(recording.PhaseStarting, ""), Report{SessionID: 12, Recording: true, At: at}, nil, nil},
		{"finished on its own: an ended signal, and its report kept", assigned(recording.PhaseRecording, ""), Report{SessionID: 12, Duration: 86400, ErrMsg: "x", At: at},
			[]Transition{{Event: recording.Event{Kind: recording.EventEnded, At: at, SessionID: 12, Duration: 86400, ErrMsg: "x"}}},
			&recording.Event{Kind: recording.EventEnded, At: at, SessionID: 12, Duration: 86400, ErrMsg: "x"}},
		{"stopped: ended, stopped, completes the STOP activity", assigned(recording.PhaseStopping, "s1"), Report{SessionID: 12, Duration: 100, At: at},
			[]Transition{{Event: recording.Event{Kind: recording.EventEnded, At: at, SessionID: 12, Duration: 100, Stopped: true}, ActivityID: "s1"}},
			&recording.Event{Kind: recording.EventEnded, At: at, SessionID: 12, Duration: 100, Stopped: true}},
		{"stopping one that never started", assigned(recording.PhaseStopping, "s1"), Report{At: at},
			[]Transition{{Event: recording.Event{Kind: recording.EventEnded, At: at, SessionID: 12, Stopped: true}, ActivityID: "s1"}},
			&recording.Event{Kind: recording.EventEnded, At: at, SessionID: 12, Stopped: true}},
		{"released completes the COMPLETE activity", assigned(recording.PhaseCompleting, "c1"), Report{At: at},
			[]Transition{{Event: recording.Event{Kind: recording.EventReleased, At: at, SessionID: 12}, ActivityID: "c1"}}, nil},
		{"reset: the lost segment measured by the last report before it", assigned(recording.PhaseRecording, ""),
			Report{Duration: 5, At: at, Previous: Previous{LastSeen: &heard, Recording: true, Duration: &lastDuration}},
			[]Transition{{Event: recording.Event{Kind: recording.EventReset, At: at, SessionID: 12, Duration: 3000, LastHeard: heard}}}, nil},
		{"reset of one that was not recording: no seconds", assigned(recording.PhaseRecording, ""),
			Report{Duration: 5, At: at, Previous: Previous{LastSeen: &heard, Duration: &lastDuration}},
			[]Transition{{Event: recording.Event{Kind: recording.EventReset, At: at, SessionID: 12, LastHeard: heard}}}, nil},
		{"back after a silence: returned, a signal after the handshake's", assigned(recording.PhaseStarting, "a1"), Report{SessionID: 12, Recording: true, At: at, Previous: silent},
			[]Transition{{Event: recording.Event{Kind: recording.EventStarted, At: at, SessionID: 12}, ActivityID: "a1"}, {Event: recording.Event{Kind: recording.EventReturned, At: at, SessionID: 12}}}, nil},
		{"back after a silence, nothing else new", assigned(recording.PhaseRecording, ""), Report{SessionID: 12, Recording: true, At: at, Previous: silent},
			[]Transition{{Event: recording.Event{Kind: recording.EventReturned, At: at, SessionID: 12}}}, nil},
		{"back after a silence, as the mailbox ends: no return to tell", assigned(recording.PhaseCompleting, ""), Report{At: at, Previous: silent}, nil, nil},
		{"back after a silence, not assigned: no workflow to tell", nil, Report{At: at, Previous: silent}, nil, nil},
		{"the end of a session no longer assigned: only its report kept", nil, Report{SessionID: 9, Duration: 60, ErrMsg: "y", At: at}, nil,
			&recording.Event{Kind: recording.EventEnded, At: at, SessionID: 9, Duration: 60, ErrMsg: "y"}},
		{"the end of another session than the assigned one", assigned(recording.PhaseStarting, "a1"), Report{SessionID: 9, Duration: 60, At: at}, nil,
			&recording.Event{Kind: recording.EventEnded, At: at, SessionID: 9, Duration: 60}},
		{"a stale session that recorded nothing: no report", nil, Report{SessionID: 9, At: at}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := Decide(tc.a, tc.r, false)
			require.Equal(t, tc.want, out.Transitions)
			require.Equal(t, tc.ended, out.EndReport)
			require.Equal(t, handshake(tc.a, tc.r, false).Reply, out.Reply, "the transitions change no reply")
		})
	}

	// A resume START sent on the heartbeat of the reset says so.
	a := assigned(recording.PhaseRecording, "")
	a.Resume = &ResumePlan{PlannedEnd: at.Add(time.Hour), MinSegment: time.Minute, Segments: 1, First: *params}
	out := Decide(a, Report{At: at}, false)
	require.Equal(t, protocol.Start, out.Reply.Command)
	require.Equal(t, []Transition{{Event: recording.Event{Kind: recording.EventReset, At: at, SessionID: 12, Resumed: true}}}, out.Transitions)
}
