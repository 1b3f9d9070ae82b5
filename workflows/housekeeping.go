// Package workflows holds the deterministic orchestration code: workflow functions, their
// contract names and types, tests and recorded histories. No I/O happens here.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
)

// HousekeepingWorkflowID is the ID of the one housekeeping workflow of a deployment (each
// deployment has its own database and task queue).
func HousekeepingWorkflowID(taskQueue string) string { return "mba-housekeeping-" + taskQueue }

// HousekeepingInput configures the clean-up loop.
type HousekeepingInput struct {
	Every time.Duration // time between rounds
	Keep  time.Duration // how long expired tokens stay for audits
}

// housekeepingRoundsPerRun bounds the history of one run; the loop then continues as new.
const housekeepingRoundsPerRun = 100

// Housekeeping purges expired credentials every in.Every, forever.
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
		if err := workflow.Sleep(ctx, in.Every); err != nil {
			return err
		}
	}
	return workflow.NewContinueAsNewError(ctx, Housekeeping, in)
}
