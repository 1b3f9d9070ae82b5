package api

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jax-mba/mba/internal/store"
)

// metrics are the service's Prometheus series. Each Server has its own registry so tests
// running several servers never collide.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	replies  *prometheus.CounterVec
	refusals *prometheus.CounterVec
	uploaded *prometheus.CounterVec
}

// newMetrics builds the registry; with a pool it adds the collectors that read the database
// at scrape time (now and down judge an enclosure DOWN as the API does, alerts a channel broken).
func newMetrics(pool *pgxpool.Pool, now func() time.Time, down time.Duration, alerts AlertConfig) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mba_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mba_http_request_duration_seconds",
			Help:    "HTTP request latency by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mba_heartbeats_total", Help: "Enclosure heartbeats by the command replied (none = 204).",
		}, []string{"reply"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mba_heartbeats_refused_total",
			Help: "Enclosure heartbeats refused, by reason (address: a bound enclosure spoken for from elsewhere; alert on it).",
		}, []string{"reason"}),
		uploaded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mba_uploaded_total", Help: "Files received from upload agents (unit files) and their bytes (unit bytes).",
		}, []string{"unit"}),
	}
	// Every reason exists from the start at 0, so an alert on increase() sees the first refusal.
	for _, reason := range refusalReasons {
		m.refusals.WithLabelValues(reason)
	}
	m.registry.MustRegister(m.requests, m.latency, m.replies, m.refusals, m.uploaded,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if pool != nil {
		m.registry.MustRegister(poolCollector{pool}, outboxCollector{pool}, filesCollector{pool},
			fleetCollector{pool: pool, now: now, down: down}, sessionsCollector{pool},
			alertsCollector{pool: pool, now: now, cfg: alerts})
	}
	return m
}

// refusalReasons are the reasons heartbeats are refused for (Server.heartbeatRefused, the
// allowed-networks check).
var refusalReasons = []string{"network", "unknown", "registration_limit", "token", "relayed", "address", "retired",
	"rejected", "unavailable"}

func (m *metrics) observe(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

func (m *metrics) heartbeat(command string) {
	if command == "" {
		command = "none"
	}
	m.replies.WithLabelValues(command).Inc()
}

func (m *metrics) refused(reason string) { m.refusals.WithLabelValues(reason).Inc() }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// MetricsHandler serves the Prometheus metrics, for a listener of their own (cmd/mba's
// http.metrics-addr) that only the scraper reaches.
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler() }

// metricsOnAPI serves /metrics on the API listener only to the holder of the metrics token:
// the series name routes, enclosures and traffic, nothing for an anonymous caller.
func (s *Server) metricsOnAPI() http.Handler {
	h := s.metrics.handler()
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		if s.cfg.MetricsToken == "" {
			return errorf(http.StatusNotFound, "metrics are served on their own address (http metrics-addr), or here with a metrics token")
		}
		if subtle.ConstantTimeCompare([]byte(bearer(r)), []byte(s.cfg.MetricsToken)) != 1 {
			return errorf(http.StatusUnauthorized, "/metrics needs the metrics token (Authorization: Bearer)")
		}
		h.ServeHTTP(w, r)
		return nil
	})
}

// Register adds more collectors (the Temporal SDK's worker metrics: internal/sdkmetrics) to
// the same endpoint.
func (s *Server) Register(c ...prometheus.Collector) error {
	for _, col := range c {
		if err := s.metrics.registry.Register(col); err != nil {
			return err
		}
	}
	return nil
}

// poolCollector exports the database pool's statistics at scrape time.
type poolCollector struct{ pool *pgxpool.Pool }

var poolDescs = struct{ total, idle, acquired, max, acquires, waits, waitSeconds *prometheus.Desc }{
	total:       prometheus.NewDesc("mba_db_pool_connections", "Open database connections.", nil, nil),
	idle:        prometheus.NewDesc("mba_db_pool_idle_connections", "Idle database connections.", nil, nil),
	acquired:    prometheus.NewDesc("mba_db_pool_acquired_connections", "Database connections in use.", nil, nil),
	max:         prometheus.NewDesc("mba_db_pool_max_connections", "Configured maximum of database connections.", nil, nil),
	acquires:    prometheus.NewDesc("mba_db_pool_acquires_total", "Connections acquired from the pool.", nil, nil),
	waits:       prometheus.NewDesc("mba_db_pool_empty_acquires_total", "Acquires that had to wait for a connection.", nil, nil),
	waitSeconds: prometheus.NewDesc("mba_db_pool_acquire_wait_seconds_total", "Time spent waiting for a connection.", nil, nil),
}

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolDescs.total, poolDescs.idle, poolDescs.acquired, poolDescs.max,
		poolDescs.acquires, poolDescs.waits, poolDescs.waitSeconds} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(poolDescs.total, float64(st.TotalConns()))
	gauge(poolDescs.idle, float64(st.IdleConns()))
	gauge(poolDescs.acquired, float64(st.AcquiredConns()))
	gauge(poolDescs.max, float64(st.MaxConns()))
	counter(poolDescs.acquires, float64(st.AcquireCount()))
	counter(poolDescs.waits, float64(st.EmptyAcquireCount()))
	counter(poolDescs.waitSeconds, st.AcquireDuration().Seconds())
}

// outboxCollector exports the outbox backlog at scrape time: transitions written by the
// heartbeat path and not yet delivered to Temporal.
type outboxCollector struct{ pool *pgxpool.Pool }

var (
	outboxPending = prometheus.NewDesc("mba_outbox_pending", "Transitions waiting for the dispatcher.", nil, nil)
	outboxOldest  = prometheus.NewDesc("mba_outbox_oldest_seconds", "Age of the oldest undelivered transition.", nil, nil)
	// Alert on any increase: a transition whose workflow was gone, resolved in the read model
	// from what the enclosure reported (see the session's "undeliverable" events).
	outboxUndeliverable = prometheus.NewDesc("mba_outbox_undeliverable_total",
		"Transitions that could never reach their workflow (it was gone), resolved in the read model.", nil, nil)
)

func (c outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- outboxPending
	ch <- outboxOldest
	ch <- outboxUndeliverable
}

func (c outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	b, err := store.New(c.pool).OutboxBacklog(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(outboxPending, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(outboxPending, prometheus.GaugeValue, float64(b.Pending))
	ch <- prometheus.MustNewConstMetric(outboxOldest, prometheus.GaugeValue, b.OldestSeconds)
	ch <- prometheus.MustNewConstMetric(outboxUndeliverable, prometheus.CounterValue, float64(b.Undeliverable))
}

// filesCollector exports the recordings' files by state at scrape time, so a dashboard can
// plot (and alert on) MISSING and CORRUPT files.
type filesCollector struct{ pool *pgxpool.Pool }

var filesByState = prometheus.NewDesc("mba_session_files", "Files of recordings by state (PENDING ... VERIFIED, CORRUPT, MISSING).", []string{"state"}, nil)

func (c filesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- filesByState }

func (c filesCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// Every state from the start at 0, so an alert on increase() sees the first MISSING file.
	byState := map[string]int64{string(recording.FilePending): 0, string(recording.FileUploading): 0, string(recording.FileUploaded): 0,
		string(recording.FileVerified): 0, string(recording.FileCorrupt): 0, string(recording.FileMissing): 0}
	rows, err := c.pool.Query(ctx, `SELECT state, count(*) FROM session_files GROUP BY state`)
	if err == nil {
		var state string
		var n int64
		_, err = pgx.ForEachRow(rows, []any{&state, &n}, func() error {
			byState[state] = n
			return nil
		})
	}
	if err != nil {
		ch <- prometheus.NewInvalidMetric(filesByState, err)
		return
	}
	for state, n := range byState {
		ch <- prometheus.MustNewConstMetric(filesByState, prometheus.GaugeValue, float64(n), state)
	}
}
