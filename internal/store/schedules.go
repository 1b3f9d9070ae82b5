package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/recording"
)

// Schedule is the read model of a scheduled or recurring session: Temporal's Schedule is the
// authority for when it fires; this keeps who owns it and what it was asked for, for listing
// and permissions. Spec and Session are the API's JSON, kept as given.
type Schedule struct {
	ID         int64
	Name       string
	OwnerID    *int64
	OwnerEmail *string
	Spec       json.RawMessage
	Session    json.RawMessage
	Paused     bool
	Note       string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

type scheduleRow struct {
	ID         int64           `db:"id"`
	Name       string          `db:"name"`
	OwnerID    *int64          `db:"owner_id"`
	OwnerEmail *string         `db:"owner_email"`
	Spec       json.RawMessage `db:"spec"`
	Session    json.RawMessage `db:"session"`
	Paused     bool            `db:"paused"`
	Note       string          `db:"note"`
	CreatedAt  time.Time       `db:"created_at"`
	UpdatedAt  time.Time       `db:"updated_at"`
}

func (r scheduleRow) schedule() Schedule { return Schedule(r) }

const scheduleSelect = `
	SELECT s.id, s.name, s.owner_id, u.email AS owner_email, s.spec, s.session, s.paused, s.note, s.created_at, s.updated_at
	FROM schedules s LEFT JOIN users u ON u.id = s.owner_id
	WHERE s.deleted_at IS NULL`

// NewSchedule is a schedule to create.
type NewSchedule struct {
	Name    string
	OwnerID int64
	Spec    json.RawMessage
	Session json.RawMessage
	Paused  bool
	Note    string
}

// CreateSchedule stores a schedule and runs start (which creates its Temporal Schedule) with
// its id in the same transaction: a schedule Temporal refused leaves no row.
func (s *Store) CreateSchedule(ctx context.Context, ns NewSchedule, start func(id int64) error) (int64, error) {
	var id int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO schedules (name, owner_id, spec, session, paused, note)
			VALUES (@name, nullif(@owner_id, 0), @spec, @session, @paused, @note) RETURNING id`,
			pgx.NamedArgs{"name": ns.Name, "owner_id": ns.OwnerID, "spec": ns.Spec, "session": ns.Session,
				"paused": ns.Paused, "note": ns.Note}).Scan(&id)
		if err != nil {
			return err
		}
		amendAudit(ctx, func(e *AuditEntry) { e.Subject = strconv.FormatInt(id, 10) })
		return start(id)
	})
	return id, failed(err, "CreateSchedule %q", ns.Name)
}

// ScheduleChange is a change of a schedule's row; nil fields stay.
type ScheduleChange struct {
	Name    *string
	Spec    json.RawMessage
	Session json.RawMessage
	Paused  *bool
	Note    *string
	Delete  bool
}

// ChangeSchedule applies c and runs apply (the same change on its Temporal Schedule) in one
// transaction: when Temporal refuses, the row stays as it was. ErrNotFound: no such schedule.
func (s *Store) ChangeSchedule(ctx context.Context, id int64, c ScheduleChange, apply func() error) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		err := execOneOn(ctx, tx, `
			UPDATE schedules SET name = coalesce(@name, name), spec = coalesce(@spec, spec),
				session = coalesce(@session, session), paused = coalesce(@paused, paused), note = coalesce(@note, note),
				deleted_at = CASE WHEN @delete THEN now() ELSE deleted_at END, updated_at = now()
			WHERE id = @id AND deleted_at IS NULL`,
			pgx.NamedArgs{"id": id, "name": c.Name, "spec": nullJSON(c.Spec), "session": nullJSON(c.Session),
				"paused": c.Paused, "note": c.Note, "delete": c.Delete})
		if err != nil {
			return err
		}
		return apply()
	})
	return failed(err, "ChangeSchedule %d", id)
}

func nullJSON(raw json.RawMessage) any {
	if raw == nil {
		return nil
	}
	return []byte(raw)
}

// Schedules lists the schedules that are not deleted, newest first.
func (s *Store) Schedules(ctx context.Context) ([]Schedule, error) {
	list, err := queryAll(ctx, s.pool, scheduleSelect+` ORDER BY s.id DESC`, nil, byName(scheduleRow.schedule))
	return list, failed(err, "Schedules")
}

// Schedule returns one schedule (ErrNotFound: none, or deleted).
func (s *Store) Schedule(ctx context.Context, id int64) (Schedule, error) {
	x, err := queryOne(ctx, s.pool, scheduleSelect+` AND s.id = @id`, pgx.NamedArgs{"id": id}, byName(scheduleRow.schedule))
	return x, failed(notFound(err), "Schedule %d", id)
}

// ScheduleFire is what one fire of a schedule did.
type ScheduleFire struct {
	ScheduleID int64     `db:"schedule_id"`
	WorkflowID string    `db:"workflow_id"`
	FiredAt    time.Time `db:"fired_at"`
	Outcome    string    `db:"outcome"`
	Message    string    `db:"message"`
	SessionID  *int64    `db:"session_id"`
}

// RecordScheduleFire keeps a fire's outcome; the fire's workflow id makes a repeat harmless.
func (s *Store) RecordScheduleFire(ctx context.Context, f ScheduleFire) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO schedule_fires (schedule_id, workflow_id, fired_at, outcome, message, session_id)
		VALUES (@schedule_id, @workflow_id, @fired_at, @outcome, @message, @session_id)
		ON CONFLICT (workflow_id) DO UPDATE SET outcome = excluded.outcome, message = excluded.message,
			session_id = excluded.session_id, recorded_at = now()`,
		pgx.NamedArgs{"schedule_id": f.ScheduleID, "workflow_id": f.WorkflowID, "fired_at": f.FiredAt, "outcome": f.Outcome,
			"message": f.Message, "session_id": f.SessionID})
	return failed(err, "RecordScheduleFire %s", f.WorkflowID)
}

// ScheduleFires lists a schedule's latest fires, newest first.
func (s *Store) ScheduleFires(ctx context.Context, id int64, limit int) ([]ScheduleFire, error) {
	list, err := queryAll(ctx, s.pool, `
		SELECT schedule_id, workflow_id, fired_at, outcome, message, session_id FROM schedule_fires
		WHERE schedule_id = @id ORDER BY fired_at DESC, id DESC LIMIT @limit`,
		pgx.NamedArgs{"id": id, "limit": limit}, pgx.RowToStructByName[ScheduleFire])
	return list, failed(err, "ScheduleFires %d", id)
}

// ScheduleSession is a session a schedule created, as its page lists it.
type ScheduleSession struct {
	ID        int64                   `db:"id"`
	Name      string                  `db:"name"`
	Status    recording.SessionStatus `db:"status"`
	CreatedAt time.Time               `db:"created_at"`
}

// ScheduleSessions lists the sessions a schedule created, newest first.
func (s *Store) ScheduleSessions(ctx context.Context, id int64, limit int) ([]ScheduleSession, error) {
	list, err := queryAll(ctx, s.pool, `
		SELECT id, name, status, created_at FROM sessions WHERE schedule_id = @id ORDER BY created_at DESC, id DESC LIMIT @limit`,
		pgx.NamedArgs{"id": id, "limit": limit}, pgx.RowToStructByName[ScheduleSession])
	return list, failed(err, "ScheduleSessions %d", id)
}

// EnclosureState is whether an enclosure could start a new session now.
type EnclosureState struct {
	DeviceID int64
	Name     string
	Free     bool
	Reason   string
}

// EnclosureStates judges enclosures as admission would now (busy in a session, DOWN,
// unusable); ids it does not know are absent.
func (s *Store) EnclosureStates(ctx context.Context, ids []int64, now time.Time, down time.Duration) ([]EnclosureState, error) {
	found, err := candidates(ctx, s.pool, ids, now, down)
	if err != nil {
		return nil, failed(err, "EnclosureStates")
	}
	out := make([]EnclosureState, 0, len(found))
	for _, id := range ids {
		c, ok := found[id]
		if !ok {
			continue
		}
		st := EnclosureState{DeviceID: c.ID, Name: c.Name, Free: true}
		switch {
		case c.Unusable != "":
			st.Free, st.Reason = false, c.Unusable
		case c.State == recording.EnclosureBusy && c.SessionID != nil:
			st.Free, st.Reason = false, fmt.Sprintf("busy in session %d", *c.SessionID)
		case c.State == recording.EnclosureBusy:
			st.Free, st.Reason = false, "busy"
		case c.State == recording.EnclosureDown:
			st.Free, st.Reason = false, "DOWN"
		}
		out = append(out, st)
	}
	return out, nil
}
