package activities_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/internal/testenv"
)

// TestSilenceIsJudgedOnlyWhileTheAPIListens: after an outage of the API longer than the DOWN
// threshold, its restart must not mark the whole fleet DOWN (the fleet scan ran 13 ms before
// the HTTP server listened): silence counts only once the API has been listening for the
// threshold, and not at all while it is not listening.
func TestSilenceIsJudgedOnlyWhileTheAPIListens(t *testing.T) {
	pool := testenv.MigratedPool(t)
	st := store.New(pool)
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO devices (name, last_seen_at) VALUES ('NV1', now() - interval '10 minutes')`)
	require.NoError(t, err)
	down := func() bool {
		var d bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT down_since IS NOT NULL FROM devices WHERE name = 'NV1'`).Scan(&d))
		return d
	}
	var s testsuite.WorkflowTestSuite
	scan := func() {
		env := s.NewTestActivityEnvironment()
		f := &activities.Fleet{Devices: st}
		env.RegisterActivity(f)
		_, err := env.ExecuteActivity(f.WatchSilence, activities.FleetWatch{Every: 10 * time.Millisecond, Down: time.Minute,
			Run: 30 * time.Millisecond, ListenGap: 15 * time.Second})
		require.NoError(t, err)
	}

	// The API just came back after its outage.
	require.NoError(t, st.MarkListening(ctx, 15*time.Second))
	scan()
	require.False(t, down(), "silence from before the API could hear proves nothing")

	// The API has not renewed its mark for longer than the gap: it is down now.
	_, err = pool.Exec(ctx, `UPDATE api_listening SET listen_at = now() - interval '5 minutes', alive_at = now() - interval '1 minute'`)
	require.NoError(t, err)
	scan()
	require.False(t, down(), "nothing is heard while the API is down")

	// Back again: listening restarts from now, and the enclosure is silent a minute later.
	require.NoError(t, st.MarkListening(ctx, 15*time.Second))
	since, known, err := st.Listening(ctx, 15*time.Second)
	require.NoError(t, err)
	require.True(t, known)
	require.Less(t, since, 10*time.Second, "a renewal after the gap starts listening again")
	_, err = pool.Exec(ctx, `UPDATE api_listening SET listen_at = now() - interval '61 seconds'`)
	require.NoError(t, err)
	scan()
	require.True(t, down(), "a silence the API could hear for the threshold marks it DOWN")
}
