package migrations_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/migrations"
)

func TestEveryMigrationHasUpAndDown(t *testing.T) {
	all, err := migrations.All()
	require.NoError(t, err)
	require.NotEmpty(t, all)
	for _, m := range all {
		require.NotEmpty(t, strings.TrimSpace(m.Up), "%04d up", m.Version)
		require.NotEmpty(t, strings.TrimSpace(m.Down), "%04d down", m.Version)
	}
}

func TestParseRejectsBadSets(t *testing.T) {
	for name, files := range map[string]fstest.MapFS{
		"missing down": {"0001_a.up.sql": {Data: []byte("SELECT 1")}},
		"bad name":     {"1_a.up.sql": {Data: []byte("SELECT 1")}},
		"gap": {
			"0001_a.up.sql": {Data: []byte("x")}, "0001_a.down.sql": {Data: []byte("x")},
			"0003_c.up.sql": {Data: []byte("x")}, "0003_c.down.sql": {Data: []byte("x")},
		},
		"two names": {"0001_a.up.sql": {Data: []byte("x")}, "0001_b.down.sql": {Data: []byte("x")}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := migrations.ParseForTest(files)
			require.Error(t, err)
		})
	}
}

// schema describes every table, column, index and constraint of the public schema.
func schema(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'schema_migrations'
		UNION ALL
		SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
		UNION ALL
		SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
		FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid <> 'schema_migrations'::regclass
		ORDER BY 1`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func TestUpDownUpLeavesTheSameSchema(t *testing.T) {
	pool := testenv.Pool(t)
	ctx := context.Background()
	all, err := migrations.All()
	require.NoError(t, err)

	applied, err := migrations.Up(ctx, pool, nil)
	require.NoError(t, err)
	require.Len(t, applied, len(all))
	first := schema(t, pool)
	require.NotEmpty(t, first)

	reverted, err := migrations.Down(ctx, pool, len(all), nil)
	require.NoError(t, err)
	require.Len(t, reverted, len(all))
	require.Empty(t, schema(t, pool), "down must remove everything up created")

	_, err = migrations.Up(ctx, pool, nil)
	require.NoError(t, err)
	require.Equal(t, first, schema(t, pool))

	pending, err := migrations.Pending(ctx, pool)
	require.NoError(t, err)
	require.Zero(t, pending)
}

func TestDownStepsRevertNewestFirst(t *testing.T) {
	pool := testenv.Pool(t)
	ctx := context.Background()
	all, err := migrations.All()
	require.NoError(t, err)
	_, err = migrations.Up(ctx, pool, nil)
	require.NoError(t, err)

	reverted, err := migrations.Down(ctx, pool, 1, nil)
	require.NoError(t, err)
	require.Len(t, reverted, 1)
	require.Equal(t, all[len(all)-1].Version, reverted[0].Version)

	list, err := migrations.List(ctx, pool)
	require.NoError(t, err)
	require.Nil(t, list[len(list)-1].AppliedAt)
	require.NotNil(t, list[0].AppliedAt)
}

func TestConcurrentUpAppliesEachMigrationOnce(t *testing.T) {
	pool := testenv.Pool(t)
	ctx := context.Background()
	all, err := migrations.All()
	require.NoError(t, err)

	var wg sync.WaitGroup
	counts := make([]int, 4)
	errs := make([]error, 4)
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			applied, err := migrations.Up(ctx, pool, nil)
			counts[i], errs[i] = len(applied), err
		}()
	}
	wg.Wait()
	total := 0
	for i := range counts {
		require.NoError(t, errs[i])
		total += counts[i]
	}
	require.Equal(t, len(all), total, "every migration applied exactly once across the racing processes")
}
