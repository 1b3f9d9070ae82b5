package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.yaml.in/yaml/v3"

	"github.com/jax-mba/mba/internal/sdkmetrics"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/internal/testenv"
)

// TestDeployFilesNameRealMetrics: every metric the sample alert rules (deploy/prometheus) and
// the Grafana dashboard (deploy/grafana) use exists on a real /metrics scrape of a server on
// a database with an enclosure in a session, its Temporal SDK metrics from a real worker whose
// activity and workflow task fail, and a notification delivery.
func TestDeployFilesNameRealMetrics(t *testing.T) {
	h := newHarness(t, func(d *Deps) {
		d.Config.Alerts = AlertConfig{ChannelFailures: 3, Channels: []ChannelTarget{{Channel: "webhook", Target: "lab"}}}
	})
	names := deployMetricNames(t)

	h.send(beat("NV1", 0, false, ""))
	h.session(h.deviceID("NV1"))
	h.send(beat("NV2", 0, false, ""))
	// Delivery counts exist from the first delivery on.
	require.NoError(t, h.store.RecordDelivery(context.Background(), store.Delivery{AlertKey: "k", Channel: "webhook",
		Target: "lab", Notice: "notify", Attempt: 1, Outcome: "failed", Error: "503"}))
	sdk := sdkmetrics.New()
	require.NoError(t, h.srv.Register(sdk))
	failingWorker(t, sdk)

	// The SDK's series appear as the worker runs its tasks.
	missing := missingMetrics(h.metrics(), names)
	for deadline := time.Now().Add(2 * time.Minute); len(missing) > 0 && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		missing = missingMetrics(h.metrics(), names)
	}
	require.Empty(t, missing, "deploy files name metrics a scrape lacks")
}

// TestAlertRulesPassPromtool: Prometheus's own checker accepts alerts.yml, and its unit tests
// (alerts_test.yml: which alerts fire on which series) pass.
func TestAlertRulesPassPromtool(t *testing.T) {
	if testing.Short() {
		t.Skip("needs promtool (scripts/test.sh installs Debian's prometheus package)")
	}
	promtool := cmp.Or(os.Getenv("MBA_PROMTOOL"), "/usr/bin/promtool")
	if _, err := os.Stat(promtool); err != nil {
		t.Fatalf("no promtool at %s: install Debian's prometheus package (scripts/test.sh does) or set MBA_PROMTOOL", promtool)
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../deploy/prometheus"
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// failingWorker runs a worker reporting to sdk, with a workflow whose activity fails and one
// whose workflow task fails, and a request that fails: the SDK's failure series then exist.
func failingWorker(t *testing.T, sdk *sdkmetrics.Handler) {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: testenv.TemporalAddress(t), MetricsHandler: sdk,
		Logger: quietSDKLogger{}})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	queue := testenv.RandomName("deploycheck-")
	w := sdkworker.New(c, queue, sdkworker.Options{})
	w.RegisterActivityWithOptions(func(context.Context) error { return errors.New("fails on purpose") },
		activity.RegisterOptions{Name: "DeployCheckFails"})
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
		return workflow.ExecuteActivity(ctx, "DeployCheckFails").Get(ctx, nil)
	}, workflow.RegisterOptions{Name: "DeployCheckActivityFails"})
	w.RegisterWorkflowWithOptions(func(workflow.Context) error { panic("workflow task fails on purpose") },
		workflow.RegisterOptions{Name: "DeployCheckTaskFails"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	ctx := context.Background()
	for _, name := range []string{"DeployCheckActivityFails", "DeployCheckTaskFails"} {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: queue + "-" + name, TaskQueue: queue,
			WorkflowExecutionTimeout: 5 * time.Minute}, name)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.TerminateWorkflow(context.Background(), run.GetID(), "", "test over") })
	}
	_, err = c.DescribeWorkflowExecution(ctx, queue+"-never-started", "")
	require.Error(t, err, "a request that fails")
}

// quietSDKLogger drops the SDK's log: the failures above are on purpose.
type quietSDKLogger struct{}

func (quietSDKLogger) Debug(string, ...any) {}
func (quietSDKLogger) Info(string, ...any)  {}
func (quietSDKLogger) Warn(string, ...any)  {}
func (quietSDKLogger) Error(string, ...any) {}

// deployMetricNames reads the metric names of every expression in the deploy files.
func deployMetricNames(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../deploy/prometheus/alerts.yml")
	require.NoError(t, err)
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &rules))
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Expr, "alert %s has no expr", r.Alert)
			exprs = append(exprs, r.Expr)
		}
	}
	alerts := len(exprs)
	require.Greater(t, alerts, 10)

	raw, err = os.ReadFile("../deploy/grafana/mba-dashboard.json")
	require.NoError(t, err)
	var dashboard any
	require.NoError(t, json.Unmarshal(raw, &dashboard))
	exprs = append(exprs, dashboardQueries(dashboard)...)
	require.Greater(t, len(exprs)-alerts, 20, "the dashboard's queries")

	seen := map[string]bool{}
	for _, e := range exprs {
		found := promqlMetrics(e)
		require.NotEmpty(t, found, "no metric in %q", e)
		for _, n := range found {
			seen[n] = true
		}
	}
	return slices.Sorted(func(yield func(string) bool) {
		for n := range seen {
			if !yield(n) {
				return
			}
		}
	})
}

// dashboardQueries collects the panels' expr fields and the template variables' queries
// (label_values(metric, label) becomes metric).
func dashboardQueries(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			s, isString := val.(string)
			switch {
			case k == "expr" && isString:
				out = append(out, s)
			case k == "definition" && isString:
				if m := labelValues.FindStringSubmatch(s); m != nil {
					out = append(out, m[1])
				}
			default:
				out = append(out, dashboardQueries(val)...)
			}
		}
	case []any:
		for _, val := range x {
			out = append(out, dashboardQueries(val)...)
		}
	}
	return out
}

var labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,`)

// PromQL, as much as naming its metrics needs: strings, label matchers and ranges are
// dropped; the parentheses after by, without, on, ignoring and group_* hold label names.
var (
	promqlDropped  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\{[^}]*\}|\[[^\]]*\]`)
	promqlLabelSet = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlToken    = regexp.MustCompile(`\d+(?:\.\d+)?(?:[eE][-+]?\d+)?[a-zA-Z]*|[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlWords    = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true,
		"sum": true, "min": true, "max": true, "avg": true, "count": true, "stddev": true, "stdvar": true,
		"topk": true, "bottomk": true, "quantile": true, "count_values": true, "group": true,
	}
)

func promqlMetrics(expr string) []string {
	s := promqlLabelSet.ReplaceAllString(promqlDropped.ReplaceAllString(expr, " "), " ")
	var out []string
	for _, loc := range promqlToken.FindAllStringIndex(s, -1) {
		tok := s[loc[0]:loc[1]]
		if tok[0] >= '0' && tok[0] <= '9' || promqlWords[strings.ToLower(tok)] {
			continue
		}
		if rest := strings.TrimLeft(s[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function
		}
		out = append(out, tok)
	}
	return out
}

// missingMetrics returns the names a /metrics text lacks; a histogram's family stands for its
// _bucket, _sum and _count series.
func missingMetrics(scrape string, names []string) []string {
	have := map[string]bool{}
	for _, line := range strings.Split(scrape, "\n") {
		var name, kind string
		if _, err := fmt.Sscanf(line, "# TYPE %s %s", &name, &kind); err != nil {
			continue
		}
		have[name] = true
		if kind == "histogram" || kind == "summary" {
			have[name+"_sum"], have[name+"_count"] = true, true
			have[name+"_bucket"] = kind == "histogram"
		}
	}
	var missing []string
	for _, n := range names {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	return missing
}

// TestPromqlMetrics: the reader of the deploy files finds metrics, not functions, keywords,
// label names or durations.
func TestPromqlMetrics(t *testing.T) {
	for expr, want := range map[string][]string{
		`histogram_quantile(0.95, sum by (le, route) (rate(mba_http_request_duration_seconds_bucket{a="b"}[5m])))`: {"mba_http_request_duration_seconds_bucket"},
		`mba_enclosure_fps < 0.9 * mba_enclosure_target_fps and mba_enclosure_recording == 1`:                      {"mba_enclosure_fps", "mba_enclosure_target_fps", "mba_enclosure_recording"},
		`predict_linear(x_bytes[1h], 6 * 3600) < 0 offset 5m`:                                                      {"x_bytes"},
		`a / on(enclosure) group_left(x) b`:                                                                        {"a", "b"},
	} {
		require.Equal(t, want, promqlMetrics(expr), expr)
	}
}
