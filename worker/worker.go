// Package worker is the one place that registers every workflow and activity, for the
// binary and for tests alike, and starts the singleton workflows.
package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/dispatch"
	"github.com/jax-mba/mba/workflows"
)

// Deps are the implementations the activities need.
type Deps struct {
	Auth  activities.AuthPurger
	Audit activities.AuditPurger
	// AuditRetention is how long audit rows are kept; zero: forever.
	AuditRetention time.Duration
	Mailbox        activities.Mailbox
	ReadModel      activities.ReadModel
	Devices        activities.SilenceMarker
	// FleetConditions: nil, the fleet scan raises no alerts (idle enclosures DOWN, clocks off).
	FleetConditions activities.FleetConditions
	// ConditionFacts and ConditionLimits: the fleet scan's other conditions (disk, frame
	// rate, upload backlog, channels); nil facts or zero limits: not watched.
	ConditionFacts  activities.ConditionFacts
	ConditionLimits activities.ConditionLimits
	Orphans         activities.OrphanStore
	Workflow        activities.WorkflowStatus
	Files           activities.FileManifest
	Storage         activities.FileReader // nil: no storage; file verification fails
	Alerts          activities.AlertStore
	// Channels are the alert notification channels and recipients (Store is set from Alerts;
	// New sets Raiser, on the worker's client and task queue, when nil).
	Channels activities.Alerts
	// AlertPolicy is the timing of the alerts the workflows raise; zero: the default.
	AlertPolicy workflows.AlertPolicy
	Sessions    activities.SessionCreator // StoreSessions: with the deployment's rules
	Schedules   activities.ScheduleStore  // StoreSchedules: the fires of scheduled sessions
	// Digest gathers the periodic digest, mailed with Channels.Mail.
	Digest activities.DigestStore
	// Operator reads operators' Temporal actions for the timelines (New: from its client);
	// Timeline writes them.
	Operator activities.OperatorActions
	Timeline activities.OperatorTimeline
	// Manifests write session manifests beside the files (manifest.Writer); nil: none written.
	Manifests activities.ManifestWriter
	// Changes makes the changes of running sessions (StoreSessionChanges, with the same rules).
	Changes activities.SessionChanger
}

// Register adds every workflow and activity to r.
func Register(r sdkworker.Registry, d Deps) {
	r.RegisterWorkflow(workflows.Housekeeping)
	r.RegisterWorkflow(workflows.RecordingSession)
	r.RegisterWorkflow(workflows.DeviceRecording)
	r.RegisterWorkflow(workflows.FleetMonitor)
	r.RegisterActivity(&activities.Housekeeping{Auth: d.Auth, Audit: d.Audit, AuditRetention: d.AuditRetention})
	r.RegisterActivity(&activities.Recording{Mailbox: d.Mailbox, ReadModel: d.ReadModel})
	r.RegisterActivity(&activities.Fleet{Devices: d.Devices, Orphans: d.Orphans, Workflow: d.Workflow,
		SessionWorkflowID: workflows.SessionWorkflowID, Conditions: d.FleetConditions, Raiser: d.Channels.Raiser,
		Facts: d.ConditionFacts, Limits: d.ConditionLimits, Operator: d.Operator, Timeline: d.Timeline})
	r.RegisterActivity(&activities.Files{Manifest: d.Files, Storage: d.Storage})
	r.RegisterWorkflow(workflows.AlertLifecycle)
	alerts := d.Channels
	alerts.Store = d.Alerts
	r.RegisterActivity(&alerts)
	r.RegisterActivity(&activities.Sessions{Creator: d.Sessions})
	r.RegisterWorkflow(workflows.ScheduledSession)
	r.RegisterActivity(&activities.Schedules{Store: d.Schedules})
	r.RegisterWorkflow(workflows.Digest)
	r.RegisterActivity(&activities.Digest{Store: d.Digest, Mail: d.Channels.Mail})
	r.RegisterActivity(&activities.Manifests{Writer: d.Manifests})
	r.RegisterActivity(&activities.SessionChanges{Changer: d.Changes})
}

// New returns a worker on taskQueue with everything registered.
func New(c client.Client, taskQueue string, d Deps) sdkworker.Worker {
	if d.Workflow == nil {
		d.Workflow = WorkflowStatusOf(c)
	}
	if d.Operator == nil {
		d.Operator = OperatorActionsOf(c)
	}
	if d.Channels.Raiser == nil {
		policy := d.AlertPolicy
		if policy == (workflows.AlertPolicy{}) {
			policy = workflows.DefaultAlertPolicy
		}
		d.Channels.Raiser = dispatch.Alerts{Temporal: c, TaskQueue: taskQueue, Policy: policy}
	}
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	Register(w, d)
	return w
}

// WorkflowStatusOf tells from Temporal whether a workflow runs ("") or how it ended; a
// workflow Temporal does not know has ended as far as its state is concerned.
func WorkflowStatusOf(c client.Client) activities.WorkflowStatus {
	return func(ctx context.Context, workflowID string) (string, error) {
		d, err := c.DescribeWorkflowExecution(ctx, workflowID, "")
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			return activities.NotStarted, nil
		case err != nil:
			return "", err
		}
		if st := d.WorkflowExecutionInfo.Status; st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			return strings.ToLower(strings.TrimPrefix(st.String(), "WORKFLOW_EXECUTION_STATUS_")), nil
		}
		return "", nil
	}
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
