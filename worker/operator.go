package worker

import (
	"context"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/workflows"
)

// identityResetter is the identity Temporal terminates a run with when it resets it: the new
// run's reset event names the operator, so the termination is no news of its own.
const identityResetter = "history-resetter"

// OperatorActionsOf reads operators' actions on sessions' workflows from Temporal: the runs
// canceled or terminated (close event, cancel request) and the runs a reset started (the reset
// event in the new run's history), with the identity and reason Temporal recorded.
func OperatorActionsOf(c client.Client) activities.OperatorActions { return operatorActions{c} }

type operatorActions struct{ c client.Client }

// RecentRuns lists, from Temporal's visibility, the sessions' workflow runs that ended canceled
// or terminated since since, and those started since (a reset starts a run; Action tells).
func (o operatorActions) RecentRuns(ctx context.Context, since time.Time) ([]activities.OperatorRun, error) {
	at := since.UTC().Format(time.RFC3339)
	var out []activities.OperatorRun
	for _, q := range []struct {
		query  string
		closed bool
	}{
		{fmt.Sprintf("MbaSessionId IS NOT NULL AND CloseTime >= '%s' AND (ExecutionStatus = 'Terminated' OR ExecutionStatus = 'Canceled')", at), true},
		{fmt.Sprintf("MbaSessionId IS NOT NULL AND StartTime >= '%s'", at), false},
	} {
		var token []byte
		for {
			res, err := o.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q.query, PageSize: 500, NextPageToken: token})
			if err != nil {
				return nil, fmt.Errorf("RecentRuns: %w", err)
			}
			for _, e := range res.Executions {
				sid, did, ok := workflows.SessionOfWorkflowID(e.Execution.WorkflowId)
				if !ok {
					continue
				}
				r := activities.OperatorRun{WorkflowID: e.Execution.WorkflowId, RunID: e.Execution.RunId, SessionID: sid,
					DeviceID: did, Closed: q.closed, Key: "temporal/" + e.Execution.RunId + "/reset"}
				if q.closed {
					r.Key = "temporal/" + e.Execution.RunId + "/closed"
				}
				out = append(out, r)
			}
			if token = res.NextPageToken; len(token) == 0 {
				break
			}
		}
	}
	return out, nil
}

// Action reads what an operator did to r from its history.
func (o operatorActions) Action(ctx context.Context, r activities.OperatorRun) (activities.OperatorAction, bool, error) {
	if !r.Closed {
		d, err := o.c.DescribeWorkflowExecution(ctx, r.WorkflowID, r.RunID)
		if err != nil {
			return activities.OperatorAction{}, false, fmt.Errorf("Action %s: %w", r.WorkflowID, err)
		}
		if t := d.GetWorkflowExtendedInfo().GetLastResetTime(); t == nil || t.AsTime().IsZero() {
			return activities.OperatorAction{}, false, nil
		}
	}
	var found activities.OperatorAction
	ok := false
	it := o.c.GetWorkflowHistory(ctx, r.WorkflowID, r.RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() && !ok {
		e, err := it.Next()
		if err != nil {
			return activities.OperatorAction{}, false, fmt.Errorf("Action %s: %w", r.WorkflowID, err)
		}
		found, ok = operatorEvent(r, e)
	}
	return found, ok, nil
}

// operatorEvent is the operator's action e records in r, if any.
func operatorEvent(r activities.OperatorRun, e *historypb.HistoryEvent) (activities.OperatorAction, bool) {
	at := e.GetEventTime().AsTime()
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
		a := e.GetWorkflowExecutionTerminatedEventAttributes()
		if !r.Closed || a.GetIdentity() == identityResetter {
			return activities.OperatorAction{}, false
		}
		return activities.OperatorAction{Kind: "temporal.terminate", At: at, Message: fmt.Sprintf(
			"workflow %s terminated in Temporal by %s: %s", r.WorkflowID, orUnknown(a.GetIdentity()), orNone(a.GetReason()))}, true
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
		a := e.GetWorkflowExecutionCancelRequestedEventAttributes()
		if !r.Closed || a.GetExternalWorkflowExecution() != nil {
			return activities.OperatorAction{}, false // its parent (or another workflow) asked: no operator
		}
		return activities.OperatorAction{Kind: "temporal.cancel", At: at, Message: fmt.Sprintf(
			"workflow %s canceled in Temporal by %s: %s", r.WorkflowID, orUnknown(a.GetIdentity()), orNone(a.GetCause()))}, true
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED:
		a := e.GetWorkflowTaskFailedEventAttributes()
		if r.Closed || a.GetCause() != enumspb.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW || a.GetNewRunId() != r.RunID {
			return activities.OperatorAction{}, false
		}
		who, reason := resetBy(a.GetIdentity(), a.GetFailure().GetMessage())
		return activities.OperatorAction{Kind: "temporal.reset", At: at, Message: fmt.Sprintf(
			"workflow %s reset in Temporal by %s: %s (run %s replaces %s)", r.WorkflowID, who, orNone(reason),
			r.RunID, a.GetBaseRunId())}, true
	}
	return activities.OperatorAction{}, false
}

// resetBy is who reset a run and why, from its reset event: the server writes that event (its
// identity is history-service, never the CLI's --identity) with the reason prefixed by the
// authenticated user, "<unknown-user>" on a server without authorization.
func resetBy(identity, message string) (who, reason string) {
	who, reason = identity, message
	if user, rest, ok := strings.Cut(message, ": "); ok && !strings.ContainsAny(user, " ") {
		who, reason = user, rest
	}
	if who == "<unknown-user>" || who == "history-service" || who == "" {
		who = "an operator (Temporal recorded no user)"
	}
	return who, reason
}

func orUnknown(identity string) string {
	if identity == "" {
		return "an unknown identity"
	}
	return identity
}

func orNone(reason string) string {
	if reason == "" {
		return "no reason given"
	}
	return reason
}
