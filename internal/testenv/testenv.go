// Package testenv gives integration tests the real PostgreSQL and Temporal dev server that
// `make test` starts (scripts/test.sh), with isolation per test: every test gets a database
// of its own, created empty and dropped afterwards.
//
// `go test -short` skips the tests that need them; without -short and without the servers a
// test fails and says how to run it, so a missing service can never pass silently.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/migrations"
)

const (
	databaseEnv = "MBA_TEST_DATABASE_URL"
	temporalEnv = "MBA_TEST_TEMPORAL_ADDRESS"
)

func need(t testing.TB, env string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s (integration test; skipped with -short)", env)
	}
	v := os.Getenv(env)
	if v == "" {
		t.Fatalf("%s is not set: run the suite with `make test`, which starts PostgreSQL and Temporal", env)
	}
	return v
}

// RandomName returns prefix followed by 12 random hex digits.
func RandomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// EmptyDatabase creates a database of its own for t and returns its URL; it is dropped when t ends.
func EmptyDatabase(t testing.TB) string {
	t.Helper()
	adminURL := need(t, databaseEnv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, adminURL)
	require.NoError(t, err)
	defer admin.Close(ctx)

	name := RandomName("mbatest_")
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			t.Errorf("dropping test database: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping test database: %v", err)
		}
	})

	u, err := url.Parse(adminURL)
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String()
}

// Pool connects to an empty database of t's own; closed when t ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), EmptyDatabase(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// MigratedPool is Pool with every migration applied.
func MigratedPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool := Pool(t)
	_, err := migrations.Up(context.Background(), pool, nil)
	require.NoError(t, err)
	return pool
}

// TemporalAddress is the host:port of the Temporal dev server the suite runs against.
func TemporalAddress(t testing.TB) string {
	t.Helper()
	return need(t, temporalEnv)
}
