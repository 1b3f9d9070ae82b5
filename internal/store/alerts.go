package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/recording"
)

// AlertRecord is an alert's row as its lifecycle workflow writes it, with its new transitions.
type AlertRecord struct {
	Key           string
	WorkflowID    string
	Kind          recording.AlertKind
	SessionID     int64  // 0: none
	DeviceID      int64  // 0: none
	Subject       string // '' unless the alert is about something else (a channel)
	Summary       string
	State         recording.AlertState
	Tier          int
	Reopens       int
	AckedBy       string
	AckedAt       *time.Time
	AckNote       string
	SilencedUntil *time.Time
	OpenedAt      time.Time
	UpdatedAt     time.Time
	ResolvedAt    *time.Time
	Events        []AlertEvent
}

// AlertEvent is one transition of an alert (the vocabulary's: the workflow writes the same).
type AlertEvent = recording.AlertEvent

// alertEventRow is an alert_events row as AlertEvents reads it.
type alertEventRow struct {
	Seq   int                  `db:"seq"`
	State recording.AlertState `db:"state"`
	Actor string               `db:"actor"`
	Note  string               `db:"note"`
	At    time.Time            `db:"at"`
}

func (r alertEventRow) event() AlertEvent { return AlertEvent(r) }

// RecordAlert upserts the alert's row and inserts its transitions; a transition already
// recorded (an activity retried) is skipped by its sequence number.
func (s *Store) RecordAlert(ctx context.Context, r AlertRecord) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `
			INSERT INTO alerts (alert_key, workflow_id, kind, session_id, device_id, subject, summary, state, tier, reopens,
			                    acked_by, acked_at, ack_note, silenced_until, opened_at, updated_at, resolved_at)
			VALUES (@key, @workflow_id, @kind, nullif(@session_id::bigint, 0), nullif(@device_id::bigint, 0), @subject, @summary, @state,
			        @tier, @reopens, nullif(@acked_by, ''), @acked_at, nullif(@ack_note, ''), @silenced_until, @opened_at,
			        @updated_at, @resolved_at)
			ON CONFLICT (alert_key) DO UPDATE SET summary = EXCLUDED.summary, state = EXCLUDED.state,
			    tier = EXCLUDED.tier, reopens = EXCLUDED.reopens, acked_by = EXCLUDED.acked_by,
			    acked_at = EXCLUDED.acked_at, ack_note = EXCLUDED.ack_note, silenced_until = EXCLUDED.silenced_until,
			    updated_at = EXCLUDED.updated_at, resolved_at = EXCLUDED.resolved_at
			RETURNING id`,
			pgx.NamedArgs{"key": r.Key, "workflow_id": r.WorkflowID, "kind": r.Kind, "session_id": r.SessionID,
				"device_id": r.DeviceID, "subject": r.Subject, "summary": r.Summary, "state": r.State, "tier": r.Tier,
				"reopens": r.Reopens, "acked_by": r.AckedBy, "acked_at": r.AckedAt, "ack_note": r.AckNote,
				"silenced_until": r.SilencedUntil, "opened_at": r.OpenedAt, "updated_at": r.UpdatedAt,
				"resolved_at": r.ResolvedAt}).Scan(&id)
		if err != nil {
			return err
		}
		for _, e := range r.Events {
			if _, err := tx.Exec(ctx, `
				INSERT INTO alert_events (alert_id, seq, state, actor, note, at)
				VALUES (@alert_id, @seq, @state, @actor, @note, @at)
				ON CONFLICT (alert_id, seq) DO NOTHING`,
				pgx.NamedArgs{"alert_id": id, "seq": e.Seq, "state": e.State, "actor": e.Actor, "note": e.Note, "at": e.At}); err != nil {
				return fmt.Errorf("event %d: %w", e.Seq, err)
			}
		}
		return nil
	})
	return failed(err, "RecordAlert %s", r.Key)
}

// Delivery is one attempt to deliver a notice.
type Delivery struct {
	AlertKey string
	Channel  string
	Target   string
	Notice   string
	Attempt  int
	Outcome  string
	Error    string
}

// deliveryRow is a notification_deliveries row as Deliveries reads it.
type deliveryRow struct {
	AlertKey string `db:"alert_key"`
	Channel  string `db:"channel"`
	Target   string `db:"target"`
	Notice   string `db:"notice"`
	Attempt  int    `db:"attempt"`
	Outcome  string `db:"outcome"`
	Error    string `db:"error"`
}

func (r deliveryRow) delivery() Delivery { return Delivery(r) }

// RecordDelivery keeps a delivery attempt.
func (s *Store) RecordDelivery(ctx context.Context, d Delivery) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO notification_deliveries (alert_key, channel, target, notice, attempt, outcome, error)
		VALUES (@key, @channel, @target, @notice, @attempt, @outcome, @error)`,
		pgx.NamedArgs{"key": d.AlertKey, "channel": d.Channel, "target": d.Target, "notice": d.Notice,
			"attempt": d.Attempt, "outcome": d.Outcome, "error": d.Error})
	return failed(err, "RecordDelivery %s", d.AlertKey)
}

// Deliveries lists an alert's delivery attempts, oldest first.
func (s *Store) Deliveries(ctx context.Context, alertKey string) ([]Delivery, error) {
	list, err := queryAll(ctx, s.pool, `
		SELECT alert_key, channel, target, notice, attempt, outcome, error
		FROM notification_deliveries WHERE alert_key = @key ORDER BY id`, pgx.NamedArgs{"key": alertKey},
		byName(deliveryRow.delivery))
	return list, failed(err, "Deliveries %s", alertKey)
}

// NotificationPrefs are a user's notification choices (user_notification_prefs); a user
// without a row gets every kind by e-mail, at any hour.
type NotificationPrefs struct {
	Kinds      []string
	Channel    string
	QuietStart int
	QuietEnd   int
	TZ         string
	Digest     *bool // the daily digest; nil: the default (see activities.Digest)
}

// Person is a user who may be notified, with their preferences.
type Person struct {
	UserID int64
	Email  string
	Prefs  NotificationPrefs
}

// personSelect reads users with their preferences (defaults for those without a row).
const personSelect = `
	SELECT u.id, u.email, coalesce(p.kinds, '{}') AS kinds, coalesce(p.channel, 'email') AS channel,
	       coalesce(p.quiet_start, 0) AS quiet_start, coalesce(p.quiet_end, 0) AS quiet_end, coalesce(p.tz, 'UTC') AS tz,
	       p.digest
	FROM users u LEFT JOIN user_notification_prefs p ON p.user_id = u.id`

// personRow is a user with their preferences as personSelect reads them.
type personRow struct {
	ID         int64    `db:"id"`
	Email      string   `db:"email"`
	Kinds      []string `db:"kinds"`
	Channel    string   `db:"channel"`
	QuietStart int      `db:"quiet_start"`
	QuietEnd   int      `db:"quiet_end"`
	TZ         string   `db:"tz"`
	Digest     *bool    `db:"digest"`
}

func (r personRow) person() Person {
	return Person{UserID: r.ID, Email: r.Email, Prefs: NotificationPrefs{Kinds: r.Kinds, Channel: r.Channel,
		QuietStart: r.QuietStart, QuietEnd: r.QuietEnd, TZ: r.TZ, Digest: r.Digest}}
}

func (s *Store) people(ctx context.Context, where string, args pgx.NamedArgs) ([]Person, error) {
	return queryAll(ctx, s.pool, personSelect+" WHERE NOT u.disabled AND "+where+" ORDER BY u.id", args,
		byName(personRow.person))
}

// SessionCreator is the (enabled) user who created a session; ok is false when there is none.
func (s *Store) SessionCreator(ctx context.Context, sessionID int64) (Person, bool, error) {
	list, err := s.people(ctx, "u.id = (SELECT created_by FROM sessions WHERE id = @id)", pgx.NamedArgs{"id": sessionID})
	if err != nil || len(list) == 0 {
		return Person{}, false, failed(err, "SessionCreator session %d", sessionID)
	}
	return list[0], true, nil
}

// Admins lists the enabled administrators.
func (s *Store) Admins(ctx context.Context) ([]Person, error) {
	list, err := s.people(ctx, "u.admin", nil)
	return list, failed(err, "Admins")
}

// PeopleByEmail finds the enabled users among addresses (case-insensitive).
func (s *Store) PeopleByEmail(ctx context.Context, emails []string) ([]Person, error) {
	list, err := s.people(ctx, "lower(u.email) IN (SELECT lower(e) FROM unnest(@emails::text[]) e)",
		pgx.NamedArgs{"emails": emails})
	return list, failed(err, "PeopleByEmail %d addresses", len(emails))
}

// NotificationPrefs reads a user's preferences, the defaults when they never set any
// (ErrNotFound: no such user).
func (s *Store) NotificationPrefs(ctx context.Context, userID int64) (NotificationPrefs, error) {
	p, err := queryOne(ctx, s.pool, personSelect+" WHERE u.id = @id", pgx.NamedArgs{"id": userID},
		byName(personRow.person))
	return p.Prefs, failed(notFound(err), "NotificationPrefs user %d", userID)
}

// SetNotificationPrefs replaces a user's preferences.
func (s *Store) SetNotificationPrefs(ctx context.Context, userID int64, p NotificationPrefs) error {
	if p.Kinds == nil {
		p.Kinds = []string{}
	}
	// In a transaction so the request's audit entry (store.Audited) commits with the change.
	err := s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			INSERT INTO user_notification_prefs (user_id, kinds, channel, quiet_start, quiet_end, tz, digest)
			VALUES (@user_id, @kinds, @channel, @quiet_start, @quiet_end, @tz, @digest)
			ON CONFLICT (user_id) DO UPDATE SET kinds = EXCLUDED.kinds, channel = EXCLUDED.channel,
			    quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end, tz = EXCLUDED.tz, digest = EXCLUDED.digest`,
			pgx.NamedArgs{"user_id": userID, "kinds": p.Kinds, "channel": p.Channel, "quiet_start": p.QuietStart,
				"quiet_end": p.QuietEnd, "tz": p.TZ, "digest": p.Digest})
		return err
	})
	return failed(err, "SetNotificationPrefs user %d", userID)
}

// Alert is an alert as the API lists it.
type Alert struct {
	ID            int64
	Key           string
	WorkflowID    string
	Kind          recording.AlertKind
	SessionID     *int64
	DeviceID      *int64
	DeviceName    *string
	Subject       string
	Summary       string
	State         recording.AlertState
	Tier          int
	Reopens       int
	AckedBy       *string
	AckedAt       *time.Time
	AckNote       *string
	SilencedUntil *time.Time
	OpenedAt      time.Time
	UpdatedAt     time.Time
	ResolvedAt    *time.Time
}

// alertRow is an alert as alertSelect reads it.
type alertRow struct {
	ID            int64                `db:"id"`
	Key           string               `db:"alert_key"`
	WorkflowID    string               `db:"workflow_id"`
	Kind          recording.AlertKind  `db:"kind"`
	SessionID     *int64               `db:"session_id"`
	DeviceID      *int64               `db:"device_id"`
	DeviceName    *string              `db:"device_name"`
	Subject       string               `db:"subject"`
	Summary       string               `db:"summary"`
	State         recording.AlertState `db:"state"`
	Tier          int                  `db:"tier"`
	Reopens       int                  `db:"reopens"`
	AckedBy       *string              `db:"acked_by"`
	AckedAt       *time.Time           `db:"acked_at"`
	AckNote       *string              `db:"ack_note"`
	SilencedUntil *time.Time           `db:"silenced_until"`
	OpenedAt      time.Time            `db:"opened_at"`
	UpdatedAt     time.Time            `db:"updated_at"`
	ResolvedAt    *time.Time           `db:"resolved_at"`
}

func (r alertRow) alert() Alert { return Alert(r) }

var readAlert = byName(alertRow.alert)

// AlertFilter narrows a list of alerts; zero fields match everything.
type AlertFilter struct {
	States    []recording.AlertState
	Kind      recording.AlertKind
	SessionID int64
	DeviceID  int64
	Limit     int // 0: 500
}

const alertSelect = `
	SELECT a.id, a.alert_key, a.workflow_id, a.kind, a.session_id, a.device_id, d.name AS device_name, a.subject, a.summary,
	       a.state, a.tier,
	       a.reopens, a.acked_by, a.acked_at, a.ack_note, a.silenced_until, a.opened_at, a.updated_at, a.resolved_at
	FROM alerts a LEFT JOIN devices d ON d.id = a.device_id`

// ListAlerts lists alerts matching f, newest first.
func (s *Store) ListAlerts(ctx context.Context, f AlertFilter) ([]Alert, error) {
	if f.Limit <= 0 {
		f.Limit = 500
	}
	states := make([]string, len(f.States))
	for i, st := range f.States {
		states[i] = string(st)
	}
	list, err := queryAll(ctx, s.pool, alertSelect+`
		WHERE (cardinality(@states::text[]) = 0 OR a.state = ANY(@states::text[]))
		  AND (@kind = '' OR a.kind = @kind)
		  AND (@session_id = 0 OR a.session_id = @session_id)
		  AND (@device_id = 0 OR a.device_id = @device_id)
		ORDER BY a.opened_at DESC, a.id DESC LIMIT @limit`,
		pgx.NamedArgs{"states": states, "kind": string(f.Kind), "session_id": f.SessionID, "device_id": f.DeviceID,
			"limit": f.Limit}, readAlert)
	return list, failed(err, "ListAlerts session %d device %d", f.SessionID, f.DeviceID)
}

// AlertByID returns one alert (ErrNotFound).
func (s *Store) AlertByID(ctx context.Context, id int64) (Alert, error) {
	a, err := queryOne(ctx, s.pool, alertSelect+` WHERE a.id = @id`, pgx.NamedArgs{"id": id}, readAlert)
	return a, failed(notFound(err), "AlertByID %d", id)
}

// AlertEvents lists an alert's transitions in order.
func (s *Store) AlertEvents(ctx context.Context, id int64) ([]AlertEvent, error) {
	list, err := queryAll(ctx, s.pool, `
		SELECT seq, state, actor, note, at FROM alert_events WHERE alert_id = @id ORDER BY seq`, pgx.NamedArgs{"id": id},
		byName(alertEventRow.event))
	return list, failed(err, "AlertEvents %d", id)
}

// ChannelHealth sums up the deliveries of one channel target.
type ChannelHealth struct {
	Channel     string
	Target      string
	Attempts    int64
	Failures    int64
	LastOutcome string
	LastError   string // of the last attempt; '' when it was sent
	LastAt      time.Time
	// Failing is how many deliveries failed in a row since the last one that went through
	// (over its whole record, not only the period); FailingSince is the first of them (nil: none).
	Failing      int
	FailingSince *time.Time
}

// channelHealthRow is one channel target's sums as ChannelHealth reads them.
type channelHealthRow struct {
	Channel      string     `db:"channel"`
	Target       string     `db:"target"`
	Attempts     int64      `db:"attempts"`
	Failures     int64      `db:"failures"`
	LastOutcome  string     `db:"last_outcome"`
	LastError    string     `db:"last_error"`
	LastAt       time.Time  `db:"last_at"`
	Failing      int        `db:"failing"`
	FailingSince *time.Time `db:"failing_since"`
}

func (r channelHealthRow) health() ChannelHealth { return ChannelHealth(r) }

// ChannelHealth lists every channel target with deliveries since since, worst first (the last
// attempt failed), then by name, with its current run of failures.
func (s *Store) ChannelHealth(ctx context.Context, since time.Time) ([]ChannelHealth, error) {
	list, err := queryAll(ctx, s.pool, `
		WITH period AS (
		    SELECT channel, target, count(*) AS attempts, count(*) FILTER (WHERE outcome = 'failed') AS failures,
		           (array_agg(outcome ORDER BY id DESC))[1] AS last_outcome, (array_agg(error ORDER BY id DESC))[1] AS last_error,
		           max(at) AS last_at
		    FROM notification_deliveries WHERE at >= @since
		    GROUP BY channel, target)
		SELECT p.channel, p.target, p.attempts, p.failures, p.last_outcome, p.last_error, p.last_at,
		       run.failing, run.failing_since
		FROM period p
		CROSS JOIN LATERAL (
		    SELECT count(*)::int AS failing, min(f.at) AS failing_since
		    FROM notification_deliveries f
		    WHERE f.channel = p.channel AND f.target = p.target
		      AND f.id > coalesce((SELECT max(ok.id) FROM notification_deliveries ok
		                           WHERE ok.channel = p.channel AND ok.target = p.target AND ok.outcome = 'sent'), 0)) run
		ORDER BY p.last_outcome = 'sent', p.channel, p.target`, pgx.NamedArgs{"since": since},
		byName(channelHealthRow.health))
	return list, failed(err, "ChannelHealth since %s", since.Format(time.RFC3339))
}

// DownEnclosure is an idle enclosure that is DOWN (fleet alerts).
type DownEnclosure struct {
	ID        int64
	Name      string
	DownSince time.Time
}

type downEnclosureRow struct {
	ID        int64     `db:"id"`
	Name      string    `db:"name"`
	DownSince time.Time `db:"down_since"`
}

func (r downEnclosureRow) enclosure() DownEnclosure { return DownEnclosure(r) }

// FleetDown lists what the fleet alerts of DOWN enclosures lack: the idle (unassigned, not
// retired) enclosures DOWN since after since with no open fleet alert (to raise), and the
// enclosures with an open fleet alert that heartbeat again (to clear). An enclosure DOWN
// since before since is no news (one shelved long ago, when this first runs). Raising or
// clearing twice is harmless, so the lists may repeat until the alert's row catches up.
func (s *Store) FleetDown(ctx context.Context, since time.Time) (raise []DownEnclosure, clear []int64, err error) {
	const open = `
		SELECT 1 FROM alerts al
		WHERE al.device_id = d.id AND al.session_id IS NULL AND al.kind = @kind AND al.state <> @resolved`
	args := pgx.NamedArgs{"since": since, "kind": string(recording.AlertEnclosureDown), "resolved": string(recording.AlertResolved)}
	raise, err = queryAll(ctx, s.pool, `
		SELECT d.id, d.name, d.down_since FROM devices d
		WHERE d.down_since > @since AND d.retired_at IS NULL
		  AND NOT EXISTS (SELECT 1 FROM device_assignments a WHERE a.device_id = d.id)
		  AND NOT EXISTS (`+open+`)
		ORDER BY d.id`, args, byName(downEnclosureRow.enclosure))
	if err == nil {
		clear, err = queryAll(ctx, s.pool, `
			SELECT d.id FROM devices d WHERE d.down_since IS NULL AND EXISTS (`+open+`) ORDER BY d.id`,
			args, pgx.RowTo[int64])
	}
	return raise, clear, failed(err, "FleetDown since %s", since)
}

// SkewedEnclosure is an enclosure in a session whose clock is off (clock_skew alerts).
type SkewedEnclosure struct {
	SessionID int64
	DeviceID  int64
	Name      string
	SkewMS    int64
}

type skewedEnclosureRow struct {
	SessionID int64  `db:"session_id"`
	DeviceID  int64  `db:"device_id"`
	Name      string `db:"name"`
	SkewMS    int64  `db:"clock_skew_ms"`
}

func (r skewedEnclosureRow) enclosure() SkewedEnclosure { return SkewedEnclosure(r) }

// AlertSubjectIDs names a session alert's subject.
type AlertSubjectIDs struct {
	SessionID int64
	DeviceID  int64
}

type alertSubjectRow struct {
	SessionID int64 `db:"session_id"`
	DeviceID  int64 `db:"device_id"`
}

func (r alertSubjectRow) subject() AlertSubjectIDs { return AlertSubjectIDs(r) }

// ClockSkew lists what the clock_skew alerts lack: the enclosures in a session whose last
// reported clock is off by more than threshold with no open alert (to raise), and the open
// alerts whose enclosure's clock is back within it or that left the session (to clear). As
// with FleetDown, the lists may repeat until the alert's row catches up.
func (s *Store) ClockSkew(ctx context.Context, threshold time.Duration) (raise []SkewedEnclosure, clear []AlertSubjectIDs, err error) {
	args := pgx.NamedArgs{"ms": threshold.Milliseconds(), "kind": string(recording.AlertClockSkew), "resolved": string(recording.AlertResolved)}
	raise, err = queryAll(ctx, s.pool, `
		SELECT a.session_id, d.id AS device_id, d.name, d.clock_skew_ms
		FROM device_assignments a JOIN devices d ON d.id = a.device_id
		WHERE abs(d.clock_skew_ms) > @ms AND d.down_since IS NULL
		  AND NOT EXISTS (SELECT 1 FROM alerts al WHERE al.session_id = a.session_id AND al.device_id = d.id
		                  AND al.kind = @kind AND al.state <> @resolved)
		ORDER BY d.id`, args, byName(skewedEnclosureRow.enclosure))
	if err == nil {
		clear, err = queryAll(ctx, s.pool, `
			SELECT DISTINCT al.session_id, al.device_id
			FROM alerts al JOIN devices d ON d.id = al.device_id
			LEFT JOIN device_assignments a ON a.device_id = d.id AND a.session_id = al.session_id
			WHERE al.kind = @kind AND al.state <> @resolved AND al.session_id IS NOT NULL
			  AND (a.device_id IS NULL OR coalesce(abs(d.clock_skew_ms), 0) <= @ms)
			ORDER BY al.session_id, al.device_id`, args, byName(alertSubjectRow.subject))
	}
	return raise, clear, failed(err, "ClockSkew threshold %s", threshold)
}
