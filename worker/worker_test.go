package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/worker"
	"github.com/jax-mba/mba/workflows"
)

// TestWorkerRunsHousekeepingOnTheDevServer boots a real worker against the Temporal dev server
// and a real database and checks that the singleton starts once and purges expired tokens.
func TestWorkerRunsHousekeepingOnTheDevServer(t *testing.T) {
	ctx := context.Background()
	st := store.New(testenv.MigratedPool(t))
	u, err := st.CreateUser(ctx, "ann@lab.example", "", false)
	require.NoError(t, err)
	require.NoError(t, st.SaveRefreshToken(ctx, "old", u.ID, time.Now().Add(-60*24*time.Hour)))
	require.NoError(t, st.SaveRefreshToken(ctx, "current", u.ID, time.Now().Add(time.Hour)))

	// A namespace is shared by the suite; a task queue of its own keeps this test's tasks apart.
	c, err := client.Dial(client.Options{HostPort: testenv.TemporalAddress(t)})
	require.NoError(t, err)
	defer c.Close()
	queue := testenv.RandomName("housekeeping-")
	w := worker.New(c, queue, worker.StoreDeps(st))
	require.NoError(t, w.Start())
	defer w.Stop()

	fleet := activities.FleetWatch{Every: time.Second, Down: time.Minute, Run: time.Minute}
	id := workflows.HousekeepingWorkflowID(queue)
	require.NoError(t, worker.StartSingletons(ctx, c, queue, fleet))
	first, err := c.DescribeWorkflowExecution(ctx, id, "")
	require.NoError(t, err)
	require.NoError(t, worker.StartSingletons(ctx, c, queue, fleet), "starting again is a no-op")
	second, err := c.DescribeWorkflowExecution(ctx, id, "")
	require.NoError(t, err)
	require.Equal(t, first.WorkflowExecutionInfo.Execution.RunId, second.WorkflowExecutionInfo.Execution.RunId)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, second.WorkflowExecutionInfo.Status)

	require.Eventually(t, func() bool {
		var left int
		require.NoError(t, st.Pool().QueryRow(ctx, `SELECT count(*) FROM refresh_tokens WHERE id = 'old'`).Scan(&left))
		return left == 0
	}, 20*time.Second, 100*time.Millisecond, "the long-expired token is purged")
	active, err := st.RefreshTokenActive(ctx, "current", u.ID)
	require.NoError(t, err)
	require.True(t, active, "unexpired tokens stay")
	require.NoError(t, c.TerminateWorkflow(ctx, id, "", "test done"))
	require.NoError(t, c.TerminateWorkflow(ctx, workflows.FleetMonitorWorkflowID(queue), "", "test done"))
}
