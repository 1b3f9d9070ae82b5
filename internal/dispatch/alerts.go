package dispatch

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/workflows"
)

// Alerts raises and clears alert conditions and reaches the alert workflows for people.
type Alerts struct {
	Temporal  client.Client
	TaskQueue string
	Policy    workflows.AlertPolicy
}

// AlertSubject is what an alert is about.
type AlertSubject struct {
	Kind      recording.AlertKind
	SessionID int64 // 0: a fleet alert
	DeviceID  int64
	Subject   string // what a fleet alert is about when it is no enclosure (a channel); usually ''
	Owner     string // told at the first tier instead (activities.AlertSignal.Owner); not part of the alert's id
}

func (a Alerts) id(s AlertSubject) string {
	return workflows.AlertSubjectWorkflowID(a.TaskQueue, s.Kind, s.SessionID, s.DeviceID, s.Subject)
}

// Raise says the condition holds: it opens the subject's alert, or tells the open one (one
// alert per condition and subject: SignalWithStart is atomic, so raising twice is harmless).
func (a Alerts) Raise(ctx context.Context, s AlertSubject, summary string) error {
	return a.raise(ctx, s, summary, false)
}

// Notice opens an alert that is told once and resolves by itself (workflows.AlertInput.Notice).
func (a Alerts) Notice(ctx context.Context, s AlertSubject, summary string) error {
	return a.raise(ctx, s, summary, true)
}

func (a Alerts) raise(ctx context.Context, s AlertSubject, summary string, notice bool) error {
	in := workflows.AlertInput{Kind: s.Kind, SessionID: s.SessionID, DeviceID: s.DeviceID, Subject: s.Subject, Summary: summary,
		Policy: a.Policy, Notice: notice, Owner: s.Owner}
	_, err := a.Temporal.SignalWithStartWorkflow(ctx, a.id(s), workflows.SignalAlertCondition,
		workflows.AlertCondition{Active: true, Summary: summary},
		client.StartWorkflowOptions{TaskQueue: a.TaskQueue,
			// A resolved alert's ID opens a new alert when its condition returns.
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE},
		workflows.AlertLifecycle, in)
	if err != nil {
		return fmt.Errorf("Alerts.Raise %s: %w", a.id(s), err)
	}
	return nil
}

// Clear says the condition cleared; with no open alert there is nothing to clear.
func (a Alerts) Clear(ctx context.Context, s AlertSubject) error {
	err := a.Temporal.SignalWorkflow(ctx, a.id(s), "", workflows.SignalAlertCondition, workflows.AlertCondition{Active: false})
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("Alerts.Clear %s: %w", a.id(s), err)
	}
	return nil
}

// SignalAlert raises or clears an alert for the alert activities (activities.AlertRaiser).
func (a Alerts) SignalAlert(ctx context.Context, s activities.AlertSignal) error {
	subject := AlertSubject{Kind: s.Kind, SessionID: s.SessionID, DeviceID: s.DeviceID, Subject: s.Subject, Owner: s.Owner}
	if s.Active {
		return a.raise(ctx, subject, s.Summary, s.Notice)
	}
	return a.Clear(ctx, subject)
}

// ErrAlertClosed: the alert's workflow is no longer running (it resolved).
var ErrAlertClosed = errors.New("the alert is resolved")

// RefusedError is an update the workflow's validator refused; its message is for people.
// Kind is the refusal's ApplicationError type (workflows.Refused*, "" for none) and Field the
// request's field it names, if any.
type RefusedError struct{ Reason, Kind, Field string }

func (e *RefusedError) Error() string { return e.Reason }

// Acknowledge runs the acknowledge update on the alert's workflow.
func (a Alerts) Acknowledge(ctx context.Context, workflowID string, req workflows.AckRequest) (workflows.AlertLifecycleState, error) {
	return a.update(ctx, workflowID, workflows.UpdateAcknowledge, req)
}

// Silence runs the silence update on the alert's workflow.
func (a Alerts) Silence(ctx context.Context, workflowID string, req workflows.SilenceRequest) (workflows.AlertLifecycleState, error) {
	return a.update(ctx, workflowID, workflows.UpdateSilence, req)
}

func (a Alerts) update(ctx context.Context, workflowID, name string, arg any) (workflows.AlertLifecycleState, error) {
	var st workflows.AlertLifecycleState
	err := runUpdate(ctx, a.Temporal, workflowID, name, arg, &st, ErrAlertClosed)
	if err != nil && !errors.Is(err, ErrAlertClosed) && !errors.As(err, new(*RefusedError)) {
		err = fmt.Errorf("Alerts.%s %s: %w", name, workflowID, err)
	}
	return st, err
}

// runUpdate runs an update on a workflow and waits for its result: closed when the workflow no
// longer runs, a *RefusedError when its validator (or its handler) refused it.
func runUpdate(ctx context.Context, c client.Client, workflowID, name string, arg, result any, closed error) error {
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: workflowID, UpdateName: name,
		Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err == nil {
		err = h.Get(ctx, result)
	}
	var nf *serviceerror.NotFound
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nf):
		return closed
	case errors.As(err, &app):
		// The validator's refusal comes back as an application error with its message.
		refused := &RefusedError{Reason: app.Message(), Kind: app.Type()}
		if app.HasDetails() {
			_ = app.Details(&refused.Field) // a refusal without a field names none
		}
		return refused
	}
	return err
}
