package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jax-mba/mba/internal/simulator"
)

// FleetFigures are scenario 2's results.
type FleetFigures struct {
	Enclosures      int              `json:"enclosures"`
	IntervalS       float64          `json:"interval_s"`
	Seconds         float64          `json:"seconds"`
	HeartbeatsPerS  float64          `json:"heartbeats_per_s"`
	Latency         Latencies        `json:"heartbeat_latency_whole_run"` // from registration on
	Errors          int64            `json:"errors"`
	Usage           map[string]Usage `json:"usage"`
	OutboxRowsAdded int64            `json:"outbox_rows_added"`
}

// startSim runs a simulator until the returned stop is called.
func startSim(cfg simulator.Config) (*simulator.Simulator, func(), error) {
	sim, err := simulator.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sim.Run(ctx) }()
	return sim, func() { cancel(); <-done }, nil
}

// fleet: N idle enclosures at their real interval. Proves idle heartbeats reach neither the
// outbox nor Temporal.
func fleet(ctx context.Context, r *runner) (any, []TargetOutcome, error) {
	n, window, interval := 10000, 2*time.Minute, 10*time.Second
	if r.cfg.Quick {
		n, window, interval = 1000, 8*time.Second, 2*time.Second
	}
	f := FleetFigures{Enclosures: n, IntervalS: interval.Seconds(), Seconds: window.Seconds()}
	sim, stop, err := startSim(simulator.Config{BaseURL: r.stack.Base + "/api", Count: n, NamePrefix: "FLEET", Interval: interval, FollowUp: time.Second})
	if err != nil {
		return nil, nil, err
	}
	defer stop()
	time.Sleep(interval + time.Second) // every enclosure registered (first beats are spread over one interval)

	var outboxBefore, outboxAfter int64
	if err := r.stack.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&outboxBefore); err != nil {
		return nil, nil, err
	}
	before := sim.Stats()
	sampler := Sample(r.processes())
	time.Sleep(window)
	f.Usage = sampler.Stop()
	after := sim.Stats()
	if err := r.stack.Pool.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&outboxAfter); err != nil {
		return nil, nil, err
	}
	f.OutboxRowsAdded = outboxAfter - outboxBefore
	f.HeartbeatsPerS = round1(float64(after.HeartbeatsSent-before.HeartbeatsSent) / window.Seconds())
	f.Latency = Latencies{Count: int(after.Latency.Count), P50MS: ms(after.Latency.P50), P95MS: ms(after.Latency.P95), P99MS: ms(after.Latency.P99), MaxMS: ms(after.Latency.Max)}
	f.Errors = after.Replies[simulator.ReplyError] + after.Replies[simulator.ReplyNetwork]
	r.printf("%d enclosures every %s: %.0f heartbeats/s, p50 %.2f ms p99 %.2f ms, %d errors; outbox rows added: %d\n",
		n, interval, f.HeartbeatsPerS, f.Latency.P50MS, f.Latency.P99MS, f.Errors, f.OutboxRowsAdded)
	for name, u := range f.Usage {
		r.printf("  %-26s cpu %5.1f%%  rss %6.1f MB\n", name, u.CPUPercent, u.MaxRSSMB)
	}
	return f, []TargetOutcome{
		atMost("outbox rows (Temporal calls) from idle heartbeats", float64(f.OutboxRowsAdded), 0, fmt.Sprintf("%d heartbeats", after.HeartbeatsSent-before.HeartbeatsSent)),
	}, nil
}

func ms(d time.Duration) float64 { return round2(float64(d.Microseconds()) / 1000) }
