package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/protocol"
)

// recording puts a new enclosure in a new session, recording it (START acknowledged).
func (f *fixture) recording(name string) (sessionID, deviceID int64) {
	f.t.Helper()
	dev := f.device(name)
	sid, params := f.session(dev)
	settled, err := f.store.AssignStart(context.Background(), dev, params, deviceWorkflow(sid, dev), "start", f.tick())
	require.NoError(f.t, err)
	require.Nil(f.t, settled)
	require.Equal(f.t, protocol.Reply{}, f.beat(name, sid, true, 0))
	return sid, dev
}

// TestRecordingTimeNeverGoesDown: the heartbeats keep the recorded seconds live; a duration
// lower than the last starts a new segment whose seconds add to the earlier ones'; and neither
// a heartbeat nor the workflow's final figure ever takes recording_time back (greatest()).
func TestRecordingTimeNeverGoesDown(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sid, dev := f.recording("nv1")

	f.beat("nv1", sid, true, 100)
	require.EqualValues(t, 100, f.part(sid, dev).RecordingTime)
	f.beat("nv1", sid, true, 40) // the client restarted: a second segment
	require.EqualValues(t, 140, f.part(sid, dev).RecordingTime)
	f.beat("nv1", sid, true, 50)
	require.EqualValues(t, 150, f.part(sid, dev).RecordingTime)

	lower, higher := int64(120), int64(200)
	require.NoError(t, f.store.UpdateSessionDevice(ctx, store.DeviceUpdate{SessionID: sid, DeviceID: dev, RecordingTime: &lower, At: f.tick()}))
	require.EqualValues(t, 150, f.part(sid, dev).RecordingTime, "the workflow's lower figure never takes the live one back")
	require.NoError(t, f.store.UpdateSessionDevice(ctx, store.DeviceUpdate{SessionID: sid, DeviceID: dev, RecordingTime: &higher, At: f.tick()}))
	require.EqualValues(t, 200, f.part(sid, dev).RecordingTime)
	f.beat("nv1", sid, true, 60)
	require.EqualValues(t, 200, f.part(sid, dev).RecordingTime, "a heartbeat below the recorded total changes nothing")
}

// TestCanceledStands: a user's cancel (RequestStop) is final in the read model. The workflow,
// learning of it later, adds what the enclosure recorded but never turns the session or the
// enclosure back to another status, and neither does an undeliverable end.
func TestCanceledStands(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sid, dev := f.recording("nv1")
	f.beat("nv1", sid, true, 30)

	changed, err := f.store.RequestStop(ctx, store.StopRequest{SessionID: sid, UserID: 0, Reason: "wrong cage"}, sessionWorkflow(sid), f.tick())
	require.NoError(t, err)
	require.True(t, changed)
	require.EqualValues(t, "CANCELED", f.part(sid, dev).Status)
	require.Equal(t, protocol.Reply{Command: protocol.Stop}, f.beat("nv1", sid, true, 31), "STOP goes out on the next heartbeat")

	recorded := int64(45)
	require.NoError(t, f.store.UpdateSessionDevice(ctx, store.DeviceUpdate{SessionID: sid, DeviceID: dev, Status: "COMPLETE",
		Message: "finished", RecordingTime: &recorded, Final: true, At: f.tick()}))
	part := f.part(sid, dev)
	require.EqualValues(t, "CANCELED", part.Status)
	require.Equal(t, "wrong cage", part.Message)
	require.EqualValues(t, 45, part.RecordingTime, "what it recorded is still added")

	end := f.tick()
	require.NoError(t, f.store.SetSessionStatus(ctx, sid, "COMPLETE", &end))
	session, err := f.store.Session(ctx, sid, f.now, time.Hour)
	require.NoError(t, err)
	require.EqualValues(t, "CANCELED", session.Status)

	// The enclosure's end, arriving for a workflow that is gone, adds its seconds and nothing else.
	ended := recording.Event{Kind: recording.EventEnded, SessionID: sid, Duration: 50, ErrMsg: "disk full", At: f.tick()}
	require.NoError(t, f.store.ResolveUndeliverable(ctx, store.OutboxRow{WorkflowID: deviceWorkflow(sid, dev)}, dev, ended, "gone", f.now))
	part = f.part(sid, dev)
	require.EqualValues(t, "CANCELED", part.Status)
	require.Equal(t, "wrong cage", part.Message)
	require.EqualValues(t, 50, part.RecordingTime)

	changed, err = f.store.RequestStop(ctx, store.StopRequest{SessionID: sid, Reason: "again"}, sessionWorkflow(sid), f.tick())
	require.NoError(t, err)
	require.False(t, changed, "nothing runs any more")
	require.Equal(t, "wrong cage", f.part(sid, dev).Message)
}

// TestWorkflowWriteAndHeartbeatNeverDeadlock: the workflow's read-model write (the enclosure's
// session row, then a timeline entry whose foreign key share-locks the enclosure) meets a
// heartbeat of the same enclosure (the enclosure locked, then its session row) in the other
// order. The heartbeat's lock leaves the key alone (FOR NO KEY UPDATE), so both finish: a
// FOR UPDATE lock deadlocked them, and PostgreSQL failed one (a 500 on the heartbeat route).
func TestWorkflowWriteAndHeartbeatNeverDeadlock(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sid, dev := f.recording("nv1")

	tx, err := f.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `UPDATE session_devices SET message = message WHERE session_id = $1 AND device_id = $2`, sid, dev)
	require.NoError(t, err)

	beat := make(chan error, 1)
	hb := f.heartbeat("nv1", sid, true, 10)
	go func() {
		_, err := f.store.Heartbeat(ctx, hb, "", f.now.Add(time.Second), options)
		beat <- err
	}()
	// The heartbeat holds the enclosure and waits for the session row.
	require.Eventually(t, func() bool {
		var waiting bool
		err := f.pool.QueryRow(ctx, `SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'`).Scan(&waiting)
		return err == nil && waiting
	}, 10*time.Second, 10*time.Millisecond)

	_, err = tx.Exec(ctx, `INSERT INTO session_events (session_id, device_id, kind, message, at) VALUES ($1, $2, 'gap', 'x', now())`, sid, dev)
	require.NoError(t, err, "the workflow's write")
	require.NoError(t, tx.Commit(ctx))
	require.NoError(t, <-beat, "the heartbeat")
	require.EqualValues(t, 10, f.part(sid, dev).RecordingTime)
}
