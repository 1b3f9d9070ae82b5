package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/recording"
)

// Changes of a running session. The session workflow's update handlers make them (through its
// activities) once their validators accepted them; the API runs the same with dryRun first,
// so a change the store refuses (a busy or unknown enclosure) never reaches the workflow's
// history. An accepted change writes its timeline entry and its audit row (store.Audited on
// ctx) in its transaction.

// errDryRun rolls a dry run's transaction back.
var errDryRun = errors.New("dry run")

// txMaybeDry runs fn in a transaction that a dry run rolls back (the audit row with it).
func (s *Store) txMaybeDry(ctx context.Context, dryRun bool, fn func(pgx.Tx) error) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if dryRun {
			return errDryRun
		}
		return nil
	})
	if errors.Is(err, errDryRun) {
		return nil
	}
	return err
}

// conflict is a refusal of the session's or an enclosure's state (409), naming field.
func conflict(field, format string, args ...any) *recording.Refusal {
	msg := fmt.Sprintf(format, args...)
	return &recording.Refusal{Message: msg, Fields: map[string]string{field: msg}, Conflict: true}
}

// runningSession is a session locked for a change.
type runningSession struct {
	Status         recording.SessionStatus `db:"status"`
	FragmentHourly bool                    `db:"fragment_hourly"`
	TargetFPS      int                     `db:"target_fps"`
	ApplyFilter    bool                    `db:"apply_filter"`
	Devices        int                     `db:"devices"`
}

// lockRunning locks the session's row and refuses one that no longer runs.
func lockRunning(ctx context.Context, tx pgx.Tx, id int64) (runningSession, error) {
	x, err := queryOne(ctx, tx, `
		SELECT status, fragment_hourly, target_fps, apply_filter,
		       (SELECT count(*) FROM session_devices WHERE session_id = s.id) AS devices
		FROM sessions s WHERE id = @id FOR UPDATE`, pgx.NamedArgs{"id": id}, pgx.RowToStructByName[runningSession])
	if err != nil {
		return x, notFound(err)
	}
	if x.Status != recording.SessionInProgress {
		return x, conflict("status", "recording session %d is %s: only a running session can change", id, x.Status)
	}
	return x, nil
}

// AddDevices adds enclosures to a running session, each recording for Seconds.
type AddDevices struct {
	SessionID int64
	Devices   []recording.NewSessionDevice
	Seconds   int64
}

// AddSessionDevices admits enclosures into a running session by the rules of a new one
// (recording.Rules: the prefixes, the enclosures' limit, unknown and unusable enclosures, the
// disk), except that a busy one is refused (409) instead of listed FAILED, and writes them as
// the creation does (insertSessionDevice: the row and START in the mailbox). It returns them as
// the workflow drives them. A refusal is a *recording.Refusal.
func (s *Store) AddSessionDevices(ctx context.Context, req AddDevices, rules recording.Rules, ids WorkflowIDs,
	now time.Time, down time.Duration, dryRun bool) ([]PlannedDevice, error) {
	if errs := recording.ValidDevices(req.Devices, "device_spec", ""); len(req.Devices) == 0 || len(errs) > 0 {
		if len(req.Devices) == 0 {
			errs["device_spec"] = "must list at least one enclosure"
		}
		return nil, recording.Refuse(errs)
	}
	var added []PlannedDevice
	err := s.txMaybeDry(ctx, dryRun, func(tx pgx.Tx) error {
		x, err := lockRunning(ctx, tx, req.SessionID)
		if err != nil {
			return err
		}
		if x.Devices+len(req.Devices) > rules.MaxEnclosures {
			return recording.Refuse(map[string]string{"device_spec": fmt.Sprintf("at most %d enclosures per session (it has %d)", rules.MaxEnclosures, x.Devices)})
		}
		ns := recording.NewSession{Duration: req.Seconds, FragmentHourly: x.FragmentHourly, TargetFPS: x.TargetFPS,
			ApplyFilter: x.ApplyFilter, Devices: req.Devices}
		deviceIDs := ns.DeviceIDs()
		if _, err := tx.Exec(ctx, `SELECT id FROM devices WHERE id = ANY(@ids) ORDER BY id FOR UPDATE`,
			pgx.NamedArgs{"ids": deviceIDs}); err != nil {
			return fmt.Errorf("locking the enclosures: %w", err)
		}
		found, err := candidates(ctx, tx, deviceIDs, now, down)
		if err != nil {
			return err
		}
		if _, err := rules.Admit(ns, found); err != nil {
			return err
		}
		var names []string
		plan := recording.Plan{Duration: req.Seconds, FragmentHourly: x.FragmentHourly, TargetFPS: x.TargetFPS, ApplyFilter: x.ApplyFilter}
		for i, d := range req.Devices {
			c := found[*d.DeviceID]
			field := fmt.Sprintf("device_spec[%d].device_id", i)
			var in bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM session_devices WHERE session_id = @sid AND device_id = @did)`,
				pgx.NamedArgs{"sid": req.SessionID, "did": c.ID}).Scan(&in); err != nil {
				return err
			}
			if in {
				return conflict(field, "%s is already in recording session %d", c.Name, req.SessionID)
			}
			busy, err := insertSessionDevice(ctx, tx, req.SessionID, plan, d, ids.Device(req.SessionID, c.ID))
			if err != nil {
				return err
			}
			if busy != "" {
				return conflict(field, "%s", busy)
			}
			added = append(added, PlannedDevice{DeviceID: c.ID, Name: c.Name, FilePrefix: d.FilePrefix})
			names = append(names, c.Name)
		}
		amendAudit(ctx, func(e *AuditEntry) { e.Detail = strings.Join(names, ", ") })
		return addEvent(ctx, tx, req.SessionID, 0, "added", fmt.Sprintf("%s added for %d s", strings.Join(names, ", "), req.Seconds), now)
	})
	return added, failed(err, "AddSessionDevices session %d", req.SessionID)
}

// RetryDevice starts a FAILED enclosure of a running session again, for Seconds.
type RetryDevice struct {
	SessionID, DeviceID int64
	Seconds             int64
}

// RetriedDevice is the enclosure as the retry's workflow drives it: its prefix carries the
// retry's number (_r1), so its files never take the failed recording's names.
type RetriedDevice struct {
	PlannedDevice
	Retry      int
	WorkflowID string
	Recorded   int64 // seconds the failed recording(s) recorded: the retry adds to them
}

// RetrySessionDevice puts a FAILED enclosure of a running session back to PENDING with a new
// START in its mailbox. It refuses (409) an enclosure that did not fail, was refused at the
// session's creation, is busy in another session, or still holds the failed recording in its
// mailbox (its STOP or COMPLETE is pending: the retry would take it over).
func (s *Store) RetrySessionDevice(ctx context.Context, req RetryDevice, ids WorkflowIDs, now time.Time, down time.Duration,
	dryRun bool) (RetriedDevice, error) {
	var out RetriedDevice
	err := s.txMaybeDry(ctx, dryRun, func(tx pgx.Tx) error {
		x, err := lockRunning(ctx, tx, req.SessionID)
		if err != nil {
			return err
		}
		old, err := assignmentOf(ctx, tx, req.DeviceID) // locks the enclosure
		if err != nil {
			return err
		}
		type row struct {
			Status   recording.DeviceStatus `db:"status"`
			Refused  bool                   `db:"refused"`
			Prefix   string                 `db:"file_prefix"`
			Retries  int                    `db:"retries"`
			Recorded int64                  `db:"recording_time"`
			Name     string                 `db:"name"`
		}
		r, err := queryOne(ctx, tx, `
			SELECT sd.status, sd.refused, sd.file_prefix, sd.retries, sd.recording_time, d.name
			FROM session_devices sd JOIN devices d ON d.id = sd.device_id
			WHERE sd.session_id = @sid AND sd.device_id = @did`, pgx.NamedArgs{"sid": req.SessionID, "did": req.DeviceID}, pgx.RowToStructByName[row])
		if err != nil {
			return notFound(err)
		}
		switch {
		case r.Status != recording.DeviceFailed:
			return conflict("device_id", "%s is %s in recording session %d: only a FAILED enclosure can be retried", r.Name, r.Status, req.SessionID)
		case r.Refused:
			return conflict("device_id", "%s was busy when the session was created and never part of it", r.Name)
		case old != nil && old.SessionID == req.SessionID:
			return conflict("device_id", "%s has not yet released its failed recording (%s pending); retry once it did", r.Name, old.Phase)
		}
		var other *int64
		if err := tx.QueryRow(ctx, `SELECT session_id FROM session_devices WHERE device_id = @did AND status IN ('PENDING', 'RECORDING')`,
			pgx.NamedArgs{"did": req.DeviceID}).Scan(&other); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if other != nil {
			return conflict("device_id", "%s is busy in recording session %d", r.Name, *other)
		}
		out = RetriedDevice{PlannedDevice: PlannedDevice{DeviceID: req.DeviceID, Name: r.Name,
			FilePrefix: r.Prefix + "_r" + strconv.Itoa(r.Retries+1)}, Retry: r.Retries + 1, Recorded: r.Recorded}
		out.WorkflowID = ids.Retry(req.SessionID, req.DeviceID, out.Retry)
		if _, err := tx.Exec(ctx, `
			UPDATE session_devices SET status = 'PENDING', message = '', ended_at = NULL, workflow_ended = false,
				end_report = NULL, retries = @retry
			WHERE session_id = @sid AND device_id = @did`,
			pgx.NamedArgs{"sid": req.SessionID, "did": req.DeviceID, "retry": out.Retry}); err != nil {
			return err
		}
		params := recording.Plan{Duration: req.Seconds, FragmentHourly: x.FragmentHourly, FilePrefix: out.FilePrefix,
			TargetFPS: x.TargetFPS, ApplyFilter: x.ApplyFilter}.Start(req.SessionID)
		if err := assignStart(ctx, tx, req.DeviceID, old, params, out.WorkflowID, "", now); err != nil {
			return err
		}
		amendAudit(ctx, func(e *AuditEntry) { e.Detail = fmt.Sprintf("%s, retry %d", r.Name, out.Retry) })
		return addEvent(ctx, tx, req.SessionID, req.DeviceID, "retry", fmt.Sprintf("retry %d for %d s", out.Retry, req.Seconds), now)
	})
	return out, failed(err, "RetrySessionDevice session %d device %d", req.SessionID, req.DeviceID)
}

// SetSessionDuration records a running session's new planned duration (seconds), extended or
// shortened, with a timeline entry saying which.
func (s *Store) SetSessionDuration(ctx context.Context, id, duration int64, now time.Time) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := lockRunning(ctx, tx, id); err != nil {
			return err
		}
		args := pgx.NamedArgs{"id": id, "duration": duration}
		var old int64
		if err := tx.QueryRow(ctx, `SELECT duration FROM sessions WHERE id = @id`, args).Scan(&old); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE sessions SET duration = @duration WHERE id = @id`, args); err != nil {
			return err
		}
		kind := "extended"
		if duration < old {
			kind = "shortened"
		}
		amendAudit(ctx, func(e *AuditEntry) { e.Detail = fmt.Sprintf("%d s -> %d s", old, duration) })
		return addEvent(ctx, tx, id, 0, kind, fmt.Sprintf("planned duration %d s (was %d s)", duration, old), now)
	})
	return failed(err, "SetSessionDuration session %d", id)
}

// SessionEdit changes a session's name and notes (nil: unchanged); they are the read model's
// only, at any time.
type SessionEdit struct {
	Name  *string
	Notes *string
}

// EditSession applies a SessionEdit with its timeline entry.
func (s *Store) EditSession(ctx context.Context, id int64, e SessionEdit) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := execOneOn(ctx, tx, `UPDATE sessions SET name = coalesce(@name, name), notes = coalesce(@notes, notes) WHERE id = @id`,
			pgx.NamedArgs{"id": id, "name": e.Name, "notes": e.Notes}); err != nil {
			return err
		}
		var what []string
		if e.Name != nil {
			what = append(what, "name: "+*e.Name)
		}
		if e.Notes != nil {
			what = append(what, "notes")
		}
		amendAudit(ctx, func(a *AuditEntry) { a.Detail = strings.Join(what, "; ") })
		return addEvent(ctx, tx, id, 0, "edited", strings.Join(what, "; "), time.Time{})
	})
	return failed(err, "EditSession session %d", id)
}
