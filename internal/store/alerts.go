package store

import (
	"context"
	"errors"
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
	SessionID     int64 // 0: none
	DeviceID      int64 // 0: none
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

// AlertEvent is one transition of an alert.
type AlertEvent struct {
	Seq   int                  `json:"seq"`
	State recording.AlertState `json:"state"`
	Actor string               `json:"actor"`
	Note  string               `json:"note"`
	At    time.Time            `json:"at"`
}

// RecordAlert upserts the alert's row and inserts its transitions; a transition already
// recorded (an activity retried) is skipped by its sequence number.
func (s *Store) RecordAlert(ctx context.Context, r AlertRecord) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `
			INSERT INTO alerts (alert_key, workflow_id, kind, session_id, device_id, summary, state, tier, reopens,
			                    acked_by, acked_at, ack_note, silenced_until, opened_at, updated_at, resolved_at)
			VALUES (@key, @workflow_id, @kind, @session_id, @device_id, @summary, @state, @tier, @reopens,
			        NULLIF(@acked_by, ''), @acked_at, NULLIF(@ack_note, ''), @silenced_until, @opened_at, @updated_at, @resolved_at)
			ON CONFLICT (alert_key) DO UPDATE SET summary = EXCLUDED.summary, state = EXCLUDED.state,
			    tier = EXCLUDED.tier, reopens = EXCLUDED.reopens, acked_by = EXCLUDED.acked_by,
			    acked_at = EXCLUDED.acked_at, ack_note = EXCLUDED.ack_note, silenced_until = EXCLUDED.silenced_until,
			    updated_at = EXCLUDED.updated_at, resolved_at = EXCLUDED.resolved_at
			RETURNING id`,
			pgx.NamedArgs{"key": r.Key, "workflow_id": r.WorkflowID, "kind": r.Kind, "session_id": alertNullID(r.SessionID),
				"device_id": alertNullID(r.DeviceID), "summary": r.Summary, "state": r.State, "tier": r.Tier,
				"reopens": r.Reopens, "acked_by": r.AckedBy, "acked_at": r.AckedAt, "ack_note": r.AckNote,
				"silenced_until": r.SilencedUntil, "opened_at": r.OpenedAt, "updated_at": r.UpdatedAt,
				"resolved_at": r.ResolvedAt}).Scan(&id)
		if err != nil {
			return fmt.Errorf("RecordAlert %s: %w", r.Key, err)
		}
		for _, e := range r.Events {
			if _, err := tx.Exec(ctx, `
				INSERT INTO alert_events (alert_id, seq, state, actor, note, at)
				VALUES (@alert_id, @seq, @state, @actor, @note, @at)
				ON CONFLICT (alert_id, seq) DO NOTHING`,
				pgx.NamedArgs{"alert_id": id, "seq": e.Seq, "state": e.State, "actor": e.Actor, "note": e.Note, "at": e.At}); err != nil {
				return fmt.Errorf("RecordAlert %s event %d: %w", r.Key, e.Seq, err)
			}
		}
		return nil
	})
}

// alertNullID stores 0 as NULL (no session, no enclosure).
func alertNullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
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

// RecordDelivery keeps a delivery attempt.
func (s *Store) RecordDelivery(ctx context.Context, d Delivery) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO notification_deliveries (alert_key, channel, target, notice, attempt, outcome, error)
		VALUES (@key, @channel, @target, @notice, @attempt, @outcome, @error)`,
		pgx.NamedArgs{"key": d.AlertKey, "channel": d.Channel, "target": d.Target, "notice": d.Notice,
			"attempt": d.Attempt, "outcome": d.Outcome, "error": d.Error})
	if err != nil {
		return fmt.Errorf("RecordDelivery %s: %w", d.AlertKey, err)
	}
	return nil
}

// Deliveries lists an alert's delivery attempts, oldest first.
func (s *Store) Deliveries(ctx context.Context, alertKey string) ([]Delivery, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT alert_key, channel, target, notice, attempt, outcome, error
		FROM notification_deliveries WHERE alert_key = @key ORDER BY id`, pgx.NamedArgs{"key": alertKey})
	if err != nil {
		return nil, fmt.Errorf("Deliveries %s: %w", alertKey, err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Delivery])
}

// NotificationPrefs are a user's notification choices (user_notification_prefs); a user
// without a row gets every kind by e-mail, at any hour.
type NotificationPrefs struct {
	Kinds      []string `json:"kinds"`
	Channel    string   `json:"channel"`
	QuietStart int      `json:"quiet_start"`
	QuietEnd   int      `json:"quiet_end"`
	TZ         string   `json:"tz"`
}

// Recipient is a user who may be notified, with their preferences.
type Recipient struct {
	UserID int64
	Email  string
	Prefs  NotificationPrefs
}

// recipientSelect reads users with their preferences (defaults for those without a row).
const recipientSelect = `
	SELECT u.id, u.email, coalesce(p.kinds, '{}'), coalesce(p.channel, 'email'), coalesce(p.quiet_start, 0),
	       coalesce(p.quiet_end, 0), coalesce(p.tz, 'UTC')
	FROM users u LEFT JOIN user_notification_prefs p ON p.user_id = u.id`

func (s *Store) recipients(ctx context.Context, where string, args pgx.NamedArgs) ([]Recipient, error) {
	rows, err := s.pool.Query(ctx, recipientSelect+" WHERE NOT u.disabled AND "+where+" ORDER BY u.id", args)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Recipient, error) {
		var x Recipient
		err := r.Scan(&x.UserID, &x.Email, &x.Prefs.Kinds, &x.Prefs.Channel, &x.Prefs.QuietStart, &x.Prefs.QuietEnd, &x.Prefs.TZ)
		return x, err
	})
}

// SessionCreator is the (enabled) user who created a session; ok is false when there is none.
func (s *Store) SessionCreator(ctx context.Context, sessionID int64) (Recipient, bool, error) {
	list, err := s.recipients(ctx, "u.id = (SELECT created_by FROM sessions WHERE id = @id)", pgx.NamedArgs{"id": sessionID})
	if err != nil || len(list) == 0 {
		return Recipient{}, false, alertErr("SessionCreator", err)
	}
	return list[0], true, nil
}

// Admins lists the enabled administrators.
func (s *Store) Admins(ctx context.Context) ([]Recipient, error) {
	list, err := s.recipients(ctx, "u.admin", nil)
	return list, alertErr("Admins", err)
}

// RecipientsByEmail finds the enabled users among addresses (case-insensitive).
func (s *Store) RecipientsByEmail(ctx context.Context, emails []string) ([]Recipient, error) {
	list, err := s.recipients(ctx, "lower(u.email) IN (SELECT lower(e) FROM unnest(@emails::text[]) e)",
		pgx.NamedArgs{"emails": emails})
	return list, alertErr("RecipientsByEmail", err)
}

// SetNotificationPrefs replaces a user's preferences.
func (s *Store) SetNotificationPrefs(ctx context.Context, userID int64, p NotificationPrefs) error {
	if p.Kinds == nil {
		p.Kinds = []string{}
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO user_notification_prefs (user_id, kinds, channel, quiet_start, quiet_end, tz)
		VALUES (@user_id, @kinds, @channel, @quiet_start, @quiet_end, @tz)
		ON CONFLICT (user_id) DO UPDATE SET kinds = EXCLUDED.kinds, channel = EXCLUDED.channel,
		    quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end, tz = EXCLUDED.tz`,
		pgx.NamedArgs{"user_id": userID, "kinds": p.Kinds, "channel": p.Channel, "quiet_start": p.QuietStart,
			"quiet_end": p.QuietEnd, "tz": p.TZ})
	return alertErr("SetNotificationPrefs", err)
}

// Alert is an alert as the API lists it.
type Alert struct {
	ID            int64                `json:"id"`
	Key           string               `json:"key"`
	WorkflowID    string               `json:"workflow_id"`
	Kind          recording.AlertKind  `json:"kind"`
	SessionID     *int64               `json:"session_id"`
	DeviceID      *int64               `json:"device_id"`
	DeviceName    *string              `json:"device_name"`
	Summary       string               `json:"summary"`
	State         recording.AlertState `json:"state"`
	Tier          int                  `json:"tier"`
	Reopens       int                  `json:"reopens"`
	AckedBy       *string              `json:"acked_by"`
	AckedAt       *time.Time           `json:"acked_at"`
	AckNote       *string              `json:"ack_note"`
	SilencedUntil *time.Time           `json:"silenced_until"`
	OpenedAt      time.Time            `json:"opened_at"`
	UpdatedAt     time.Time            `json:"updated_at"`
	ResolvedAt    *time.Time           `json:"resolved_at"`
}

// AlertFilter narrows a list of alerts; zero fields match everything.
type AlertFilter struct {
	States    []recording.AlertState
	Kind      recording.AlertKind
	SessionID int64
	DeviceID  int64
	Limit     int // 0: 500
}

const alertSelect = `
	SELECT a.id, a.alert_key, a.workflow_id, a.kind, a.session_id, a.device_id, d.name, a.summary, a.state, a.tier,
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
	rows, err := s.pool.Query(ctx, alertSelect+`
		WHERE (cardinality(@states::text[]) = 0 OR a.state = ANY(@states::text[]))
		  AND (@kind = '' OR a.kind = @kind)
		  AND (@session_id = 0 OR a.session_id = @session_id)
		  AND (@device_id = 0 OR a.device_id = @device_id)
		ORDER BY a.opened_at DESC, a.id DESC LIMIT @limit`,
		pgx.NamedArgs{"states": states, "kind": string(f.Kind), "session_id": f.SessionID, "device_id": f.DeviceID,
			"limit": f.Limit})
	if err != nil {
		return nil, fmt.Errorf("ListAlerts: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Alert])
}

// AlertByID returns one alert (ErrNotFound).
func (s *Store) AlertByID(ctx context.Context, id int64) (Alert, error) {
	rows, err := s.pool.Query(ctx, alertSelect+` WHERE a.id = @id`, pgx.NamedArgs{"id": id})
	if err != nil {
		return Alert{}, fmt.Errorf("AlertByID %d: %w", id, err)
	}
	a, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[Alert])
	if errors.Is(err, pgx.ErrNoRows) {
		return Alert{}, ErrNotFound
	}
	return a, alertErr("AlertByID", err)
}

// AlertEvents lists an alert's transitions in order.
func (s *Store) AlertEvents(ctx context.Context, id int64) ([]AlertEvent, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT seq, state, actor, note, at FROM alert_events WHERE alert_id = @id ORDER BY seq`, pgx.NamedArgs{"id": id})
	if err != nil {
		return nil, fmt.Errorf("AlertEvents %d: %w", id, err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[AlertEvent])
}

// alertErr names the failing method; nil stays nil.
func alertErr(method string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", method, err)
}

// ChannelHealth sums up the deliveries of one channel target.
type ChannelHealth struct {
	Channel     string    `json:"channel"`
	Target      string    `json:"target"`
	Attempts    int64     `json:"attempts"`
	Failures    int64     `json:"failures"`
	LastOutcome string    `json:"last_outcome"`
	LastError   string    `json:"last_error"` // of the last attempt; '' when it was sent
	LastAt      time.Time `json:"last_at"`
}

// ChannelHealth lists every channel target with deliveries since since, worst first (the last
// attempt failed), then by name.
func (s *Store) ChannelHealth(ctx context.Context, since time.Time) ([]ChannelHealth, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT channel, target, count(*), count(*) FILTER (WHERE outcome = 'failed'),
		       (array_agg(outcome ORDER BY id DESC))[1], (array_agg(error ORDER BY id DESC))[1], max(at)
		FROM notification_deliveries WHERE at >= @since
		GROUP BY channel, target
		ORDER BY (array_agg(outcome ORDER BY id DESC))[1] = 'sent', channel, target`, pgx.NamedArgs{"since": since})
	if err != nil {
		return nil, fmt.Errorf("ChannelHealth: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[ChannelHealth])
}
