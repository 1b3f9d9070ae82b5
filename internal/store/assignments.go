package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/heartbeat"
	"github.com/jax-mba/mba/internal/recording"
)

// The command mailbox, written by the command activities. Each returns the event that settles
// the command at once when there is nothing to wait for, or nil when the enclosure's next
// transition will complete the activity (activityID) through the outbox.

// assignmentOf locks the enclosure row and reads its mailbox (nil when empty).
func assignmentOf(ctx context.Context, tx pgx.Tx, deviceID int64) (*heartbeat.Assignment, error) {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT true FROM devices WHERE id = @id FOR UPDATE`, pgx.NamedArgs{"id": deviceID}).Scan(&exists); err != nil {
		return nil, notFound(err)
	}
	var a heartbeat.Assignment
	var activityID *string
	var params []byte
	err := tx.QueryRow(ctx, `
		SELECT session_id, phase, start_params, workflow_id, activity_id, updated_at FROM device_assignments WHERE device_id = @id`,
		pgx.NamedArgs{"id": deviceID}).Scan(&a.SessionID, &a.Phase, &params, &a.WorkflowID, &activityID, &a.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if activityID != nil {
		a.ActivityID = *activityID
	}
	if len(params) > 0 {
		a.Start = new(recording.Start)
		if err := json.Unmarshal(params, a.Start); err != nil {
			return nil, fmt.Errorf("assignmentOf: %w", err)
		}
	}
	return &a, nil
}

// AssignStart puts START for params in the enclosure's mailbox; it goes out on every heartbeat
// without a session until the enclosure reports recording. The session's creation already put
// the first START there, so it goes out on the enclosure's first heartbeat: then this only
// names the activity to complete, or settles at once when the enclosure already acknowledged
// (or a stop was asked for). A mailbox still held by another session (an earlier session
// waiting for its COMPLETE) is taken over: that session's pending activity learns the
// enclosure was released, and the stale-session rule completes it.
//
// An enclosure whose part in the session is already over is never started again: when its
// workflow runs late (the enclosure recorded, finished and forgot the session first) or again
// (an operator reset the workflow), the START settles with what the enclosure reported.
func (s *Store) AssignStart(ctx context.Context, deviceID int64, params recording.Start, workflowID, activityID string, now time.Time) (*recording.Event, error) {
	var settled *recording.Event
	err := s.tx(ctx, func(tx pgx.Tx) error {
		old, err := assignmentOf(ctx, tx, deviceID)
		if err != nil {
			return err
		}
		// Canceled or removed by a user (RequestStop) before the workflow knew: no START may go
		// out any more, and the mailbox may already be another session's.
		var status recording.DeviceStatus
		if err := tx.QueryRow(ctx, `SELECT status FROM session_devices WHERE session_id = @session_id AND device_id = @device_id`,
			pgx.NamedArgs{"session_id": params.SessionID, "device_id": deviceID}).Scan(&status); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if status == recording.DeviceCanceled {
			settled = &recording.Event{Kind: recording.EventEnded, At: now, SessionID: params.SessionID, Stopped: true}
			if old != nil && old.SessionID == params.SessionID && old.Phase == recording.PhaseCompleting {
				// It recorded and ended before the cancel: report what it reported.
				return tx.QueryRow(ctx, `SELECT coalesce(rec_duration, 0) FROM devices WHERE id = @id`,
					pgx.NamedArgs{"id": deviceID}).Scan(&settled.Duration)
			}
			return nil
		}
		if old != nil && old.SessionID == params.SessionID {
			switch old.Phase {
			case recording.PhaseRecording:
				settled = &recording.Event{Kind: recording.EventStarted, At: old.UpdatedAt, SessionID: params.SessionID}
				return nil
			case recording.PhaseReset:
				if old.Start != nil && old.Start.FilePrefix == params.FilePrefix {
					// It acknowledged this very START and lost the recording since (it rebooted before
					// this workflow ran): the START settles as started, when it started, and the queued
					// reset resumes it on a prefix of its own. This prefix again would overwrite its files.
					settled = &recording.Event{Kind: recording.EventStarted, At: old.UpdatedAt, SessionID: params.SessionID}
					return nil
				}
			case recording.PhaseCompleting:
				// It recorded and finished before its workflow ran: report what it reported.
				settled, err = endReport(ctx, tx, deviceID, params.SessionID, old.UpdatedAt)
				return err
			case recording.PhaseStopping:
				settled = &recording.Event{Kind: recording.EventEnded, At: now, SessionID: params.SessionID, Stopped: true}
				return nil
			}
		}
		if old == nil || old.SessionID != params.SessionID {
			if settled, err = partOver(ctx, tx, deviceID, params.SessionID); settled != nil || err != nil {
				return err
			}
		}
		return assignStart(ctx, tx, deviceID, old, params, workflowID, activityID, now)
	})
	return settled, err
}

// endReport is the end of the recording as the enclosure reported it (session_devices.end_report,
// written by the heartbeat that showed it), or, for rows from before it was kept, the
// enclosure's latest telemetry.
func endReport(ctx context.Context, tx pgx.Tx, deviceID, sessionID int64, at time.Time) (*recording.Event, error) {
	var report []byte
	ev := &recording.Event{Kind: recording.EventEnded, At: at, SessionID: sessionID}
	err := tx.QueryRow(ctx, `
		SELECT sd.end_report, coalesce(d.rec_duration, 0), d.err_msg
		FROM devices d LEFT JOIN session_devices sd ON sd.device_id = d.id AND sd.session_id = @session_id
		WHERE d.id = @device_id`,
		pgx.NamedArgs{"device_id": deviceID, "session_id": sessionID}).Scan(&report, &ev.Duration, &ev.ErrMsg)
	if err != nil {
		return nil, fmt.Errorf("endReport: %w", err)
	}
	if report != nil {
		*ev = recording.Event{}
		if err := json.Unmarshal(report, ev); err != nil {
			return nil, fmt.Errorf("endReport: %w", err)
		}
	}
	return ev, nil
}

// partOver settles a START for an enclosure whose part in the session is over although its
// mailbox no longer says so: it reported the end (and may have forgotten the session since), or
// its session row is final. nil: it is not over, the START goes out.
func partOver(ctx context.Context, tx pgx.Tx, deviceID, sessionID int64) (*recording.Event, error) {
	var report []byte
	var status recording.DeviceStatus
	var message string
	var recorded int64
	var endedAt *time.Time
	err := tx.QueryRow(ctx, `
		SELECT end_report, status, message, recording_time, ended_at FROM session_devices
		WHERE session_id = @session_id AND device_id = @device_id`,
		pgx.NamedArgs{"session_id": sessionID, "device_id": deviceID}).Scan(&report, &status, &message, &recorded, &endedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("partOver: %w", err)
	case report != nil:
		var ev recording.Event
		if err := json.Unmarshal(report, &ev); err != nil {
			return nil, fmt.Errorf("partOver: %w", err)
		}
		return &ev, nil
	case status == recording.DevicePending || status == recording.DeviceRecording:
		return nil, nil
	}
	// Ended by the service (canceled, failed, released) without a report: it stays ended.
	ev := &recording.Event{Kind: recording.EventEnded, SessionID: sessionID, Duration: recorded, Stopped: status == recording.DeviceCanceled}
	if endedAt != nil {
		ev.At = *endedAt
	}
	if status == recording.DeviceFailed {
		ev.ErrMsg = message
	}
	return ev, nil
}

// EndState is what the service last heard of an enclosure in a session: when its last
// heartbeat arrived (nil: never) and the end of its recording it reported, if any.
func (s *Store) EndState(ctx context.Context, deviceID, sessionID int64) (*time.Time, *recording.Event, error) {
	var lastSeen *time.Time
	var report []byte
	err := s.pool.QueryRow(ctx, `
		SELECT d.last_seen_at, sd.end_report
		FROM devices d LEFT JOIN session_devices sd ON sd.device_id = d.id AND sd.session_id = @session_id
		WHERE d.id = @device_id`, pgx.NamedArgs{"device_id": deviceID, "session_id": sessionID}).Scan(&lastSeen, &report)
	if err != nil {
		return nil, nil, fmt.Errorf("EndState: %w", notFound(err))
	}
	if report == nil {
		return lastSeen, nil, nil
	}
	var ev recording.Event
	if err := json.Unmarshal(report, &ev); err != nil {
		return nil, nil, fmt.Errorf("EndState: %w", err)
	}
	return lastSeen, &ev, nil
}

// queueEndReport keeps the enclosure's report of its recording's end on its session row (see
// endReport), once, in the heartbeat's batch. When the session's workflow has already written
// the enclosure's end without it (the enclosure was away when the session was canceled, so the
// STOP was never confirmed), the reported seconds are added there, so they are not lost; a
// workflow still running writes the total itself afterwards.
func queueEndReport(b *pgx.Batch, deviceID int64, ev recording.Event) error {
	report, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	b.Queue(`
		WITH row AS (
			SELECT workflow_ended AS late FROM session_devices
			WHERE session_id = @session_id AND device_id = @device_id AND end_report IS NULL FOR UPDATE),
		kept AS (
			UPDATE session_devices SET end_report = @report,
				recording_time = recording_time + CASE WHEN row.late THEN @duration ELSE 0 END,
				segments = CASE WHEN row.late THEN greatest(segments, 1) ELSE segments END
			FROM row WHERE session_id = @session_id AND device_id = @device_id
			RETURNING row.late)
		INSERT INTO session_events (session_id, device_id, kind, message, at)
		SELECT @session_id, @device_id, 'late-report', @message, @at FROM kept WHERE late`,
		pgx.NamedArgs{"report": report, "session_id": ev.SessionID, "device_id": deviceID, "duration": ev.Duration, "at": ev.At,
			"message": fmt.Sprintf("reported after its workflow ended: recorded %ds", ev.Duration)})
	return nil
}

// assignStart writes START in a locked mailbox (old is its current content).
func assignStart(ctx context.Context, tx pgx.Tx, deviceID int64, old *heartbeat.Assignment, params recording.Start, workflowID, activityID string, now time.Time) error {
	body, err := json.Marshal(params)
	if err != nil {
		return err
	}
	if old != nil && old.SessionID != params.SessionID && old.ActivityID != "" {
		ev := recording.Event{Kind: recording.EventReleased, At: now, SessionID: old.SessionID}
		if err := addOutbox(ctx, tx, old.WorkflowID, old.ActivityID, ev); err != nil {
			return err
		}
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO device_assignments (device_id, session_id, phase, start_params, workflow_id, activity_id, updated_at)
		VALUES (@device_id, @session_id, 'starting', @params, @workflow_id, nullif(@activity_id, ''), @now)
		ON CONFLICT (device_id) DO UPDATE SET session_id = excluded.session_id, phase = 'starting',
			-- The heartbeat path's resume START (a resumable session's START waiting) is the one
			-- that went out: it stays, so one segment never gets two different STARTs.
			start_params = CASE WHEN device_assignments.session_id = excluded.session_id AND device_assignments.phase = 'starting'
				AND device_assignments.resume IS NOT NULL THEN device_assignments.start_params ELSE excluded.start_params END,
			resume = CASE WHEN device_assignments.session_id = excluded.session_id THEN device_assignments.resume END,
			workflow_id = excluded.workflow_id,
			activity_id = excluded.activity_id, updated_at = excluded.updated_at`,
		pgx.NamedArgs{"device_id": deviceID, "session_id": params.SessionID, "params": body,
			"workflow_id": workflowID, "activity_id": activityID, "now": now})
	return err
}

// PlanResume lets the heartbeat path resume the enclosure itself when it reboots mid-recording
// of sessionID (heartbeat.ResumePlan). A plan already there is kept: the heartbeat path counts
// the segments it started since.
func (s *Store) PlanResume(ctx context.Context, deviceID, sessionID int64, plan heartbeat.ResumePlan) error {
	body, err := json.Marshal(plan)
	if err != nil {
		return fmt.Errorf("PlanResume: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `
		UPDATE device_assignments SET resume = @plan
		WHERE device_id = @device_id AND session_id = @session_id AND resume IS NULL`,
		pgx.NamedArgs{"device_id": deviceID, "session_id": sessionID, "plan": body}); err != nil {
		return fmt.Errorf("PlanResume: %w", err)
	}
	return nil
}

// RequestStop records a cancel (req.DeviceID 0) or the removal of one enclosure, in one
// transaction, so the request takes effect at once whether or not Temporal answers: the
// session (for a cancel) and its running enclosures are CANCELED in the read model; an
// enclosure that never started loses its mailbox START (no START can reach it any more, and
// it is free for another session); one that records gets STOP on its next heartbeat; and the
// signal for the session workflow is queued in the outbox. It reports whether anything was
// still running. An empty workflowID is a cancel by the workflow itself (from the temporal
// CLI): the same read model, and nothing queued for the workflows, which are being canceled.
func (s *Store) RequestStop(ctx context.Context, req StopRequest, workflowID string, now time.Time) (bool, error) {
	var changed bool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		args := pgx.NamedArgs{"session_id": req.SessionID, "device_id": req.DeviceID, "user_id": req.UserID,
			"reason": req.Reason, "now": now}
		const which = ` session_id = @session_id AND (@device_id = 0 OR device_id = @device_id)`
		if req.DeviceID == 0 {
			tag, err := tx.Exec(ctx, `
				UPDATE sessions SET status = 'CANCELED', canceled_by = coalesce(canceled_by, nullif(@user_id, 0)), ended_at = @now
				WHERE id = @session_id AND status = 'IN_PROGRESS'`, args)
			if err != nil || tag.RowsAffected() == 0 {
				return err
			}
		}
		// The enclosures' rows first, in id order, as the heartbeat path locks them.
		rows, err := tx.Query(ctx, `
			SELECT d.id FROM devices d JOIN session_devices sd ON sd.device_id = d.id
			WHERE sd.status IN ('PENDING', 'RECORDING') AND sd.`+which+` ORDER BY d.id FOR UPDATE OF d`, args)
		if err != nil {
			return err
		}
		locked, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil || (len(locked) == 0 && req.DeviceID != 0) {
			return err
		}
		changed = true
		// Never started (or lost its recording): nothing to stop. A START activity still waiting
		// learns it was stopped.
		rows, err = tx.Query(ctx, `
			DELETE FROM device_assignments WHERE phase IN ('starting', 'reset') AND`+which+`
			RETURNING workflow_id, coalesce(activity_id, '')`, args)
		if err != nil {
			return err
		}
		released, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ WorkflowID, ActivityID string }])
		if err != nil {
			return err
		}
		for _, r := range released {
			if r.ActivityID == "" || workflowID == "" {
				continue
			}
			ev := recording.Event{Kind: recording.EventEnded, At: now, SessionID: req.SessionID, Stopped: true}
			if err := addOutbox(ctx, tx, r.WorkflowID, r.ActivityID, ev); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `
			UPDATE device_assignments SET phase = 'stopping', updated_at = @now
			WHERE phase = 'recording' AND`+which, args); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			UPDATE session_devices SET status = 'CANCELED', message = @reason, ended_at = @now
			WHERE status IN ('PENDING', 'RECORDING') AND`+which, args); err != nil {
			return err
		}
		kind := KindCancelSession
		if req.DeviceID != 0 {
			kind = KindRemoveDevice
		}
		if err := addEvent(ctx, tx, req.SessionID, req.DeviceID, kind, req.Reason, now); err != nil {
			return err
		}
		if workflowID == "" {
			return nil
		}
		payload, err := json.Marshal(req)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, outboxSQL, pgx.NamedArgs{"workflow_id": workflowID, "activity_id": "", "kind": kind,
			"payload": payload}); err != nil {
			return err
		}
		return notifyOutbox(ctx, tx)
	})
	if err != nil {
		return false, fmt.Errorf("RequestStop: %w", err)
	}
	return changed, nil
}

// AssignStop asks the enclosure to stop recording sessionID.
func (s *Store) AssignStop(ctx context.Context, deviceID, sessionID int64, activityID string, now time.Time) (*recording.Event, error) {
	var settled *recording.Event
	err := s.tx(ctx, func(tx pgx.Tx) error {
		a, err := assignmentOf(ctx, tx, deviceID)
		if err != nil {
			return err
		}
		args := pgx.NamedArgs{"device_id": deviceID, "activity_id": activityID, "now": now}
		switch {
		case a == nil || a.SessionID != sessionID:
			settled = &recording.Event{Kind: recording.EventReleased, At: now, SessionID: sessionID}
			return nil
		case a.Phase == recording.PhaseCompleting:
			// It ended on its own before the STOP: settle with what it reported, duration included.
			settled, err = endReport(ctx, tx, deviceID, sessionID, a.UpdatedAt)
			return err
		case a.Phase == recording.PhaseReset || a.Phase == recording.PhaseStarting:
			// Not recording for us (it lost the recording, or never acknowledged START): nothing to
			// wait for. Should a START already be on its way, the stale-session rule stops it.
			settled = &recording.Event{Kind: recording.EventEnded, At: now, SessionID: sessionID, Stopped: true}
			_, err := tx.Exec(ctx, `DELETE FROM device_assignments WHERE device_id = @device_id`, args)
			return err
		}
		_, err = tx.Exec(ctx, `
			UPDATE device_assignments SET phase = 'stopping', activity_id = @activity_id, updated_at = @now
			WHERE device_id = @device_id`, args)
		return err
	})
	return settled, err
}

// AssignComplete waits for the enclosure to forget sessionID after COMPLETE, which the
// heartbeat path already sends once the recording ended.
func (s *Store) AssignComplete(ctx context.Context, deviceID, sessionID int64, activityID string, now time.Time) (*recording.Event, error) {
	var settled *recording.Event
	err := s.tx(ctx, func(tx pgx.Tx) error {
		a, err := assignmentOf(ctx, tx, deviceID)
		if err != nil {
			return err
		}
		if a == nil || a.SessionID != sessionID || a.Phase != recording.PhaseCompleting {
			settled = &recording.Event{Kind: recording.EventReleased, At: now, SessionID: sessionID}
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE device_assignments SET activity_id = @activity_id, updated_at = @now WHERE device_id = @device_id`,
			pgx.NamedArgs{"device_id": deviceID, "activity_id": activityID, "now": now})
		return err
	})
	return settled, err
}

// ClearAssignment empties the mailbox if it still belongs to sessionID (clean-up when a
// workflow is canceled or terminated). An enclosure still holding the session then gets STOP
// or COMPLETE from the stale-session rule.
func (s *Store) ClearAssignment(ctx context.Context, deviceID, sessionID int64) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM device_assignments WHERE device_id = @device_id AND session_id = @session_id`,
		pgx.NamedArgs{"device_id": deviceID, "session_id": sessionID})
	return err
}

// OutboxRow is a queued transition.
type OutboxRow struct {
	ID         int64
	WorkflowID string
	ActivityID string
	Kind       string
	Payload    []byte
	Attempts   int
}

// PendingOutbox returns up to limit undispatched rows, oldest first.
func (s *Store) PendingOutbox(ctx context.Context, limit int) ([]OutboxRow, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, workflow_id, coalesce(activity_id, ''), kind, payload, attempts
		FROM outbox WHERE dispatched_at IS NULL ORDER BY id LIMIT @limit`, pgx.NamedArgs{"limit": limit})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[OutboxRow])
}

// MarkDispatched records that a row reached Temporal.
func (s *Store) MarkDispatched(ctx context.Context, id int64, now time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE outbox SET dispatched_at = @now, attempts = attempts + 1 WHERE id = @id`,
		pgx.NamedArgs{"id": id, "now": now})
	return err
}

// MarkOutboxFailed records a failed attempt; the row stays pending.
func (s *Store) MarkOutboxFailed(ctx context.Context, id int64, reason string) error {
	_, err := s.pool.Exec(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = @reason WHERE id = @id`,
		pgx.NamedArgs{"id": id, "reason": reason})
	return err
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
	if err != nil {
		return fmt.Errorf("ResolveUndeliverable: %w", err)
	}
	return nil
}

// Orphan is a piece of recording state whose workflow should be running.
type Orphan struct {
	SessionID  int64
	DeviceID   int64  // 0 for a whole session
	WorkflowID string // the mailbox's workflow; empty for a session (its id derives from SessionID)
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
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Orphan])
}

// ReleaseOrphan clears what a workflow that ended without cleaning up (terminated by an
// operator) left behind: the enclosure's mailbox and, for a session, the statuses that still
// say it runs. The stale-session rule then stops or completes the enclosures.
func (s *Store) ReleaseOrphan(ctx context.Context, o Orphan, reason string, now time.Time) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
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
}
