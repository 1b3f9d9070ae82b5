package recording

import "time"

// SessionStatus is a session's status. IN_PROGRESS, COMPLETE and CANCELED keep the original's
// meaning; FAILED (no enclosure recorded) and PARTIAL (some recorded, some failed) are new.
type SessionStatus string

const (
	SessionInProgress SessionStatus = "IN_PROGRESS"
	SessionComplete   SessionStatus = "COMPLETE"
	SessionCanceled   SessionStatus = "CANCELED"
	SessionPartial    SessionStatus = "PARTIAL"
	SessionFailed     SessionStatus = "FAILED"
)

// DeviceStatus is the status of one enclosure's part in a session.
type DeviceStatus string

const (
	DevicePending   DeviceStatus = "PENDING"
	DeviceRecording DeviceStatus = "RECORDING"
	DeviceComplete  DeviceStatus = "COMPLETE"
	DeviceFailed    DeviceStatus = "FAILED"
	DeviceCanceled  DeviceStatus = "CANCELED"
)

// EnclosureState is an enclosure's state in the fleet, computed from its last heartbeat and
// its assignment.
type EnclosureState string

const (
	EnclosureIdle EnclosureState = "IDLE"
	EnclosureBusy EnclosureState = "BUSY"
	EnclosureDown EnclosureState = "DOWN"
)

// FileState is the state of one file of an enclosure's recording.
type FileState string

const (
	FilePending   FileState = "PENDING"   // expected, nothing received
	FileUploading FileState = "UPLOADING" // an upload is under way
	FileUploaded  FileState = "UPLOADED"  // received, not verified yet
	FileVerified  FileState = "VERIFIED"
	FileCorrupt   FileState = "CORRUPT"
	FileMissing   FileState = "MISSING"
)

// Gap is a time an enclosure of a session did not record: from the last heartbeat of a lost
// segment to the start of the next one (or to the planned end, when none followed). Its JSON
// is in the read model (session_devices.gaps) and in the device workflow's state.
type Gap struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Seconds int64     `json:"seconds"`
}
