package api

import (
	"encoding/json"
	"time"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

// The API's view types: what it sends, with one conversion from the store's type each. The
// store's types are for SQL and the read model and carry no JSON; the REST bodies are defined
// here only (API-COMPAT.md, openapi.json), so a change to the store cannot change them
// unseen. They are exported for the Go clients that read the bodies (end-to-end tests,
// benchmarks).

// SessionView is a recording session with its enclosures; Warnings only on creation.
type SessionView struct {
	ID             int64                   `json:"id"`
	Name           string                  `json:"name"`
	Duration       int64                   `json:"duration"`
	FragmentHourly bool                    `json:"fragment_hourly"`
	TargetFPS      int                     `json:"target_fps"`
	ApplyFilter    bool                    `json:"apply_filter"`
	CreationTime   time.Time               `json:"creation_time"`
	Status         recording.SessionStatus `json:"status"`
	Archived       bool                    `json:"archived"`
	CreatedBy      *string                 `json:"created_by"`
	CanceledBy     *string                 `json:"canceled_by"`
	EndedAt        *time.Time              `json:"ended_at"`
	SecondsLost    int64                   `json:"seconds_lost"`
	Notes          string                  `json:"notes,omitempty"`
	// The session's own timeouts (seconds); absent: the server's setting.
	StartDeadline  *int64              `json:"start_deadline,omitempty"`
	SilenceTimeout *int64              `json:"silence_timeout,omitempty"`
	EndGrace       *int64              `json:"end_grace,omitempty"`
	DeviceStatuses []SessionDeviceView `json:"device_statuses"`
	Warnings       []string            `json:"warnings,omitempty"`
	Template       *TemplateRefView    `json:"template,omitempty"` // the template version it was made from
}

// ownSeconds is a session's own timeout in seconds, nil for the server's.
func ownSeconds(d time.Duration) *int64 {
	if d == 0 {
		return nil
	}
	secs := int64(d / time.Second)
	return &secs
}

func sessionView(x store.Session) SessionView {
	return SessionView{ID: x.ID, Name: x.Name, Duration: x.Duration, FragmentHourly: x.FragmentHourly, TargetFPS: x.TargetFPS,
		ApplyFilter: x.ApplyFilter, CreationTime: x.CreationTime, Status: x.Status, Archived: x.Archived,
		CreatedBy: x.CreatedBy, CanceledBy: x.CanceledBy, EndedAt: x.EndedAt, SecondsLost: x.SecondsLost, Notes: x.Notes,
		StartDeadline: ownSeconds(x.Timeouts.StartDeadline), SilenceTimeout: ownSeconds(x.Timeouts.SilenceTimeout),
		EndGrace:       ownSeconds(x.Timeouts.EndGrace),
		DeviceStatuses: views(x.DeviceStatuses, sessionDeviceView), Template: templateRefView(x.Template)}
}

// TemplateRefView names a template version.
type TemplateRefView struct {
	ID      int64  `json:"id"`
	Version int    `json:"version"`
	Name    string `json:"name"`
}

func templateRefView(t *store.TemplateRef) *TemplateRefView {
	if t == nil {
		return nil
	}
	v := TemplateRefView(*t)
	return &v
}

// TemplateView is a template; Versions are newest first (only the latest in the list).
type TemplateView struct {
	ID            int64                 `json:"id"`
	Name          string                `json:"name"`
	Archived      bool                  `json:"archived"`
	LatestVersion int                   `json:"latest_version"`
	CreatedBy     *string               `json:"created_by"`
	CreatedAt     time.Time             `json:"created_at"`
	Versions      []TemplateVersionView `json:"versions"`
}

// TemplateVersionView is one version of a template and the sessions made from it.
type TemplateVersionView struct {
	Version        int                   `json:"version"`
	Duration       int64                 `json:"duration"`
	FragmentHourly bool                  `json:"fragment_hourly"`
	TargetFPS      int                   `json:"target_fps"`
	ApplyFilter    bool                  `json:"apply_filter"`
	DeviceIDs      []int64               `json:"device_ids"`
	PrefixPattern  string                `json:"prefix_pattern"`
	Timeouts       json.RawMessage       `json:"timeouts"`
	Notes          string                `json:"notes"`
	CreatedBy      *string               `json:"created_by"`
	CreatedAt      time.Time             `json:"created_at"`
	Sessions       []TemplateSessionView `json:"sessions"`
}

// TemplateSessionView is a session made from a template version.
type TemplateSessionView struct {
	ID           int64                   `json:"id"`
	Name         string                  `json:"name"`
	Status       recording.SessionStatus `json:"status"`
	CreationTime time.Time               `json:"creation_time"`
}

func templateView(t store.Template) TemplateView {
	return TemplateView{ID: t.ID, Name: t.Name, Archived: t.Archived, LatestVersion: t.LatestVersion, CreatedBy: t.CreatedBy,
		CreatedAt: t.CreatedAt, Versions: views(t.Versions, templateVersionView)}
}

func templateVersionView(v store.TemplateVersion) TemplateVersionView {
	ids := v.Spec.DeviceIDs
	if ids == nil {
		ids = []int64{}
	}
	sessions := views(v.Sessions, func(x store.TemplateSession) TemplateSessionView {
		return TemplateSessionView{ID: x.ID, Name: x.Name, Status: x.Status, CreationTime: x.CreatedAt}
	})
	if sessions == nil {
		sessions = []TemplateSessionView{}
	}
	return TemplateVersionView{Version: v.Version, Duration: v.Spec.Duration, FragmentHourly: v.Spec.FragmentHourly,
		TargetFPS: v.Spec.TargetFPS, ApplyFilter: v.Spec.ApplyFilter, DeviceIDs: ids, PrefixPattern: v.Spec.PrefixPattern,
		Timeouts: v.Spec.Timeouts, Notes: v.Spec.Notes, CreatedBy: v.CreatedBy, CreatedAt: v.CreatedAt, Sessions: sessions}
}

// SubjectView is who was in an enclosure during a session.
type SubjectView struct {
	SubjectIDs  []string          `json:"subject_ids"`
	Strain      string            `json:"strain"`
	Sex         string            `json:"sex"`
	DateOfBirth *string           `json:"date_of_birth"` // YYYY-MM-DD
	Cage        string            `json:"cage"`
	Extra       map[string]string `json:"extra"`
	Notes       string            `json:"notes"`
}

func subjectView(s recording.Subject) *SubjectView {
	v := &SubjectView{SubjectIDs: s.IDs, Strain: s.Strain, Sex: s.Sex, Cage: s.Cage, Extra: s.Extra, Notes: s.Notes}
	if v.SubjectIDs == nil {
		v.SubjectIDs = []string{}
	}
	if v.Extra == nil {
		v.Extra = map[string]string{}
	}
	if s.DateOfBirth != nil {
		d := s.DateOfBirth.Format(time.DateOnly)
		v.DateOfBirth = &d
	}
	return v
}

// SessionDeviceView is one enclosure's part in a session; Files and FilesSummary only in a
// session's detail.
type SessionDeviceView struct {
	SessionID      int64                  `json:"session_id"`
	Device         EnclosureView          `json:"device"`
	FilenamePrefix string                 `json:"filename_prefix"`
	RecordingTime  int64                  `json:"recording_time"`
	Status         recording.DeviceStatus `json:"status"`
	Message        string                 `json:"message"`
	StartedAt      *time.Time             `json:"started_at"`
	EndedAt        *time.Time             `json:"ended_at"`
	Segments       int                    `json:"segments"`
	StopPending    bool                   `json:"stop_pending"`
	SecondsLost    int64                  `json:"seconds_lost"`
	Gaps           []GapView              `json:"gaps"`
	Files          []FileView             `json:"files,omitempty"`
	FilesSummary   *FilesSummaryView      `json:"files_summary,omitempty"`
	Subject        *SubjectView           `json:"subject,omitempty"` // in a session's detail; nil: none stated
}

func sessionDeviceView(d store.DeviceStatus) SessionDeviceView {
	return SessionDeviceView{SessionID: d.SessionID, Device: enclosureView(d.Device), FilenamePrefix: d.FilenamePrefix,
		RecordingTime: d.RecordingTime, Status: d.Status, Message: d.Message, StartedAt: d.StartedAt, EndedAt: d.EndedAt,
		Segments: d.Segments, StopPending: d.StopPending, SecondsLost: d.SecondsLost, Gaps: views(d.Gaps, gapView)}
}

// GapView is a time an enclosure of a session did not record.
type GapView struct {
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Seconds int64     `json:"seconds"`
}

func gapView(g recording.Gap) GapView { return GapView(g) }

// EnclosureView is an enclosure as a session's detail shows it.
type EnclosureView struct {
	ID                int64                    `json:"id"`
	Name              string                   `json:"name"`
	Location          string                   `json:"location"`
	LastUpdate        *time.Time               `json:"last_update"`
	SessionID         *int64                   `json:"session_id"` // current assignment
	State             recording.EnclosureState `json:"state"`
	SensorStatus      SensorStatusView         `json:"sensor_status"`
	SystemInfo        SystemInfoView           `json:"system_info"`
	ReportedSessionID *int64                   `json:"reported_session_id"` // what the enclosure believes
	ClockSkewMS       *int64                   `json:"clock_skew_ms"`
	ErrMsg            string                   `json:"err_msg,omitempty"`
	Admission         string                   `json:"admission"`
	Retired           *time.Time               `json:"retired_at"`
	Relayed           bool                     `json:"relayed"`
	HasToken          bool                     `json:"has_token"`
	BoundAddress      *string                  `json:"bound_address"`
	RegisteredFrom    *string                  `json:"registered_from"`
}

// SensorStatusView is what the enclosure's camera last reported.
type SensorStatusView struct {
	Camera struct {
		Recording bool     `json:"recording"`
		Duration  *int64   `json:"duration"`
		FPS       *float64 `json:"fps"`
	} `json:"camera"`
}

// SystemInfoView is the enclosure's last system report.
type SystemInfoView struct {
	Uptime    *int64   `json:"uptime"`
	Load      *float64 `json:"load"`
	TotalRAM  *int64   `json:"total_ram"`
	FreeRAM   *int64   `json:"free_ram"`
	FreeDisk  *int64   `json:"free_disk"`
	TotalDisk *int64   `json:"total_disk"`
	Release   string   `json:"release"`
}

func enclosureView(d store.Device) EnclosureView {
	v := EnclosureView{ID: d.ID, Name: d.Name, Location: d.Location, LastUpdate: d.LastUpdate, SessionID: d.SessionID,
		State: d.State, ReportedSessionID: d.ReportedSessionID, ClockSkewMS: d.ClockSkewMS, ErrMsg: d.ErrMsg,
		Admission: d.Admission, Retired: d.Retired, Relayed: d.Relayed, HasToken: d.HasToken,
		BoundAddress: d.BoundAddress, RegisteredFrom: d.RegisteredFrom,
		// The store's report structs have exactly these fields (a conversion ignores tags), so
		// a field added there fails to compile here until the view decides on it.
		SensorStatus: SensorStatusView(d.SensorStatus), SystemInfo: SystemInfoView(d.SystemInfo)}
	return v
}

// DeviceView is an enclosure as the device routes return it: with what the API flags.
type DeviceView struct {
	EnclosureView
	ClockSkewFlagged bool `json:"clock_skew_flagged"`
}

func (s *Server) deviceView(d store.Device) DeviceView {
	v := DeviceView{EnclosureView: enclosureView(d)}
	if d.ClockSkewMS != nil {
		skew := time.Duration(*d.ClockSkewMS) * time.Millisecond
		v.ClockSkewFlagged = skew > s.cfg.Enclosures.ClockSkewWarning || -skew > s.cfg.Enclosures.ClockSkewWarning
	}
	return v
}

// FileView is one file of an enclosure's recording, with a download link for people once
// it is uploaded.
type FileView struct {
	Name        string              `json:"name"`
	State       recording.FileState `json:"state"`
	Reason      string              `json:"reason"`
	Expected    bool                `json:"expected"`
	Size        *int64              `json:"size"`
	SHA256      *string             `json:"sha256"`
	Uploads     int                 `json:"uploads"`
	Reupload    bool                `json:"reupload"`
	UploadedAt  *time.Time          `json:"uploaded_at"`
	VerifiedAt  *time.Time          `json:"verified_at"`
	UpdatedAt   time.Time           `json:"updated_at"`
	DownloadURL string              `json:"download_url,omitempty"`
}

func fileView(f store.SessionFile) FileView {
	return FileView{Name: f.Name, State: f.State, Reason: f.Reason, Expected: f.Expected, Size: f.Size, SHA256: f.SHA256,
		Uploads: f.Uploads, Reupload: f.Reupload, UploadedAt: f.UploadedAt, VerifiedAt: f.VerifiedAt, UpdatedAt: f.UpdatedAt}
}

// FilesSummaryView counts an enclosure's files by state.
type FilesSummaryView struct {
	Expected int `json:"expected"` // files the recording is known to have produced so far
	Verified int `json:"verified"`
	Missing  int `json:"missing"`
	Corrupt  int `json:"corrupt"`
	Pending  int `json:"pending"` // expected or received, not verified yet
}

// SessionEventView is one entry of a session's timeline.
type SessionEventView struct {
	At      time.Time `json:"at"`
	Device  *string   `json:"device"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

func sessionEventView(e store.SessionEvent) SessionEventView { return SessionEventView(e) }

// UserView is an account as the user routes return it.
type UserView struct {
	ID        int64     `json:"id"`
	Email     string    `json:"email"`
	Admin     bool      `json:"admin"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

func userView(u store.User) UserView {
	return UserView{ID: u.ID, Email: u.Email, Admin: u.Admin, Disabled: u.Disabled, CreatedAt: u.CreatedAt}
}

// TelemetryPointView is one downsampled sample of an enclosure, for plots.
type TelemetryPointView struct {
	At          time.Time `json:"at"`
	Recording   bool      `json:"recording"`
	FPS         *float64  `json:"fps"`
	Load        *float64  `json:"load"`
	FreeRAM     *int64    `json:"free_ram"`
	FreeDisk    *int64    `json:"free_disk"`
	ClockSkewMS *int64    `json:"clock_skew_ms"`
	MaxGapMS    *int64    `json:"max_gap_ms"`
}

func telemetryPointView(p store.TelemetryPoint) TelemetryPointView { return TelemetryPointView(p) }

// AlertView is an alert as its lifecycle workflow recorded it: in the list, and as the answer
// to an acknowledgement or a silence.
type AlertView struct {
	ID            int64                `json:"id"`
	Key           string               `json:"key"`
	WorkflowID    string               `json:"workflow_id"`
	Kind          recording.AlertKind  `json:"kind"`
	SessionID     *int64               `json:"session_id"`
	DeviceID      *int64               `json:"device_id"`
	DeviceName    *string              `json:"device_name"`
	Subject       string               `json:"subject"` // '' unless about something else: a channel_broken alert's channel
	Summary       string               `json:"summary"`
	State         recording.AlertState `json:"state"`
	Tier          int                  `json:"tier"`
	Reopens       int                  `json:"reopens"`
	AckedBy       *string              `json:"acked_by"`
	AckedAt       *time.Time           `json:"acked_at"`
	AckNote       *string              `json:"ack_note"`
	SilencedUntil *time.Time           `json:"silenced_until"`
	OpenedAt      time.Time            `json:"opened_at"`
	UpdatedAt     time.Time            `json:"updated_at"`
	ResolvedAt    *time.Time           `json:"resolved_at"`
}

func alertView(a store.Alert) AlertView { return AlertView(a) }

// AlertDetailView is an alert with its transitions.
type AlertDetailView struct {
	AlertView
	Events []AlertEventView `json:"events"`
}

// AlertEventView is one transition of an alert.
type AlertEventView struct {
	Seq   int                  `json:"seq"`
	State recording.AlertState `json:"state"`
	Actor string               `json:"actor"`
	Note  string               `json:"note"`
	At    time.Time            `json:"at"`
}

func alertEventView(e store.AlertEvent) AlertEventView { return AlertEventView(e) }

// ChannelHealthView sums up the deliveries of one notification channel target, and whether it
// is broken now (the channel_broken condition's rule: its last alerts channel-failures
// deliveries failed).
type ChannelHealthView struct {
	Channel      string     `json:"channel"`
	Target       string     `json:"target"`
	Attempts     int64      `json:"attempts"`
	Failures     int64      `json:"failures"`
	LastOutcome  string     `json:"last_outcome"`
	LastError    string     `json:"last_error"` // of the last attempt; '' when it was sent
	LastAt       time.Time  `json:"last_at"`
	Broken       bool       `json:"broken"`
	Failing      int        `json:"failing"`       // deliveries failed in a row since the last one sent
	FailingSince *time.Time `json:"failing_since"` // the first of them; null when the last was sent
}

func (s *Server) channelHealthView(h store.ChannelHealth) ChannelHealthView {
	return ChannelHealthView{Channel: h.Channel, Target: h.Target, Attempts: h.Attempts, Failures: h.Failures,
		LastOutcome: h.LastOutcome, LastError: h.LastError, LastAt: h.LastAt, Broken: s.cfg.Alerts.broken(h.Failing),
		Failing: h.Failing, FailingSince: h.FailingSince}
}

// views converts a list with one view's conversion, nil to nil (null) and empty to empty ([]),
// as the store returned it.
func views[T, V any](list []T, view func(T) V) []V {
	if list == nil {
		return nil
	}
	out := make([]V, len(list))
	for i, x := range list {
		out[i] = view(x)
	}
	return out
}

// AuditView is one audit row: who (actor_email null for no signed-in actor or a deleted user)
// did what to what, from where, when.
type AuditView struct {
	ID         int64                 `json:"id"`
	At         time.Time             `json:"at"`
	ActorID    *int64                `json:"actor_id"`
	ActorEmail *string               `json:"actor_email"`
	Action     recording.AuditAction `json:"action"`
	Subject    string                `json:"subject"`
	Detail     string                `json:"detail"`
	ClientIP   string                `json:"client_ip"`
}

func auditView(e store.AuditRecord) AuditView { return AuditView(e) }

// NotificationPrefsView is a user's notification preferences: the alert kinds they want
// (empty: all), the channel (email or none), quiet hours (HH:MM in time_zone; equal: none) and
// the daily digest (null: the default, on for administrators and for creators of sessions with
// alerts in the period).
type NotificationPrefsView struct {
	Kinds      []string `json:"kinds"`
	Channel    string   `json:"channel"`
	QuietStart string   `json:"quiet_start"`
	QuietEnd   string   `json:"quiet_end"`
	TimeZone   string   `json:"time_zone"`
	Digest     *bool    `json:"digest"`
}

func notificationPrefsView(p store.NotificationPrefs) NotificationPrefsView {
	kinds := p.Kinds
	if kinds == nil {
		kinds = []string{}
	}
	return NotificationPrefsView{Kinds: kinds, Channel: p.Channel, QuietStart: hhmm(p.QuietStart), QuietEnd: hhmm(p.QuietEnd), TimeZone: p.TZ,
		Digest: p.Digest}
}

// NotificationPrefsRequest replaces a user's notification preferences (every field).
type NotificationPrefsRequest NotificationPrefsView
