package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
)

// housekeepingRoundsPerRun bounds the history of one run; the loop then continues as new.
const housekeepingRoundsPerRun = 100

// changeAuditRetention: rounds also purge audit rows past their retention (issue 15).
const changeAuditRetention = "housekeeping-audit-retention"

// Housekeeping purges expired credentials (and old audit rows) every in.Every, forever.
func Housekeeping(ctx workflow.Context, in HousekeepingInput) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 10 * time.Minute, MaximumAttempts: 5},
	})
	var h *activities.Housekeeping
	for round := 0; round < housekeepingRoundsPerRun && !workflow.GetInfo(ctx).GetContinueAsNewSuggested(); round++ {
		if err := workflow.ExecuteActivity(ctx, h.PurgeExpiredAuth, in.Keep).Get(ctx, nil); err != nil {
			// The retry policy has given up for now; try again next round rather than end the loop.
			workflow.GetLogger(ctx).Error("purging expired tokens", "error", err)
		}
		if workflow.GetVersion(ctx, changeAuditRetention, workflow.DefaultVersion, 1) == 1 {
			if err := workflow.ExecuteActivity(ctx, h.PurgeAuditLog).Get(ctx, nil); err != nil {
				workflow.GetLogger(ctx).Error("purging old audit rows", "error", err)
			}
		}
		if err := workflow.Sleep(ctx, in.Every); err != nil {
			return err
		}
	}
	return workflow.NewContinueAsNewError(ctx, Housekeeping, in)
}
