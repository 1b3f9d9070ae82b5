package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config says what to run against what.
type Config struct {
	DatabaseURL     string // a superuser URL; the harness creates a database of its own
	TemporalAddress string
	Binary          string // the mba binary to run as `serve`
	PostgresPID     int    // the postmaster, for CPU and memory (0: not measured)
	TemporalPID     int    // the Temporal dev server (0: not measured)
	Quick           bool   // smaller fleets and a 2-second heartbeat interval, for routine checks
	Scenarios       []string
	Report          string // JSON report path
	DBConns         int    // the service's database pool size
}

// Report is everything one run measured.
type Report struct {
	Started   time.Time       `json:"started"`
	Machine   Machine         `json:"machine"`
	Quick     bool            `json:"quick"`
	Scenarios map[string]any  `json:"scenarios"`
	Targets   []TargetOutcome `json:"targets"`
}

// TargetOutcome is one target of the benchmark issue, met or missed by how much.
type TargetOutcome struct {
	Target string  `json:"target"`
	Value  float64 `json:"value"`
	Limit  float64 `json:"limit"`
	Met    bool    `json:"met"`
	Note   string  `json:"note,omitempty"`
}

// Machine describes where the figures came from.
type Machine struct {
	Cores     int    `json:"cores"`
	CPU       string `json:"cpu"`
	MemoryMB  int64  `json:"memory_mb"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel"`
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				m.CPU = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		if len(f) > 1 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			m.MemoryMB = kb / 1024
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// Latencies summarises round trips.
type Latencies struct {
	Count int     `json:"count"`
	P50MS float64 `json:"p50_ms"`
	P95MS float64 `json:"p95_ms"`
	P99MS float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
}

func summarize(d []time.Duration) Latencies {
	if len(d) == 0 {
		return Latencies{}
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		i := int(q * float64(len(d)-1))
		return round2(float64(d[i].Microseconds()) / 1000)
	}
	return Latencies{Count: len(d), P50MS: at(0.50), P95MS: at(0.95), P99MS: at(0.99), MaxMS: at(1)}
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// scenario runs against a fresh stack and returns its figures and target outcomes.
type scenario func(ctx context.Context, r *runner) (any, []TargetOutcome, error)

var scenarios = map[string]scenario{
	"capacity": capacity,
	"fleet":    fleet,
	"fanout":   fanout,
	"longrun":  longRun,
	"uploads":  uploads,
	"faults":   faults,
}

// Order is the order scenarios run in by default. The fault scenario takes about seven
// minutes whatever the size, so it runs only when asked for (--scenarios faults).
var Order = []string{"capacity", "fleet", "fanout", "longrun", "uploads"}

// Extra are the scenarios run only when named.
var Extra = []string{"faults"}

// scenarioEnv overrides the service's settings for a scenario.
var scenarioEnv = map[string][]string{"faults": faultsEnv}

// runner is what a scenario gets.
type runner struct {
	cfg   Config
	stack *Stack
	out   io.Writer
}

func (r *runner) printf(format string, args ...any) { fmt.Fprintf(r.out, format, args...) }

// processes lists what the harness measures.
func (r *runner) processes() []Process {
	procs := []Process{{Name: "mba serve (API + worker)", PIDs: func() []int { return []int{r.stack.Serve.Process.Pid} }}}
	if r.cfg.PostgresPID > 0 {
		procs = append(procs, Process{Name: "postgres", PIDs: func() []int { return ChildrenOf(r.cfg.PostgresPID) }})
	}
	if r.cfg.TemporalPID > 0 {
		procs = append(procs, Process{Name: "temporal dev server", PIDs: func() []int { return []int{r.cfg.TemporalPID} }})
	}
	return procs
}

// Run runs the chosen scenarios, each on a stack of its own, prints a summary and writes the
// JSON report.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	rep := Report{Started: time.Now(), Machine: machine(), Quick: cfg.Quick, Scenarios: map[string]any{}}
	work, err := os.MkdirTemp("", "mba-bench-")
	if err != nil {
		return err
	}
	storageEnv(work)
	fmt.Fprintf(out, "machine: %d cores, %s, %d MB; %s; logs in %s\n", rep.Machine.Cores, rep.Machine.CPU, rep.Machine.MemoryMB, rep.Machine.GoVersion, work)
	for _, name := range cfg.Scenarios {
		run, ok := scenarios[name]
		if !ok {
			return fmt.Errorf("unknown scenario %q (have %s)", name, strings.Join(append(slices.Clone(Order), Extra...), ", "))
		}
		fmt.Fprintf(out, "\n== %s\n", name)
		stack, err := StartStack(ctx, cfg, work, scenarioEnv[name]...)
		if err != nil {
			return fmt.Errorf("%s: starting the stack: %w", name, err)
		}
		figures, targets, err := run(ctx, &runner{cfg: cfg, stack: stack, out: out})
		stack.Stop()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		rep.Scenarios[name] = figures
		rep.Targets = append(rep.Targets, targets...)
	}
	fmt.Fprintln(out, "\n== targets")
	for _, t := range rep.Targets {
		mark := "met"
		if !t.Met {
			mark = "MISSED"
		}
		fmt.Fprintf(out, "  %-6s %-62s %10.2f (limit %.2f) %s\n", mark, t.Target, t.Value, t.Limit, t.Note)
	}
	if cfg.Report == "" {
		return nil
	}
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nreport: %s\n", cfg.Report)
	return os.WriteFile(cfg.Report, raw, 0o644)
}

// atMost and atLeast build target outcomes.
func atMost(target string, value, limit float64, note string) TargetOutcome {
	return TargetOutcome{Target: target, Value: round2(value), Limit: limit, Met: value <= limit, Note: note}
}

func atLeast(target string, value, limit float64, note string) TargetOutcome {
	return TargetOutcome{Target: target, Value: round2(value), Limit: limit, Met: value >= limit, Note: note}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
