// Package dispatch drains the outbox to Temporal: it starts session workflows, signals them
// with users' cancel and removal requests, signals device workflows and completes the command
// activities enclosures settle, at least once and in order. One process at a time dispatches
// (a lease in Postgres with a deadline), so per-enclosure order holds with several API
// processes, and a leader that hangs or loses its network is replaced within seconds.
package dispatch

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/workflows"
)

// Outbox is the storage the dispatcher drains.
type Outbox interface {
	PendingOutbox(ctx context.Context, limit int) ([]store.OutboxRow, error)
	MarkDispatched(ctx context.Context, id int64, now time.Time) error
	MarkOutboxFailed(ctx context.Context, id int64, reason string) error
	ResolveUndeliverable(ctx context.Context, row store.OutboxRow, deviceID int64, ev recording.Event, reason string, now time.Time) error
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Dispatcher moves outbox rows to Temporal.
type Dispatcher struct {
	Pool      *pgxpool.Pool // for LISTEN
	Outbox    Outbox
	Temporal  client.Client
	Namespace string
	Sessions  Sessions
	Log       *slog.Logger
	// Poll is the longest a row waits when a notification is missed.
	Poll time.Duration
	// Backoff is the first wait after a failed delivery; it doubles per attempt of the head row
	// up to MaxBackoff, for as long as it takes: a row is never set aside, since dropping a
	// transition loses a recording.
	Backoff, MaxBackoff time.Duration
	// Lease is how long leadership lasts without renewal (renewed every Lease/3); Holder names
	// this process in the lease.
	Lease  time.Duration
	Holder string
	// CallTimeout bounds one delivery (default 10 s).
	CallTimeout time.Duration
	// Ready, when set, says whether this process can deliver (dispatch.Ready): one that cannot
	// (wrong namespace, search attributes missing) never takes the lease, and gives it up, so a
	// process that can deliver leads instead.
	Ready func(ctx context.Context) error

	leading atomic.Bool
	// freeze, when set (tests), runs before every renewal and every delivery: a blocked
	// freeze is a hung leader.
	freeze func(ctx context.Context)
}

// leaseName is the dispatcher's row in the leases table.
const leaseName = "outbox-dispatcher"

// Leading reports whether this dispatcher holds the lease now.
func (d *Dispatcher) Leading() bool { return d.leading.Load() }

// Run dispatches until ctx ends, taking over when the leader's lease expires.
func (d *Dispatcher) Run(ctx context.Context) error {
	var notReady string // the last problem logged, so a lasting one is logged once
	for ctx.Err() == nil {
		d.hold(ctx)
		if err := d.ready(ctx); err != nil {
			if err.Error() != notReady && ctx.Err() == nil {
				notReady = err.Error()
				d.Log.Error("outbox dispatcher not leading: this process cannot deliver to Temporal", "error", notReady)
			}
			sleep(ctx, d.Lease/3)
			continue
		}
		notReady = ""
		asked := time.Now() // the lease runs from before the database set it
		got, err := d.Outbox.AcquireLease(ctx, leaseName, d.Holder, d.Lease)
		if err != nil && ctx.Err() == nil {
			d.Log.Warn("outbox dispatcher lease", "error", err.Error())
		}
		if got {
			if err := d.lead(ctx, asked); err != nil && ctx.Err() == nil {
				d.Log.Warn("outbox dispatcher", "error", err.Error())
			}
		}
		sleep(ctx, d.Lease/3)
	}
	releaseCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = d.Outbox.ReleaseLease(releaseCtx, leaseName, d.Holder)
	return nil
}

func (d *Dispatcher) ready(ctx context.Context) error {
	if d.Ready == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.callTimeout())
	defer cancel()
	return d.Ready(ctx)
}

func (d *Dispatcher) hold(ctx context.Context) {
	if d.freeze != nil {
		d.freeze(ctx)
	}
}

// lead drains on every notification or poll while the lease, taken at acquired, is renewed.
// It stops as soon as the lease may have expired (monotonic clock), before another process
// could have taken over, even after this process was frozen.
func (d *Dispatcher) lead(ctx context.Context, acquired time.Time) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var until atomic.Int64 // the lease's local deadline, as nanoseconds since acquired
	until.Store(int64(d.Lease))
	valid := func() bool { return time.Since(acquired) < time.Duration(until.Load()) }
	d.leading.Store(true)
	defer d.leading.Store(false)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		defer cancel()
		for sleep(ctx, d.Lease/3) {
			d.hold(ctx)
			start := time.Since(acquired)
			if err := d.ready(ctx); err != nil {
				var notReady *NotReady
				if errors.As(err, &notReady) {
					d.Log.Error("outbox dispatcher stepping down: this process cannot deliver to Temporal", "error", err.Error())
					return
				}
			}
			got, err := d.Outbox.AcquireLease(ctx, leaseName, d.Holder, d.Lease)
			if err != nil || !got || !valid() {
				d.Log.Warn("outbox dispatcher lost its lease", "renewed", got, "error", fmt.Sprint(err))
				return
			}
			until.Store(int64(start + d.Lease))
		}
	}()
	defer func() { cancel(); <-renewed }()

	pooled, err := d.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// LISTEN belongs to this connection: take it out of the pool, and close it when leading ends.
	conn := pooled.Hijack()
	defer conn.Close(context.Background()) //nolint:errcheck
	if _, err := conn.Exec(ctx, "LISTEN "+store.OutboxChannel); err != nil {
		return err
	}
	d.Log.Info("outbox dispatcher leading", "holder", d.Holder)
	for ctx.Err() == nil {
		wait, err := d.drain(ctx, valid)
		if err != nil && ctx.Err() == nil {
			d.Log.Warn("dispatching", "error", err.Error(), "retry_in", wait.String())
		}
		if wait > 0 {
			sleep(ctx, wait)
			continue
		}
		waitCtx, stop := context.WithTimeout(ctx, d.Poll)
		_, err = conn.WaitForNotification(waitCtx)
		stop()
		if err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
	return nil
}

// drain dispatches pending rows in id order until none is left; it stops at the first row
// that fails, so later rows of the same enclosure never overtake it, and returns how long to
// wait before trying it again.
func (d *Dispatcher) drain(ctx context.Context, valid func() bool) (time.Duration, error) {
	for {
		rows, err := d.Outbox.PendingOutbox(ctx, 200)
		if err != nil {
			return d.Poll, err
		}
		if len(rows) == 0 {
			return 0, nil
		}
		for _, row := range rows {
			d.hold(ctx)
			if !valid() || ctx.Err() != nil {
				return 0, ctx.Err()
			}
			err := d.dispatch(ctx, row)
			if errors.Is(err, errResolved) {
				continue
			}
			if err != nil {
				if ctx.Err() != nil {
					return 0, nil
				}
				_ = d.Outbox.MarkOutboxFailed(ctx, row.ID, err.Error())
				return d.backoff(row.Attempts), fmt.Errorf("outbox row %d (%s to %s), attempt %d: %w",
					row.ID, row.Kind, row.WorkflowID, row.Attempts+1, err)
			}
			if err := d.Outbox.MarkDispatched(ctx, row.ID, time.Now()); err != nil {
				return d.Poll, err
			}
		}
	}
}

// backoff is the wait after the head row's attempts failed.
func (d *Dispatcher) backoff(attempts int) time.Duration {
	wait := d.Backoff
	for i := 0; i < attempts && wait < d.MaxBackoff; i++ {
		wait *= 2
	}
	return min(wait, d.MaxBackoff)
}

func (d *Dispatcher) callTimeout() time.Duration { return cmp.Or(d.CallTimeout, 10*time.Second) }

// dispatch delivers one row. Delivering it twice is harmless: session starts use the
// existing run, and workflows ignore event ids and requests they have seen.
func (d *Dispatcher) dispatch(ctx context.Context, row store.OutboxRow) error {
	ctx, cancel := context.WithTimeout(ctx, d.callTimeout())
	defer cancel()
	switch row.Kind {
	case store.KindStartSession, store.KindCancelSession, store.KindRemoveDevice:
		return d.sessionRequest(ctx, row)
	}
	var ev recording.Event
	if err := json.Unmarshal(row.Payload, &ev); err != nil {
		return d.undeliverable(ctx, row, ev, "unreadable payload: "+err.Error())
	}
	ev.ID = row.ID
	if row.ActivityID != "" {
		runID, activityID := SplitCompletionKey(row.ActivityID)
		err := d.Temporal.CompleteActivityByID(ctx, d.Namespace, row.WorkflowID, runID, activityID, ev, nil)
		if !isNotFound(err) {
			return err
		}
		// The activity is no longer pending (it timed out or was canceled): the workflow still
		// learns what happened, as a signal.
	}
	err := d.Temporal.SignalWorkflow(ctx, row.WorkflowID, "", workflows.SignalDeviceEvent, ev)
	if isNotFound(err) {
		return d.undeliverable(ctx, row, ev, "the workflow is gone")
	}
	return err
}

// sessionRequest starts a session's workflow (payload store.SessionStart) or signals it with a
// user's request (store.StopRequest).
func (d *Dispatcher) sessionRequest(ctx context.Context, row store.OutboxRow) error {
	if row.Kind == store.KindStartSession {
		var start store.SessionStart
		if err := json.Unmarshal(row.Payload, &start); err != nil {
			return d.undeliverable(ctx, row, recording.Event{}, "unreadable payload: "+err.Error())
		}
		return d.Sessions.Start(ctx, start.SessionID)
	}
	var req store.StopRequest
	if err := json.Unmarshal(row.Payload, &req); err != nil {
		return d.undeliverable(ctx, row, recording.Event{}, "unreadable payload: "+err.Error())
	}
	if row.Kind == store.KindRemoveDevice {
		return d.Sessions.RemoveDevice(ctx, req.SessionID, workflows.RemoveRequest{DeviceID: req.DeviceID, UserID: req.UserID})
	}
	return d.Sessions.Cancel(ctx, req.SessionID, workflows.StopRequest{UserID: req.UserID, Reason: req.Reason})
}

// undeliverable resolves a row that can never be delivered by the rule that keeps what the
// enclosure reported (store.ResolveUndeliverable), loudly.
func (d *Dispatcher) undeliverable(ctx context.Context, row store.OutboxRow, ev recording.Event, reason string) error {
	deviceID, _ := strconv.ParseInt(strings.TrimPrefix(row.WorkflowID, workflows.SessionWorkflowID(ev.SessionID)+"-device-"), 10, 64)
	d.Log.Error("outbox row undeliverable: resolved in the read model", "id", row.ID, "kind", row.Kind,
		"workflow_id", row.WorkflowID, "reason", reason)
	if err := d.Outbox.ResolveUndeliverable(ctx, row, deviceID, ev, reason, time.Now()); err != nil {
		return err
	}
	return errResolved
}

// errResolved: the row was settled in the database already (not to be marked dispatched again).
var errResolved = errors.New("resolved")

// SplitCompletionKey reads the run and activity id the command activity left in the mailbox
// ("<run id>/<activity id>"). A key without a run (rows from before it was kept) completes the
// activity in the workflow's current run.
func SplitCompletionKey(key string) (runID, activityID string) {
	if run, id, ok := strings.Cut(key, "/"); ok {
		return run, id
	}
	return "", key
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
