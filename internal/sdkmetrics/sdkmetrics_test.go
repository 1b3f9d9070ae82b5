package sdkmetrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestHandlerExportsWhatTheSDKRecords: counters, gauges and timers under the Prometheus
// names, with the tags as labels, and the same name under different tag sets in one family.
func TestHandlerExportsWhatTheSDKRecords(t *testing.T) {
	h := New()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(h))

	root := h.WithTags(map[string]string{"namespace": "default", "task_queue": "mba"})
	act := root.WithTags(map[string]string{"activity_type": "Verify"})
	act.Counter("temporal_activity_execution_failed").Inc(2)
	act.Counter("temporal_activity_execution_failed").Inc(-1) // dropped: counters only grow
	root.Counter("temporal_activity_execution_failed").Inc(1)
	root.Gauge("temporal_worker_task_slots_available").Update(7)
	act.Timer("temporal_activity_execution_latency").Record(30 * time.Millisecond)
	h.WithTags(map[string]string{"bad-key": "x"}).Counter("temporal_request").Inc(1)

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP temporal_activity_execution_failed_total Temporal SDK metric temporal_activity_execution_failed_total (docs.temporal.io/references/sdk-metrics).
# TYPE temporal_activity_execution_failed_total counter
temporal_activity_execution_failed_total{activity_type="Verify",namespace="default",task_queue="mba"} 2
temporal_activity_execution_failed_total{namespace="default",task_queue="mba"} 1
# HELP temporal_worker_task_slots_available Temporal SDK metric temporal_worker_task_slots_available (docs.temporal.io/references/sdk-metrics).
# TYPE temporal_worker_task_slots_available gauge
temporal_worker_task_slots_available{namespace="default",task_queue="mba"} 7
# HELP temporal_request_total Temporal SDK metric temporal_request_total (docs.temporal.io/references/sdk-metrics).
# TYPE temporal_request_total counter
temporal_request_total{bad_key="x"} 1
`), "temporal_activity_execution_failed_total", "temporal_worker_task_slots_available", "temporal_request_total"))

	n, err := testutil.GatherAndCount(reg, "temporal_activity_execution_latency_seconds")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems, "names and labels pass promlint")
}
