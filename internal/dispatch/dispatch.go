// Package dispatch drains the outbox to Temporal: it starts session workflows, signals device
// workflows and completes the command activities enclosures settle, at least once and in
// order. One process at a time dispatches (a Postgres advisory lock), so per-enclosure order
// holds with several API processes.
package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/internal/heartbeat"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/workflows"
)

// Outbox is the storage the dispatcher drains.
type Outbox interface {
	PendingOutbox(ctx context.Context, limit int) ([]store.OutboxRow, error)
	MarkDispatched(ctx context.Context, id int64, now time.Time) error
	MarkOutboxFailed(ctx context.Context, id int64, reason string) error
}

// Dispatcher moves outbox rows to Temporal.
type Dispatcher struct {
	Pool      *pgxpool.Pool // for the leader lock and LISTEN
	Outbox    Outbox
	Temporal  client.Client
	Namespace string
	Sessions  Sessions
	Log       *slog.Logger
	// Poll is the longest a row waits when a notification is missed.
	Poll time.Duration
	// MaxAttempts moves a row that keeps failing aside (dispatched, with its last error) so it
	// cannot block the rows behind it forever.
	MaxAttempts int
}

// leaderKey is the advisory lock of the dispatching process ("mba-disp").
const leaderKey = 0x6d62612d64697370

// Run dispatches until ctx ends, taking over when another dispatcher stops.
func (d *Dispatcher) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := d.lead(ctx); err != nil && ctx.Err() == nil {
			d.Log.Warn("outbox dispatcher", "error", err.Error())
			sleep(ctx, d.Poll)
		}
	}
	return nil
}

// lead waits to become the dispatcher, then drains on every notification or poll.
func (d *Dispatcher) lead(ctx context.Context) error {
	pooled, err := d.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The lock and LISTEN belong to this connection: take it out of the pool, and close it
	// (releasing both) when leading ends.
	conn := pooled.Hijack()
	defer conn.Close(context.Background()) //nolint:errcheck
	for {
		var leader bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(leaderKey)).Scan(&leader); err != nil {
			return err
		}
		if leader {
			break
		}
		if !sleep(ctx, 5*d.Poll) {
			return nil
		}
	}
	if _, err := conn.Exec(ctx, "LISTEN "+store.OutboxChannel); err != nil {
		return err
	}
	d.Log.Info("outbox dispatcher leading")
	for {
		if err := d.drain(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.Log.Warn("dispatching", "error", err.Error())
			if !sleep(ctx, d.Poll) {
				return nil
			}
			continue
		}
		waitCtx, cancel := context.WithTimeout(ctx, d.Poll)
		_, err := conn.WaitForNotification(waitCtx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

// drain dispatches pending rows in id order until none is left; it stops at the first row
// that fails, so later rows of the same enclosure never overtake it.
func (d *Dispatcher) drain(ctx context.Context) error {
	for {
		rows, err := d.Outbox.PendingOutbox(ctx, 200)
		if err != nil || len(rows) == 0 {
			return err
		}
		for _, row := range rows {
			if err := d.dispatch(ctx, row); err != nil {
				if row.Attempts+1 >= d.MaxAttempts {
					d.Log.Error("outbox row set aside after repeated failures", "id", row.ID, "kind", row.Kind,
						"workflow_id", row.WorkflowID, "error", err.Error())
					return d.Outbox.MarkDispatched(ctx, row.ID, time.Now())
				}
				_ = d.Outbox.MarkOutboxFailed(ctx, row.ID, err.Error())
				return fmt.Errorf("outbox row %d (%s to %s): %w", row.ID, row.Kind, row.WorkflowID, err)
			}
			if err := d.Outbox.MarkDispatched(ctx, row.ID, time.Now()); err != nil {
				return err
			}
		}
	}
}

// dispatch delivers one row. Delivering it twice is harmless: session starts use the
// existing run, and device workflows ignore event ids they have seen.
func (d *Dispatcher) dispatch(ctx context.Context, row store.OutboxRow) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if row.Kind == store.KindStartSession {
		var p struct {
			SessionID int64 `json:"session_id"`
		}
		if err := json.Unmarshal(row.Payload, &p); err != nil {
			return err
		}
		return d.Sessions.Start(ctx, p.SessionID)
	}
	var ev heartbeat.Event
	if err := json.Unmarshal(row.Payload, &ev); err != nil {
		return err
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
		return nil // the workflow has ended; nobody is waiting for this
	}
	return err
}

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
