package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
)

// SilenceMarker flags enclosures silent since cutoff and queues a transition for each
// assigned one, in one transaction; it returns their names.
type SilenceMarker interface {
	MarkSilent(ctx context.Context, cutoff, now time.Time) ([]string, error)
}

// Fleet watches every enclosure's heartbeats.
type Fleet struct {
	Devices SilenceMarker
}

// FleetWatch is how the fleet monitor scans.
type FleetWatch struct {
	Every time.Duration // between scans
	Down  time.Duration // silence after which an enclosure is DOWN
	Run   time.Duration // how long this activity runs before the workflow starts it again
}

// WatchSilence scans Postgres every w.Every for enclosures silent past w.Down, for w.Run.
// Affected workflows learn it through the outbox, so the workflow history holds no
// per-enclosure polling; this activity heartbeats, so a crashed worker's scan restarts
// within the heartbeat timeout.
func (f *Fleet) WatchSilence(ctx context.Context, w FleetWatch) error {
	log := activity.GetLogger(ctx)
	end := time.Now().Add(w.Run)
	ticker := time.NewTicker(w.Every)
	defer ticker.Stop()
	for time.Now().Before(end) {
		now := time.Now()
		names, err := f.Devices.MarkSilent(ctx, now.Add(-w.Down), now)
		if err != nil {
			log.Warn("scanning for silent enclosures", "error", err)
		} else if len(names) > 0 {
			log.Info("enclosures went silent", "names", names)
		}
		activity.RecordHeartbeat(ctx, len(names))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
	return nil
}
