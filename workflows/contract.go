package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
)

// Workflow IDs are deterministic, so an operator finds a session's workflows by its id and
// starting one twice is harmless.

// SessionWorkflowID is the ID of a session's RecordingSession workflow.
func SessionWorkflowID(sessionID int64) string { return fmt.Sprintf("recording-session-%d", sessionID) }

// DeviceWorkflowID is the ID of one enclosure's DeviceRecording workflow in a session.
func DeviceWorkflowID(sessionID, deviceID int64) string {
	return fmt.Sprintf("recording-session-%d-device-%d", sessionID, deviceID)
}

// SessionOfWorkflowID reads the session (and enclosure, 0 for the session's own workflow) a
// workflow ID of SessionWorkflowID, DeviceWorkflowID or RetryWorkflowID names; ok is false for
// other IDs.
func SessionOfWorkflowID(id string) (sessionID, deviceID int64, ok bool) {
	var retry int
	if n, _ := fmt.Sscanf(id, "recording-session-%d-device-%d-retry-%d", &sessionID, &deviceID, &retry); n == 3 && RetryWorkflowID(sessionID, deviceID, retry) == id {
		return sessionID, deviceID, true
	}
	if n, _ := fmt.Sscanf(id, "recording-session-%d-device-%d", &sessionID, &deviceID); n == 2 && DeviceWorkflowID(sessionID, deviceID) == id {
		return sessionID, deviceID, true
	}
	if n, _ := fmt.Sscanf(id, "recording-session-%d", &sessionID); n == 1 && SessionWorkflowID(sessionID) == id {
		return sessionID, 0, true
	}
	return 0, 0, false
}

// RetryWorkflowID is the ID of an enclosure's retry (1, 2, ...) in a running session: the
// failed recording's workflow may still be checking its files.
func RetryWorkflowID(sessionID, deviceID int64, retry int) string {
	return fmt.Sprintf("%s-retry-%d", DeviceWorkflowID(sessionID, deviceID), retry)
}

// HousekeepingWorkflowID is the ID of the one housekeeping workflow of a deployment (each
// deployment has its own database and task queue).
func HousekeepingWorkflowID(taskQueue string) string { return "mba-housekeeping-" + taskQueue }

// FleetMonitorWorkflowID is the ID of the one fleet monitor of a deployment.
func FleetMonitorWorkflowID(taskQueue string) string { return "mba-fleet-monitor-" + taskQueue }

// Signals.
const (
	// SignalDeviceEvent carries a recording.Event from the outbox to a DeviceRecording.
	SignalDeviceEvent = "device-event"
	// SignalStop asks a DeviceRecording to stop its enclosure (session canceled, enclosure removed).
	SignalStop = "stop"
	// SignalCancel asks a RecordingSession to cancel what still runs.
	SignalCancel = "cancel"
	// SignalRemoveDevice asks a RecordingSession to stop one enclosure.
	SignalRemoveDevice = "remove-device"
	// SignalDeviceEnded tells a RecordingSession an enclosure's recording reached its end status.
	SignalDeviceEnded = "device-ended"
)

// QueryStatus returns a workflow's live state.
const QueryStatus = "status"

// Custom search attributes, registered on the namespace by `make run`, the test set-up and
// the deployment notes. These are their one definition: SearchAttributes lists them for the
// tests' servers, and a test checks scripts/devenv.sh and deploy/temporal/README.md against it.
var (
	AttrSessionID   = temporal.NewSearchAttributeKeyInt64("MbaSessionId")
	AttrDeviceNames = temporal.NewSearchAttributeKeyKeywordList("MbaDeviceNames")
	AttrStatus      = temporal.NewSearchAttributeKeyKeyword("MbaStatus")
)

// SearchAttributes are the custom search attributes as the Temporal CLI names them
// (`--search-attribute Name=Type`): MbaSessionId=Int, MbaDeviceNames=KeywordList, ...
func SearchAttributes() []string {
	keys := []temporal.SearchAttributeKey{AttrSessionID, AttrDeviceNames, AttrStatus}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.GetName() + "=" + k.GetValueType().String() // the API's enum names are the CLI's: KeywordList
	}
	return out
}

// changeFinalStatus is the version change that tags an ended enclosure workflow with its end
// status (it kept IN_PROGRESS), and keeps a session canceled from the temporal CLI CANCELED.
const changeFinalStatus = "final-status"

// tagStatus sets the workflow's MbaStatus to status, so a search by status finds what ended.
func tagStatus[S recording.SessionStatus | recording.DeviceStatus](ctx workflow.Context, status S) {
	if workflow.GetVersion(ctx, changeFinalStatus, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(string(status))); err != nil {
		workflow.GetLogger(ctx).Error("search attributes", "error", err)
	}
}

// Settings are the timing rules of a session, fixed when it starts.
type Settings struct {
	// StartDeadline: an enclosure that has not started recording by then fails.
	StartDeadline time.Duration
	// EndGrace: how long past the planned end an enclosure may take to report it.
	EndGrace time.Duration
	// SilenceTimeout: how long a silent enclosure may stay away before it is failed as lost.
	SilenceTimeout time.Duration
	// Resume: start an enclosure that lost its session mid-recording again for the rest of the
	// planned time (PROTOCOL.md 5.6) instead of failing it.
	Resume bool
	// MinSegment: a resume shorter than this is not worth starting; the enclosure completes.
	MinSegment time.Duration
	// ReleaseTimeout bounds the wait for an enclosure to forget a finished session.
	ReleaseTimeout time.Duration
	// HistoryLimit continues a device workflow as new once its history has this many events;
	// 0 leaves it to the server's suggestion (4 096 events or 4 MB).
	HistoryLimit int
	// UploadDeadline: how long after the recording's end its files may take to arrive before
	// they are MISSING. 0 (sessions started before uploads existed) means the default.
	UploadDeadline time.Duration
	// Reuploads: how many new copies of a corrupt or vanished file are asked for.
	Reuploads int
	// SkipFileChecks turns file verification off, for labs that run no upload agents (the
	// zero value checks: sessions started before the setting existed keep checking).
	SkipFileChecks bool
}

// DefaultSettings are sensible for enclosures heartbeating every 10 s.
var DefaultSettings = Settings{
	StartDeadline:  time.Hour,
	EndGrace:       5 * time.Minute,
	SilenceTimeout: 30 * time.Minute,
	Resume:         true,
	MinSegment:     10 * time.Second,
	ReleaseTimeout: time.Hour,
	UploadDeadline: 72 * time.Hour,
	Reuploads:      3,
}

// SessionInput starts a RecordingSession.
type SessionInput struct {
	SessionID int64
	Settings  Settings
}

// StopRequest asks to stop an enclosure or a session.
type StopRequest struct {
	UserID int64
	Reason string
}

// RemoveRequest asks a session to stop one enclosure.
type RemoveRequest struct {
	DeviceID int64
	UserID   int64
}

// DeviceEnded reports an enclosure's end status to its session.
type DeviceEnded struct {
	DeviceID int64
	Status   recording.DeviceStatus
	Lost     int64 // seconds it did not record between segments
}

// SessionState is what the session's status query returns.
type SessionState struct {
	SessionID int64
	Status    recording.SessionStatus
	Devices   map[int64]recording.DeviceStatus // device id -> RUNNING, or its end status
	Canceled  bool
	// Removed are the enclosures a user took out of the session on purpose: their CANCELED is
	// no failure of the session.
	Removed map[int64]bool `json:",omitempty"`
	// Lost are the seconds each enclosure did not record between segments: a session that lost
	// time is PARTIAL, not COMPLETE.
	Lost map[int64]int64 `json:",omitempty"`
	// Duration (seconds) and PlannedEnd are the session's plan as changed while it runs; zero
	// until its plan is read.
	Duration   int64     `json:",omitempty"`
	PlannedEnd time.Time `json:",omitempty"`
}

// DeviceInput starts, or continues as new, one enclosure's recording in a session.
type DeviceInput struct {
	SessionID      int64
	DeviceID       int64
	DeviceName     string
	FilePrefix     string
	Duration       int64 // planned seconds
	FragmentHourly bool
	TargetFPS      int
	ApplyFilter    bool
	Settings       Settings
	State          DeviceState // carried across continue-as-new
}

// DeviceState is the enclosure's progress; the status query returns it.
type DeviceState struct {
	Status       recording.DeviceStatus
	Message      string
	Segments     int       // recordings started (1 + resumes)
	StartedAt    time.Time // first START acknowledged
	PlannedEnd   time.Time // StartedAt + Duration: resumed segments still end here
	SegmentStart time.Time
	// SegmentEnd is when the enclosure ends the segment it records by itself (its START's
	// duration); Shift is how far the session's changes moved the planned end (seconds).
	SegmentEnd  time.Time
	Shift       int64
	Recorded    int64           // seconds recorded in finished segments
	Lost        int64           // seconds not recorded between segments (reboots, restarts)
	Gaps        []recording.Gap // each of them
	SilentSince time.Time       // zero unless the enclosure is silent now
	LastEventID int64           // outbox ids at or below this were handled (at-least-once delivery)
	// Pending holds signals drained before continue-as-new, handled first by the next run.
	Pending []recording.Event
	// Reset is a reset that arrived while a START was pending, handled once it started.
	Reset *recording.Event
	Stop  *StopRequest
	Files FileChecks // the checks of the recording's uploaded files
}

// DeviceResult is how an enclosure's recording ended.
type DeviceResult struct {
	Status   recording.DeviceStatus
	Message  string
	Recorded int64
	Segments int
	Lost     int64
}

// FileChecks is the state of the recording's file checks, carried across continue-as-new.
type FileChecks struct {
	Uploads map[string]int                 // file -> completed uploads known
	Checked map[string]int                 // file -> the upload last verified
	Asked   map[string]int                 // file -> new copies asked for
	Last    map[string]recording.FileState // file -> the state of its last bad check (CORRUPT or MISSING)
	Reason  map[string]string              // file -> why
	Final   map[string]recording.FileState // file -> final state
	Names   []string                       // files whose check started, in that order (never range over the maps)
}

// HousekeepingInput configures the clean-up loop.
type HousekeepingInput struct {
	Every time.Duration // time between rounds
	Keep  time.Duration // how long expired tokens stay for audits
}

// ---- Alerts (issue 15) ----

// AlertWorkflowID is the ID of the one alert lifecycle of a condition kind and subject in a
// deployment (taskQueue, as the singletons): raising a condition that is already open
// signals the running alert instead of opening a second one.
func AlertWorkflowID(taskQueue string, kind recording.AlertKind, sessionID, deviceID int64) string {
	return AlertSubjectWorkflowID(taskQueue, kind, sessionID, deviceID, "")
}

// AlertSubjectWorkflowID is AlertWorkflowID for an alert about something other than a session
// or an enclosure (a notification channel: "email:ops@lab.example"); with no subject it is
// AlertWorkflowID, so the IDs of running alerts stay the same.
func AlertSubjectWorkflowID(taskQueue string, kind recording.AlertKind, sessionID, deviceID int64, subject string) string {
	id := fmt.Sprintf("mba-alert-%s-%s-session-%d-device-%d", taskQueue, kind, sessionID, deviceID)
	if subject != "" {
		id += "-subject-" + subject
	}
	return id
}

// SignalAlertCondition carries an AlertCondition to an AlertLifecycle.
const SignalAlertCondition = "alert-condition"

// Updates of an AlertLifecycle; each returns the AlertLifecycleState after it. Their
// validators refuse a bad request before it is written to the history.
const (
	UpdateAcknowledge = "acknowledge" // an AckRequest
	UpdateSilence     = "silence"     // a SilenceRequest
)

// AlertCondition says whether an alert's condition holds now (raised) or cleared.
type AlertCondition struct {
	Active  bool
	Summary string // what is wrong, in words; empty keeps the last one
}

// Limits of what a person writes into an alert (kept in the history and the store): the
// update validators refuse more, and the API checks the note first, for a 400.
const (
	MaxAlertWho  = 200
	MaxAlertNote = 2000
)

// AckRequest acknowledges an alert: a person took it; escalation stops.
type AckRequest struct {
	Key  string // the alert's key: refuses an ack meant for an earlier alert of the same ID
	Who  string
	Note string
}

// SilenceRequest mutes an alert until Until; if its condition still holds then, it notifies again.
type SilenceRequest struct {
	Key   string
	Who   string
	Note  string
	Until time.Time
}

// AlertPolicy is an alert's timing, fixed when it opens.
type AlertPolicy struct {
	// EscalateAfter: unacknowledged this long after a notice, the next tier is told.
	EscalateAfter time.Duration
	// Tiers is how many recipient tiers there are (the first plus the escalation tiers).
	Tiers int
	// Damping: a condition that clears and returns within this time does not notify again;
	// it resolves only once it stayed clear this long.
	Damping time.Duration
	// MaxSilence is the longest a person may silence an alert for.
	MaxSilence time.Duration
	// NotifyAttempts bounds the delivery attempts of one notice (backoff between them).
	NotifyAttempts int
	// HistoryLimit continues as new once the history has this many events; 0: the server's
	// suggestion.
	HistoryLimit int
}

// DefaultAlertPolicy suits a lab's night: a person has a quarter of an hour to react.
var DefaultAlertPolicy = AlertPolicy{EscalateAfter: 15 * time.Minute, Tiers: 1, Damping: 2 * time.Minute,
	MaxSilence: 7 * 24 * time.Hour, NotifyAttempts: 8}

// AlertInput opens, or continues as new, an alert.
type AlertInput struct {
	Kind      recording.AlertKind
	SessionID int64 // 0: a fleet alert
	DeviceID  int64
	Subject   string // what a fleet alert is about when it is no enclosure (a channel); usually ''
	Summary   string
	Policy    AlertPolicy
	State     *AlertLifecycleState // carried across continue-as-new
	// Notice: told once, then resolved at once, with no escalation and no recovery notice
	// (an event such as a session finishing, which no later signal clears).
	Notice bool
	// Owner is told at the first tier instead of the usual recipients (a schedule's owner).
	Owner string
}

// AlertLifecycleState is an alert's progress; the status query returns it.
type AlertLifecycleState struct {
	Key           string // workflow ID + first run ID: the alert row's key
	State         recording.AlertState
	Active        bool // the condition holds now
	Summary       string
	Tier          int // the last tier told
	Reopens       int // times the condition returned within the damping window
	OpenedAt      time.Time
	NotifiedAt    time.Time // the last notice: escalation counts from here
	ClearedAt     time.Time // zero while the condition holds
	AckedBy       string
	AckedAt       time.Time
	AckNote       string
	SilencedUntil time.Time
	ResolvedAt    time.Time
	Notified      []activities.Recipient  // everyone told, for the recovery notice
	Seq           int                     // transitions so far
	Pending       []activities.AlertEvent `json:",omitempty"` // transitions not yet recorded
}
