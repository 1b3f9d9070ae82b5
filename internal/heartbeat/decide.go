// Package heartbeat decides the reply to an enclosure's heartbeat and the transition it
// shows, from the enclosure's command mailbox (its assignment) and its report: the
// handshake of PROTOCOL.md section 5 as one pure function, so every rule is tested apart
// from HTTP and the database.
package heartbeat

import (
	"time"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/protocol"
)

// Assignment is an enclosure's mailbox row.
type Assignment struct {
	SessionID  int64
	Phase      recording.Phase
	Start      *recording.Start // the START to send while Starting
	WorkflowID string
	ActivityID string    // the pending command activity the next transition completes, if any
	UpdatedAt  time.Time // when the phase last changed
	// Resume, when set, lets a reboot mid-recording be resumed on the heartbeat that shows it
	// (the workflow wrote it: the session resumes); nil leaves the decision to the workflow.
	Resume *ResumePlan
}

// ResumePlan is what the heartbeat path needs to resume a rebooted enclosure itself: the
// workflow's policy (PROTOCOL.md 5.6) and the recording's plan.
type ResumePlan struct {
	PlannedEnd time.Time       `json:"planned_end"`
	MinSegment time.Duration   `json:"min_segment"`
	Segments   int             `json:"segments"` // segments whose START went out
	First      recording.Start `json:"first"`    // the first segment's START
}

// ResumeSeconds is how long a segment resumed at is to record, or 0 when no resume is due:
// the time left to the planned end, whole seconds, at least minSegment (and one second). The
// heartbeat path and the workflow judge by it alike.
func ResumeSeconds(plannedEnd, at time.Time, minSegment time.Duration) int64 {
	remaining := plannedEnd.Sub(at)
	if remaining < minSegment || remaining < time.Second {
		return 0
	}
	return int64(remaining / time.Second)
}

// next is the resume START of a reset seen at, and the plan after it; nil when none is due.
func (p *ResumePlan) next(at time.Time) (*recording.Start, *ResumePlan) {
	if p == nil {
		return nil, nil
	}
	seconds := ResumeSeconds(p.PlannedEnd, at, p.MinSegment)
	if seconds == 0 {
		return nil, nil
	}
	start := p.First.Resumed(p.Segments+1, seconds)
	plan := *p
	plan.Segments++
	return &start, &plan
}

// Report is what the heartbeat says about the recording.
type Report struct {
	SessionID int64 // 0 = none
	Recording bool
	Duration  int64
	ErrMsg    string
	At        time.Time // when the heartbeat arrived (server clock)
}

// Outcome is the decision for one heartbeat.
type Outcome struct {
	Reply protocol.Reply // Command "" means 204, no command
	// NewPhase, when set, replaces the assignment's phase (and clears its activity: the
	// transition below has settled it). Delete ends the assignment.
	NewPhase recording.Phase
	Delete   bool
	// Event, when set, is a transition for the workflow; CompleteActivity says it completes
	// the assignment's pending activity rather than arriving as a signal. "started" and
	// "released" only ever complete an activity: with none registered yet, the activity finds
	// the mailbox already moved on when it runs, so a signal would only lengthen the history.
	Event            recording.EventKind
	CompleteActivity bool
	// Start and Resume (with NewPhase Starting): the resume START this heartbeat sent, and the
	// plan after it, for the mailbox.
	Start  *recording.Start
	Resume *ResumePlan
}

// Decide applies PROTOCOL.md section 5. a is nil when the enclosure is not assigned;
// streaming says a viewer keeps the live stream alive.
func Decide(a *Assignment, r Report, streaming bool) Outcome {
	switch {
	case a == nil || (r.SessionID != 0 && r.SessionID != a.SessionID):
		return stale(r)
	case r.SessionID == 0:
		return withoutSession(a, r.At)
	case r.Recording:
		return whileRecording(a, streaming)
	default:
		return ended(a)
	}
}

// stale: the enclosure holds a session the server does not want (5.5): stop it if it still
// records, else let it forget. The assignment, if any, waits for the next heartbeat.
func stale(r Report) Outcome {
	switch {
	case r.SessionID == 0:
		return Outcome{}
	case r.Recording:
		return Outcome{Reply: protocol.Reply{Command: protocol.Stop}}
	}
	return Outcome{Reply: protocol.Reply{Command: protocol.Complete}}
}

// withoutSession: the enclosure reports no session.
func withoutSession(a *Assignment, at time.Time) Outcome {
	switch a.Phase {
	case recording.PhaseStarting:
		return Outcome{Reply: protocol.Reply{Command: protocol.Start, Start: a.Start}}
	case recording.PhaseRecording:
		// 5.6: it recorded our session and lost it: rebooted or its client restarted. When the
		// session resumes and time is left, the resume START goes out on this very heartbeat
		// (the workflow learns it from the reset and settles its START with the acknowledgement).
		if start, plan := a.Resume.next(at); start != nil {
			return Outcome{Reply: protocol.Reply{Command: protocol.Start, Start: start}, NewPhase: recording.PhaseStarting,
				Start: start, Resume: plan, Event: recording.EventReset}
		}
		return Outcome{NewPhase: recording.PhaseReset, Event: recording.EventReset}
	case recording.PhaseStopping:
		// Not recording any more (never started, or rebooted): the STOP has nothing left to do.
		return Outcome{Delete: true, Event: recording.EventEnded, CompleteActivity: a.ActivityID != ""}
	case recording.PhaseCompleting:
		// It forgot the finished session: COMPLETE arrived.
		return settleOnly(Outcome{Delete: true}, recording.EventReleased, a.ActivityID)
	}
	return Outcome{} // Reset: the workflow decides
}

// whileRecording: the enclosure records the assigned session.
func whileRecording(a *Assignment, streaming bool) Outcome {
	switch a.Phase {
	case recording.PhaseStarting, recording.PhaseReset:
		activity := ""
		if a.Phase == recording.PhaseStarting {
			activity = a.ActivityID
		}
		return settleOnly(Outcome{NewPhase: recording.PhaseRecording, Reply: streamReply(streaming)}, recording.EventStarted, activity)
	case recording.PhaseRecording:
		return Outcome{Reply: streamReply(streaming)}
	}
	// Stopping, or Completing and somehow recording again: it must stop.
	return Outcome{Reply: protocol.Reply{Command: protocol.Stop}}
}

// ended: the enclosure holds the assigned session and no longer records (5.4). COMPLETE goes
// out on this and every later heartbeat that carries the session.
func ended(a *Assignment) Outcome {
	out := Outcome{Reply: protocol.Reply{Command: protocol.Complete}}
	if a.Phase == recording.PhaseCompleting {
		return out
	}
	out.NewPhase = recording.PhaseCompleting
	out.Event = recording.EventEnded
	// A pending START (it failed at once) or STOP learns the outcome as its result; a
	// recording that ends on its own arrives as a signal.
	out.CompleteActivity = (a.Phase == recording.PhaseStarting || a.Phase == recording.PhaseStopping) && a.ActivityID != ""
	return out
}

// settleOnly adds event to out only when it completes a pending activity.
func settleOnly(out Outcome, event recording.EventKind, activityID string) Outcome {
	if activityID != "" {
		out.Event, out.CompleteActivity = event, true
	}
	return out
}

func streamReply(streaming bool) protocol.Reply {
	if streaming {
		return protocol.Reply{Command: protocol.Stream}
	}
	return protocol.Reply{}
}
