package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/jax-mba/mba/internal/recording"
)

// SilenceMarker flags enclosures silent since cutoff and queues a transition for each
// assigned one, in one transaction; it returns their names.
type SilenceMarker interface {
	MarkSilent(ctx context.Context, cutoff, now time.Time) ([]string, error)
	// Listening is for how long the API has been hearing heartbeats without a break (0 when
	// it is not now; known false when no API ever said).
	Listening(ctx context.Context, gap time.Duration) (since time.Duration, known bool, err error)
}

// OrphanStore finds and releases recording state whose workflow is gone.
type OrphanStore interface {
	Orphans(ctx context.Context, settle time.Time) ([]Orphan, error)
	ReleaseOrphan(ctx context.Context, o Orphan, reason string, now time.Time) error
}

// Orphan is a mailbox, or a session in progress, that a workflow should hold.
type Orphan struct {
	SessionID  int64
	DeviceID   int64  // 0 for a whole session
	WorkflowID string // the mailbox's workflow; empty for a session (its id derives from SessionID)
}

// WorkflowStatus tells whether a workflow still runs: "" when it does, NotStarted when Temporal
// does not know it, else how it ended.
type WorkflowStatus func(ctx context.Context, workflowID string) (string, error)

// NotStarted is the WorkflowStatus of a workflow Temporal does not know.
const NotStarted = "unknown to Temporal"

// Fleet watches every enclosure's heartbeats, and the workflows that drive them.
type Fleet struct {
	Devices  SilenceMarker
	Orphans  OrphanStore
	Workflow WorkflowStatus
	// SessionWorkflowID names a session's workflow.
	SessionWorkflowID func(sessionID int64) string
	// Conditions and Raiser keep the alerts the scan watches (idle enclosures DOWN, clocks
	// off); either nil: none.
	Conditions FleetConditions
	Raiser     AlertRaiser
	// Facts and Limits are the other conditions the scan watches (disk, frame rate, upload
	// backlog, notification channels); the limits are the worker's settings, so a change
	// takes effect when the worker restarts. Facts nil: none.
	Facts  ConditionFacts
	Limits ConditionLimits
	// Operator and Timeline put what operators did to sessions' workflows with the Temporal CLI
	// or Web UI (cancel, terminate, reset) on the sessions' timelines; either nil: not watched.
	Operator OperatorActions
	Timeline OperatorTimeline

	mu     sync.Mutex
	noNews map[string]time.Time // runs Operator said carry no operator's action, and when
}

// OperatorActions reads from Temporal what operators did to sessions' workflows.
type OperatorActions interface {
	// RecentRuns lists the runs of sessions' workflows that may carry an operator's action since
	// since (ended canceled or terminated, or started by a reset), cheaply (no histories).
	RecentRuns(ctx context.Context, since time.Time) ([]OperatorRun, error)
	// Action reads what was done to a run; ok is false when no operator did anything (it ended
	// otherwise, or its parent canceled it).
	Action(ctx context.Context, r OperatorRun) (a OperatorAction, ok bool, err error)
}

// OperatorRun is a run of a session's (or an enclosure's) workflow to look at.
type OperatorRun struct {
	Key        string // names the action: a run is canceled, terminated or started by a reset once
	WorkflowID string
	RunID      string
	SessionID  int64
	DeviceID   int64 // 0: the session's own workflow
	Closed     bool  // ended canceled or terminated; else a run a reset may have started
}

// OperatorAction is what an operator did, as the timeline tells it.
type OperatorAction struct {
	Kind    string // a timeline kind: temporal.cancel, temporal.terminate, temporal.reset
	Message string // what, by whom (the identity Temporal recorded), why
	At      time.Time
}

// OperatorTimeline writes operators' actions on sessions' timelines, each once.
type OperatorTimeline interface {
	KnownTimelineKeys(ctx context.Context, keys []string) ([]string, error)
	RecordTimelineOnce(ctx context.Context, sessionID, deviceID int64, key, kind, message string, at time.Time) error
}

// operatorWindow is how far back each reconciliation looks for operators' actions: scans that
// failed meanwhile (Temporal or the database away) lose nothing shorter than this.
const operatorWindow = time.Hour

// FleetConditions finds the alerts of the fleet scan to raise and to clear.
type FleetConditions interface {
	// FleetDown lists the idle enclosures DOWN since after since with no open fleet alert,
	// and the ids of the enclosures with an open one that heartbeat again.
	FleetDown(ctx context.Context, since time.Time) (raise []DownEnclosure, clear []int64, err error)
	// ClockSkew lists the enclosures in a session whose clock is off by more than threshold
	// with no open alert, and the open alerts whose enclosure's clock is fine again or that
	// left the session.
	ClockSkew(ctx context.Context, threshold time.Duration) (raise []SkewedEnclosure, clear []SessionDevice, err error)
}

// SkewedEnclosure is an enclosure in a session whose clock is off.
type SkewedEnclosure struct {
	SessionID int64
	DeviceID  int64
	Name      string
	SkewMS    int64
}

// SessionDevice names a session alert's subject.
type SessionDevice struct {
	SessionID int64
	DeviceID  int64
}

// DownEnclosure is an idle enclosure that is DOWN.
type DownEnclosure struct {
	ID        int64
	Name      string
	DownSince time.Time
}

// fleetAlertWindow: an idle enclosure DOWN for longer than this when first seen is no news
// (one shelved long ago, the first time the monitor runs); within it, a raise that failed
// (Temporal away) is tried again on the next scans.
const fleetAlertWindow = time.Hour

// FleetWatch is how the fleet monitor scans.
type FleetWatch struct {
	Every time.Duration // between scans
	Down  time.Duration // silence after which an enclosure is DOWN
	Run   time.Duration // how long this activity runs before the workflow starts it again
	// ReconcileEvery is how often to look for state left by workflows that ended without
	// cleaning up (an operator's terminate); state younger than Settle is left alone.
	ReconcileEvery, Settle time.Duration
	// ListenGap: an API that has not renewed its listening mark for this long is not
	// listening. Silence is judged only once the API has listened for Down without a break,
	// so an outage of the API (or a worker that starts before it) never marks the fleet DOWN.
	// 0 turns the check off.
	ListenGap time.Duration
	// ClockSkew: an enclosure in a session whose clock is off by more than this raises a
	// clock_skew alert (the alert's damping absorbs a clock that hovers at the threshold);
	// 0: not watched.
	ClockSkew time.Duration
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
	var reconciled time.Time
	for time.Now().Before(end) {
		now := time.Now()
		if w.ReconcileEvery > 0 && now.Sub(reconciled) >= w.ReconcileEvery {
			reconciled = now
			if err := f.releaseOrphans(ctx, now.Add(-w.Settle), now); err != nil {
				log.Warn("releasing orphaned recording state", "error", err)
			}
			if err := f.operatorActions(ctx, now.Add(-operatorWindow)); err != nil {
				log.Warn("putting operators' Temporal actions on the timelines", "error", err)
			}
		}
		names, err := f.markSilent(ctx, w, now)
		if err != nil {
			log.Warn("scanning for silent enclosures", "error", err)
		} else if len(names) > 0 {
			log.Info("enclosures went silent", "names", names)
		}
		if err := f.fleetAlerts(ctx, now); err != nil {
			log.Warn("raising and clearing the fleet's DOWN alerts", "error", err)
		}
		if err := f.skewAlerts(ctx, w.ClockSkew); err != nil {
			log.Warn("raising and clearing clock skew alerts", "error", err)
		}
		if err := f.conditionAlerts(ctx, now); err != nil {
			log.Warn("raising and clearing disk, frame rate, upload backlog and channel alerts", "error", err)
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

// markSilent marks the enclosures silent past w.Down, if the API could hear them that long.
func (f *Fleet) markSilent(ctx context.Context, w FleetWatch, now time.Time) ([]string, error) {
	if w.ListenGap > 0 {
		heard, known, err := f.Devices.Listening(ctx, w.ListenGap)
		if err != nil {
			return nil, err
		}
		if known && heard < w.Down {
			return nil, nil // silence the API could not have heard proves nothing
		}
	}
	return f.Devices.MarkSilent(ctx, now.Add(-w.Down), now)
}

// releaseOrphans releases the mailboxes and sessions whose workflows ended without their
// clean-up (terminated from the CLI), so enclosures are not left with a START or STOP forever.
func (f *Fleet) releaseOrphans(ctx context.Context, settle, now time.Time) error {
	orphans, err := f.Orphans.Orphans(ctx, settle)
	if err != nil {
		return err
	}
	for _, o := range orphans {
		if o.WorkflowID == "" {
			o.WorkflowID = f.SessionWorkflowID(o.SessionID)
		}
		ended, err := f.Workflow(ctx, o.WorkflowID)
		if err != nil || ended == "" {
			continue
		}
		if ended == NotStarted && o.DeviceID != 0 {
			// The session starts its enclosures' workflows gradually (a large session takes a
			// while): a mailbox is orphaned only once its session's workflow has ended too.
			if sessionEnded, err := f.Workflow(ctx, f.SessionWorkflowID(o.SessionID)); err != nil || sessionEnded == "" || sessionEnded == NotStarted {
				continue
			}
		}
		reason := fmt.Sprintf("released: workflow %s ended (%s) without finishing", o.WorkflowID, ended)
		if err := f.Orphans.ReleaseOrphan(ctx, o, reason, now); err != nil {
			return err
		}
		activity.GetLogger(ctx).Warn("released orphaned recording state", "workflow_id", o.WorkflowID, "ended", ended)
	}
	return nil
}

// operatorActions writes on the sessions' timelines what operators did to their workflows
// since since and is not there yet.
func (f *Fleet) operatorActions(ctx context.Context, since time.Time) error {
	if f.Operator == nil || f.Timeline == nil {
		return nil
	}
	runs, err := f.Operator.RecentRuns(ctx, since)
	if err != nil || len(runs) == 0 {
		return err
	}
	keys := make([]string, len(runs))
	for i, r := range runs {
		keys[i] = r.Key
	}
	known, err := f.Timeline.KnownTimelineKeys(ctx, keys)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.noNews == nil {
		f.noNews = map[string]time.Time{}
	}
	maps.DeleteFunc(f.noNews, func(_ string, at time.Time) bool { return at.Before(since) }) // out of the window
	for _, r := range runs {
		if _, seen := f.noNews[r.Key]; seen || slices.Contains(known, r.Key) {
			continue
		}
		a, ok, err := f.Operator.Action(ctx, r)
		if err != nil {
			return err
		}
		if !ok {
			f.noNews[r.Key] = time.Now()
			continue
		}
		if err := f.Timeline.RecordTimelineOnce(ctx, r.SessionID, r.DeviceID, r.Key, a.Kind, a.Message, a.At); err != nil {
			return err
		}
		activity.GetLogger(ctx).Info("an operator acted on a workflow", "workflow_id", r.WorkflowID, "kind", a.Kind, "message", a.Message)
	}
	return nil
}

// fleetAlerts raises a fleet alert (no session) for each idle enclosure that went DOWN, and
// clears it once the enclosure heartbeats again (the heartbeat path clears down_since). The
// store is the truth, so a raise or clear that failed is tried again on the next scan.
func (f *Fleet) fleetAlerts(ctx context.Context, now time.Time) error {
	if f.Conditions == nil || f.Raiser == nil {
		return nil
	}
	raise, clear, err := f.Conditions.FleetDown(ctx, now.Add(-fleetAlertWindow))
	if err != nil {
		return fmt.Errorf("fleetAlerts: %w", err)
	}
	var errs []error
	for _, d := range raise {
		errs = append(errs, f.Raiser.SignalAlert(ctx, AlertSignal{Kind: recording.AlertEnclosureDown, DeviceID: d.ID, Active: true,
			Summary: fmt.Sprintf("%s is DOWN (idle; marked %s: no heartbeat past the DOWN threshold)", d.Name,
				d.DownSince.UTC().Format(time.RFC3339))}))
	}
	for _, id := range clear {
		errs = append(errs, f.Raiser.SignalAlert(ctx, AlertSignal{Kind: recording.AlertEnclosureDown, DeviceID: id}))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fleetAlerts: %w", err)
	}
	return nil
}

// skewAlerts raises a session alert for each enclosure in a session whose clock is off by
// more than threshold, and clears it once the clock is fine again or the enclosure left the
// session.
func (f *Fleet) skewAlerts(ctx context.Context, threshold time.Duration) error {
	if f.Conditions == nil || f.Raiser == nil || threshold <= 0 {
		return nil
	}
	raise, clear, err := f.Conditions.ClockSkew(ctx, threshold)
	if err != nil {
		return fmt.Errorf("skewAlerts: %w", err)
	}
	var errs []error
	for _, d := range raise {
		off := time.Duration(d.SkewMS) * time.Millisecond
		errs = append(errs, f.Raiser.SignalAlert(ctx, AlertSignal{Kind: recording.AlertClockSkew, SessionID: d.SessionID,
			DeviceID: d.DeviceID, Active: true, Summary: fmt.Sprintf("%s's clock is off by %s in session %d (threshold %s)",
				d.Name, off.Round(time.Second), d.SessionID, threshold)}))
	}
	for _, s := range clear {
		errs = append(errs, f.Raiser.SignalAlert(ctx, AlertSignal{Kind: recording.AlertClockSkew, SessionID: s.SessionID, DeviceID: s.DeviceID}))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("skewAlerts: %w", err)
	}
	return nil
}
