package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/recording"
)

// maxDigestRows bounds each list of a digest: a mail that long is read by nobody.
const maxDigestRows = 200

type digestAlertRow struct {
	ID          int64                `db:"id"`
	Kind        recording.AlertKind  `db:"kind"`
	SessionID   int64                `db:"session_id"`
	SessionName string               `db:"session_name"`
	CreatorID   int64                `db:"creator_id"`
	Device      string               `db:"device"`
	Summary     string               `db:"summary"`
	State       recording.AlertState `db:"state"`
	OpenedAt    time.Time            `db:"opened_at"`
	ResolvedAt  *time.Time           `db:"resolved_at"`
}

func (r digestAlertRow) alert() recording.DigestAlert {
	return recording.DigestAlert{ID: r.ID, Kind: r.Kind, SessionID: r.SessionID, SessionName: r.SessionName,
		CreatorID: r.CreatorID, Device: r.Device, Summary: r.Summary, State: r.State, OpenedAt: r.OpenedAt, ResolvedAt: r.ResolvedAt}
}

type digestEventRow struct {
	AlertID int64 `db:"alert_id"`
	alertEventRow
}

type digestSessionRow struct {
	ID        int64     `db:"id"`
	Name      string    `db:"name"`
	Status    string    `db:"status"`
	CreatorID int64     `db:"creator_id"`
	EndedAt   time.Time `db:"ended_at"`
}

func (r digestSessionRow) session() recording.DigestSession { return recording.DigestSession(r) }

// DigestFacts gathers what the digest of [since, until) tells: the alerts opened before until
// that are still open, resolved in the period or changed in it (with those transitions); the
// sessions that ended in the period; the channel targets whose last delivery since since failed.
func (s *Store) DigestFacts(ctx context.Context, since, until time.Time) (recording.DigestFacts, error) {
	f := recording.DigestFacts{Since: since, Until: until}
	args := pgx.NamedArgs{"since": since, "until": until, "resolved": string(recording.AlertResolved), "limit": maxDigestRows}
	var err error
	f.Alerts, err = queryAll(ctx, s.pool, `
		SELECT a.id, a.kind, coalesce(a.session_id, 0) AS session_id, coalesce(s.name, '') AS session_name,
		       coalesce(s.created_by, 0) AS creator_id, coalesce(d.name, '') AS device, a.summary, a.state,
		       a.opened_at, a.resolved_at
		FROM alerts a LEFT JOIN sessions s ON s.id = a.session_id LEFT JOIN devices d ON d.id = a.device_id
		WHERE a.opened_at < @until
		  AND (a.state <> @resolved OR a.resolved_at >= @since
		       OR EXISTS (SELECT 1 FROM alert_events e WHERE e.alert_id = a.id AND e.at >= @since AND e.at < @until))
		ORDER BY a.opened_at, a.id LIMIT @limit`, args, byName(digestAlertRow.alert))
	if err != nil {
		return f, failed(err, "DigestFacts alerts %s", since.Format(time.RFC3339))
	}
	ids := make([]int64, len(f.Alerts))
	byID := make(map[int64]*recording.DigestAlert, len(f.Alerts))
	for i := range f.Alerts {
		ids[i] = f.Alerts[i].ID
		byID[ids[i]] = &f.Alerts[i]
	}
	args["ids"] = ids
	events, err := queryAll(ctx, s.pool, `
		SELECT alert_id, seq, state, actor, note, at FROM alert_events
		WHERE alert_id = ANY(@ids::bigint[]) AND at >= @since AND at < @until
		ORDER BY alert_id, seq`, args, pgx.RowToStructByName[digestEventRow])
	if err != nil {
		return f, failed(err, "DigestFacts alert events %s", since.Format(time.RFC3339))
	}
	for _, e := range events {
		a := byID[e.AlertID]
		a.Events = append(a.Events, e.event())
	}
	f.Sessions, err = queryAll(ctx, s.pool, `
		SELECT id, name, status, coalesce(created_by, 0) AS creator_id, ended_at FROM sessions
		WHERE ended_at >= @since AND ended_at < @until
		ORDER BY ended_at, id LIMIT @limit`, args, byName(digestSessionRow.session))
	if err != nil {
		return f, failed(err, "DigestFacts sessions %s", since.Format(time.RFC3339))
	}
	health, err := s.ChannelHealth(ctx, since)
	if err != nil {
		return f, err
	}
	for _, h := range health {
		if h.LastOutcome == "failed" {
			f.BrokenChannels = append(f.BrokenChannels, recording.DigestChannel{Channel: h.Channel, Target: h.Target,
				Failures: h.Failures, LastError: h.LastError, LastAt: h.LastAt})
		}
	}
	return f, nil
}

type digestReaderRow struct {
	UserID int64  `db:"id"`
	Email  string `db:"email"`
	Admin  bool   `db:"admin"`
	Digest *bool  `db:"digest"`
}

func (r digestReaderRow) reader() recording.DigestReader { return recording.DigestReader(r) }

// DigestReaders lists the enabled users with their digest choice (nil: never made one).
func (s *Store) DigestReaders(ctx context.Context) ([]recording.DigestReader, error) {
	list, err := queryAll(ctx, s.pool, `
		SELECT u.id, u.email, u.admin, p.digest
		FROM users u LEFT JOIN user_notification_prefs p ON p.user_id = u.id
		WHERE NOT u.disabled ORDER BY u.id`, nil, byName(digestReaderRow.reader))
	return list, failed(err, "DigestReaders")
}
