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
