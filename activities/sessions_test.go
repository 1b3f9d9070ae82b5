package activities_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/worker"
	"github.com/jax-mba/mba/workflows"
)

// TestCreateSessionActivityTakesTheAPIsRoad: a workflow (scheduled sessions) creates a session
// through the same store call as the API: the session, its enclosure's START and the outbox
// row that starts its workflow, or a refusal that is not retried.
func TestCreateSessionActivityTakesTheAPIsRoad(t *testing.T) {
	pool := testenv.MigratedPool(t)
	ctx := context.Background()
	var deviceID int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO devices (name, last_seen_at) VALUES ('NV1', now()) RETURNING id`).Scan(&deviceID))
	rules := recording.Rules{MaxEnclosures: 5, MinFPS: 1, MaxFPS: 120, MaxDuration: 24 * time.Hour}
	a := &activities.Sessions{Creator: worker.StoreSessions(store.New(pool), rules, time.Minute)}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)

	ns := recording.NewSession{Name: " nightly ", Duration: 3600, TargetFPS: 30,
		Devices: []recording.NewSessionDevice{{DeviceID: &deviceID, FilePrefix: "cage1"}}}
	val, err := env.ExecuteActivity(a.CreateSession, ns)
	require.NoError(t, err)
	var created activities.CreatedSession
	require.NoError(t, val.Get(&created))
	require.NotZero(t, created.ID)
	require.Empty(t, created.Warnings, "an idle enclosure with no disk report warns of nothing")

	var name, status, prefix, workflowID, kind string
	require.NoError(t, pool.QueryRow(ctx, `SELECT s.name, sd.status, sd.file_prefix FROM sessions s
		JOIN session_devices sd ON sd.session_id = s.id WHERE s.id = $1`, created.ID).Scan(&name, &status, &prefix))
	require.Equal(t, []string{"nightly", "PENDING", "cage1"}, []string{name, status, prefix})
	require.NoError(t, pool.QueryRow(ctx, `SELECT workflow_id, kind FROM outbox WHERE workflow_id = $1`,
		workflows.SessionWorkflowID(created.ID)).Scan(&workflowID, &kind))
	require.Equal(t, store.KindStartSession, kind, "the workflow starts through the outbox")
	var phase string
	require.NoError(t, pool.QueryRow(ctx, `SELECT phase FROM device_assignments WHERE device_id = $1`, deviceID).Scan(&phase))
	require.Equal(t, "starting", phase, "START waits in the enclosure's mailbox")

	// The rules refuse, for good: the same request would be refused again.
	ns.Duration = 0
	_, err = env.ExecuteActivity(a.CreateSession, ns)
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr), "%v", err)
	require.Equal(t, activities.ErrSessionRefused, appErr.Type())
	require.True(t, appErr.NonRetryable())
	require.Contains(t, appErr.Error(), "duration: must be at least 1 second")
	var fields map[string]string
	require.NoError(t, appErr.Details(&fields))
	require.Equal(t, map[string]string{"duration": "must be at least 1 second"}, fields)
}
