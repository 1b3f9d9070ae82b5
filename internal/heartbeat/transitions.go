package heartbeat

import (
	"time"

	"github.com/jax-mba/mba/internal/recording"
)

// Previous is what the service knew of the enclosure before this heartbeat (its row).
type Previous struct {
	LastSeen  *time.Time // its last heartbeat; nil: never heard
	Recording bool       // it then reported recording
	Duration  *int64     // the recorded seconds it then reported, if any
	Silent    bool       // the fleet monitor has reported it silent since
}

// Transition is one outbox row for the device workflow: a signal, or, with ActivityID, the
// result of the assignment's pending command activity.
type Transition struct {
	Event      recording.Event
	ActivityID string
}

// withTransitions completes the handshake's outcome with everything the service learns from
// the heartbeat: the transitions for the workflow, in order, and the end report to keep.
func withTransitions(a *Assignment, r Report, out Outcome) Outcome {
	if (a == nil || a.SessionID != r.SessionID) && r.SessionID != 0 && !r.Recording && r.Duration > 0 {
		// The end of a session no longer assigned: its seconds still count.
		out.EndReport = &recording.Event{Kind: recording.EventEnded, At: r.At, SessionID: r.SessionID, Duration: r.Duration, ErrMsg: r.ErrMsg}
	}
	if a == nil {
		return out
	}
	if out.Event != "" {
		ev := recording.Event{Kind: out.Event, At: r.At, SessionID: a.SessionID, Duration: r.Duration, ErrMsg: r.ErrMsg,
			Stopped: a.Phase == recording.PhaseStopping, Resumed: out.Start != nil}
		if ev.Kind == recording.EventReset {
			// The restarted client's duration means nothing: the lost segment is measured by the
			// enclosure's last report before the loss, and its gap begins at that heartbeat.
			ev.Duration = 0
			if p := r.Previous; p.Recording && p.Duration != nil && *p.Duration > 0 {
				ev.Duration = *p.Duration
			}
			if r.Previous.LastSeen != nil {
				ev.LastHeard = *r.Previous.LastSeen
			}
		}
		if ev.Kind == recording.EventEnded {
			out.EndReport = &ev
		}
		t := Transition{Event: ev}
		if out.CompleteActivity {
			t.ActivityID = a.ActivityID
		}
		out.Transitions = append(out.Transitions, t)
	}
	if r.Previous.Silent && !out.Delete {
		// Only the handshake's transition settles an activity: the return is a signal.
		out.Transitions = append(out.Transitions, Transition{Event: recording.Event{Kind: recording.EventReturned, At: r.At, SessionID: a.SessionID}})
	}
	return out
}
