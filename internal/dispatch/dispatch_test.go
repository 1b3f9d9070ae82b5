package dispatch

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/workflows"
)

type fixture struct {
	pool  *pgxpool.Pool
	store *store.Store
	queue string
}

func newFixture(t *testing.T) *fixture {
	pool := testenv.MigratedPool(t)
	return &fixture{pool: pool, store: store.New(pool), queue: testenv.RandomName("dispatch-")}
}

func (f *fixture) dispatcher(c client.Client, holder string) *Dispatcher {
	return &Dispatcher{Pool: f.pool, Outbox: f.store, Temporal: c, Namespace: "default",
		Sessions: Sessions{Temporal: c, TaskQueue: f.queue}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Poll: 50 * time.Millisecond, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Lease: 900 * time.Millisecond, Holder: holder, CallTimeout: 500 * time.Millisecond}
}

func (f *fixture) run(t *testing.T, d *Dispatcher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// session creates a session of one new enclosure; its start is queued in the outbox.
func (f *fixture) session(t *testing.T) (sessionID, deviceID int64) {
	ctx := context.Background()
	name := testenv.RandomName("nv")
	require.NoError(t, f.pool.QueryRow(ctx, `INSERT INTO devices (name) VALUES ($1) RETURNING id`, name).Scan(&deviceID))
	created, err := f.store.CreateSession(ctx, recording.NewSession{Name: "s", Duration: 3600, TargetFPS: 30,
		Devices: []recording.NewSessionDevice{{DeviceID: &deviceID, FilePrefix: "p"}}},
		recording.Rules{MaxEnclosures: 1, MinFPS: 1, MaxFPS: 120, MaxDuration: 24 * time.Hour},
		store.WorkflowIDs{Session: workflows.SessionWorkflowID, Device: workflows.DeviceWorkflowID}, time.Now(), time.Minute)
	require.NoError(t, err)
	return created.ID, deviceID
}

type outboxState struct {
	Dispatched    bool
	Attempts      int
	Undeliverable bool
}

func (f *fixture) row(t *testing.T, id int64) outboxState {
	var s outboxState
	require.NoError(t, f.pool.QueryRow(context.Background(),
		`SELECT dispatched_at IS NOT NULL, attempts, undeliverable FROM outbox WHERE id = $1`, id).Scan(&s.Dispatched, &s.Attempts, &s.Undeliverable))
	return s
}

func (f *fixture) lastRow(t *testing.T) int64 {
	var id int64
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT max(id) FROM outbox`).Scan(&id))
	return id
}

func temporalClient(t *testing.T, addr string) client.Client {
	c, err := client.NewLazyClient(client.Options{HostPort: addr, Namespace: "default",
		Logger: nopLogger{}})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

// TestRowsWaitThroughALongOutage: with Temporal unreachable for far more attempts than the
// old limit (50, about 9 minutes at the service's timings), the session's start waits in the
// outbox, and is delivered once Temporal is back; nothing is set aside.
func TestRowsWaitThroughALongOutage(t *testing.T) {
	f := newFixture(t)
	target := testenv.TemporalAddress(t)
	outage := testenv.NewOutage(t, target)
	sid, _ := f.session(t)
	start := f.lastRow(t)
	f.run(t, f.dispatcher(temporalClient(t, outage.Addr()), "a"))

	require.Eventually(t, func() bool { return f.row(t, start).Attempts > 60 }, 2*time.Minute, 20*time.Millisecond)
	waiting := f.row(t, start)
	require.False(t, waiting.Dispatched || waiting.Undeliverable, "still waiting, not set aside: %+v", waiting)

	outage.End()
	require.Eventually(t, func() bool { return f.row(t, start).Dispatched }, 2*time.Minute, 50*time.Millisecond)
	require.False(t, f.row(t, start).Undeliverable)
	direct := temporalClient(t, target)
	d, err := direct.DescribeWorkflowExecution(context.Background(), workflows.SessionWorkflowID(sid), "")
	require.NoError(t, err, "the session's workflow was started after the outage")
	require.Equal(t, f.queue, d.ExecutionConfig.TaskQueue.Name)
}

// TestUndeliverableRowIsResolvedFromTheReport: an enclosure's end whose workflow is gone is
// not dropped: the read model keeps the seconds it reported, the timeline says so, the row is
// counted as undeliverable, and the rows behind it go on.
func TestUndeliverableRowIsResolvedFromTheReport(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sid, dev := f.session(t)
	_, err := f.pool.Exec(ctx, `UPDATE outbox SET dispatched_at = now()`) // no workflow for this session
	require.NoError(t, err)
	ev, err := json.Marshal(recording.Event{Kind: recording.EventEnded, At: time.Now(), SessionID: sid, Duration: 641})
	require.NoError(t, err)
	var ended int64
	require.NoError(t, f.pool.QueryRow(ctx, `INSERT INTO outbox (workflow_id, kind, payload) VALUES ($1, 'ended', $2) RETURNING id`,
		workflows.DeviceWorkflowID(sid, dev), ev).Scan(&ended))
	sid2, _ := f.session(t)
	next := f.lastRow(t)
	f.run(t, f.dispatcher(temporalClient(t, testenv.TemporalAddress(t)), "a"))

	require.Eventually(t, func() bool { return f.row(t, next).Dispatched }, time.Minute, 20*time.Millisecond,
		"the row behind it is delivered")
	require.Equal(t, outboxState{Dispatched: true, Attempts: 1, Undeliverable: true}, f.row(t, ended))
	x, err := f.store.Session(ctx, sid, time.Now(), time.Minute)
	require.NoError(t, err)
	require.Equal(t, int64(641), x.DeviceStatuses[0].RecordingTime, "the seconds the enclosure reported are kept")
	require.Equal(t, recording.DeviceComplete, x.DeviceStatuses[0].Status)
	events, err := f.store.SessionEvents(ctx, sid)
	require.NoError(t, err)
	require.Equal(t, "undeliverable", events[len(events)-1].Kind)
	require.Contains(t, events[len(events)-1].Message, "641 s reported")
	_, err = temporalClient(t, testenv.TemporalAddress(t)).DescribeWorkflowExecution(ctx, workflows.SessionWorkflowID(sid2), "")
	require.NoError(t, err)
}

// gate freezes a dispatcher while closed, as SIGSTOP does a process.
type gate struct {
	mu     sync.Mutex
	frozen chan struct{}
}

func (g *gate) freeze() { g.mu.Lock(); g.frozen = make(chan struct{}); g.mu.Unlock() }
func (g *gate) thaw()   { g.mu.Lock(); close(g.frozen); g.frozen = nil; g.mu.Unlock() }
func (g *gate) wait(ctx context.Context) {
	g.mu.Lock()
	ch := g.frozen
	g.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
}

// TestFrozenLeaderIsReplaced: a leader that stops (its renewals and deliveries blocked) loses
// its lease when it expires; the other process takes over within seconds and delivers, and
// the old leader, thawed, steps down without delivering anything.
func TestFrozenLeaderIsReplaced(t *testing.T) {
	f := newFixture(t)
	c := temporalClient(t, testenv.TemporalAddress(t))
	var g gate
	a := f.dispatcher(c, "a")
	a.freeze = g.wait
	f.run(t, a)
	require.Eventually(t, a.Leading, 30*time.Second, 10*time.Millisecond)
	b := f.dispatcher(c, "b")
	f.run(t, b)

	g.freeze()
	frozenAt := time.Now()
	f.session(t)
	row := f.lastRow(t)
	require.Eventually(t, func() bool { return f.row(t, row).Dispatched }, 30*time.Second, 10*time.Millisecond)
	t.Logf("taken over and delivered %s after the leader froze", time.Since(frozenAt).Round(time.Millisecond))
	require.True(t, b.Leading())
	var holder string
	require.NoError(t, f.pool.QueryRow(context.Background(), `SELECT holder FROM leases`).Scan(&holder))
	require.Equal(t, "b", holder)

	g.thaw()
	require.Eventually(t, func() bool { return !a.Leading() }, 30*time.Second, 10*time.Millisecond, "the thawed leader steps down")
	require.Equal(t, 1, f.row(t, row).Attempts, "delivered once, by the new leader only")
}

// TestAProcessThatCannotDeliverNeverLeads: a process configured with a namespace the server
// lacks is not ready (the reason names the namespace) and never takes the lease, so the
// process that can deliver leads and the row reaches Temporal.
func TestAProcessThatCannotDeliverNeverLeads(t *testing.T) {
	f := newFixture(t)
	c := temporalClient(t, testenv.TemporalAddress(t))
	ctx := context.Background()
	require.NoError(t, Ready(ctx, c, "default"), "the test server has the namespace and search attributes")
	var notReady *NotReady
	require.ErrorAs(t, Ready(ctx, c, "no-such-namespace"), &notReady)
	require.Contains(t, notReady.Problem, `namespace "no-such-namespace" does not exist`)

	wrong := f.dispatcher(c, "wrong")
	wrong.Ready = func(ctx context.Context) error { return Ready(ctx, c, "no-such-namespace") }
	looped := make(chan struct{})
	var calls atomic.Int32
	// hold runs first in each turn of Run's loop: its second call means the wrong process has
	// had a whole turn, with the lease free, before the right one starts.
	wrong.freeze = func(context.Context) {
		if calls.Add(1) == 2 {
			close(looped)
		}
	}
	f.run(t, wrong)
	<-looped
	right := f.dispatcher(c, "right")
	right.Ready = func(ctx context.Context) error { return Ready(ctx, c, "default") }
	f.run(t, right)

	f.session(t)
	row := f.lastRow(t)
	require.Eventually(t, func() bool { return f.row(t, row).Dispatched }, 30*time.Second, 10*time.Millisecond)
	require.False(t, wrong.Leading())
	var holder string
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT holder FROM leases`).Scan(&holder))
	require.Equal(t, "right", holder)
}
