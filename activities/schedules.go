package activities

import (
	"context"
	"time"
)

// ScheduleStore is what a schedule's fire reads and writes.
type ScheduleStore interface {
	// EnclosureStates judges enclosures as a new session's admission would now; an id it does
	// not know is absent.
	EnclosureStates(ctx context.Context, ids []int64, now time.Time) ([]EnclosureState, error)
	RecordScheduleFire(ctx context.Context, f ScheduleFire) error
}

// EnclosureState is whether an enclosure can start a session now, and if not why.
type EnclosureState struct {
	DeviceID int64
	Name     string
	Free     bool
	Reason   string // when not free: "busy in session 12", "DOWN", "retired", ...
}

// Outcomes of a schedule's fire.
const (
	FireCreated        = "created"         // a session with every enclosure
	FireCreatedPartial = "created_partial" // a session without the enclosures that were busy or DOWN
	FireSkipped        = "skipped"         // no session: the run was skipped
	FireFailed         = "failed"          // the session was refused (its body no longer passes the rules)
)

// ScheduleFire is what one fire of a schedule did; recording it twice (a retry) is harmless.
type ScheduleFire struct {
	ScheduleID int64
	WorkflowID string
	FiredAt    time.Time
	Outcome    string
	Message    string
	SessionID  int64 // 0: none
}

// Schedules holds the activities of scheduled sessions' fires.
type Schedules struct {
	Store ScheduleStore
}

// EnclosureStates reports which of a schedule's enclosures can start now.
func (a *Schedules) EnclosureStates(ctx context.Context, ids []int64) ([]EnclosureState, error) {
	return a.Store.EnclosureStates(ctx, ids, time.Now())
}

// RecordScheduleFire keeps what a fire did, for the schedule's page.
func (a *Schedules) RecordScheduleFire(ctx context.Context, f ScheduleFire) error {
	return a.Store.RecordScheduleFire(ctx, f)
}
