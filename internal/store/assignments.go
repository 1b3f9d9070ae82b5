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
	if err := tx.QueryRow(ctx, `SELECT true FROM devices WHERE id = @id FOR NO KEY UPDATE`, pgx.NamedArgs{"id": deviceID}).Scan(&exists); err != nil {
		return nil, notFound(err)
	}
	a, err := queryOne(ctx, tx, `SELECT `+mailboxColumns+` FROM device_assignments a WHERE a.device_id = @id`,
		pgx.NamedArgs{"id": deviceID}, byNameChecked(mailboxRow.assignment))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return a, err
}

// mailboxColumns are a mailbox's columns (device_assignments a) as mailboxRow reads them.
const mailboxColumns = `a.session_id, a.phase, a.start_params, a.workflow_id, a.activity_id, a.resume, a.updated_at`

// mailboxRow is an enclosure's mailbox; every column is NULL when it is empty (a LEFT JOIN).
type mailboxRow struct {
	SessionID   *int64     `db:"session_id"`
	Phase       *string    `db:"phase"`
	StartParams []byte     `db:"start_params"`
	WorkflowID  *string    `db:"workflow_id"`
	ActivityID  *string    `db:"activity_id"`
	Resume      []byte     `db:"resume"`
	UpdatedAt   *time.Time `db:"updated_at"`
}

// assignment is the mailbox's content, nil when it is empty.
func (r mailboxRow) assignment() (*heartbeat.Assignment, error) {
	if r.SessionID == nil {
		return nil, nil
	}
	a := &heartbeat.Assignment{SessionID: *r.SessionID, Phase: recording.Phase(*r.Phase), WorkflowID: *r.WorkflowID,
		UpdatedAt: *r.UpdatedAt}
	if r.ActivityID != nil {
		a.ActivityID = *r.ActivityID
	}
	if len(r.StartParams) > 0 {
		a.Start = new(recording.Start)
		if err := json.Unmarshal(r.StartParams, a.Start); err != nil {
			return nil, fmt.Errorf("the mailbox's START of session %d: %w", a.SessionID, err)
		}
	}
	if len(r.Resume) > 0 {
		a.Resume = new(heartbeat.ResumePlan)
		if err := json.Unmarshal(r.Resume, a.Resume); err != nil {
			return nil, fmt.Errorf("the mailbox's resume plan of session %d: %w", a.SessionID, err)
		}
	}
	return a, nil
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
	return settled, failed(err, "AssignStart device %d session %d", deviceID, params.SessionID)
}

// endReport is the end of the recording as the enclosure reported it (session_devices.end_report,
// written by the heartbeat that showed it), or, for rows from before it was kept, the
// enclosure's latest telemetry.
func endReport(ctx context.Context, tx pgx.Tx, deviceID, sessionID int64, at time.Time) (*recording.Event, error) {
	type row struct {
		EndReport   []byte `db:"end_report"`
		RecDuration int64  `db:"rec_duration"`
		ErrMsg      string `db:"err_msg"`
	}
	r, err := queryOne(ctx, tx, `
		SELECT sd.end_report, coalesce(d.rec_duration, 0) AS rec_duration, d.err_msg
		FROM devices d LEFT JOIN session_devices sd ON sd.device_id = d.id AND sd.session_id = @session_id
		WHERE d.id = @device_id`,
		pgx.NamedArgs{"device_id": deviceID, "session_id": sessionID}, pgx.RowToStructByName[row])
	if err != nil {
		return nil, fmt.Errorf("the end report of device %d session %d: %w", deviceID, sessionID, err)
	}
	ev, err := reported(r.EndReport)
	if ev == nil && err == nil {
		ev = &recording.Event{Kind: recording.EventEnded, At: at, SessionID: sessionID, Duration: r.RecDuration, ErrMsg: r.ErrMsg}
	}
	return ev, err
}

// reported decodes an end report (session_devices.end_report); nil when there is none.
func reported(raw []byte) (*recording.Event, error) {
	if raw == nil {
		return nil, nil
	}
	ev := new(recording.Event)
	if err := json.Unmarshal(raw, ev); err != nil {
		return nil, fmt.Errorf("an end report: %w", err)
	}
	return ev, nil
}

// partOver settles a START for an enclosure whose part in the session is over although its
// mailbox no longer says so: it reported the end (and may have forgotten the session since), or
// its session row is final. nil: it is not over, the START goes out.
func partOver(ctx context.Context, tx pgx.Tx, deviceID, sessionID int64) (*recording.Event, error) {
	type row struct {
		EndReport     []byte                 `db:"end_report"`
		Status        recording.DeviceStatus `db:"status"`
		Message       string                 `db:"message"`
		RecordingTime int64                  `db:"recording_time"`
		EndedAt       *time.Time             `db:"ended_at"`
	}
	r, err := queryOne(ctx, tx, `
		SELECT end_report, status, message, recording_time, ended_at FROM session_devices
		WHERE session_id = @session_id AND device_id = @device_id`,
		pgx.NamedArgs{"session_id": sessionID, "device_id": deviceID}, pgx.RowToStructByName[row])
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("the part of device %d in session %d: %w", deviceID, sessionID, err)
	case r.EndReport != nil:
		return reported(r.EndReport)
	case r.Status == recording.DevicePending || r.Status == recording.DeviceRecording:
		return nil, nil
	}
	// Ended by the service (canceled, failed, released) without a report: it stays ended.
	ev := &recording.Event{Kind: recording.EventEnded, SessionID: sessionID, Duration: r.RecordingTime, Stopped: r.Status == recording.DeviceCanceled}
	if r.EndedAt != nil {
		ev.At = *r.EndedAt
	}
	if r.Status == recording.DeviceFailed {
		ev.ErrMsg = r.Message
	}
	return ev, nil
}

// EndState is what the service last heard of an enclosure in a session: when its last
// heartbeat arrived (nil: never) and the end of its recording it reported, if any.
func (s *Store) EndState(ctx context.Context, deviceID, sessionID int64) (*time.Time, *recording.Event, error) {
	type row struct {
		LastSeenAt *time.Time `db:"last_seen_at"`
		EndReport  []byte     `db:"end_report"`
	}
	r, err := queryOne(ctx, s.pool, `
		SELECT d.last_seen_at, sd.end_report
		FROM devices d LEFT JOIN session_devices sd ON sd.device_id = d.id AND sd.session_id = @session_id
		WHERE d.id = @device_id`, pgx.NamedArgs{"device_id": deviceID, "session_id": sessionID}, pgx.RowToStructByName[row])
	if err != nil {
		return nil, nil, failed(notFound(err), "EndState device %d session %d", deviceID, sessionID)
	}
	ev, err := reported(r.EndReport)
	if err != nil {
		return nil, nil, failed(err, "EndState device %d session %d", deviceID, sessionID)
	}
	return r.LastSeenAt, ev, nil
}

// assignStart writes START in a locked mailbox (old is its current content).
func assignStart(ctx context.Context, tx pgx.Tx, deviceID int64, old *heartbeat.Assignment, params recording.Start, workflowID, activityID string, now time.Time) error {
	body, err := json.Marshal(params)
	if err != nil {
		return err
	}
	if old != nil && old.SessionID != params.SessionID && old.ActivityID != "" {
		ev := recording.Event{Kind: recording.EventReleased, At: now, SessionID: old.SessionID}
		if err := enqueueOutbox(ctx, tx, eventEntry(old.WorkflowID, old.ActivityID, ev)); err != nil {
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
		return failed(err, "PlanResume device %d session %d", deviceID, sessionID)
	}
	if _, err := s.pool.Exec(ctx, `
		UPDATE device_assignments SET resume = @plan
		WHERE device_id = @device_id AND session_id = @session_id AND resume IS NULL`,
		pgx.NamedArgs{"device_id": deviceID, "session_id": sessionID, "plan": body}); err != nil {
		return failed(err, "PlanResume device %d session %d", deviceID, sessionID)
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
			WHERE sd.status IN ('PENDING', 'RECORDING') AND sd.`+which+` ORDER BY d.id FOR NO KEY UPDATE OF d`, args)
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
			RETURNING workflow_id, coalesce(activity_id, '') AS activity_id`, args)
		if err != nil {
			return err
		}
		released, err := pgx.CollectRows(rows, pgx.RowToStructByName[struct {
			WorkflowID string `db:"workflow_id"`
			ActivityID string `db:"activity_id"`
		}])
		if err != nil {
			return err
		}
		var queued []outboxEntry
		for _, r := range released {
			if r.ActivityID != "" {
				ev := recording.Event{Kind: recording.EventEnded, At: now, SessionID: req.SessionID, Stopped: true}
				queued = append(queued, eventEntry(r.WorkflowID, r.ActivityID, ev))
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
		request := stopRequestEntry(workflowID, req)
		if err := addEvent(ctx, tx, req.SessionID, req.DeviceID, request.kind, req.Reason, now); err != nil {
			return err
		}
		if workflowID == "" {
			return nil
		}
		return enqueueOutbox(ctx, tx, append(queued, request)...)
	})
	if err != nil {
		return false, failed(err, "RequestStop session %d device %d", req.SessionID, req.DeviceID)
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
	return settled, failed(err, "AssignStop device %d session %d", deviceID, sessionID)
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
	return settled, failed(err, "AssignComplete device %d session %d", deviceID, sessionID)
}

// ClearAssignment empties the mailbox if it still belongs to sessionID (clean-up when a
// workflow is canceled or terminated). An enclosure still holding the session then gets STOP
// or COMPLETE from the stale-session rule.
func (s *Store) ClearAssignment(ctx context.Context, deviceID, sessionID int64) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM device_assignments WHERE device_id = @device_id AND session_id = @session_id`,
		pgx.NamedArgs{"device_id": deviceID, "session_id": sessionID})
	return failed(err, "ClearAssignment device %d session %d", deviceID, sessionID)
}
