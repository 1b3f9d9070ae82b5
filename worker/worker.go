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
	Auth      activities.AuthPurger
	Mailbox   activities.Mailbox
	ReadModel activities.ReadModel
	Devices   activities.SilenceMarker
}

// Register adds every workflow and activity to r.
func Register(r sdkworker.Registry, d Deps) {
	r.RegisterWorkflow(workflows.Housekeeping)
	r.RegisterWorkflow(workflows.RecordingSession)
	r.RegisterWorkflow(workflows.DeviceRecording)
	r.RegisterWorkflow(workflows.FleetMonitor)
	r.RegisterActivity(&activities.Housekeeping{Auth: d.Auth})
	r.RegisterActivity(&activities.Recording{Mailbox: d.Mailbox, ReadModel: d.ReadModel})
	r.RegisterActivity(&activities.Fleet{Devices: d.Devices})
}

// New returns a worker on taskQueue with everything registered.
func New(c client.Client, taskQueue string, d Deps) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	Register(w, d)
	return w
}

// HousekeepingEvery is how often expired credentials are purged.
const HousekeepingEvery = 6 * time.Hour

// StartSingletons makes sure the deployment's singleton workflows run; starting one that
// already runs is a no-op, so every process may call this at start-up.
func StartSingletons(ctx context.Context, c client.Client, taskQueue string, fleet activities.FleetWatch) error {
	for _, s := range []struct {
		id       string
		workflow any
		input    any
	}{
		{workflows.HousekeepingWorkflowID(taskQueue), workflows.Housekeeping,
			workflows.HousekeepingInput{Every: HousekeepingEvery, Keep: 30 * 24 * time.Hour}},
		{workflows.FleetMonitorWorkflowID(taskQueue), workflows.FleetMonitor, fleet},
	} {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:                       s.id,
			TaskQueue:                taskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		}, s.workflow, s.input)
		if err != nil && !errors.Is(ctx.Err(), context.Canceled) {
			return fmt.Errorf("starting %s: %w", s.id, err)
		}
	}
	return nil
}
