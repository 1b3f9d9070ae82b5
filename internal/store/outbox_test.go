package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/protocol"
)

// TestOutboxOrder: an enclosure's transitions are queued in the order they happened (ids
// ascending), each in the transaction that decided it, and stay pending, failed attempts
// included, until marked dispatched.
func TestOutboxOrder(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sid, dev := f.recording("nv1")
	require.Equal(t, protocol.Reply{Command: protocol.Complete}, f.beat("nv1", sid, false, 60)) // it finished
	names, err := f.store.MarkSilent(ctx, f.tick().Add(time.Second), f.now)                     // then went quiet
	require.NoError(t, err)
	require.Equal(t, []string{"nv1"}, names)
	require.Equal(t, protocol.Reply{Command: protocol.Complete}, f.beat("nv1", sid, false, 60)) // and came back

	want := []string{store.KindStartSession + "/", "started/start", "ended/", "silent/", "returned/"}
	require.Equal(t, want, f.pending())
	rows := f.pendingRows()
	for i := 1; i < len(rows); i++ {
		require.Less(t, rows[i-1].ID, rows[i].ID)
	}
	require.Equal(t, sessionWorkflow(sid), rows[0].WorkflowID)
	var start store.SessionStart
	require.NoError(t, json.Unmarshal(rows[0].Payload, &start), "start_session has a typed payload")
	require.Equal(t, store.SessionStart{SessionID: sid}, start)
	for _, r := range rows[1:] {
		require.Equal(t, deviceWorkflow(sid, dev), r.WorkflowID)
	}

	// A failed attempt keeps the row at the head, counted; a delivery takes it out.
	require.NoError(t, f.store.MarkOutboxFailed(ctx, rows[0].ID, "Temporal is down"))
	require.Equal(t, want, f.pending())
	require.Equal(t, 1, f.pendingRows()[0].Attempts)
	backlog, err := f.store.OutboxBacklog(ctx)
	require.NoError(t, err)
	require.EqualValues(t, len(want), backlog.Pending)
	require.Positive(t, backlog.OldestSeconds+1) // never negative, whatever the clocks

	require.NoError(t, f.store.MarkDispatched(ctx, rows[0].ID, f.tick()))
	require.NoError(t, f.store.MarkDispatched(ctx, rows[2].ID, f.tick()))
	require.Equal(t, []string{"started/start", "silent/", "returned/"}, f.pending())
	backlog, err = f.store.OutboxBacklog(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 3, backlog.Pending)
	require.Zero(t, backlog.Undeliverable)
}

// TestOutboxNotifies: every write that queues a transition wakes the dispatcher (NOTIFY on
// store.OutboxChannel, delivered at the commit).
func TestOutboxNotifies(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	conn, err := f.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, "LISTEN "+store.OutboxChannel)
	require.NoError(t, err)
	// wait waits for the next notification, however loaded the machine.
	wait := func(what string) {
		t.Helper()
		waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		n, err := conn.Conn().WaitForNotification(waitCtx)
		require.NoError(t, err, what)
		require.Equal(t, store.OutboxChannel, n.Channel, what)
	}

	dev := f.device("nv1")
	sid, params := f.session(dev)
	wait("the session's start")
	settled, err := f.store.AssignStart(ctx, dev, params, deviceWorkflow(sid, dev), "start", f.tick())
	require.NoError(t, err)
	require.Nil(t, settled)
	f.beat("nv1", sid, true, 0)
	wait("started, from the heartbeat batch")
	_, err = f.store.MarkSilent(ctx, f.tick().Add(time.Second), f.now)
	require.NoError(t, err)
	wait("silent")
	_, err = f.store.RequestStop(ctx, store.StopRequest{SessionID: sid, Reason: "done"}, sessionWorkflow(sid), f.tick())
	require.NoError(t, err)
	wait("the cancel")
	require.Equal(t, []string{store.KindStartSession + "/", "started/start", "silent/", store.KindCancelSession + "/"}, f.pending())
}
