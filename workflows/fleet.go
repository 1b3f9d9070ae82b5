package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
)

// FleetMonitor keeps one long-running, heartbeating scan of the fleet going, restarting it
// after each run, and continues as new to keep its history short.
func FleetMonitor(ctx workflow.Context, w activities.FleetWatch) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: w.Run + time.Minute,
		HeartbeatTimeout:    max(3*w.Every, 30*time.Second),
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
	var f *activities.Fleet
	for i := 0; i < 100 && !workflow.GetInfo(ctx).GetContinueAsNewSuggested(); i++ {
		if err := workflow.ExecuteActivity(ctx, f.WatchSilence, w).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("fleet scan", "error", err)
			if err := workflow.Sleep(ctx, w.Every); err != nil {
				return err
			}
		}
	}
	return workflow.NewContinueAsNewError(ctx, FleetMonitor, w)
}
