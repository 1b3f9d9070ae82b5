package bench

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/simulator"
	"github.com/jax-mba/mba/workflows"
)

// LongRunFigures are scenario 4's results.
type LongRunFigures struct {
	Sessions             int              `json:"sessions"`
	EnclosuresPerSession int              `json:"enclosures_per_session"`
	DurationS            int              `json:"duration_s"`
	ServeRSSIdleMB       float64          `json:"serve_rss_idle_mb"`
	Usage                map[string]Usage `json:"usage_while_recording"`
	KBPerRecording       float64          `json:"serve_kb_per_recording_enclosure"`
	HistoryEventsAvg     float64          `json:"history_events_per_enclosure_avg"`
	HistoryEventsMax     int64            `json:"history_events_per_enclosure_max"`
	SessionsComplete     int              `json:"sessions_complete"`
	Recordings           int              `json:"recordings"`
	Duplicated           int              `json:"enclosures_started_twice"`
	Lost                 int              `json:"enclosures_not_released"`
}

// longRun: many concurrent sessions; worker memory per recording enclosure, history events per
// enclosure, and no lost or duplicated commands.
func longRun(ctx context.Context, r *runner) (any, []TargetOutcome, error) {
	sessions, per, duration, interval := 10, 100, 90, 10*time.Second
	if r.cfg.Quick {
		sessions, per, duration, interval = 4, 25, 10, 2*time.Second
	}
	n := sessions * per
	f := LongRunFigures{Sessions: sessions, EnclosuresPerSession: per, DurationS: duration}
	sim, stop, err := startSim(simulator.Config{BaseURL: r.stack.Base + "/api", Count: n, NamePrefix: "LONG",
		Interval: interval, FollowUp: interval / 10})
	if err != nil {
		return nil, nil, err
	}
	defer stop()
	ids, err := registered(ctx, r.stack, sim, 30*time.Second)
	if err != nil {
		return nil, nil, err
	}
	f.ServeRSSIdleMB = Sample(r.processes()[:1]).Stop()["mba serve (API + worker)"].MaxRSSMB

	var sids []int64
	for s := 0; s < sessions; s++ {
		var spec []map[string]any
		for i, id := range ids[s*per : (s+1)*per] {
			spec = append(spec, map[string]any{"device_id": id, "filename_prefix": fmt.Sprintf("long%d_%d", s, i)})
		}
		var x api.SessionView
		if err := r.stack.Call(ctx, "POST", "/api/recording-session", map[string]any{"name": fmt.Sprint("long ", s),
			"duration": duration, "target_fps": 30, "device_spec": spec}, &x); err != nil {
			return nil, nil, err
		}
		sids = append(sids, x.ID)
	}
	sampler := Sample(r.processes())
	deadline := time.Now().Add(time.Duration(duration)*time.Second + 2*time.Minute)
	for _, id := range sids {
		if _, err := waitAll(ctx, r.stack, id, time.Now(), recording.DeviceComplete, time.Until(deadline)); err != nil {
			sampler.Stop()
			return nil, nil, err
		}
	}
	f.Usage = sampler.Stop()
	peak := f.Usage["mba serve (API + worker)"].MaxRSSMB
	f.KBPerRecording = round1((peak - f.ServeRSSIdleMB) * 1024 / float64(n))

	// Let every enclosure take COMPLETE, then check each recorded once and was released.
	time.Sleep(3 * interval / 2)
	for _, e := range sim.Enclosures() {
		st := e.State()
		f.Recordings += st.Recordings
		if st.Recordings > 1 {
			f.Duplicated++
		}
		if st.SessionID != 0 {
			f.Lost++
		}
	}
	for _, id := range sids {
		var x api.SessionView
		if err := r.stack.Call(ctx, "GET", fmt.Sprintf("/api/recording-session/%d", id), nil, &x); err == nil && x.Status == recording.SessionComplete {
			f.SessionsComplete++
		}
	}

	tc, err := client.Dial(client.Options{HostPort: r.cfg.TemporalAddress, Logger: quietLogger()})
	if err != nil {
		return nil, nil, err
	}
	defer tc.Close()
	var total int64
	for s, sid := range sids {
		for _, id := range ids[s*per : (s+1)*per] {
			d, err := tc.DescribeWorkflowExecution(ctx, workflows.DeviceWorkflowID(sid, id), "")
			if err != nil {
				return nil, nil, err
			}
			total += d.WorkflowExecutionInfo.HistoryLength
			f.HistoryEventsMax = max(f.HistoryEventsMax, d.WorkflowExecutionInfo.HistoryLength)
		}
	}
	f.HistoryEventsAvg = round1(float64(total) / float64(n))
	r.printf("%d sessions x %d enclosures, %d s: serve RSS %.0f MB idle, %.0f MB peak (%.1f KB per recording enclosure)\n",
		sessions, per, duration, f.ServeRSSIdleMB, peak, f.KBPerRecording)
	r.printf("history events per enclosure: avg %.1f max %d; sessions COMPLETE %d/%d; started twice %d; not released %d\n",
		f.HistoryEventsAvg, f.HistoryEventsMax, f.SessionsComplete, sessions, f.Duplicated, f.Lost)
	projected := f.ServeRSSIdleMB + f.KBPerRecording*1000/1024
	return f, []TargetOutcome{
		atMost("history events per enclosure per recording day (1-day session)", float64(f.HistoryEventsMax), 30,
			"a session's events do not grow with its length: a 2-day session has half per day"),
		atMost("serve RSS with 1000 recording enclosures (MB)", projected, 512,
			fmt.Sprintf("idle + 1000 x measured per-enclosure cost (%d measured)", n)),
		atMost("lost or duplicated commands", float64(f.Duplicated+f.Lost+(sessions-f.SessionsComplete)), 0, ""),
	}, nil
}
