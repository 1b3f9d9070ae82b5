// Package sdkmetrics hands the Temporal SDK's own metrics (workflow and activity task
// latencies and failures, task slots, pollers, request failures) to a Prometheus registry:
// a small client.MetricsHandler over client_golang, instead of contrib/tally and the tally
// and m3 modules it pulls in.
//
// Names follow contrib/tally's Prometheus naming, so Temporal's published SDK dashboards
// work unchanged: counters end in _total, timers are histograms in seconds ending in
// _seconds (temporal_activity_execution_failed_total,
// temporal_workflow_task_schedule_to_start_latency_seconds_bucket, ...). The SDK's tags
// become labels; their values are namespaces, task queues, workflow and activity types and
// operations, a set bounded by the code.
package sdkmetrics

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// Buckets of the timers, in seconds: a task runs in milliseconds, a schedule-to-start latency
// can reach minutes when the worker is down or saturated.
var Buckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// Handler is the SDK's metrics handler (client.Options.MetricsHandler) and a
// prometheus.Collector of everything recorded through it and the handlers derived with
// WithTags.
type Handler struct {
	set  *set
	tags map[string]string
}

var (
	_ client.MetricsHandler = (*Handler)(nil)
	_ prometheus.Collector  = (*Handler)(nil)
)

// New returns a handler with no metrics yet; the SDK creates them as it records.
func New() *Handler {
	return &Handler{set: &set{vecs: map[string]prometheus.Collector{}}, tags: map[string]string{}}
}

// set holds one vector per metric name and label names: the SDK tags a metric differently
// at different call sites, which Prometheus allows within a family.
type set struct {
	mu   sync.Mutex
	vecs map[string]prometheus.Collector
}

// WithTags returns a handler that adds tags (labels) to everything it records.
func (h *Handler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := maps.Clone(h.tags)
	for k, v := range tags {
		merged[labelName(k)] = v
	}
	return &Handler{set: h.set, tags: merged}
}

// Counter returns the counter name+"_total" with the handler's labels.
func (h *Handler) Counter(name string) client.MetricsCounter {
	c, err := vec(h, "counter", suffixed(name, "_total"), func(o prometheus.Opts, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts(o), labels)
	}).GetMetricWith(h.tags)
	if err != nil {
		return client.MetricsNopHandler.Counter(name) // a tag value that is not UTF-8: dropped, not a panic in the SDK
	}
	return counter{c}
}

// Gauge returns the gauge name with the handler's labels.
func (h *Handler) Gauge(name string) client.MetricsGauge {
	g, err := vec(h, "gauge", name, func(o prometheus.Opts, labels []string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts(o), labels)
	}).GetMetricWith(h.tags)
	if err != nil {
		return client.MetricsNopHandler.Gauge(name)
	}
	return gauge{g}
}

// Timer returns the histogram name+"_seconds" with the handler's labels.
func (h *Handler) Timer(name string) client.MetricsTimer {
	o, err := vec(h, "timer", suffixed(name, "_seconds"), func(o prometheus.Opts, labels []string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: o.Name, Help: o.Help, Buckets: Buckets}, labels)
	}).GetMetricWith(h.tags)
	if err != nil {
		return client.MetricsNopHandler.Timer(name)
	}
	return timer{o}
}

// vec finds or makes (with build) the vector of kind and name over the handler's label names.
func vec[V interface {
	*prometheus.CounterVec | *prometheus.GaugeVec | *prometheus.HistogramVec
	prometheus.Collector
}](h *Handler, kind, name string, build func(prometheus.Opts, []string) V) V {
	labels := slices.Sorted(maps.Keys(h.tags))
	key := kind + "\x00" + name + "\x00" + strings.Join(labels, "\x00")
	h.set.mu.Lock()
	defer h.set.mu.Unlock()
	if v, ok := h.set.vecs[key]; ok {
		return v.(V)
	}
	v := build(prometheus.Opts{Name: name,
		Help: "Temporal SDK metric " + name + " (docs.temporal.io/references/sdk-metrics)."}, labels)
	h.set.vecs[key] = v
	return v
}

func suffixed(name, suffix string) string {
	if strings.HasSuffix(name, suffix) {
		return name
	}
	return name + suffix
}

// labelName makes a tag key a valid Prometheus label name.
func labelName(k string) string {
	b := []byte(k)
	for i, c := range b {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Describe sends nothing: the metrics appear as the SDK records them, with label sets known
// only then, so the registry checks them when collected.
func (h *Handler) Describe(chan<- *prometheus.Desc) {}

// Collect sends every metric recorded so far.
func (h *Handler) Collect(ch chan<- prometheus.Metric) {
	h.set.mu.Lock()
	vecs := slices.Collect(maps.Values(h.set.vecs))
	h.set.mu.Unlock()
	for _, v := range vecs {
		v.Collect(ch)
	}
}

type counter struct{ c prometheus.Counter }

// Inc adds d; a Prometheus counter only grows, so a negative d is dropped.
func (c counter) Inc(d int64) {
	if d > 0 {
		c.c.Add(float64(d))
	}
}

type gauge struct{ g prometheus.Gauge }

func (g gauge) Update(v float64) { g.g.Set(v) }

type timer struct{ o prometheus.Observer }

func (t timer) Record(d time.Duration) { t.o.Observe(d.Seconds()) }
