package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/simulator"
)

// FanoutFigures are scenario 3's results: delays from the API call to each enclosure.
type FanoutFigures struct {
	Enclosures    int       `json:"enclosures"`
	IntervalS     float64   `json:"interval_s"`
	CreateMS      float64   `json:"create_request_ms"`
	StartReceived Latencies `json:"start_received"`         // from the create reply to each enclosure's first START
	AllRecordingS float64   `json:"all_recording_in_api_s"` // -1: not all within the window
	RecordingAtS  int       `json:"recording_in_api_at_window_end"`
	CancelMS      float64   `json:"cancel_request_ms"`
	StopReceived  Latencies `json:"stop_received"`         // from the cancel request to each enclosure's first STOP
	AllCanceledS  float64   `json:"all_canceled_in_api_s"` // -1: not all within the window
}

// fanout: a session over M enclosures; how long until each gets START, is RECORDING in the
// API, and after a cancel gets STOP, against the heartbeat interval.
func fanout(ctx context.Context, r *runner) (any, []TargetOutcome, error) {
	m, interval := 1000, 10*time.Second
	if r.cfg.Quick {
		m, interval = 100, 2*time.Second
	}
	f := FanoutFigures{Enclosures: m, IntervalS: interval.Seconds()}
	sim, stop, err := startSim(simulator.Config{BaseURL: r.stack.Base + "/api", Count: m, NamePrefix: "FAN", Interval: interval, FollowUp: interval / 10})
	if err != nil {
		return nil, nil, err
	}
	defer stop()
	ids, err := registered(ctx, r.stack, sim, 2*interval+10*time.Second)
	if err != nil {
		return nil, nil, err
	}

	var spec []map[string]any
	for i, id := range ids {
		spec = append(spec, map[string]any{"device_id": id, "filename_prefix": fmt.Sprintf("fan%d", i)})
	}
	var session api.SessionView
	sent := time.Now()
	if err := r.stack.Call(ctx, "POST", "/api/recording-session", map[string]any{"name": "fan-out", "duration": 3600,
		"target_fps": 30, "device_spec": spec}, &session); err != nil {
		return nil, nil, err
	}
	// Delays count from the moment the session exists (the reply), as the target says.
	t0 := time.Now()
	f.CreateMS = ms(t0.Sub(sent))
	f.StartReceived = summarize(firstSeen(sim, t0, 3*interval, func(s simulator.EnclosureState) bool { return s.StartsReceived > 0 }))
	// The read model follows the workflows, which the dev server starts at 40-90 a second.
	f.AllRecordingS, f.RecordingAtS = readModelCatchUp(ctx, r.stack, session.ID, t0, recording.DeviceRecording, 6*interval+3*time.Minute)
	r.printf("%d enclosures at %s: create %.0f ms; START received p50 %.2f s p99 %.2f s max %.2f s; all RECORDING in the API after %.1f s\n",
		m, interval, f.CreateMS, f.StartReceived.P50MS/1000, f.StartReceived.P99MS/1000, f.StartReceived.MaxMS/1000, f.AllRecordingS)

	t1 := time.Now()
	if err := r.stack.Call(ctx, "DELETE", fmt.Sprintf("/api/recording-session/%d", session.ID), nil, nil); err != nil {
		return nil, nil, err
	}
	f.CancelMS = ms(time.Since(t1))
	f.StopReceived = summarize(firstSeen(sim, t1, 3*interval, func(s simulator.EnclosureState) bool { return s.StopsReceived > 0 }))
	f.AllCanceledS, _ = readModelCatchUp(ctx, r.stack, session.ID, t1, recording.DeviceCanceled, 6*interval+3*time.Minute)
	r.printf("cancel %.0f ms; STOP received p50 %.2f s p99 %.2f s max %.2f s; all CANCELED in the API after %.1f s\n",
		f.CancelMS, f.StopReceived.P50MS/1000, f.StopReceived.P99MS/1000, f.StopReceived.MaxMS/1000, f.AllCanceledS)

	limit := float64((interval + 250*time.Millisecond).Milliseconds())
	return f, []TargetOutcome{
		atMost(fmt.Sprintf("p99 START delay over %d enclosures (ms)", m), f.StartReceived.P99MS, limit, "one interval + 250 ms"),
		atMost(fmt.Sprintf("p99 STOP delay over %d enclosures (ms)", m), f.StopReceived.P99MS, limit, "one interval + 250 ms"),
	}, nil
}

// readModelCatchUp waits until every enclosure of the session has status in the API and
// returns the seconds since t0, or -1 and how many had it when the window closed.
func readModelCatchUp(ctx context.Context, s *Stack, id int64, t0 time.Time, status recording.DeviceStatus, within time.Duration) (float64, int) {
	secs, err := waitAll(ctx, s, id, t0, status, within)
	if err == nil {
		return secs, 0
	}
	var x api.SessionView
	n := 0
	if s.Call(ctx, "GET", fmt.Sprintf("/api/recording-session/%d", id), nil, &x) == nil {
		for _, d := range x.DeviceStatuses {
			if d.Status == status {
				n++
			}
		}
	}
	return -1, n
}

// registered waits until every simulated enclosure is known and returns their ids.
func registered(ctx context.Context, s *Stack, sim *simulator.Simulator, within time.Duration) ([]int64, error) {
	deadline := time.Now().Add(within)
	for {
		var ids []int64
		for _, e := range sim.Enclosures() {
			d, err := s.Store.DeviceByName(ctx, e.Name(), time.Now(), time.Minute)
			if err != nil {
				break
			}
			ids = append(ids, d.ID)
		}
		if len(ids) == len(sim.Enclosures()) {
			return ids, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d enclosures registered", len(ids), len(sim.Enclosures()))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// firstSeen polls the enclosures and returns, for each, how long after t0 cond first held.
func firstSeen(sim *simulator.Simulator, t0 time.Time, within time.Duration, cond func(simulator.EnclosureState) bool) []time.Duration {
	all := sim.Enclosures()
	seen := make([]time.Duration, len(all))
	left := len(all)
	for left > 0 && time.Since(t0) < within {
		for i, e := range all {
			if seen[i] == 0 && cond(e.State()) {
				seen[i] = time.Since(t0)
				left--
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range seen {
		if seen[i] == 0 {
			seen[i] = within // never: counted at the window's end
		}
	}
	return seen
}

// waitAll waits until every enclosure of the session has status in the API; seconds since t0.
func waitAll(ctx context.Context, s *Stack, id int64, t0 time.Time, status recording.DeviceStatus, within time.Duration) (float64, error) {
	others := map[string]int{}
	for time.Since(t0) < within {
		var x api.SessionView
		if err := s.Call(ctx, "GET", fmt.Sprintf("/api/recording-session/%d", id), nil, &x); err != nil {
			return 0, err
		}
		clear(others)
		for _, d := range x.DeviceStatuses {
			if d.Status != status {
				others[string(d.Status)+" "+d.Message]++
			}
		}
		if len(others) == 0 {
			return round2(time.Since(t0).Seconds()), nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	var sample []string
	for k, n := range others {
		if len(sample) == 5 {
			sample = append(sample, "...")
			break
		}
		sample = append(sample, fmt.Sprintf("%d x %s", n, k))
	}
	return 0, fmt.Errorf("session %d: not every enclosure %s within %s; the others: %s", id, status, within, strings.Join(sample, "; "))
}
