package dispatch

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/workflows"
)

// Sessions starts, signals and queries session workflows.
type Sessions struct {
	Temporal  client.Client
	TaskQueue string
	Settings  workflows.Settings
}

func (s Sessions) options(sessionID int64) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       workflows.SessionWorkflowID(sessionID),
		TaskQueue:                s.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// A session runs once: a finished session's ID is never reused.
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	}
}

func (s Sessions) input(sessionID int64) workflows.SessionInput {
	return workflows.SessionInput{SessionID: sessionID, Settings: s.Settings}
}

// Start starts the session's workflow, or does nothing if it runs or ran.
func (s Sessions) Start(ctx context.Context, sessionID int64) error {
	_, err := s.Temporal.ExecuteWorkflow(ctx, s.options(sessionID), workflows.RecordingSession, s.input(sessionID))
	return alreadyRanIsFine(err)
}

// signal sends a signal, starting the workflow first if the outbox has not yet (so a cancel
// right after creation is never lost). A session that already finished has nothing to signal.
func (s Sessions) signal(ctx context.Context, sessionID int64, name string, arg any) error {
	_, err := s.Temporal.SignalWithStartWorkflow(ctx, workflows.SessionWorkflowID(sessionID), name, arg,
		s.options(sessionID), workflows.RecordingSession, s.input(sessionID))
	return alreadyRanIsFine(err)
}

// Cancel asks the session to stop what still runs.
func (s Sessions) Cancel(ctx context.Context, sessionID int64, req workflows.StopRequest) error {
	return s.signal(ctx, sessionID, workflows.SignalCancel, req)
}

// RemoveDevice asks the session to stop one enclosure.
func (s Sessions) RemoveDevice(ctx context.Context, sessionID int64, req workflows.RemoveRequest) error {
	return s.signal(ctx, sessionID, workflows.SignalRemoveDevice, req)
}

// ErrSessionClosed: the session's workflow no longer runs (the session ended).
var ErrSessionClosed = errors.New("it no longer changes")

// AddDevices runs the add-devices update on the session's workflow.
func (s Sessions) AddDevices(ctx context.Context, sessionID int64, req workflows.AddDevicesRequest) (workflows.SessionState, error) {
	return s.update(ctx, sessionID, workflows.UpdateAddDevices, req)
}

// RetryDevice runs the retry-device update on the session's workflow.
func (s Sessions) RetryDevice(ctx context.Context, sessionID int64, req workflows.RetryRequest) (workflows.SessionState, error) {
	return s.update(ctx, sessionID, workflows.UpdateRetryDevice, req)
}

// SetDuration runs the set-duration update on the session's workflow.
func (s Sessions) SetDuration(ctx context.Context, sessionID int64, req workflows.DurationRequest) (workflows.SessionState, error) {
	return s.update(ctx, sessionID, workflows.UpdateDuration, req)
}

func (s Sessions) update(ctx context.Context, sessionID int64, name string, arg any) (workflows.SessionState, error) {
	var st workflows.SessionState
	closed := fmt.Errorf("recording session %d has ended: %w", sessionID, ErrSessionClosed) // for people
	err := runUpdate(ctx, s.Temporal, workflows.SessionWorkflowID(sessionID), name, arg, &st, closed)
	if err != nil && !errors.Is(err, ErrSessionClosed) && !errors.As(err, new(*RefusedError)) {
		err = fmt.Errorf("Sessions.%s session %d: %w", name, sessionID, err)
	}
	return st, err
}

// Status queries the session workflow's live state.
func (s Sessions) Status(ctx context.Context, sessionID int64) (workflows.SessionState, error) {
	var st workflows.SessionState
	v, err := s.Temporal.QueryWorkflow(ctx, workflows.SessionWorkflowID(sessionID), "", workflows.QueryStatus)
	if err == nil {
		err = v.Get(&st)
	}
	return st, err
}

func alreadyRanIsFine(err error) error {
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil
	}
	return err
}
