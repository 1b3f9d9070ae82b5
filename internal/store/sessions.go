package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/recording"
)

// StopRequest is a cancel of a whole session (DeviceID 0) or the removal of one enclosure. Its
// JSON is the payload of the outbox row the dispatcher reads (stopRequestEntry).
type StopRequest struct {
	SessionID int64  `json:"session_id"`
	DeviceID  int64  `json:"device_id,omitempty"`
	UserID    int64  `json:"user_id"`
	Reason    string `json:"reason"`
}

// Session is a recording session with its enclosures, in the read model (the API sends its
// own view of it: api.SessionView).
type Session struct {
	ID             int64
	Name           string
	Duration       int64
	FragmentHourly bool
	TargetFPS      int
	ApplyFilter    bool
	CreationTime   time.Time
	Status         recording.SessionStatus
	Archived       bool
	CreatedBy      *string
	CanceledBy     *string
	EndedAt        *time.Time
	// SecondsLost is what reboots and restarts cost the session: its enclosures' seconds_lost.
	SecondsLost    int64
	Notes          string
	Timeouts       recording.Timeouts // the session's own; zero ones are the server's
	DeviceStatuses []DeviceStatus
	Template       *TemplateRef // the template version it was made from; nil: none
}

// TemplateRef names a template version.
type TemplateRef struct {
	ID      int64
	Version int
	Name    string
}

// DeviceStatus is one enclosure's part in a session.
type DeviceStatus struct {
	SessionID      int64
	Device         Device
	FilenamePrefix string
	RecordingTime  int64
	Status         recording.DeviceStatus
	Message        string
	StartedAt      *time.Time
	EndedAt        *time.Time
	Segments       int
	// StopPending: STOP is waiting for the enclosure's next heartbeat (a cancel or removal that
	// is already CANCELED here).
	StopPending bool
	// SecondsLost and Gaps account for what a reboot or a restart of the client cost: the
	// seconds between the last heartbeat of a lost segment and the start of the next.
	SecondsLost int64
	Gaps        []recording.Gap
}

// WorkflowIDs names a session's workflows (the store does not import the workflows).
type WorkflowIDs struct {
	Session func(sessionID int64) string
	Device  func(sessionID, deviceID int64) string
	// Retry names the workflow of an enclosure's retry (1, 2, ...) in a running session.
	Retry func(sessionID, deviceID int64, retry int) string
}

// CreatedSession is a session CreateSession wrote, with what admission warns of.
type CreatedSession struct {
	ID       int64
	Warnings []string
	// Replayed: the creator's Idempotency-Key named a session created before; nothing was
	// written (and admission did not run again: no warnings).
	Replayed bool
}

// CreateSession is the one way a session comes to be, for the API and the activities alike: it
// runs the rules of a new session (recording.Rules: validation, then admission of the
// enclosures as they are now) and, if they pass, stores the session and its enclosures, puts
// START in each free enclosure's mailbox (so it goes out on the enclosure's first heartbeat,
// before the workflows even start) and queues the workflow start, in one transaction. An
// enclosure busy in another session is listed FAILED with the original's message, and the
// session goes ahead with the others. A refusal is a *recording.Refusal.
func (s *Store) CreateSession(ctx context.Context, ns recording.NewSession, rules recording.Rules, ids WorkflowIDs,
	now time.Time, down time.Duration) (CreatedSession, error) {
	ns, err := rules.Validate(ns)
	if err != nil {
		return CreatedSession{}, err
	}
	var created CreatedSession
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if ns.IdempotencyKey != "" {
			id, err := sessionByKey(ctx, tx, ns)
			if err != nil {
				return err
			}
			if id != 0 {
				created = CreatedSession{ID: id, Replayed: true}
				amendAudit(ctx, func(e *AuditEntry) { e.Subject, e.Detail = strconv.FormatInt(id, 10), "replayed (Idempotency-Key)" })
				return nil
			}
		}
		// Lock the enclosures first, in id order as the heartbeat batch does: taking them one by
		// one in the request's order (each insert below also locks its enclosure's key) deadlocked
		// with a batch of the same enclosures' heartbeats. Admission then judges them as they are.
		deviceIDs := ns.DeviceIDs()
		if _, err := tx.Exec(ctx, `SELECT id FROM devices WHERE id = ANY(@ids) ORDER BY id FOR NO KEY UPDATE`,
			pgx.NamedArgs{"ids": deviceIDs}); err != nil {
			return fmt.Errorf("locking the enclosures: %w", err)
		}
		found, err := candidates(ctx, tx, deviceIDs, now, down)
		if err != nil {
			return err
		}
		if created.Warnings, err = rules.Admit(ns, found); err != nil {
			return err
		}
		id, err := insertSession(ctx, tx, ns, ids, found, now)
		created.ID = id
		amendAudit(ctx, func(e *AuditEntry) { e.Subject = strconv.FormatInt(id, 10) })
		return err
	})
	if err != nil {
		// A refusal stays a *recording.Refusal through the wrapping (errors.As), for the API's 400.
		return CreatedSession{}, failed(err, "CreateSession %q", ns.Name)
	}
	return created, nil
}

// sessionByKey finds the session its creator made with ns's Idempotency-Key (0: none yet), or
// recording.ErrIdempotencyMismatch when that one came from another request. A transaction-scoped lock
// on the creator and key makes a second request with them wait for the first to commit.
func sessionByKey(ctx context.Context, tx pgx.Tx, ns recording.NewSession) (int64, error) {
	args := pgx.NamedArgs{"created_by": ns.CreatedBy, "key": ns.IdempotencyKey, "hash": requestHash(ns)}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(@key, @created_by))`, args); err != nil {
		return 0, fmt.Errorf("locking the idempotency key: %w", err)
	}
	var id int64
	var hash string
	err := tx.QueryRow(ctx, `SELECT id, idempotency_hash FROM sessions
		WHERE coalesce(created_by, 0) = @created_by AND idempotency_key = @key`, args).Scan(&id, &hash)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, err
	case hash != args["hash"]:
		return 0, recording.ErrIdempotencyMismatch
	}
	return id, nil
}

// requestHash identifies what a validated new session asks for, whatever its key.
func requestHash(ns recording.NewSession) string {
	ns.IdempotencyKey = ""
	raw, _ := json.Marshal(ns) // plain fields always encode
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// candidates reads the enclosures of a new session as admission judges them.
func candidates(ctx context.Context, q querier, ids []int64, now time.Time, down time.Duration) (map[int64]recording.Candidate, error) {
	devices, err := queryAll(ctx, q, deviceSelect+` WHERE d.id = ANY(@ids)`, deviceArgs(now, down, pgx.NamedArgs{"ids": ids}), readDevice)
	if err != nil {
		return nil, err
	}
	found := make(map[int64]recording.Candidate, len(devices))
	for _, d := range devices {
		found[d.ID] = recording.Candidate{ID: d.ID, Name: d.Name, State: d.State, SessionID: d.SessionID,
			FreeDiskMB: d.SystemInfo.FreeDisk, Unusable: d.Usable()}
	}
	return found, nil
}

// insertSession writes an admitted session: its row, its enclosures with their first START,
// its timeline's first entry and the outbox row that starts its workflow.
func insertSession(ctx context.Context, tx pgx.Tx, ns recording.NewSession, ids WorkflowIDs,
	found map[int64]recording.Candidate, now time.Time) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `
		INSERT INTO sessions (name, duration, fragment_hourly, target_fps, apply_filter, created_by,
		                      schedule_id, idempotency_key, idempotency_hash, template_id, template_version,
		                      start_deadline, silence_timeout, end_grace)
		VALUES (@name, @duration, @fragment_hourly, @target_fps, @apply_filter, nullif(@created_by, 0),
		        nullif(@schedule_id, 0), nullif(@key, ''), @hash, nullif(@template_id, 0), nullif(@template_version, 0),
		        nullif(@start_deadline, 0), nullif(@silence_timeout, 0), nullif(@end_grace, 0))
		RETURNING id`,
		pgx.NamedArgs{"name": ns.Name, "duration": ns.Duration, "fragment_hourly": ns.FragmentHourly,
			"target_fps": ns.TargetFPS, "apply_filter": ns.ApplyFilter, "created_by": ns.CreatedBy,
			"schedule_id": ns.ScheduleID, "key": ns.IdempotencyKey, "hash": requestHash(ns),
			"template_id": ns.TemplateID, "template_version": ns.TemplateVersion,
			"start_deadline": seconds(ns.Timeouts.StartDeadline), "silence_timeout": seconds(ns.Timeouts.SilenceTimeout),
			"end_grace": seconds(ns.Timeouts.EndGrace)}).Scan(&id)
	if err != nil {
		return 0, err
	}
	// {session} in a prefix pattern is the id just made.
	names := make(map[int64]string, len(found))
	for _, c := range found {
		names[c.ID] = c.Name
	}
	if ns, err = ns.ExpandPrefixes(id, names, now); err != nil {
		return 0, err
	}
	plan := recording.Plan{Duration: ns.Duration, FragmentHourly: ns.FragmentHourly, TargetFPS: ns.TargetFPS, ApplyFilter: ns.ApplyFilter}
	for _, d := range ns.Devices {
		busy, err := insertSessionDevice(ctx, tx, id, plan, d, ids.Device(id, *d.DeviceID))
		if err != nil {
			return 0, err
		}
		if busy == "" {
			continue
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO session_devices (session_id, device_id, file_prefix, status, message, ended_at, refused)
			VALUES (@session_id, @device_id, @file_prefix, 'FAILED', @message, now(), true)`,
			pgx.NamedArgs{"session_id": id, "device_id": *d.DeviceID, "file_prefix": d.FilePrefix, "message": busy}); err != nil {
			return 0, err
		}
	}
	if err := insertSubjects(ctx, tx, id, ns.Devices); err != nil {
		return 0, err
	}
	if err := addEvent(ctx, tx, id, 0, "created", "", time.Time{}); err != nil {
		return 0, err
	}
	return id, enqueueOutbox(ctx, tx, sessionStartEntry(ids.Session(id), id))
}

// insertSessionDevice adds an enclosure to a session with its START in the mailbox (plan with
// the enclosure's prefix), or, when it is busy in another session, writes nothing and says
// why: busy names that session.
func insertSessionDevice(ctx context.Context, tx pgx.Tx, sessionID int64, plan recording.Plan, d recording.NewSessionDevice,
	workflowID string) (busy string, err error) {
	args := pgx.NamedArgs{"session_id": sessionID, "device_id": *d.DeviceID, "file_prefix": d.FilePrefix}
	tag, err := tx.Exec(ctx, `
		INSERT INTO session_devices (session_id, device_id, file_prefix)
		VALUES (@session_id, @device_id, @file_prefix)
		ON CONFLICT (device_id) WHERE status IN ('PENDING', 'RECORDING') DO NOTHING`, args)
	if err != nil {
		return "", err
	}
	if tag.RowsAffected() == 1 {
		old, err := assignmentOf(ctx, tx, *d.DeviceID)
		if err != nil {
			return "", err
		}
		plan.FilePrefix = d.FilePrefix
		return "", assignStart(ctx, tx, *d.DeviceID, old, plan.Start(sessionID), workflowID, "", time.Now())
	}
	var name string
	var other int64
	if err := tx.QueryRow(ctx, `
		SELECT d.name, sd.session_id FROM session_devices sd JOIN devices d ON d.id = sd.device_id
		WHERE sd.device_id = @device_id AND sd.status IN ('PENDING', 'RECORDING')`, args).Scan(&name, &other); err != nil {
		return "", err
	}
	return fmt.Sprintf("device %s is already assigned to a recording session (%d)", name, other), nil
}

// seconds is a duration in whole seconds, for the columns that keep seconds.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// addEvent appends to a session's timeline; a zero at means now().
func addEvent(ctx context.Context, q querier, sessionID, deviceID int64, kind, message string, at time.Time) error {
	_, err := q.Exec(ctx, `
		INSERT INTO session_events (session_id, device_id, kind, message, at)
		VALUES (@session_id, nullif(@device_id, 0), @kind, @message, coalesce(@at, now()))`,
		pgx.NamedArgs{"session_id": sessionID, "device_id": deviceID, "kind": kind, "message": message, "at": nullTime(at)})
	return err
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

const sessionSelect = `
	SELECT s.id, s.name, s.duration, s.fragment_hourly, s.target_fps, s.apply_filter, s.created_at,
	       s.status, s.archived, cu.email AS created_by, xu.email AS canceled_by, s.ended_at, s.notes,
	       coalesce(s.start_deadline, 0) AS start_deadline, coalesce(s.silence_timeout, 0) AS silence_timeout,
	       coalesce(s.end_grace, 0) AS end_grace,
	       (SELECT coalesce(sum(sd.seconds_lost), 0) FROM session_devices sd WHERE sd.session_id = s.id) AS seconds_lost,
	       s.template_id, s.template_version, t.name AS template_name
	FROM sessions s
	LEFT JOIN users cu ON cu.id = s.created_by
	LEFT JOIN users xu ON xu.id = s.canceled_by
	LEFT JOIN session_templates t ON t.id = s.template_id`

// sessionRow is a session as sessionSelect reads it.
type sessionRow struct {
	ID             int64                   `db:"id"`
	Name           string                  `db:"name"`
	Duration       int64                   `db:"duration"`
	FragmentHourly bool                    `db:"fragment_hourly"`
	TargetFPS      int                     `db:"target_fps"`
	ApplyFilter    bool                    `db:"apply_filter"`
	CreatedAt      time.Time               `db:"created_at"`
	Status         recording.SessionStatus `db:"status"`
	Archived       bool                    `db:"archived"`
	CreatedBy      *string                 `db:"created_by"` // e-mail addresses
	CanceledBy     *string                 `db:"canceled_by"`
	EndedAt        *time.Time              `db:"ended_at"`
	SecondsLost    int64                   `db:"seconds_lost"`
	TemplateID     *int64                  `db:"template_id"`
	TemplateVer    *int                    `db:"template_version"`
	TemplateName   *string                 `db:"template_name"`
	Notes          string                  `db:"notes"`
	StartDeadline  int64                   `db:"start_deadline"` // seconds; 0: the server's
	SilenceTimeout int64                   `db:"silence_timeout"`
	EndGrace       int64                   `db:"end_grace"`
}

func (r sessionRow) session() Session {
	x := Session{ID: r.ID, Name: r.Name, Duration: r.Duration, FragmentHourly: r.FragmentHourly, TargetFPS: r.TargetFPS,
		ApplyFilter: r.ApplyFilter, CreationTime: r.CreatedAt, Status: r.Status, Archived: r.Archived,
		CreatedBy: r.CreatedBy, CanceledBy: r.CanceledBy, EndedAt: r.EndedAt, SecondsLost: r.SecondsLost, Notes: r.Notes,
		Timeouts: timeouts(r.StartDeadline, r.SilenceTimeout, r.EndGrace)}
	if r.TemplateID != nil && r.TemplateVer != nil && r.TemplateName != nil {
		x.Template = &TemplateRef{ID: *r.TemplateID, Version: *r.TemplateVer, Name: *r.TemplateName}
	}
	return x
}

// timeouts reads a session's timeout columns (seconds; 0: the server's).
func timeouts(startDeadline, silenceTimeout, endGrace int64) recording.Timeouts {
	return recording.Timeouts{StartDeadline: time.Duration(startDeadline) * time.Second,
		SilenceTimeout: time.Duration(silenceTimeout) * time.Second, EndGrace: time.Duration(endGrace) * time.Second}
}

// ListSessions returns archived or non-archived sessions, newest first, with their enclosures.
func (s *Store) ListSessions(ctx context.Context, archived bool, now time.Time, down time.Duration) ([]Session, error) {
	return s.SearchSessions(ctx, archived, SessionSearch{}, now, down)
}

// SearchSessions is ListSessions of the sessions f finds (by subject, strain, name).
func (s *Store) SearchSessions(ctx context.Context, archived bool, f SessionSearch, now time.Time, down time.Duration) ([]Session, error) {
	args := pgx.NamedArgs{"archived": archived, "limit": nil}
	if f.Limit > 0 {
		args["limit"] = f.Limit
	}
	sessions, err := queryAll(ctx, s.pool, sessionSelect+` WHERE s.archived = @archived AND `+f.where(args)+
		` ORDER BY s.created_at DESC, s.id DESC LIMIT @limit`, args, byName(sessionRow.session))
	if err != nil || len(sessions) == 0 {
		return sessions, failed(err, "ListSessions archived %t", archived)
	}
	ids := make([]int64, len(sessions))
	index := map[int64]int{}
	for i, x := range sessions {
		ids[i] = x.ID
		index[x.ID] = i
		sessions[i].DeviceStatuses = []DeviceStatus{}
	}
	statuses, err := s.deviceStatuses(ctx, `sd.session_id = ANY(@ids)`, pgx.NamedArgs{"ids": ids}, now, down)
	for _, st := range statuses {
		i := index[st.SessionID]
		sessions[i].DeviceStatuses = append(sessions[i].DeviceStatuses, st)
	}
	return sessions, failed(err, "ListSessions archived %t", archived)
}

// Session returns one session with its enclosures.
func (s *Store) Session(ctx context.Context, id int64, now time.Time, down time.Duration) (Session, error) {
	x, err := queryOne(ctx, s.pool, sessionSelect+` WHERE s.id = @id`, pgx.NamedArgs{"id": id}, byName(sessionRow.session))
	if err != nil {
		return x, failed(notFound(err), "Session %d", id)
	}
	x.DeviceStatuses, err = s.deviceStatuses(ctx, `sd.session_id = @id`, pgx.NamedArgs{"id": id}, now, down)
	return x, failed(err, "Session %d", id)
}

// SessionDevice returns one enclosure's part in a session.
func (s *Store) SessionDevice(ctx context.Context, sessionID, deviceID int64, now time.Time, down time.Duration) (DeviceStatus, error) {
	list, err := s.deviceStatuses(ctx, `sd.session_id = @sid AND sd.device_id = @did`, pgx.NamedArgs{"sid": sessionID, "did": deviceID}, now, down)
	if err == nil && len(list) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return DeviceStatus{}, failed(err, "SessionDevice session %d device %d", sessionID, deviceID)
	}
	return list[0], nil
}

func (s *Store) deviceStatuses(ctx context.Context, where string, args pgx.NamedArgs, now time.Time, down time.Duration) ([]DeviceStatus, error) {
	return queryAll(ctx, s.pool, `
		WITH dev AS (`+deviceSelect+`)
		SELECT sd.session_id, sd.file_prefix, sd.recording_time, sd.status, sd.message, sd.started_at, sd.ended_at,
		       sd.segments, sd.seconds_lost, sd.gaps,
		       EXISTS (SELECT 1 FROM device_assignments a WHERE a.device_id = sd.device_id
		               AND a.session_id = sd.session_id AND a.phase = 'stopping') AS stop_pending,
		       dev.*
		FROM session_devices sd JOIN dev ON dev.id = sd.device_id
		WHERE `+where+` ORDER BY dev.name`, deviceArgs(now, down, args), byName(deviceStatusRow.deviceStatus))
}

// deviceStatusRow is an enclosure's part in a session, with the enclosure (deviceSelect), as
// deviceStatuses reads it.
type deviceStatusRow struct {
	SessionID     int64                  `db:"session_id"`
	FilePrefix    string                 `db:"file_prefix"`
	RecordingTime int64                  `db:"recording_time"`
	Status        recording.DeviceStatus `db:"status"`
	Message       string                 `db:"message"`
	StartedAt     *time.Time             `db:"started_at"`
	EndedAt       *time.Time             `db:"ended_at"`
	Segments      int                    `db:"segments"`
	SecondsLost   int64                  `db:"seconds_lost"`
	Gaps          []recording.Gap        `db:"gaps"`
	StopPending   bool                   `db:"stop_pending"`
	deviceRow
}

func (r deviceStatusRow) deviceStatus() DeviceStatus {
	return DeviceStatus{SessionID: r.SessionID, Device: r.device(), FilenamePrefix: r.FilePrefix, RecordingTime: r.RecordingTime,
		Status: r.Status, Message: r.Message, StartedAt: r.StartedAt, EndedAt: r.EndedAt, Segments: r.Segments,
		StopPending: r.StopPending, SecondsLost: r.SecondsLost, Gaps: r.Gaps}
}

// SetArchived archives or unarchives a session.
func (s *Store) SetArchived(ctx context.Context, id int64, archived bool) error {
	err := s.execOne(ctx, `UPDATE sessions SET archived = @archived WHERE id = @id`, pgx.NamedArgs{"id": id, "archived": archived})
	return failed(err, "SetArchived session %d", id)
}

// SessionEvent is one entry of a session's timeline.
type SessionEvent struct {
	At      time.Time `db:"at"`
	Device  *string   `db:"device"` // its name
	Kind    string    `db:"kind"`
	Message string    `db:"message"`
}

// SessionEvents returns a session's timeline, oldest first.
func (s *Store) SessionEvents(ctx context.Context, id int64) ([]SessionEvent, error) {
	events, err := queryAll(ctx, s.pool, `
		SELECT e.at, d.name AS device, e.kind, e.message FROM session_events e LEFT JOIN devices d ON d.id = e.device_id
		WHERE e.session_id = @id ORDER BY e.id`, pgx.NamedArgs{"id": id}, pgx.RowToStructByName[SessionEvent])
	return events, failed(err, "SessionEvents session %d", id)
}

// Writes of the workflow's read model (through its activities).

// DeviceUpdate is a change of one enclosure's part in a session; nil fields stay.
type DeviceUpdate struct {
	SessionID     int64
	DeviceID      int64
	Status        recording.DeviceStatus
	Message       string
	StartedAt     *time.Time
	EndedAt       *time.Time
	RecordingTime *int64
	Segments      *int
	SecondsLost   *int64
	Gaps          []recording.Gap // nil: unchanged
	// Final marks the workflow's last write of the enclosure's part: later reports are the
	// heartbeat path's to count (queueEndReport).
	Final        bool
	Event        string // timeline entry kind; empty for none
	EventMessage string
	At           time.Time
}

// UpdateSessionDevice applies a DeviceUpdate and its timeline entry.
func (s *Store) UpdateSessionDevice(ctx context.Context, u DeviceUpdate) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			UPDATE session_devices SET
				-- A user's cancel or removal (RequestStop) is final: the workflow, learning of it
				-- later, adds what the enclosure recorded but never turns it back.
				status = CASE WHEN status = 'CANCELED' THEN status ELSE coalesce(nullif(@status, ''), status) END,
				message = CASE WHEN status = 'CANCELED' THEN message ELSE coalesce(nullif(@message, ''), message) END,
				started_at = coalesce(started_at, @started_at),
				ended_at = coalesce(@ended_at, ended_at),
				-- The heartbeats kept it live: the workflow's final figure never takes it back.
				recording_time = greatest(recording_time, coalesce(@recording_time, recording_time)),
				segments = coalesce(@segments, segments),
				seconds_lost = coalesce(@seconds_lost, seconds_lost),
				gaps = coalesce(@gaps, gaps),
				workflow_ended = workflow_ended OR @final
			WHERE session_id = @session_id AND device_id = @device_id`,
			pgx.NamedArgs{"session_id": u.SessionID, "device_id": u.DeviceID, "status": u.Status, "message": u.Message,
				"started_at": u.StartedAt, "ended_at": u.EndedAt, "recording_time": u.RecordingTime, "segments": u.Segments,
				"seconds_lost": u.SecondsLost, "gaps": gapsArg(u.Gaps), "final": u.Final})
		if err != nil || u.Event == "" {
			return err
		}
		return addEvent(ctx, tx, u.SessionID, u.DeviceID, u.Event, u.EventMessage, u.At)
	})
	return failed(err, "UpdateSessionDevice session %d device %d", u.SessionID, u.DeviceID)
}

// gapsArg is the gaps column's new value, or nil to keep it.
func gapsArg(gaps []recording.Gap) []byte {
	if gaps == nil {
		return nil
	}
	raw, _ := json.Marshal(gaps) // a slice of plain structs always encodes
	return raw
}

// SetSessionStatus records a session's status (and its end, for final statuses).
func (s *Store) SetSessionStatus(ctx context.Context, id int64, status recording.SessionStatus, endedAt *time.Time) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// A cancel the API recorded stands, whatever the workflow computes afterwards.
		if _, err := tx.Exec(ctx, `UPDATE sessions SET status = CASE WHEN status = 'CANCELED' THEN status ELSE @status END,
			ended_at = coalesce(@ended_at, ended_at) WHERE id = @id`,
			pgx.NamedArgs{"id": id, "status": status, "ended_at": endedAt}); err != nil {
			return err
		}
		at := time.Time{}
		if endedAt != nil {
			at = *endedAt
		}
		return addEvent(ctx, tx, id, 0, "status", string(status), at)
	})
	return failed(err, "SetSessionStatus session %d %s", id, status)
}

// SessionPlan is what the session workflow needs to run.
type SessionPlan struct {
	ID             int64
	Duration       int64
	FragmentHourly bool
	TargetFPS      int
	ApplyFilter    bool
	Timeouts       recording.Timeouts // the session's own; zero ones are the server's
	Devices        []PlannedDevice
}

// PlannedDevice is an enclosure the workflow drives (the ones not FAILED at admission).
type PlannedDevice struct {
	DeviceID   int64  `db:"device_id"`
	Name       string `db:"name"`
	FilePrefix string `db:"file_prefix"`
}

// SessionPlan reads the session's parameters and the enclosures it drives: every one but those
// refused at creation, so a run after an operator's reset drives (and counts) the same ones.
func (s *Store) SessionPlan(ctx context.Context, id int64) (SessionPlan, error) {
	type row struct {
		Duration       int64 `db:"duration"`
		FragmentHourly bool  `db:"fragment_hourly"`
		TargetFPS      int   `db:"target_fps"`
		ApplyFilter    bool  `db:"apply_filter"`
		StartDeadline  int64 `db:"start_deadline"`
		SilenceTimeout int64 `db:"silence_timeout"`
		EndGrace       int64 `db:"end_grace"`
	}
	r, err := queryOne(ctx, s.pool, `SELECT duration, fragment_hourly, target_fps, apply_filter, coalesce(start_deadline, 0) AS start_deadline,
		coalesce(silence_timeout, 0) AS silence_timeout, coalesce(end_grace, 0) AS end_grace FROM sessions WHERE id = @id`,
		pgx.NamedArgs{"id": id}, pgx.RowToStructByName[row])
	p := SessionPlan{ID: id, Duration: r.Duration, FragmentHourly: r.FragmentHourly, TargetFPS: r.TargetFPS, ApplyFilter: r.ApplyFilter,
		Timeouts: timeouts(r.StartDeadline, r.SilenceTimeout, r.EndGrace)}
	if err != nil {
		return p, failed(notFound(err), "SessionPlan session %d", id)
	}
	p.Devices, err = queryAll(ctx, s.pool, `
		SELECT sd.device_id, d.name, sd.file_prefix FROM session_devices sd JOIN devices d ON d.id = sd.device_id
		WHERE sd.session_id = @id AND NOT sd.refused ORDER BY d.name`, pgx.NamedArgs{"id": id}, pgx.RowToStructByName[PlannedDevice])
	return p, failed(err, "SessionPlan session %d", id)
}

// RecordTimelineOnce appends to a session's timeline an entry that key names (an operator's
// action, found again by every scan): an entry already written under key is not written again.
func (s *Store) RecordTimelineOnce(ctx context.Context, sessionID, deviceID int64, key, kind, message string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO session_events (session_id, device_id, kind, message, at, dedup_key)
		SELECT @session_id, nullif(@device_id, 0), @kind, @message, @at, @key
		WHERE EXISTS (SELECT 1 FROM sessions WHERE id = @session_id)
		ON CONFLICT (dedup_key) WHERE dedup_key IS NOT NULL DO NOTHING`,
		pgx.NamedArgs{"session_id": sessionID, "device_id": deviceID, "kind": kind, "message": message, "at": at, "key": key})
	return failed(err, "RecordTimelineOnce session %d %s", sessionID, key)
}

// KnownTimelineKeys returns those of keys already on a timeline.
func (s *Store) KnownTimelineKeys(ctx context.Context, keys []string) ([]string, error) {
	known, err := queryAll(ctx, s.pool, `SELECT dedup_key FROM session_events WHERE dedup_key = ANY(@keys::text[])`,
		pgx.NamedArgs{"keys": keys}, pgx.RowTo[string])
	return known, failed(err, "KnownTimelineKeys %d keys", len(keys))
}
