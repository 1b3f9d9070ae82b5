package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/jax-mba/mba/internal/recording"
)

// SessionCreator is the one way a session comes to be, the road the API takes too
// (store.CreateSession: the deployment's rules of a new session and the writes, in one
// transaction; the workflow starts through the outbox). A refusal is a *recording.Refusal.
type SessionCreator interface {
	CreateSession(ctx context.Context, ns recording.NewSession, now time.Time) (CreatedSession, error)
}

// Sessions holds the activities that create sessions, for the workflows that start them on
// their own (scheduled sessions).
type Sessions struct {
	Creator SessionCreator
}

// CreatedSession is a session CreateSession created, with what admission warned of.
type CreatedSession struct {
	ID       int64
	Warnings []string
	Replayed bool // ns.IdempotencyKey named a session created before: this is that one
}

// ErrSessionRefused is the application error type of a session the rules refuse; its details
// are the fields at fault and why.
const ErrSessionRefused = "SessionRefused"

// ErrIdempotencyMismatch is the application error type of an idempotency key that names a
// session created from another request.
const ErrIdempotencyMismatch = "IdempotencyMismatch"

// CreateSession creates a session as a POST /api/recording-session does. A refusal is final
// (not retried): the same request would be refused again. With ns.IdempotencyKey set (a
// schedule's fire sets one of its own), a retry after a lost reply returns the session the
// first attempt created instead of a second one.
func (a *Sessions) CreateSession(ctx context.Context, ns recording.NewSession) (CreatedSession, error) {
	created, err := a.Creator.CreateSession(ctx, ns, time.Now())
	var refusal *recording.Refusal
	switch {
	case errors.As(err, &refusal):
		return CreatedSession{}, temporal.NewNonRetryableApplicationError(refusal.Message, ErrSessionRefused, err, refusal.Fields)
	case errors.Is(err, recording.ErrIdempotencyMismatch):
		return CreatedSession{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrIdempotencyMismatch, err)
	}
	return created, err
}

// SessionChanger makes the changes of a running session its workflow's update handlers
// accepted (store: the read model's rows, the mailbox, the timeline and the audit row of the
// person who asked, in one transaction). A refusal is a *recording.Refusal.
type SessionChanger interface {
	AddSessionDevices(ctx context.Context, req AddDevices, now time.Time) ([]PlannedDevice, error)
	RetrySessionDevice(ctx context.Context, req RetryDevice, now time.Time) (RetriedDevice, error)
	SetSessionDuration(ctx context.Context, req SessionDuration, now time.Time) error
}

// SessionChanges holds the activities of a running session's changes.
type SessionChanges struct {
	Changer SessionChanger
}

// AddDevices adds enclosures to a running session for Seconds; By is the user who asked.
type AddDevices struct {
	SessionID int64
	Devices   []AddedDevice
	Seconds   int64
	By        int64
}

// AddedDevice is an enclosure to add, with its file prefix.
type AddedDevice struct {
	DeviceID   int64
	FilePrefix string
}

// RetryDevice starts a FAILED enclosure of a running session again for Seconds.
type RetryDevice struct {
	SessionID, DeviceID int64
	Seconds             int64
	By                  int64
}

// RetriedDevice is the retry as its workflow drives it.
type RetriedDevice struct {
	PlannedDevice
	Retry      int
	WorkflowID string
	Recorded   int64 // seconds the failed recording(s) recorded
}

// SessionDuration is a running session's new planned duration (seconds).
type SessionDuration struct {
	SessionID, Duration int64
	By                  int64
}

// ErrChangeRefused is the application error type of a change the store refuses (an enclosure
// became busy after the API checked it).
const ErrChangeRefused = "ChangeRefused"

// refusedIsFinal makes a refusal a non-retryable error: the same change would be refused again.
func refusedIsFinal(err error) error {
	var refusal *recording.Refusal
	if errors.As(err, &refusal) {
		return temporal.NewNonRetryableApplicationError(refusal.Message, ErrChangeRefused, err, refusal.Fields)
	}
	return err
}

// AddSessionDevices writes enclosures added to a running session.
func (a *SessionChanges) AddSessionDevices(ctx context.Context, req AddDevices) ([]PlannedDevice, error) {
	added, err := a.Changer.AddSessionDevices(ctx, req, time.Now())
	return added, refusedIsFinal(err)
}

// RetrySessionDevice writes the retry of a FAILED enclosure.
func (a *SessionChanges) RetrySessionDevice(ctx context.Context, req RetryDevice) (RetriedDevice, error) {
	retried, err := a.Changer.RetrySessionDevice(ctx, req, time.Now())
	return retried, refusedIsFinal(err)
}

// SetSessionDuration writes a running session's new planned duration.
func (a *SessionChanges) SetSessionDuration(ctx context.Context, req SessionDuration) error {
	return refusedIsFinal(a.Changer.SetSessionDuration(ctx, req, time.Now()))
}
