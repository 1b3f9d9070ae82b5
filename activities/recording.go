package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/jax-mba/mba/internal/heartbeat"
	"github.com/jax-mba/mba/internal/recording"
)

// Mailbox is the enclosures' command mailbox, read by the heartbeat path.
type Mailbox interface {
	AssignStart(ctx context.Context, deviceID int64, params recording.Start, workflowID, activityID string, now time.Time) (*recording.Event, error)
	AssignStop(ctx context.Context, deviceID, sessionID int64, activityID string, now time.Time) (*recording.Event, error)
	AssignComplete(ctx context.Context, deviceID, sessionID int64, activityID string, now time.Time) (*recording.Event, error)
	ClearAssignment(ctx context.Context, deviceID, sessionID int64) error
	PlanResume(ctx context.Context, deviceID, sessionID int64, plan heartbeat.ResumePlan) error
}

// ReadModel is the session read model the API lists from; the workflows are its only writers.
// It speaks the activities' own types: the worker adapts the store to it (worker.StoreDeps).
type ReadModel interface {
	SessionPlan(ctx context.Context, id int64) (SessionPlan, error)
	UpdateSessionDevice(ctx context.Context, u DeviceUpdate) error
	SetSessionStatus(ctx context.Context, id int64, status recording.SessionStatus, endedAt *time.Time) error
	// CancelSession records a cancel as the API's does (the store's RequestStop).
	CancelSession(ctx context.Context, c SessionCancel, now time.Time) error
	EndState(ctx context.Context, deviceID, sessionID int64) (lastSeen *time.Time, ended *recording.Event, err error)
}

// Recording holds the activities of recording sessions.
type Recording struct {
	Mailbox   Mailbox
	ReadModel ReadModel
}

// StartCommand asks an enclosure to record.
type StartCommand struct {
	DeviceID int64
	Params   recording.Start
}

// DeviceCommand names an enclosure in a session.
type DeviceCommand struct {
	DeviceID  int64
	SessionID int64
}

// SendStart puts START in the enclosure's mailbox and stays pending until the enclosure
// reports recording (result "started") or that the recording already ended ("ended"): the
// heartbeat path completes it by activity id through the outbox. A retry after a timeout
// writes the mailbox again, so the Web UI shows "SendStart, attempt N" while an enclosure is
// away.
func (r *Recording) SendStart(ctx context.Context, cmd StartCommand) (recording.Event, error) {
	// A START the client cannot take would crash it: refuse it here, for good.
	if err := cmd.Params.Validate(); err != nil {
		return recording.Event{}, temporal.NewNonRetryableApplicationError("invalid START parameters", "InvalidStart", err)
	}
	info := activity.GetInfo(ctx)
	return settledOrPending(r.Mailbox.AssignStart(ctx, cmd.DeviceID, cmd.Params, info.WorkflowExecution.ID, completionKey(ctx), time.Now()))
}

// SendStop asks the enclosure to stop recording the session; it completes when the
// enclosure reports the recording ended (or at once when there is nothing to stop).
func (r *Recording) SendStop(ctx context.Context, cmd DeviceCommand) (recording.Event, error) {
	ev, err := r.Mailbox.AssignStop(ctx, cmd.DeviceID, cmd.SessionID, completionKey(ctx), time.Now())
	return settledOrPending(ev, err)
}

// SendComplete completes when the enclosure has forgotten the finished session (COMPLETE
// arrived), so the enclosure is free for the next session.
func (r *Recording) SendComplete(ctx context.Context, cmd DeviceCommand) (recording.Event, error) {
	ev, err := r.Mailbox.AssignComplete(ctx, cmd.DeviceID, cmd.SessionID, completionKey(ctx), time.Now())
	return settledOrPending(ev, err)
}

// completionKey is what the mailbox keeps for the outbox to complete this activity with: its
// run and its id (dispatch.SplitCompletionKey). Activity ids repeat from run to run (they must,
// for a reset run to replay), so the run makes sure a completion queued for an earlier run
// never completes an activity of a later one: it reaches the later run as a signal instead.
func completionKey(ctx context.Context) string {
	info := activity.GetInfo(ctx)
	return info.WorkflowExecution.RunID + "/" + info.ActivityID
}

func settledOrPending(ev *recording.Event, err error) (recording.Event, error) {
	switch {
	case err != nil:
		return recording.Event{}, err
	case ev != nil:
		return *ev, nil
	}
	return recording.Event{}, activity.ErrResultPending
}

// ClearAssignment empties the enclosure's mailbox of the session (clean-up).
func (r *Recording) ClearAssignment(ctx context.Context, cmd DeviceCommand) error {
	return r.Mailbox.ClearAssignment(ctx, cmd.DeviceID, cmd.SessionID)
}

// ResumePlan lets the heartbeat path resume an enclosure that reboots mid-recording.
type ResumePlan struct {
	DeviceID  int64
	SessionID int64
	Plan      heartbeat.ResumePlan
}

// PlanResume writes the resume plan in the enclosure's mailbox.
func (r *Recording) PlanResume(ctx context.Context, p ResumePlan) error {
	return r.Mailbox.PlanResume(ctx, p.DeviceID, p.SessionID, p.Plan)
}

// SessionPlan is what the session workflow needs to run (LoadSessionPlan's result).
type SessionPlan struct {
	ID             int64
	Duration       int64
	FragmentHourly bool
	TargetFPS      int
	ApplyFilter    bool
	Timeouts       recording.Timeouts // the session's own; zero ones are the server's
	Devices        []PlannedDevice
}

// PlannedDevice is an enclosure the workflow drives (the ones not FAILED at admission).
type PlannedDevice struct {
	DeviceID   int64
	Name       string
	FilePrefix string
}

// LoadSessionPlan reads what a session workflow drives.
func (r *Recording) LoadSessionPlan(ctx context.Context, sessionID int64) (SessionPlan, error) {
	return r.ReadModel.SessionPlan(ctx, sessionID)
}

// DeviceUpdate is a change of one enclosure's part in a session; nil fields stay. Field names
// are those of the payloads in recorded histories.
type DeviceUpdate struct {
	SessionID     int64
	DeviceID      int64
	Status        recording.DeviceStatus
	Message       string
	StartedAt     *time.Time
	EndedAt       *time.Time
	RecordingTime *int64
	Segments      *int
	SecondsLost   *int64
	Gaps          []recording.Gap // nil: unchanged
	// Final marks the workflow's last write of the enclosure's part: later reports are the
	// heartbeat path's to count.
	Final        bool
	Event        string // timeline entry kind; empty for none
	EventMessage string
	At           time.Time
}

// UpdateDevice writes an enclosure's status in the session read model and its timeline.
func (r *Recording) UpdateDevice(ctx context.Context, u DeviceUpdate) error {
	return r.ReadModel.UpdateSessionDevice(ctx, u)
}

// EndState is what the service last heard of an enclosure in a session.
type EndState struct {
	LastSeen time.Time        // its last heartbeat (zero: never)
	Ended    *recording.Event // the end of its recording it reported, if it did
}

// EndState reads what the enclosure last reported, for a deadline judged by its reports.
func (r *Recording) EndState(ctx context.Context, cmd DeviceCommand) (EndState, error) {
	seen, ended, err := r.ReadModel.EndState(ctx, cmd.DeviceID, cmd.SessionID)
	st := EndState{Ended: ended}
	if seen != nil {
		st.LastSeen = *seen
	}
	return st, err
}

// CancelSession records a cancel that reached the session's workflow from outside the API (the
// temporal CLI) as the API's cancel does, in the read model at once: the session and its
// running enclosures CANCELED, STOP pending for those that record, those never started released.
func (r *Recording) CancelSession(ctx context.Context, c SessionCancel) error {
	return r.ReadModel.CancelSession(ctx, c, time.Now())
}

// SessionCancel is a cancel of a session the workflow learned of from Temporal.
type SessionCancel struct {
	SessionID int64
	Reason    string
}

// SessionStatus is a session's status change.
type SessionStatus struct {
	SessionID int64
	Status    recording.SessionStatus
	EndedAt   *time.Time
}

// SetSessionStatus writes a session's status in the read model.
func (r *Recording) SetSessionStatus(ctx context.Context, s SessionStatus) error {
	return r.ReadModel.SetSessionStatus(ctx, s.SessionID, s.Status, s.EndedAt)
}
