package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/heartbeat"
	"github.com/jax-mba/mba/internal/recording"
)

// The outbox: what Temporal must learn (transitions, session starts, users' requests), written
// in the transaction that decided it, so a crash can never lose one or deliver one that did not
// commit; internal/dispatch delivers the rows at least once, in id order. Every writer, the one
// wake-up of the dispatcher and every read of the table are here.

// OutboxChannel is NOTIFYed when outbox rows are added, to wake the dispatcher.
const OutboxChannel = "mba_outbox"

// KindStartSession is the outbox kind that starts a session's workflow: queued in the
// transaction that creates the session, so a crash between the commit and the start cannot
// leave a session without its workflow. Its payload is a SessionStart.
const KindStartSession = "start_session"

// Outbox kinds of the requests a user makes of a running session (RequestStop): the
// dispatcher signals the session workflow with them. Their payload is a StopRequest.
const (
	KindCancelSession = "cancel_session"
	KindRemoveDevice  = "remove_device"
)

// Every other kind is a recording.Event's (its Kind), for a device workflow.

// SessionStart is the payload of a KindStartSession row.
type SessionStart struct {
	SessionID int64 `json:"session_id"`
}

// outboxEntry is one row to add: for workflowID, completing its command activity activityID
// ("" for a signal or a start), of kind, with payload (encoded as JSON).
type outboxEntry struct {
	workflowID, activityID, kind string
	payload                      any
}

// eventEntry is a transition for a device workflow: a signal, or with activityID the result of
// its pending command activity.
func eventEntry(workflowID, activityID string, ev recording.Event) outboxEntry {
	return outboxEntry{workflowID: workflowID, activityID: activityID, kind: string(ev.Kind), payload: ev}
}

// transitionEntries are a heartbeat's transitions (heartbeat.Decide) for the device workflow
// workflowID, in order.
func transitionEntries(workflowID string, ts []heartbeat.Transition) []outboxEntry {
	entries := make([]outboxEntry, len(ts))
	for i, t := range ts {
		entries[i] = eventEntry(workflowID, t.ActivityID, t.Event)
	}
	return entries
}

// sessionStartEntry starts the session workflow workflowID: CreateSession's row, written with
// enqueueOutbox(ctx, tx, sessionStartEntry(ids.Session(id), id)).
func sessionStartEntry(workflowID string, sessionID int64) outboxEntry {
	return outboxEntry{workflowID: workflowID, kind: KindStartSession, payload: SessionStart{SessionID: sessionID}}
}

// stopRequestEntry signals the session workflow workflowID with a user's cancel or removal.
func stopRequestEntry(workflowID string, req StopRequest) outboxEntry {
	kind := KindCancelSession
	if req.DeviceID != 0 {
		kind = KindRemoveDevice
	}
	return outboxEntry{workflowID: workflowID, kind: kind, payload: req}
}

const (
	insertOutboxSQL = `INSERT INTO outbox (workflow_id, activity_id, kind, payload)
		VALUES (@workflow_id, nullif(@activity_id, ''), @kind, @payload)`
	// Notifications of one transaction are delivered at its commit, and identical ones folded
	// into one: a writer notifies every time, however many rows the transaction adds.
	notifyOutboxSQL = `SELECT pg_notify(@channel, '')`
)

var notifyOutboxArgs = pgx.NamedArgs{"channel": OutboxChannel}

func (e outboxEntry) args() (pgx.NamedArgs, error) {
	payload, err := json.Marshal(e.payload)
	if err != nil {
		return nil, fmt.Errorf("outbox payload of %s for %s: %w", e.kind, e.workflowID, err)
	}
	return pgx.NamedArgs{"workflow_id": e.workflowID, "activity_id": e.activityID, "kind": e.kind, "payload": payload}, nil
}

// enqueueOutbox adds entries, in order, in the transaction q and wakes the dispatcher when it
// commits.
func enqueueOutbox(ctx context.Context, q querier, entries ...outboxEntry) error {
	for _, e := range entries {
		args, err := e.args()
		if err != nil {
			return err
		}
		if _, err := q.Exec(ctx, insertOutboxSQL, args); err != nil {
			return fmt.Errorf("adding %s for %s to the outbox: %w", e.kind, e.workflowID, err)
		}
	}
	if len(entries) == 0 {
		return nil
	}
	return notifyOutbox(ctx, q)
}

// queueOutbox is enqueueOutbox in a batch (the heartbeat transaction).
func queueOutbox(b *pgx.Batch, entries ...outboxEntry) error {
	for _, e := range entries {
		args, err := e.args()
		if err != nil {
			return err
		}
		b.Queue(insertOutboxSQL, args)
	}
	if len(entries) > 0 {
		b.Queue(notifyOutboxSQL, notifyOutboxArgs)
	}
	return nil
}

// notifyOutbox wakes the dispatcher when q's transaction commits.
func notifyOutbox(ctx context.Context, q querier) error {
	if _, err := q.Exec(ctx, notifyOutboxSQL, notifyOutboxArgs); err != nil {
		return fmt.Errorf("notifying %s: %w", OutboxChannel, err)
	}
	return nil
}

// OutboxRow is a queued transition or request.
type OutboxRow struct {
	ID         int64  `db:"id"`
	WorkflowID string `db:"workflow_id"`
	ActivityID string `db:"activity_id"`
	Kind       string `db:"kind"`
	Payload    []byte `db:"payload"`
	Attempts   int    `db:"attempts"`
}

// PendingOutbox returns up to limit undispatched rows, oldest first.
func (s *Store) PendingOutbox(ctx context.Context, limit int) ([]OutboxRow, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, workflow_id, coalesce(activity_id, '') AS activity_id, kind, payload, attempts
		FROM outbox WHERE dispatched_at IS NULL ORDER BY id LIMIT @limit`, pgx.NamedArgs{"limit": limit})
	if err != nil {
		return nil, failed(err, "PendingOutbox limit %d", limit)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[OutboxRow])
	return out, failed(err, "PendingOutbox limit %d", limit)
}

// MarkDispatched records that a row reached Temporal.
func (s *Store) MarkDispatched(ctx context.Context, id int64, now time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE outbox SET dispatched_at = @now, attempts = attempts + 1 WHERE id = @id`,
		pgx.NamedArgs{"id": id, "now": now})
	return failed(err, "MarkDispatched row %d", id)
}

// MarkOutboxFailed records a failed attempt; the row stays pending.
func (s *Store) MarkOutboxFailed(ctx context.Context, id int64, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = @reason WHERE id = @id`,
		pgx.NamedArgs{"id": id, "reason": reason})
	return failed(err, "MarkOutboxFailed row %d", id)
}

// ResolveUndeliverable settles a transition whose workflow is gone (Temporal does not know
// it), so the row never blocks the outbox and what the enclosure reported is kept: an end
// adds its recorded seconds to the read model (and ends an enclosure still shown running),
// the session's timeline says what happened, and the row is marked undeliverable for the
// metrics.
func (s *Store) ResolveUndeliverable(ctx context.Context, row OutboxRow, deviceID int64, ev recording.Event, reason string, now time.Time) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// Only rows that exist get the timeline entry: a malformed row must not block the outbox.
		var known bool
		if err := tx.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM sessions s WHERE s.id = @session_id AND (@device_id = 0
				OR EXISTS (SELECT 1 FROM session_devices sd WHERE sd.session_id = s.id AND sd.device_id = @device_id)))`,
			pgx.NamedArgs{"session_id": ev.SessionID, "device_id": deviceID}).Scan(&known); err != nil {
			return err
		}
		if known && deviceID != 0 && ev.Kind == recording.EventEnded {
			status := recording.DeviceComplete
			switch {
			case ev.ErrMsg != "":
				status = recording.DeviceFailed
			case ev.Stopped:
				status = recording.DeviceCanceled
			}
			if _, err := tx.Exec(ctx, `
				UPDATE session_devices SET recording_time = greatest(recording_time, @duration),
					status = CASE WHEN status IN ('PENDING', 'RECORDING') THEN @status ELSE status END,
					message = CASE WHEN status IN ('PENDING', 'RECORDING') THEN @message ELSE message END,
					ended_at = coalesce(ended_at, @at)
				WHERE session_id = @session_id AND device_id = @device_id`,
				pgx.NamedArgs{"session_id": ev.SessionID, "device_id": deviceID, "duration": ev.Duration, "status": status,
					"message": ev.ErrMsg, "at": ev.At}); err != nil {
				return err
			}
		}
		if known {
			msg := fmt.Sprintf("%s (%s, %d s reported): %s", ev.Kind, row.WorkflowID, ev.Duration, reason)
			if err := addEvent(ctx, tx, ev.SessionID, deviceID, "undeliverable", msg, now); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `
			UPDATE outbox SET dispatched_at = @now, attempts = attempts + 1, undeliverable = true, last_error = @reason
			WHERE id = @id`, pgx.NamedArgs{"id": row.ID, "now": now, "reason": reason})
		return err
	})
	return failed(err, "ResolveUndeliverable row %d", row.ID)
}

// OutboxBacklog is the outbox's state for the metrics.
type OutboxBacklog struct {
	Pending       int64   `db:"pending"`        // rows waiting for the dispatcher
	OldestSeconds float64 `db:"oldest_seconds"` // age of the oldest of them (0: none)
	Undeliverable int64   `db:"undeliverable"`  // rows whose workflow was gone, ever
}

// OutboxBacklog reads the backlog on the database's clock.
func (s *Store) OutboxBacklog(ctx context.Context) (OutboxBacklog, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT count(*) AS pending, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_seconds,
		       (SELECT count(*) FROM outbox WHERE undeliverable) AS undeliverable
		FROM outbox WHERE dispatched_at IS NULL`)
	if err != nil {
		return OutboxBacklog{}, failed(err, "OutboxBacklog")
	}
	b, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[OutboxBacklog])
	return b, failed(err, "OutboxBacklog")
}

// Orphan is a piece of recording state whose workflow should be running.
type Orphan struct {
	SessionID  int64  `db:"session_id"`
	DeviceID   int64  `db:"device_id"`   // 0 for a whole session
	WorkflowID string `db:"workflow_id"` // the mailbox's workflow; empty for a session (its id derives from SessionID)
}

// Orphans lists the mailboxes and the in-progress sessions older than settle, with the
// workflow each belongs to, for the fleet monitor to check against Temporal.
func (s *Store) Orphans(ctx context.Context, settle time.Time) ([]Orphan, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT session_id, device_id, workflow_id FROM device_assignments WHERE updated_at < @settle
		UNION ALL
		SELECT s.id, 0, '' FROM sessions s WHERE s.status = 'IN_PROGRESS' AND s.created_at < @settle
		  -- A session whose start is still queued has no workflow yet, and is no orphan.
		  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.kind = @start_kind AND o.dispatched_at IS NULL
		                  AND (o.payload->>'session_id')::bigint = s.id)`,
		pgx.NamedArgs{"settle": settle, "start_kind": KindStartSession})
	if err != nil {
		return nil, failed(err, "Orphans settle %s", settle)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[Orphan])
	return out, failed(err, "Orphans settle %s", settle)
}

// ReleaseOrphan clears what a workflow that ended without cleaning up (terminated by an
// operator) left behind: the enclosure's mailbox and, for a session, the statuses that still
// say it runs. The stale-session rule then stops or completes the enclosures.
func (s *Store) ReleaseOrphan(ctx context.Context, o Orphan, reason string, now time.Time) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		args := pgx.NamedArgs{"session_id": o.SessionID, "device_id": o.DeviceID, "reason": reason, "now": now}
		onlyDevice := `AND (@device_id = 0 OR device_id = @device_id)`
		if _, err := tx.Exec(ctx, `DELETE FROM device_assignments WHERE session_id = @session_id `+onlyDevice, args); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			UPDATE session_devices SET status = 'CANCELED', message = @reason, ended_at = @now, workflow_ended = true
			WHERE session_id = @session_id AND status IN ('PENDING', 'RECORDING') `+onlyDevice, args); err != nil {
			return err
		}
		if o.DeviceID == 0 {
			if _, err := tx.Exec(ctx, `UPDATE sessions SET status = 'CANCELED', ended_at = @now WHERE id = @session_id AND status = 'IN_PROGRESS'`, args); err != nil {
				return err
			}
		}
		return addEvent(ctx, tx, o.SessionID, o.DeviceID, "released", reason, now)
	})
	return failed(err, "ReleaseOrphan session %d device %d", o.SessionID, o.DeviceID)
}
