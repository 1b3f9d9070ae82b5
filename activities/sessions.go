package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

// SessionCreator is the one way a session comes to be (store.CreateSession: the rules of a new
// session and its writes, in one transaction), the same the API takes.
type SessionCreator interface {
	CreateSession(ctx context.Context, ns recording.NewSession, rules recording.Rules, ids store.WorkflowIDs,
		now time.Time, down time.Duration) (store.CreatedSession, error)
}

// Sessions holds the activities that create sessions, for the workflows that start them on
// their own (scheduled sessions).
type Sessions struct {
	Store SessionCreator
	Rules recording.Rules // the deployment's, as the API has them
	Down  time.Duration   // the silence after which an enclosure is DOWN (admission warns of it)
	// The workflows' IDs (the activities do not import the workflows).
	SessionWorkflowID func(sessionID int64) string
	DeviceWorkflowID  func(sessionID, deviceID int64) string
}

// CreatedSession is a session CreateSession created, with what admission warned of.
type CreatedSession struct {
	ID       int64
	Warnings []string
}

// ErrSessionRefused is the application error type of a session the rules refuse; its details
// are the fields at fault and why.
const ErrSessionRefused = "SessionRefused"

// CreateSession creates a session as a POST /api/recording-session does; its workflow starts
// through the outbox. A refusal is final (not retried): the same request would be refused
// again. A retry after a lost reply creates a second session, so a caller that must create
// exactly one checks first.
func (a *Sessions) CreateSession(ctx context.Context, ns recording.NewSession) (CreatedSession, error) {
	ids := store.WorkflowIDs{Session: a.SessionWorkflowID, Device: a.DeviceWorkflowID}
	created, err := a.Store.CreateSession(ctx, ns, a.Rules, ids, time.Now(), a.Down)
	var refusal *recording.Refusal
	if errors.As(err, &refusal) {
		return CreatedSession{}, temporal.NewNonRetryableApplicationError(refusal.Message, ErrSessionRefused, err, refusal.Fields)
	}
	if err != nil {
		return CreatedSession{}, err
	}
	return CreatedSession{ID: created.ID, Warnings: created.Warnings}, nil
}
