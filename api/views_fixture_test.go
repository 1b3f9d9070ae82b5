package api

import (
	"time"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

// Fixtures of the wire-format test: every field set (so a renamed JSON name shows), and a
// second set with every pointer nil and every list empty or nil (so omitempty and null show).

var fxAt = time.Date(2026, 3, 4, 5, 6, 7, 8000, time.UTC)

func fxPtr[T any](v T) *T { return &v }

func fxDevice(full bool) store.Device {
	d := store.Device{ID: 7, Name: "NV7", Location: "room 2", State: "BUSY", Admission: "approved"}
	if !full {
		d.State = "DOWN"
		return d
	}
	d.LastUpdate, d.SessionID, d.ReportedSessionID = fxPtr(fxAt), fxPtr(int64(11)), fxPtr(int64(12))
	d.SensorStatus.Camera.Recording, d.SensorStatus.Camera.Duration, d.SensorStatus.Camera.FPS = true, fxPtr(int64(120)), fxPtr(29.9)
	si := &d.SystemInfo
	si.Uptime, si.Load, si.TotalRAM, si.FreeRAM = fxPtr(int64(1)), fxPtr(0.5), fxPtr(int64(2)), fxPtr(int64(3))
	si.FreeDisk, si.TotalDisk, si.Release = fxPtr(int64(4)), fxPtr(int64(5)), "1.2"
	d.ClockSkewMS, d.ErrMsg, d.Retired, d.Relayed, d.HasToken = fxPtr(int64(-45000)), "camera gone", fxPtr(fxAt), true, true
	d.BoundAddress, d.RegisteredFrom = fxPtr("10.0.0.7"), fxPtr("10.0.0.8")
	return d
}

func fxSession(full bool) store.Session {
	x := store.Session{ID: 11, Name: "night", Duration: 3600, TargetFPS: 30, CreationTime: fxAt, Status: "IN_PROGRESS",
		DeviceStatuses: []store.DeviceStatus{}}
	if !full {
		x.DeviceStatuses = append(x.DeviceStatuses, store.DeviceStatus{SessionID: 11, Device: fxDevice(false), Status: "PENDING"})
		return x
	}
	x.FragmentHourly, x.ApplyFilter, x.Archived, x.SecondsLost = true, true, true, 9
	x.CreatedBy, x.CanceledBy, x.EndedAt = fxPtr("ann@lab.example"), fxPtr("bob@lab.example"), fxPtr(fxAt)
	x.DeviceStatuses = append(x.DeviceStatuses, store.DeviceStatus{SessionID: 11, Device: fxDevice(true), FilenamePrefix: "cage",
		RecordingTime: 100, Status: "RECORDING", Message: "ok", StartedAt: fxPtr(fxAt), EndedAt: fxPtr(fxAt), Segments: 2,
		StopPending: true, SecondsLost: 9, Gaps: []recording.Gap{{From: fxAt, To: fxAt.Add(time.Second), Seconds: 1}}},
		store.DeviceStatus{SessionID: 11, Device: fxDevice(false), Status: "FAILED", Gaps: []recording.Gap{}})
	return x
}

func fxFiles(full bool) []store.SessionFile {
	if !full {
		return nil
	}
	return []store.SessionFile{
		{SessionID: 11, DeviceID: 7, Name: "cage_.avi", State: "VERIFIED", Reason: "r", Expected: true, Size: fxPtr(int64(10)),
			SHA256: fxPtr("ab"), UploadID: fxPtr("up"), Uploads: 2, Reupload: true, UploadedAt: fxPtr(fxAt), VerifiedAt: fxPtr(fxAt), UpdatedAt: fxAt},
		{SessionID: 11, DeviceID: 7, Name: "cage_1.avi", State: "PENDING", UpdatedAt: fxAt},
	}
}

func fxEvents() []store.SessionEvent {
	return []store.SessionEvent{{At: fxAt, Device: fxPtr("NV7"), Kind: "started", Message: "m"}, {At: fxAt, Kind: "created"}}
}

func fxUsers() []store.User {
	return []store.User{{ID: 1, Email: "ann@lab.example", PasswordHash: "secret", Admin: true, Disabled: true, TokenGeneration: 3, CreatedAt: fxAt},
		{ID: 2, Email: "bob@lab.example", CreatedAt: fxAt}}
}

func fxTelemetry() []store.TelemetryPoint {
	return []store.TelemetryPoint{{At: fxAt, Recording: true, FPS: fxPtr(29.9), Load: fxPtr(0.1), FreeRAM: fxPtr(int64(1)),
		FreeDisk: fxPtr(int64(2)), ClockSkewMS: fxPtr(int64(3)), MaxGapMS: fxPtr(int64(4))}, {At: fxAt}}
}

func fxAgentSessions() []store.AgentSession {
	return []store.AgentSession{{SessionID: 11, StartedAt: fxPtr(fxAt), EndedAt: fxPtr(fxAt), Recording: true, FragmentHourly: true,
		Prefixes: []string{"cage", "cage_s1"}, Files: append(fxFiles(true), store.SessionFile{Name: "cage_s1.avi", State: "UPLOADING",
			UploadID: fxPtr("abc"), Size: fxPtr(int64(5))})}, {SessionID: 12, Prefixes: []string{}, Files: []store.SessionFile{}}}
}

func fxAlert(full bool) store.Alert {
	a := store.Alert{ID: 3, Key: "alert/k/run", WorkflowID: "alert/k", Kind: "enclosure_down", Summary: "NV7 is DOWN",
		State: "open", OpenedAt: fxAt, UpdatedAt: fxAt}
	if !full {
		return a
	}
	a.SessionID, a.DeviceID, a.DeviceName, a.State, a.Tier, a.Reopens = fxPtr(int64(11)), fxPtr(int64(7)), fxPtr("NV7"), "resolved", 2, 1
	a.AckedBy, a.AckedAt, a.AckNote, a.SilencedUntil, a.ResolvedAt = fxPtr("ann@lab.example"), fxPtr(fxAt), fxPtr("n"), fxPtr(fxAt), fxPtr(fxAt)
	return a
}

func fxAlertEvents() []store.AlertEvent {
	return []store.AlertEvent{{Seq: 1, State: "open", At: fxAt}, {Seq: 2, State: "acknowledged", Actor: "ann@lab.example", Note: "n", At: fxAt}}
}

func fxChannelHealth() []store.ChannelHealth {
	return []store.ChannelHealth{{Channel: "webhook", Target: "lab", Attempts: 4, Failures: 2, LastOutcome: "failed", LastError: "503", LastAt: fxAt,
		Failing: 2, FailingSince: fxPtr(fxAt)},
		{Channel: "email", Target: "ann@lab.example", Attempts: 1, LastOutcome: "sent", LastAt: fxAt}}
}
