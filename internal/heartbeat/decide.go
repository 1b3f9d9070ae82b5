// Package heartbeat decides the reply to an enclosure's heartbeat and the transition it
// shows, from the enclosure's command mailbox (its assignment) and its report: the
// handshake of PROTOCOL.md section 5 as one pure function, so every rule is tested apart
// from HTTP and the database.
package heartbeat

import (
	"time"

	"github.com/jax-mba/mba/protocol"
)

// Phase is where an assigned enclosure is in the handshake.
type Phase string

const (
	// Starting: START goes out on every heartbeat without a session until the enclosure
	// reports recording the assigned session.
	Starting Phase = "starting"
	// Recording: the enclosure acknowledged START and records.
	Recording Phase = "recording"
	// Stopping: STOP goes out while the enclosure still records the session.
	Stopping Phase = "stopping"
	// Completing: the recording is over; COMPLETE goes out until the enclosure forgets it.
	Completing Phase = "completing"
	// Reset: the enclosure lost its session mid-recording (reboot); the workflow decides
	// whether to resume.
	Reset Phase = "reset"
)

// Assignment is an enclosure's mailbox row.
type Assignment struct {
	SessionID  int64
	Phase      Phase
	Start      *protocol.StartParams // the START to send while Starting
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
	PlannedEnd time.Time            `json:"planned_end"`
	MinSegment time.Duration        `json:"min_segment"`
	Segments   int                  `json:"segments"` // segments whose START went out
	First      protocol.StartParams `json:"first"`    // the first segment's START
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
func (p *ResumePlan) next(at time.Time) (*protocol.StartParams, *ResumePlan) {
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
	Previous  Previous  // what the service knew of the enclosure before it
}

// Transition kinds sent to the device workflow.
const (
	EventStarted  = "started"  // recording the assigned session
	EventEnded    = "ended"    // the recording is over (finished, failed or stopped)
	EventReset    = "reset"    // lost the session mid-recording
	EventReleased = "released" // forgot the finished session after COMPLETE
	EventSilent   = "silent"   // no heartbeat past the DOWN threshold (fleet monitor)
	EventReturned = "returned" // heartbeats again after being silent
	// EventFileUploaded: the upload agent finished sending one of the recording's files.
	EventFileUploaded = "file-uploaded"
)

// Outcome is the decision for one heartbeat.
type Outcome struct {
	Reply protocol.Reply // Command "" means 204, no command
	// NewPhase, when set, replaces the assignment's phase (and clears its activity: the
	// transition below has settled it). Delete ends the assignment.
	NewPhase Phase
	Delete   bool
	// Event, when set, is a transition for the workflow; CompleteActivity says it completes
	// the assignment's pending activity rather than arriving as a signal. "started" and
	// "released" only ever complete an activity: with none registered yet, the activity finds
	// the mailbox already moved on when it runs, so a signal would only lengthen the history.
	Event            string
	CompleteActivity bool
	// Start and Resume (with NewPhase Starting): the resume START this heartbeat sent, and the
	// plan after it, for the mailbox.
	Start  *protocol.StartParams
	Resume *ResumePlan
	// Transitions are every row for the assignment's workflow, in order: Event first (with the
	// pending activity's id when CompleteActivity), then "returned" when the enclosure had been
	// silent.
	Transitions []Transition
	// EndReport, when set, is the end of a recording the enclosure reported, to keep with its
	// session: also of a session no longer assigned, whose seconds still count.
	EndReport *Event
}

// Decide applies PROTOCOL.md section 5. a is nil when the enclosure is not assigned;
// streaming says a viewer keeps the live stream alive. The store applies the outcome as it is.
func Decide(a *Assignment, r Report, streaming bool) Outcome {
	return withTransitions(a, r, handshake(a, r, streaming))
}

// handshake is the reply, the mailbox's change and the handshake's transition.
func handshake(a *Assignment, r Report, streaming bool) Outcome {
	switch {
	case a == nil || (r.SessionID != 0 && r.SessionID != a.SessionID):
		return stale(r)
	case r.SessionID == 0:
		return withoutSession(a, r.At)
	case r.Recording:
		return recording(a, streaming)
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
	case Starting:
		return Outcome{Reply: protocol.Reply{Command: protocol.Start, Start: a.Start}}
	case Recording:
		// 5.6: it recorded our session and lost it: rebooted or its client restarted. When the
		// session resumes and time is left, the resume START goes out on this very heartbeat
		// (the workflow learns it from the reset and settles its START with the acknowledgement).
		if start, plan := a.Resume.next(at); start != nil {
			return Outcome{Reply: protocol.Reply{Command: protocol.Start, Start: start}, NewPhase: Starting,
				Start: start, Resume: plan, Event: EventReset}
		}
		return Outcome{NewPhase: Reset, Event: EventReset}
	case Stopping:
		// Not recording any more (never started, or rebooted): the STOP has nothing left to do.
		return Outcome{Delete: true, Event: EventEnded, CompleteActivity: a.ActivityID != ""}
	case Completing:
		// It forgot the finished session: COMPLETE arrived.
		return settleOnly(Outcome{Delete: true}, EventReleased, a.ActivityID)
	}
	return Outcome{} // Reset: the workflow decides
}

// recording: the enclosure records the assigned session.
func recording(a *Assignment, streaming bool) Outcome {
	switch a.Phase {
	case Starting, Reset:
		activity := ""
		if a.Phase == Starting {
			activity = a.ActivityID
		}
		return settleOnly(Outcome{NewPhase: Recording, Reply: streamReply(streaming)}, EventStarted, activity)
	case Recording:
		return Outcome{Reply: streamReply(streaming)}
	}
	// Stopping, or Completing and somehow recording again: it must stop.
	return Outcome{Reply: protocol.Reply{Command: protocol.Stop}}
}

// ended: the enclosure holds the assigned session and no longer records (5.4). COMPLETE goes
// out on this and every later heartbeat that carries the session.
func ended(a *Assignment) Outcome {
	out := Outcome{Reply: protocol.Reply{Command: protocol.Complete}}
	if a.Phase == Completing {
		return out
	}
	out.NewPhase = Completing
	out.Event = EventEnded
	// A pending START (it failed at once) or STOP learns the outcome as its result; a
	// recording that ends on its own arrives as a signal.
	out.CompleteActivity = (a.Phase == Starting || a.Phase == Stopping) && a.ActivityID != ""
	return out
}

// settleOnly adds event to out only when it completes a pending activity.
func settleOnly(out Outcome, event, activityID string) Outcome {
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

// Event is a transition as the device workflow receives it: a signal payload, or the result
// of the command activity it completes.
type Event struct {
	// ID is the outbox row's id. Delivery is at least once and in id order per enclosure, so
	// the workflow ignores ids it has already seen.
	ID        int64     `json:"id"`
	Kind      string    `json:"kind"`
	At        time.Time `json:"at"` // server clock
	SessionID int64     `json:"session_id"`
	Duration  int64     `json:"duration,omitempty"` // recorded seconds the enclosure reported (reset: of the lost segment)
	// LastHeard (reset): the last heartbeat of the lost segment, where its gap begins.
	LastHeard time.Time `json:"last_heard,omitzero"`
	ErrMsg    string    `json:"err_msg,omitempty"`
	Stopped   bool      `json:"stopped,omitempty"` // ended because of our STOP
	File      string    `json:"file,omitempty"`    // file-uploaded: the file's name
	Upload    int       `json:"upload,omitempty"`  // file-uploaded: how many uploads of it completed
	// Resumed (reset): the heartbeat that showed the reset already sent the resume START, for
	// the time left at At.
	Resumed bool `json:"resumed,omitempty"`
}
