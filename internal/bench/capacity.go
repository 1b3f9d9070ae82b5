package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// CapacityFigures are scenario 1's results.
type CapacityFigures struct {
	Clients        int       `json:"clients"`
	Seconds        float64   `json:"seconds"`
	HeartbeatsPerS float64   `json:"heartbeats_per_s"`
	Heartbeats     Latencies `json:"heartbeat_latency"`
	FloorPerS      float64   `json:"floor_updates_per_s"`
	Floor          Latencies `json:"floor_latency"`
	Ratio          float64   `json:"heartbeats_over_floor"`
	Errors         int64     `json:"errors"`
	// At a fixed 1 000 heartbeats/s.
	FixedRate        int              `json:"fixed_rate_per_s"`
	FixedRateLatency Latencies        `json:"fixed_rate_latency"`
	FixedRateErrors  int64            `json:"fixed_rate_errors"`
	Profile          string           `json:"cpu_profile"` // of mba serve during the closed loop
	Usage            map[string]Usage `json:"usage"`
}

// heartbeatBody is an idle enclosure's heartbeat, as the real client writes it.
func heartbeatBody(name string) []byte {
	return []byte(fmt.Sprintf(`{"name":%q,"location":"bench","timestamp":%q,"state":"IDLE",`+
		`"sensor_status":{"camera":{"recording":false}},"system_info":{"uptime":1000,"load":0.4,`+
		`"total_ram":8000000,"free_ram":4000000,"total_disk":500000,"free_disk":400000,"release":"R32.7.1"}}`,
		name, time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")))
}

// capacity: as many heartbeats per second as the service takes, against the floor of the same
// number of clients each doing the one-row update a heartbeat needs, straight with pgx.
func capacity(ctx context.Context, r *runner) (any, []TargetOutcome, error) {
	clients, window, enclosures := 32, 20*time.Second, 2000
	if r.cfg.Quick {
		window, enclosures = 4*time.Second, 500
	}
	f := CapacityFigures{Clients: clients, Seconds: window.Seconds(), FixedRate: 1000}
	transport := &http.Transport{MaxIdleConnsPerHost: clients * 2}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	url := r.stack.Base + "/api/device/heartbeat"
	bodies := make([][]byte, enclosures)
	for i := range bodies {
		bodies[i] = heartbeatBody(fmt.Sprintf("CAP%d", i+1))
	}
	send := func(i int) (time.Duration, error) {
		start := time.Now()
		res, err := client.Post(url, "application/json", bytes.NewReader(bodies[i]))
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			return 0, fmt.Errorf("heartbeat: %d", res.StatusCode)
		}
		return time.Since(start), nil
	}
	r.printf("registering %d enclosures\n", enclosures)
	for i := range bodies {
		if _, err := send(i); err != nil {
			return nil, nil, err
		}
	}

	// Closed loop: each client owns its enclosures (as real ones do: one at a time each).
	sampler := Sample(r.processes())
	profiled := make(chan string, 1)
	go func() {
		path, err := r.stack.Profile("capacity", window-time.Second)
		if err != nil {
			path = "not recorded: " + err.Error()
		}
		profiled <- path
	}()
	lat, count, errs := closedLoop(clients, window, func(c, n int) (time.Duration, error) {
		return send((c + n*clients) % enclosures)
	})
	f.Usage = sampler.Stop()
	f.Profile = <-profiled
	r.printf("cpu profile of mba serve: %s (go tool pprof -top %s %s)\n", f.Profile, r.cfg.Binary, f.Profile)
	f.HeartbeatsPerS = round1(float64(count) / window.Seconds())
	f.Heartbeats, f.Errors = summarize(lat), errs
	r.printf("heartbeats: %.0f/s p50 %.2f ms p99 %.2f ms (%d errors)\n", f.HeartbeatsPerS, f.Heartbeats.P50MS, f.Heartbeats.P99MS, errs)

	// The floor: the update a heartbeat needs, straight against Postgres.
	ids := make([]int64, enclosures)
	rows, err := r.stack.Pool.Query(ctx, `SELECT id FROM devices ORDER BY id LIMIT @n`, pgx.NamedArgs{"n": enclosures})
	if err != nil {
		return nil, nil, err
	}
	if ids, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
		return nil, nil, err
	}
	const update = `UPDATE devices SET last_seen_at = now(), recording = false, uptime = @uptime, load = 0.4,
		free_ram = 4000000, free_disk = 400000, release = 'R32.7.1' WHERE id = @id`
	floorLat, floorCount, _ := closedLoop(clients, window, func(c, n int) (time.Duration, error) {
		start := time.Now()
		_, err := r.stack.Pool.Exec(ctx, update, pgx.NamedArgs{"id": ids[(c+n*clients)%len(ids)], "uptime": n})
		return time.Since(start), err
	})
	f.FloorPerS = round1(float64(floorCount) / window.Seconds())
	f.Floor = summarize(floorLat)
	f.Ratio = round2(f.HeartbeatsPerS / f.FloorPerS)
	r.printf("floor: %.0f updates/s p50 %.2f ms p99 %.2f ms; ratio %.2f\n", f.FloorPerS, f.Floor.P50MS, f.Floor.P99MS, f.Ratio)

	// Open loop at 1 000/s: the latency a real fleet of 10 000 at 10 s sees.
	fixedLat, fixedErrs := openLoop(ctx, f.FixedRate, window, func(n int) (time.Duration, error) { return send(n % enclosures) })
	f.FixedRateLatency, f.FixedRateErrors = summarize(fixedLat), fixedErrs
	r.printf("at %d/s: p50 %.2f ms p95 %.2f ms p99 %.2f ms (%d errors)\n", f.FixedRate,
		f.FixedRateLatency.P50MS, f.FixedRateLatency.P95MS, f.FixedRateLatency.P99MS, fixedErrs)

	return f, []TargetOutcome{
		atLeast("heartbeats/s over the Postgres floor", f.Ratio, 1.0, fmt.Sprintf("%.0f/s vs %.0f/s", f.HeartbeatsPerS, f.FloorPerS)),
		atMost("p99 heartbeat latency at 1000/s (ms)", f.FixedRateLatency.P99MS, 10, ""),
	}, nil
}

// closedLoop runs clients that each call op back to back for window, and returns every
// latency, the number of calls that succeeded and the number that failed.
func closedLoop(clients int, window time.Duration, op func(client, n int) (time.Duration, error)) ([]time.Duration, int64, int64) {
	var mu sync.Mutex
	var all []time.Duration
	var count, errs int64
	deadline := time.Now().Add(window)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			var failed int64
			for n := 0; time.Now().Before(deadline); n++ {
				d, err := op(c, n)
				if err != nil {
					failed++
					continue
				}
				mine = append(mine, d)
			}
			mu.Lock()
			all = append(all, mine...)
			count += int64(len(mine))
			errs += failed
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, count, errs
}

// openLoop starts op rate times a second for window, whatever the replies' pace.
func openLoop(ctx context.Context, rate int, window time.Duration, op func(n int) (time.Duration, error)) ([]time.Duration, int64) {
	var mu sync.Mutex
	var all []time.Duration
	var errs int64
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for n := 0; time.Since(start) < window && ctx.Err() == nil; n++ {
		time.Sleep(time.Until(start.Add(time.Duration(n) * interval)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := op(n)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				return
			}
			all = append(all, d)
		}()
	}
	wg.Wait()
	return all, errs
}
