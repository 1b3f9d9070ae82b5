package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

// TestAuditRowsCommitWithTheirChange: a write made with an Audited context records its entry in
// its own transaction; a write that fails records none.
func TestAuditRowsCommitWithTheirChange(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.device("NV1")
	entry := store.AuditEntry{Action: recording.AuditDeviceTokenSet, Subject: "NV1", Detail: "d", ClientIP: "10.0.0.1"}
	require.NoError(t, f.store.SetDeviceToken(store.Audited(ctx, entry), id, []byte("hash")))
	err := f.store.SetDeviceToken(store.Audited(ctx, entry), 999999, []byte("hash"))
	require.True(t, errors.Is(err, store.ErrNotFound), "%v", err)

	rows, err := f.store.AuditLog(ctx, store.AuditFilter{Action: recording.AuditDeviceTokenSet})
	require.NoError(t, err)
	require.Len(t, rows, 1, "the failed write left no row")
	require.Equal(t, "NV1", rows[0].Subject)
	require.Equal(t, "d", rows[0].Detail)
	require.Nil(t, rows[0].ActorID)
}

// TestPurgeAuditLogKeepsTheRetention deletes rows older than the cutoff only.
func TestPurgeAuditLogKeepsTheRetention(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, age := range []time.Duration{400 * 24 * time.Hour, time.Hour} {
		_, err := f.pool.Exec(ctx, `INSERT INTO audit_log (at, action, subject) VALUES (@at, 'login', 'x')`,
			pgx.NamedArgs{"at": f.now.Add(-age)})
		require.NoError(t, err)
	}
	n, err := f.store.PurgeAuditLog(ctx, f.now.Add(-365*24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	rows, err := f.store.AuditLog(ctx, store.AuditFilter{})
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.WithinDuration(t, f.now.Add(-time.Hour), rows[0].At, time.Second)
}
