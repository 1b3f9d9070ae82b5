package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/protocol"
)

// fixture is a Store over a migrated database of the test's own.
type fixture struct {
	t     *testing.T
	pool  *pgxpool.Pool
	store *store.Store
	now   time.Time
}

func newFixture(t *testing.T) *fixture {
	pool := testenv.MigratedPool(t)
	return &fixture{t: t, pool: pool, store: store.New(pool), now: time.Now().UTC().Truncate(time.Millisecond)}
}

// tick advances the fixture's clock, so every write has a time of its own.
func (f *fixture) tick() time.Time {
	f.now = f.now.Add(time.Second)
	return f.now
}

// device registers an enclosure and returns its id.
func (f *fixture) device(name string) int64 {
	f.t.Helper()
	var id int64
	require.NoError(f.t, f.pool.QueryRow(context.Background(), `INSERT INTO devices (name) VALUES ($1) RETURNING id`, name).Scan(&id))
	return id
}

func sessionWorkflow(id int64) string  { return fmt.Sprint("wf-", id) }
func deviceWorkflow(s, d int64) string { return fmt.Sprint("wf-", s, "-device-", d) }

// session creates a one-hour session of the enclosure (its START in the mailbox) and returns
// its id and the START.
func (f *fixture) session(deviceID int64) (int64, recording.Start) {
	f.t.Helper()
	created, err := f.store.CreateSession(context.Background(), recording.NewSession{Name: "s", Duration: 3600, TargetFPS: 30,
		Devices: []recording.NewSessionDevice{{DeviceID: &deviceID, FilePrefix: "cage"}}},
		recording.Rules{MaxEnclosures: 1, MinFPS: 1, MaxFPS: 120, MaxDuration: 24 * time.Hour},
		store.WorkflowIDs{Session: sessionWorkflow, Device: deviceWorkflow}, time.Now(), time.Minute)
	require.NoError(f.t, err)
	id := created.ID
	return id, recording.Start{SessionID: id, Duration: 3600, FilePrefix: "cage", TargetFPS: 30}
}

// beat sends a heartbeat of name at the fixture's next tick.
func (f *fixture) beat(name string, sessionID int64, recording bool, duration int64) protocol.Reply {
	f.t.Helper()
	reply, err := f.store.Heartbeat(context.Background(), f.heartbeat(name, sessionID, recording, duration), "", f.tick(), options)
	require.NoError(f.t, err)
	return reply
}

func (f *fixture) heartbeat(name string, sessionID int64, recording bool, duration int64) protocol.Heartbeat {
	return protocol.Heartbeat{Name: name, Timestamp: f.now, SessionID: sessionID, Recording: recording,
		Duration: duration, HasDuration: sessionID != 0}
}

var options = store.HeartbeatOptions{TelemetryBucket: time.Minute}

// pending lists the undispatched outbox rows as kind/activity, in id order.
func (f *fixture) pending() []string {
	f.t.Helper()
	var out []string
	for _, r := range f.pendingRows() {
		out = append(out, r.Kind+"/"+r.ActivityID)
	}
	return out
}

func (f *fixture) pendingRows() []store.OutboxRow {
	f.t.Helper()
	rows, err := f.store.PendingOutbox(context.Background(), 1000)
	require.NoError(f.t, err)
	return rows
}

// recordingTime is the enclosure's recorded seconds in the session's read model.
func (f *fixture) part(sessionID, deviceID int64) store.DeviceStatus {
	f.t.Helper()
	st, err := f.store.SessionDevice(context.Background(), sessionID, deviceID, f.now, time.Hour)
	require.NoError(f.t, err)
	return st
}

func TestErrorsNameTheMethodAndStayMatchable(t *testing.T) {
	f := newFixture(t)
	_, err := f.store.DeviceByID(context.Background(), 4711, f.now, time.Minute)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.EqualError(t, err, "store.DeviceByID 4711: not found")

	_, err = f.store.Heartbeat(context.Background(), f.heartbeat("nobody", 0, false, 0), "", f.tick(), options)
	require.ErrorIs(t, err, store.ErrUnknownDevice)
	require.EqualError(t, err, "store.Heartbeat nobody: unknown enclosure")

	// The one refusal whose text is the client's message (the API's 400) stays as it is.
	dev := f.device("nv1")
	sid, _ := f.session(dev)
	err = f.store.BeginUpload(context.Background(), store.NewUpload{SessionID: sid, DeviceID: dev, Name: "other.h264", UploadID: "u1"})
	require.ErrorIs(t, err, store.ErrNotRecordingFile)
	require.True(t, strings.HasPrefix(err.Error(), store.ErrNotRecordingFile.Error()), err.Error())
}
