package recording

import "time"

// AlertState is where an alert is in its lifecycle (workflows.AlertLifecycle).
type AlertState string

const (
	AlertOpen         AlertState = "open"         // the condition holds; nobody told yet
	AlertNotified     AlertState = "notified"     // the first tier was told
	AlertEscalated    AlertState = "escalated"    // nobody acknowledged in time: a later tier was told
	AlertAcknowledged AlertState = "acknowledged" // a person took it: no more escalation
	AlertSilenced     AlertState = "silenced"     // a person muted it until a time
	AlertResolved     AlertState = "resolved"     // the condition cleared (and stayed clear)
)

// AlertStates lists every state, for validating filters.
var AlertStates = []AlertState{AlertOpen, AlertNotified, AlertEscalated, AlertAcknowledged, AlertSilenced, AlertResolved}

// AlertKind is the condition an alert is about.
type AlertKind string

const (
	// AlertEnclosureDown: an enclosure stopped heartbeating (DOWN); in a session, a session
	// alert; idle, a fleet alert.
	AlertEnclosureDown AlertKind = "enclosure_down"
	AlertEnclosureLost AlertKind = "enclosure_lost" // silent past the silence timeout
	AlertDeviceFailed  AlertKind = "device_failed"
	AlertLowDisk       AlertKind = "low_disk"
	AlertLowFPS        AlertKind = "low_fps"
	AlertClockSkew     AlertKind = "clock_skew"
	AlertFileBad       AlertKind = "file_bad" // MISSING or CORRUPT
	AlertUploadBacklog AlertKind = "upload_backlog"
	AlertChannelBroken AlertKind = "channel_broken" // a notification channel keeps failing
	AlertTimeLost      AlertKind = "time_lost"      // a reboot gap: recorded time lost between segments
	// AlertSessionFinished is a notice (COMPLETE, PARTIAL, FAILED): told once, resolved at once.
	AlertSessionFinished AlertKind = "session_finished"
	// AlertScheduleSkipped is a notice to a schedule's owner: a fire skipped its run or some of
	// its enclosures (busy or DOWN).
	AlertScheduleSkipped AlertKind = "schedule_skipped"
)

// AlertKinds lists every kind, for validating filters and preferences.
var AlertKinds = []AlertKind{AlertEnclosureDown, AlertEnclosureLost, AlertDeviceFailed, AlertLowDisk, AlertLowFPS,
	AlertClockSkew, AlertFileBad, AlertUploadBacklog, AlertChannelBroken, AlertTimeLost, AlertSessionFinished,
	AlertScheduleSkipped}

// OneShot reports whether the kind's condition never clears by itself (a lost recording stays
// lost, a bad file stays bad): a person's acknowledgement resolves such an alert.
func (k AlertKind) OneShot() bool {
	switch k {
	case AlertEnclosureLost, AlertDeviceFailed, AlertTimeLost, AlertFileBad:
		return true
	}
	return false
}

// AlertEvent is one transition of an alert: its state, who made it (empty: the service) and
// their note. Seq numbers them within the alert, so recording one twice is harmless.
type AlertEvent struct {
	Seq   int
	State AlertState
	Actor string
	Note  string
	At    time.Time
}
