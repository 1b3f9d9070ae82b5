package api

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUndeliverableTransitionsAreCounted: /metrics counts the transitions resolved without
// their workflow, for an alert on any increase.
func TestUndeliverableTransitionsAreCounted(t *testing.T) {
	h := newHarness(t)
	require.Contains(t, h.metrics(), "mba_outbox_undeliverable_total 0")
	_, err := h.store.Pool().Exec(context.Background(), `
		INSERT INTO outbox (workflow_id, kind, dispatched_at, undeliverable) VALUES ('gone', 'ended', now(), true)`)
	require.NoError(t, err)
	require.Contains(t, h.metrics(), "mba_outbox_undeliverable_total 1")
}
