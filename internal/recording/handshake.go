package recording

import "time"

// Phase is where an assigned enclosure is in the handshake (PROTOCOL.md section 5).
type Phase string

const (
	// PhaseStarting: START goes out on every heartbeat without a session until the enclosure
	// reports recording the assigned session.
	PhaseStarting Phase = "starting"
	// PhaseRecording: the enclosure acknowledged START and records.
	PhaseRecording Phase = "recording"
	// PhaseStopping: STOP goes out while the enclosure still records the session.
	PhaseStopping Phase = "stopping"
	// PhaseCompleting: the recording is over; COMPLETE goes out until the enclosure forgets it.
	PhaseCompleting Phase = "completing"
	// PhaseReset: the enclosure lost its session mid-recording (reboot); the workflow decides
	// whether to resume.
	PhaseReset Phase = "reset"
)

// EventKind is the kind of a transition sent to the device workflow.
type EventKind string

const (
	EventStarted  EventKind = "started"  // recording the assigned session
	EventEnded    EventKind = "ended"    // the recording is over (finished, failed or stopped)
	EventReset    EventKind = "reset"    // lost the session mid-recording
	EventReleased EventKind = "released" // forgot the finished session after COMPLETE
	EventSilent   EventKind = "silent"   // no heartbeat past the DOWN threshold (fleet monitor)
	EventReturned EventKind = "returned" // heartbeats again after being silent
	// EventFileUploaded: the upload agent finished sending one of the recording's files.
	EventFileUploaded EventKind = "file-uploaded"
)

// Event is a transition as the device workflow receives it: a signal payload, or the result
// of the command activity it completes. Its JSON is in recorded histories and outbox rows.
type Event struct {
	// ID is the outbox row's id. Delivery is at least once and in id order per enclosure, so
	// the workflow ignores ids it has already seen.
	ID        int64     `json:"id"`
	Kind      EventKind `json:"kind"`
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
