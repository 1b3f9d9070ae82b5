// Package worker is the one place that registers every workflow and activity, for the
// binary and for tests alike, and starts the singleton workflows.
package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/workflows"
)

// Deps are the implementations the activities need.
type Deps struct {
	Auth activities.AuthPurger
}

// Register adds every workflow and activity to r.
func Register(r sdkworker.Registry, d Deps) {
	r.RegisterWorkflow(workflows.Housekeeping)
	r.RegisterActivity(&activities.Housekeeping{Auth: d.Auth})
}

// New returns a worker on taskQueue with everything registered.
func New(c client.Client, taskQueue string, d Deps) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	Register(w, d)
	return w
}

// HousekeepingEvery is how often expired credentials are purged.
const HousekeepingEvery = 6 * time.Hour

// StartSingletons makes sure the namespace's singleton workflows run; starting one that already
// runs is a no-op, so every process may call this at start-up.
func StartSingletons(ctx context.Context, c client.Client, taskQueue string) error {
	_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflows.HousekeepingWorkflowID(taskQueue),
		TaskQueue:                taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, workflows.Housekeeping, workflows.HousekeepingInput{Every: HousekeepingEvery, Keep: 30 * 24 * time.Hour})
	if err != nil && !errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("starting the housekeeping workflow: %w", err)
	}
	return nil
}
