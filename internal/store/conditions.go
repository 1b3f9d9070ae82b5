package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/recording"
)

// The facts the fleet scan judges the conditions low_disk, low_fps, upload_backlog and
// channel_broken by (activities.Fleet decides; the store only reports). Each scan reads them
// afresh, so a raise or a clear that failed is tried again on the next scan.

// OpenAlertSubject is the subject of an alert that is not resolved.
type OpenAlertSubject struct {
	SessionID int64 // 0: none
	DeviceID  int64 // 0: none
	Subject   string
}

type openAlertSubjectRow struct {
	SessionID int64  `db:"session_id"`
	DeviceID  int64  `db:"device_id"`
	Subject   string `db:"subject"`
}

func (r openAlertSubjectRow) subject() OpenAlertSubject { return OpenAlertSubject(r) }

// OpenAlertSubjects lists the subjects of the alerts of kind that are not resolved.
func (s *Store) OpenAlertSubjects(ctx context.Context, kind recording.AlertKind) ([]OpenAlertSubject, error) {
	list, err := queryAll(ctx, s.pool, `
		SELECT DISTINCT coalesce(session_id, 0) AS session_id, coalesce(device_id, 0) AS device_id, subject
		FROM alerts WHERE kind = @kind AND state <> @resolved ORDER BY 1, 2, 3`,
		pgx.NamedArgs{"kind": string(kind), "resolved": string(recording.AlertResolved)}, byName(openAlertSubjectRow.subject))
	return list, failed(err, "OpenAlertSubjects %s", kind)
}

// DiskFacts is what the free-disk projection of an enclosure in a session needs.
type DiskFacts struct {
	SessionID int64
	DeviceID  int64
	Name      string
	FreeDisk  int64 // bytes (the enclosure reports MB)
	// Remaining is the recording time left to the planned end (the whole duration before it
	// started).
	Remaining time.Duration
	// SlopeBPS is the disk used per second since the oldest telemetry sample of the window
	// taken while recording this session; nil: no sample old enough.
	SlopeBPS *float64
	// FilesBPS is the size of its uploaded videos per second recorded; nil: none yet.
	FilesBPS *float64
	// Down: the enclosure is DOWN, its figures are its last before it went silent.
	Down bool
}

type diskFactsRow struct {
	SessionID  int64    `db:"session_id"`
	DeviceID   int64    `db:"device_id"`
	Name       string   `db:"name"`
	FreeDisk   int64    `db:"free_disk"`
	RemainingS int64    `db:"remaining_s"`
	SlopeBPS   *float64 `db:"slope_bps"`
	FilesBPS   *float64 `db:"files_bps"`
	Down       bool     `db:"down"`
}

func (r diskFactsRow) facts() DiskFacts {
	return DiskFacts{SessionID: r.SessionID, DeviceID: r.DeviceID, Name: r.Name, FreeDisk: r.FreeDisk,
		Remaining: time.Duration(r.RemainingS) * time.Second, SlopeBPS: r.SlopeBPS, FilesBPS: r.FilesBPS, Down: r.Down}
}

// bytesPerMB converts the free disk enclosures report (PROTOCOL.md: integer MB, as the
// session rules count it) to the bytes the conditions judge.
const bytesPerMB = 1_000_000

// DiskFacts lists the enclosures in a session (starting or recording) that report their free
// disk (DOWN ones marked: their alert stays as it is), with their recording rate estimated from the telemetry since
// windowStart (a slope only over at least minSpan) and from their uploaded files.
func (s *Store) DiskFacts(ctx context.Context, now, windowStart time.Time, minSpan time.Duration) ([]DiskFacts, error) {
	list, err := queryAll(ctx, s.pool, `
		SELECT a.session_id, d.id AS device_id, d.name, d.free_disk * @mb AS free_disk,
		       greatest(0, extract(epoch FROM coalesce((a.resume->>'planned_end')::timestamptz,
		           sd.started_at + s.duration * interval '1 second', @now::timestamptz + s.duration * interval '1 second') - @now::timestamptz))::bigint
		           AS remaining_s,
		       slope.bps AS slope_bps, files.bps AS files_bps, d.down_since IS NOT NULL AS down
		FROM device_assignments a
		JOIN devices d ON d.id = a.device_id
		JOIN sessions s ON s.id = a.session_id
		LEFT JOIN session_devices sd ON sd.session_id = a.session_id AND sd.device_id = a.device_id
		LEFT JOIN LATERAL (
		    SELECT (t.free_disk - d.free_disk)::float8 * @mb / extract(epoch FROM d.last_seen_at - t.bucket) AS bps
		    FROM device_telemetry t
		    WHERE t.device_id = d.id AND t.recording AND t.free_disk IS NOT NULL
		      AND t.bucket >= greatest(@window_start::timestamptz, sd.started_at) AND t.bucket <= d.last_seen_at - @min_span::interval
		    ORDER BY t.bucket LIMIT 1) slope ON true
		LEFT JOIN LATERAL (
		    SELECT sum(f.size)::float8 / nullif(sd.recording_time, 0) AS bps
		    FROM session_files f
		    WHERE f.session_id = a.session_id AND f.device_id = d.id AND f.size IS NOT NULL AND f.name LIKE '%.avi'
		    HAVING sum(f.size) > 0) files ON true
		WHERE a.phase IN ('starting', 'recording') AND d.free_disk IS NOT NULL AND d.last_seen_at IS NOT NULL
		ORDER BY d.id`,
		pgx.NamedArgs{"now": now, "window_start": windowStart, "min_span": minSpan, "mb": bytesPerMB}, byName(diskFactsRow.facts))
	return list, failed(err, "DiskFacts")
}

// FPSFacts is an enclosure in a session that reports recording, with its frame rate.
type FPSFacts struct {
	SessionID int64
	DeviceID  int64
	Name      string
	FPS       float64
	TargetFPS int
	// LowSince is since when the scans have seen its rate below the target by the margin
	// (without a break); nil: it is not.
	LowSince *time.Time
	// Down: the enclosure is DOWN (its rate is its last before it went silent; no since kept).
	Down bool
}

type fpsFactsRow struct {
	SessionID int64      `db:"session_id"`
	DeviceID  int64      `db:"device_id"`
	Name      string     `db:"name"`
	FPS       float64    `db:"fps"`
	TargetFPS int        `db:"target_fps"`
	LowSince  *time.Time `db:"low_since"`
	Down      bool       `db:"down"`
}

func (r fpsFactsRow) facts() FPSFacts { return FPSFacts(r) }

// FPSFacts lists the enclosures recording in a session (DOWN ones marked) with their frame rate, and
// keeps since when each has been below its session's target by more than margin (a fraction):
// first seen now, forgotten once it is not.
func (s *Store) FPSFacts(ctx context.Context, margin float64, now time.Time) ([]FPSFacts, error) {
	list, err := queryAll(ctx, s.pool, `
		WITH live AS (
		    SELECT a.session_id, d.id AS device_id, d.name, d.fps, s.target_fps,
		           d.down_since IS NULL AND d.fps < s.target_fps * (1 - @margin::float8) AS low, d.down_since IS NOT NULL AS down
		    FROM device_assignments a JOIN devices d ON d.id = a.device_id JOIN sessions s ON s.id = a.session_id
		    WHERE a.phase = 'recording' AND d.recording AND d.fps IS NOT NULL),
		forgotten AS (
		    DELETE FROM alert_condition_since c WHERE c.kind = @kind AND NOT EXISTS (
		        SELECT 1 FROM live WHERE live.low AND live.session_id = c.session_id AND live.device_id = c.device_id)),
		kept AS (
		    INSERT INTO alert_condition_since (kind, session_id, device_id, since)
		    SELECT @kind, session_id, device_id, @now::timestamptz FROM live WHERE low
		    ON CONFLICT (kind, session_id, device_id) DO UPDATE SET since = alert_condition_since.since
		    RETURNING session_id, device_id, since)
		SELECT live.session_id, live.device_id, live.name, live.fps, live.target_fps, kept.since AS low_since, live.down
		FROM live LEFT JOIN kept USING (session_id, device_id)
		ORDER BY live.device_id`,
		pgx.NamedArgs{"margin": margin, "now": now, "kind": string(recording.AlertLowFPS)}, byName(fpsFactsRow.facts))
	return list, failed(err, "FPSFacts")
}

// BacklogFacts is an enclosure's files that are due but not uploaded.
type BacklogFacts struct {
	SessionID int64
	DeviceID  int64
	Name      string
	Files     int
	Bytes     int64 // of those whose size the agent declared
}

type backlogFactsRow struct {
	SessionID int64  `db:"session_id"`
	DeviceID  int64  `db:"device_id"`
	Name      string `db:"name"`
	Files     int    `db:"files"`
	Bytes     int64  `db:"bytes"`
}

func (r backlogFactsRow) facts() BacklogFacts { return BacklogFacts(r) }

// BacklogFacts lists the enclosures with files due before dueBefore that are not UPLOADED or
// VERIFIED (waiting for their first copy, or a new one of a corrupt copy). A file is due from
// the end of its segment: the upload of the segment's timestamps file (written last), or the
// end of the enclosure's recording. Recordings that ended before endedAfter are left to the
// files' own deadline (MISSING).
func (s *Store) BacklogFacts(ctx context.Context, dueBefore, endedAfter time.Time) ([]BacklogFacts, error) {
	list, err := queryAll(ctx, s.pool, `
		SELECT f.session_id, f.device_id, d.name, count(*)::int AS files, coalesce(sum(f.size), 0)::bigint AS bytes
		FROM session_files f
		JOIN session_devices sd ON sd.session_id = f.session_id AND sd.device_id = f.device_id
		JOIN devices d ON d.id = f.device_id
		WHERE f.expected AND (f.state IN ('PENDING', 'UPLOADING') OR (f.state = 'CORRUPT' AND f.reupload))
		  AND NOT sd.refused AND (sd.ended_at IS NULL OR sd.ended_at > @ended_after)
		  AND coalesce((
		      -- The timestamps file of the file's own segment: its prefix, followed by one of
		      -- the names the client writes (so "m_" is not the prefix of "m_s2_...").
		      SELECT t.uploaded_at FROM session_files t
		      WHERE t.session_id = f.session_id AND t.device_id = f.device_id AND t.uploaded_at IS NOT NULL
		        AND t.name LIKE '%timestamps.txt'
		        AND starts_with(f.name, left(t.name, length(t.name) - length('timestamps.txt')))
		        AND substr(f.name, length(t.name) - length('timestamps.txt') + 1)
		            ~ '^(timestamps\.txt|start_timestamp\.txt|\.avi|\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.avi)$'
		      LIMIT 1), sd.ended_at) < @due_before
		GROUP BY f.session_id, f.device_id, d.name
		ORDER BY f.session_id, f.device_id`,
		pgx.NamedArgs{"due_before": dueBefore, "ended_after": endedAfter}, byName(backlogFactsRow.facts))
	return list, failed(err, "BacklogFacts")
}

// ChannelFacts is the recent record of one notification channel target.
type ChannelFacts struct {
	Channel     string
	Target      string
	LastOutcome string
	LastError   string
	// Failed is how many of its last deliveries (at most the n asked for) failed in a row.
	Failed int
}

type channelFactsRow struct {
	Channel     string `db:"channel"`
	Target      string `db:"target"`
	LastOutcome string `db:"last_outcome"`
	LastError   string `db:"last_error"`
	Failed      int    `db:"failed"`
}

func (r channelFactsRow) facts() ChannelFacts { return ChannelFacts(r) }

// ChannelFacts lists the channel targets with deliveries since since, and those of the
// channel_broken alerts not resolved, with how many of their last n deliveries failed in a row.
func (s *Store) ChannelFacts(ctx context.Context, n int, since time.Time) ([]ChannelFacts, error) {
	list, err := queryAll(ctx, s.pool, `
		WITH targets AS (
		    SELECT DISTINCT channel, target FROM notification_deliveries WHERE at >= @since
		    UNION
		    SELECT split_part(subject, ':', 1), substr(subject, length(split_part(subject, ':', 1)) + 2)
		    FROM alerts WHERE kind = @kind AND state <> @resolved AND subject <> '')
		SELECT t.channel, t.target, last.outcomes[1] AS last_outcome, last.errors[1] AS last_error,
		       coalesce(array_position(last.outcomes, 'sent') - 1, cardinality(last.outcomes))::int AS failed
		FROM targets t
		JOIN LATERAL (
		    SELECT array_agg(outcome ORDER BY id DESC) AS outcomes, array_agg(error ORDER BY id DESC) AS errors
		    FROM (SELECT id, outcome, error FROM notification_deliveries
		          WHERE channel = t.channel AND target = t.target ORDER BY id DESC LIMIT @n) recent) last
		  ON last.outcomes IS NOT NULL
		ORDER BY t.channel, t.target`,
		pgx.NamedArgs{"n": n, "since": since, "kind": string(recording.AlertChannelBroken),
			"resolved": string(recording.AlertResolved)}, byName(channelFactsRow.facts))
	return list, failed(err, "ChannelFacts")
}
