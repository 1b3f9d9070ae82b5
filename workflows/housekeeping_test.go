package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
)

type countingPurger struct{ calls int }

func (p *countingPurger) PurgeExpiredAuth(context.Context, time.Time) (int64, error) {
	p.calls++
	return 0, nil
}

func TestHousekeepingPurgesEachRoundThenContinuesAsNew(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	purger := &countingPurger{}
	env.RegisterActivity(&activities.Housekeeping{Auth: purger})

	env.ExecuteWorkflow(Housekeeping, HousekeepingInput{Every: time.Hour, Keep: 24 * time.Hour})

	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.True(t, workflow.IsContinueAsNewError(err), "a run ends by continuing as new, got %v", err)
	require.Equal(t, housekeepingRoundsPerRun, purger.calls)
}

func TestHousekeepingSurvivesAFailingPurge(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var h *activities.Housekeeping
	env.RegisterActivity(h)
	env.OnActivity(h.PurgeExpiredAuth, mock.Anything, mock.Anything).Return(int64(0), errors.New("database is down"))
	env.SetTestTimeout(time.Minute)

	env.ExecuteWorkflow(Housekeeping, HousekeepingInput{Every: time.Hour, Keep: time.Hour})

	require.True(t, workflow.IsContinueAsNewError(env.GetWorkflowError()), "failures do not end the loop")
	env.AssertNumberOfCalls(t, "PurgeExpiredAuth", 5*housekeepingRoundsPerRun)
}

type countingAuditPurger struct{ cutoffs []time.Time }

func (p *countingAuditPurger) PurgeAuditLog(_ context.Context, cutoff time.Time) (int64, error) {
	p.cutoffs = append(p.cutoffs, cutoff)
	return 0, nil
}

// TestHousekeepingPurgesTheAuditLogByRetention: each round deletes the audit rows older than the
// worker's retention setting.
func TestHousekeepingPurgesTheAuditLogByRetention(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	audit := &countingAuditPurger{}
	retention := 365 * 24 * time.Hour
	env.RegisterActivity(&activities.Housekeeping{Auth: &countingPurger{}, Audit: audit, AuditRetention: retention})

	env.ExecuteWorkflow(Housekeeping, HousekeepingInput{Every: time.Hour, Keep: 24 * time.Hour})

	require.True(t, workflow.IsContinueAsNewError(env.GetWorkflowError()))
	require.Len(t, audit.cutoffs, housekeepingRoundsPerRun)
	require.WithinDuration(t, time.Now().Add(-retention), audit.cutoffs[0], time.Minute, "rows older than the retention go")
}
