package api

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/prometheus/client_golang/prometheus"
)

// scrapeQueryTimeout bounds each query a collector runs at scrape time: a slow database
// must not hold Prometheus past its own scrape timeout (10 s by default).
const scrapeQueryTimeout = 2 * time.Second

// perEnclosure is the Help suffix of the series labelled by enclosure name.
const perEnclosure = " One series per enclosure of the fleet (approved, not retired): the set is bounded by registration (enclosures approve-new, register-rate) and shrinks when one is retired."

var fleetDescs = struct {
	byState, pending, down, session, recording, age, freeDisk, totalDisk, fps, targetFPS, skew *prometheus.Desc
}{
	byState: prometheus.NewDesc("mba_enclosures",
		"Enclosures of the fleet (approved, not retired) by state: IDLE, BUSY (in a session) or DOWN (silent past enclosures down-after; a DOWN enclosure may still be in a session).",
		[]string{"state"}, nil),
	pending: prometheus.NewDesc("mba_enclosures_pending_admission",
		"New enclosure names waiting for an administrator's approval (enclosures approve-new).", nil, nil),
	down: prometheus.NewDesc("mba_enclosure_down",
		"1 when the enclosure has been silent past enclosures down-after (or was never heard), else 0."+perEnclosure,
		[]string{"enclosure"}, nil),
	session: prometheus.NewDesc("mba_enclosure_session_id",
		"The session the enclosure is in (PENDING or RECORDING there), 0 when none."+perEnclosure,
		[]string{"enclosure"}, nil),
	recording: prometheus.NewDesc("mba_enclosure_recording",
		"1 when the enclosure's last heartbeat said it records, else 0."+perEnclosure, []string{"enclosure"}, nil),
	age: prometheus.NewDesc("mba_enclosure_last_heartbeat_age_seconds",
		"Seconds since the enclosure's last heartbeat (server clock); absent for one never heard."+perEnclosure,
		[]string{"enclosure"}, nil),
	freeDisk: prometheus.NewDesc("mba_enclosure_free_disk_bytes",
		"Free disk the enclosure last reported."+perEnclosure, []string{"enclosure"}, nil),
	totalDisk: prometheus.NewDesc("mba_enclosure_total_disk_bytes",
		"Disk size the enclosure last reported."+perEnclosure, []string{"enclosure"}, nil),
	fps: prometheus.NewDesc("mba_enclosure_fps",
		"Frame rate the enclosure last reported."+perEnclosure, []string{"enclosure"}, nil),
	targetFPS: prometheus.NewDesc("mba_enclosure_target_fps",
		"Target frame rate of the session the enclosure is in; absent when in none."+perEnclosure,
		[]string{"enclosure"}, nil),
	skew: prometheus.NewDesc("mba_enclosure_clock_skew_seconds",
		"The enclosure's clock minus the server's at its last heartbeat (negative: it runs behind)."+perEnclosure,
		[]string{"enclosure"}, nil),
}

// fleetCollector exports the enclosures' state and latest telemetry at scrape time, with one
// query for the whole fleet. State follows the API's rule (store.deviceSelect): DOWN when
// silent past down on the server's clock, else BUSY in a session, else IDLE.
type fleetCollector struct {
	pool *pgxpool.Pool
	now  func() time.Time
	down time.Duration
}

func (c fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{fleetDescs.byState, fleetDescs.pending, fleetDescs.down, fleetDescs.session,
		fleetDescs.recording, fleetDescs.age, fleetDescs.freeDisk, fleetDescs.totalDisk, fleetDescs.fps,
		fleetDescs.targetFPS, fleetDescs.skew} {
		ch <- d
	}
}

// fleetRow is one enclosure as fleetQuery reads it.
type fleetRow struct {
	name, admission                string
	down, recording                bool
	age, fps, skewMS               *float64
	session                        int64
	targetFPS, freeDisk, totalDisk *int64
}

const fleetQuery = `
	SELECT d.name, d.admission,
	       d.last_seen_at IS NULL OR d.last_seen_at < @now::timestamptz - @down::interval,
	       extract(epoch FROM @now::timestamptz - d.last_seen_at)::float8,
	       coalesce(sd.session_id, 0), s.target_fps::bigint,
	       d.recording, d.fps, d.free_disk, d.total_disk, d.clock_skew_ms::float8
	FROM devices d
	LEFT JOIN session_devices sd ON sd.device_id = d.id AND sd.status IN ('PENDING', 'RECORDING')
	LEFT JOIN sessions s ON s.id = sd.session_id
	WHERE d.retired_at IS NULL AND d.admission IN ('approved', 'pending')`

func (c fleetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeQueryTimeout)
	defer cancel()
	rows, err := c.pool.Query(ctx, fleetQuery, pgx.NamedArgs{"now": c.now(), "down": c.down})
	if err == nil {
		var fleet []fleetRow
		fleet, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (fleetRow, error) {
			var f fleetRow
			err := r.Scan(&f.name, &f.admission, &f.down, &f.age, &f.session, &f.targetFPS,
				&f.recording, &f.fps, &f.freeDisk, &f.totalDisk, &f.skewMS)
			return f, err
		})
		if err == nil {
			emitFleet(ch, fleet)
			return
		}
	}
	ch <- prometheus.NewInvalidMetric(fleetDescs.byState, err)
}

func emitFleet(ch chan<- prometheus.Metric, fleet []fleetRow) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	optional := func(d *prometheus.Desc, v *float64, scale float64, name string) {
		if v != nil {
			gauge(d, *v*scale, name)
		}
	}
	optionalInt := func(d *prometheus.Desc, v *int64, scale float64, name string) {
		if v != nil {
			gauge(d, float64(*v)*scale, name)
		}
	}
	byState := map[string]int{string(recording.EnclosureIdle): 0, string(recording.EnclosureBusy): 0, string(recording.EnclosureDown): 0}
	pending := 0
	for _, f := range fleet {
		if f.admission != "approved" {
			pending++ // counted only: an unapproved name gets no series of its own
			continue
		}
		switch {
		case f.down:
			byState[string(recording.EnclosureDown)]++
		case f.session != 0:
			byState[string(recording.EnclosureBusy)]++
		default:
			byState[string(recording.EnclosureIdle)]++
		}
		gauge(fleetDescs.down, boolValue(f.down), f.name)
		gauge(fleetDescs.session, float64(f.session), f.name)
		gauge(fleetDescs.recording, boolValue(f.recording), f.name)
		optional(fleetDescs.age, f.age, 1, f.name)
		// Enclosures report disk in MB (PROTOCOL.md); the metrics are bytes.
		optionalInt(fleetDescs.freeDisk, f.freeDisk, 1e6, f.name)
		optionalInt(fleetDescs.totalDisk, f.totalDisk, 1e6, f.name)
		optional(fleetDescs.fps, f.fps, 1, f.name)
		optionalInt(fleetDescs.targetFPS, f.targetFPS, 1, f.name)
		optional(fleetDescs.skew, f.skewMS, 1e-3, f.name)
	}
	for state, n := range byState {
		gauge(fleetDescs.byState, float64(n), state)
	}
	gauge(fleetDescs.pending, float64(pending))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var (
	sessionsByStatus = prometheus.NewDesc("mba_sessions",
		"Recording sessions by status (IN_PROGRESS, COMPLETE, PARTIAL, FAILED, CANCELED), archived ones included.",
		[]string{"status"}, nil)
	sessionEnclosuresByStatus = prometheus.NewDesc("mba_session_enclosures",
		"Enclosures of the sessions IN_PROGRESS by their status there (PENDING, RECORDING, COMPLETE, FAILED, CANCELED).",
		[]string{"status"}, nil)
)

// sessionsCollector exports the sessions, and the enclosures of the running ones, by status
// at scrape time. Every known status is exported, zero included, so rules see a series.
type sessionsCollector struct{ pool *pgxpool.Pool }

func (c sessionsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sessionsByStatus
	ch <- sessionEnclosuresByStatus
}

const sessionsQuery = `
	SELECT true, status, count(*) FROM sessions GROUP BY status
	UNION ALL
	SELECT false, sd.status, count(*)
	FROM session_devices sd JOIN sessions s ON s.id = sd.session_id
	WHERE s.status = @running GROUP BY sd.status`

func (c sessionsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeQueryTimeout)
	defer cancel()
	sessions := map[string]int64{string(recording.SessionInProgress): 0, string(recording.SessionComplete): 0, string(recording.SessionPartial): 0,
		string(recording.SessionFailed): 0, string(recording.SessionCanceled): 0}
	enclosures := map[string]int64{string(recording.DevicePending): 0, string(recording.DeviceRecording): 0, string(recording.DeviceComplete): 0,
		string(recording.DeviceFailed): 0, string(recording.DeviceCanceled): 0}
	rows, err := c.pool.Query(ctx, sessionsQuery, pgx.NamedArgs{"running": recording.SessionInProgress})
	if err == nil {
		var isSession bool
		var status string
		var n int64
		_, err = pgx.ForEachRow(rows, []any{&isSession, &status, &n}, func() error {
			if isSession {
				sessions[status] = n
			} else {
				enclosures[status] = n
			}
			return nil
		})
	}
	if err != nil {
		ch <- prometheus.NewInvalidMetric(sessionsByStatus, err)
		return
	}
	for status, n := range sessions {
		ch <- prometheus.MustNewConstMetric(sessionsByStatus, prometheus.GaugeValue, float64(n), status)
	}
	for status, n := range enclosures {
		ch <- prometheus.MustNewConstMetric(sessionEnclosuresByStatus, prometheus.GaugeValue, float64(n), status)
	}
}
