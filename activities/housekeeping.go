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

// AuditPurger deletes audit rows past their retention.
type AuditPurger interface {
	PurgeAuditLog(ctx context.Context, cutoff time.Time) (int64, error)
}

// Housekeeping holds the periodic clean-up activities.
type Housekeeping struct {
	Auth  AuthPurger
	Audit AuditPurger
	// AuditRetention is how long audit rows are kept (the audit.retention setting); zero keeps
	// them forever. The worker's setting, not the workflow's input: the housekeeping loop keeps
	// the input it first started with across deployments.
	AuditRetention time.Duration
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

// PurgeAuditLog deletes the audit rows older than AuditRetention and returns how many it deleted.
func (h *Housekeeping) PurgeAuditLog(ctx context.Context) (int64, error) {
	if h.AuditRetention <= 0 {
		return 0, nil
	}
	n, err := h.Audit.PurgeAuditLog(ctx, time.Now().Add(-h.AuditRetention))
	if err == nil {
		activity.GetLogger(ctx).Info("purged old audit rows", "deleted", n, "retention", h.AuditRetention)
	}
	return n, err
}
