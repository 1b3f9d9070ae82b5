package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
)

// AuthPurger deletes expired credentials.
type AuthPurger interface {
	PurgeExpiredAuth(ctx context.Context, cutoff time.Time) (int64, error)
}

// Housekeeping holds the periodic clean-up activities.
type Housekeeping struct {
	Auth AuthPurger
}

// PurgeExpiredAuth deletes refresh and link tokens that expired more than keep ago (kept that
// long so an audit can still see them) and returns how many it deleted.
func (h *Housekeeping) PurgeExpiredAuth(ctx context.Context, keep time.Duration) (int64, error) {
	n, err := h.Auth.PurgeExpiredAuth(ctx, time.Now().Add(-keep))
	if err == nil {
		activity.GetLogger(ctx).Info("purged expired tokens", "deleted", n)
	}
	return n, err
}
