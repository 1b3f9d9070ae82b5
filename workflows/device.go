package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/heartbeat"
	"github.com/jax-mba/mba/internal/recording"
)

// DeviceRecording drives one enclosure through START, recording (with resumes after reboots,
// silences and the planned end) and COMPLETE, writing its status to the read model; then it
// verifies every file of the recording as the upload agent sends it.
func DeviceRecording(ctx workflow.Context, in DeviceInput) (DeviceResult, error) {
	d, err := setUpDevice(ctx, in)
	if err != nil {
		return DeviceResult{}, err
	}
	err = d.run(ctx)
	switch {
	case errors.Is(ctx.Err(), workflow.ErrCanceled):
		return d.canceled(ctx)
	case err != nil:
		return d.result(), err // continue-as-new
	}
	return d.finish(ctx)
}

// setUpDevice makes the workflow's state, answers the status query, and restarts the file
// checks an earlier run left unfinished.
func setUpDevice(ctx workflow.Context, in DeviceInput) (*device, error) {
	d := newDevice(ctx, in)
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (DeviceState, error) { return *d.st, nil }); err != nil {
		return nil, err
	}
	d.files.resume(ctx)
	return d, nil
}

// canceled: canceled from outside (the session, or an operator with the temporal CLI), stop
// the enclosure and record why, on a context the cancellation does not reach.
func (d *device) canceled(ctx workflow.Context) (DeviceResult, error) {
	cleanup, _ := workflow.NewDisconnectedContext(ctx)
	d.stopAndEnd(cleanup, recording.DeviceCanceled, "workflow canceled")
	d.record(cleanup)
	tagStatus(cleanup, d.st.Status)
	d.clear(cleanup)
	return d.result(), temporal.NewCanceledError()
}

// finish records how the recording ended, tells the session, then releases the enclosure
// while its files are checked.
func (d *device) finish(ctx workflow.Context) (DeviceResult, error) {
	d.record(ctx)
	tagStatus(ctx, d.st.Status)
	if d.st.Status == recording.DeviceFailed && !d.lost { // lost has its own alert
		d.raise(ctx, recording.AlertDeviceFailed, "FAILED: "+d.st.Message)
	}
	d.tellSession(ctx)
	if workflow.GetVersion(ctx, changeVerifyFiles, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		d.release(ctx)
		return d.result(), nil
	}
	// The files are checked while the enclosure is released: an enclosure that goes quiet
	// after its recording must not hold up the check of files its agent already sent.
	released := false
	workflow.Go(ctx, func(ctx workflow.Context) {
		d.release(ctx)
		released = true
	})
	d.files.checkAll(ctx, d.st.Segments, d.st.Recorded)
	_ = workflow.Await(ctx, func() bool { return released })
	if errors.Is(ctx.Err(), workflow.ErrCanceled) {
		return d.result(), temporal.NewCanceledError() // the recording is over: nothing to stop
	}
	return d.result(), nil
}

// device is the workflow's state and handles.
type device struct {
	in      DeviceInput
	st      *DeviceState
	events  workflow.ReceiveChannel
	stops   workflow.ReceiveChannel
	ends    workflow.ReceiveChannel // EndChange: the session was extended or shortened
	files   *verifier
	endedAt time.Time
	// endTimer fires at the planned end plus grace; silence fires when a silent enclosure is
	// given up. Both are kept across loop iterations, never recreated per iteration.
	endTimer, silence workflow.Future
	// shortEnd fires at a planned end moved before the end of the segment the enclosure records.
	shortEnd      workflow.Future
	cancelSilence workflow.CancelFunc
	commands      int  // command activities scheduled in this run
	endRechecked  bool // the end deadline was extended once for an enclosure not heard since
	steps         int  // waits of this run
	lost          bool // ended lost, and its alert raised (it ends in this run: not state)
}

func newDevice(ctx workflow.Context, in DeviceInput) *device {
	d := &device{in: in, st: &in.State,
		events: workflow.GetSignalChannel(ctx, SignalDeviceEvent),
		stops:  workflow.GetSignalChannel(ctx, SignalStop),
		ends:   workflow.GetSignalChannel(ctx, SignalEndChange)}
	if d.st.Status == "" {
		d.st.Status = recording.DevicePending
	}
	d.files = newVerifier(fileScope{SessionID: in.SessionID, DeviceID: in.DeviceID, Enclosure: in.DeviceName,
		FilePrefix: in.FilePrefix, Hourly: in.FragmentHourly, Settings: in.Settings,
		Update: d.update, Events: d.events, Fresh: d.fresh}, &d.st.Files)
	return d
}

func (d *device) result() DeviceResult {
	return DeviceResult{Status: d.st.Status, Message: d.st.Message, Recorded: d.st.Recorded, Segments: d.st.Segments, Lost: d.st.Lost}
}

func (d *device) ended() bool {
	return d.st.Status != recording.DevicePending && d.st.Status != recording.DeviceRecording
}

// run drives the enclosure until its recording ended, or continues as new.
func (d *device) run(ctx workflow.Context) error {
	if d.st.Status == recording.DevicePending && d.st.Stop == nil {
		d.start(ctx, d.firstStart(), d.in.Settings.StartDeadline)
	}
	for !d.ended() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.st.Stop != nil {
			d.stopAndEnd(ctx, recording.DeviceCanceled, d.st.Stop.Reason)
			break
		}
		// Pending signals carry over too; each run handles at least one thing, so it moves on.
		if d.steps > 0 && d.historyFull(ctx) {
			return d.continueAsNew(ctx)
		}
		d.waitRecording(ctx)
		d.steps++
	}
	return ctx.Err()
}

// historyFull says when to continue as new, so a 30-day session's history stays as short as
// a 1-hour one's.
func (d *device) historyFull(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	limit := d.in.Settings.HistoryLimit
	return info.GetContinueAsNewSuggested() || (limit > 0 && info.GetCurrentHistoryLength() >= limit)
}

// continueAsNew drains the signals received so far into the state, so none is lost, and
// starts a fresh run with a short history.
func (d *device) continueAsNew(ctx workflow.Context) error {
	for {
		var ev recording.Event
		if !d.events.ReceiveAsync(&ev) {
			break
		}
		d.st.Pending = append(d.st.Pending, ev)
	}
	var stop StopRequest
	if d.stops.ReceiveAsync(&stop) {
		d.st.Stop = &stop
	}
	for {
		var c EndChange
		if !d.ends.ReceiveAsync(&c) {
			break
		}
		d.moveEnd(ctx, c)
	}
	in := d.in
	in.State = *d.st
	return workflow.NewContinueAsNewError(ctx, DeviceRecording, in)
}

// changeResetSafeIDs is the version change that took the run id out of command activity ids:
// a reset starts a new run that replays the old one's history, and an id naming the old run
// failed that replay (TMPRL1100).
const changeResetSafeIDs = "reset-safe-activity-ids"

// command returns the context of a command activity the enclosure completes (SendStart,
// SendStop, SendComplete). Its id is its kind and its place in the run, the same in every
// replay; the activity tells the mailbox its run as well, so a completion still queued for an
// earlier run never completes an activity of this one. retry nil means one attempt.
func (d *device) command(ctx workflow.Context, kind string, attempt time.Duration, retry *temporal.RetryPolicy) workflow.Context {
	d.commands++
	if retry == nil {
		retry = &temporal.RetryPolicy{MaximumAttempts: 1}
	}
	id := fmt.Sprintf("%s-%d", kind, d.commands)
	if workflow.GetVersion(ctx, changeResetSafeIDs, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		// The run the id was written with: after a reset, the original run, never the new one.
		id = fmt.Sprintf("%s-%s-%d", kind, workflow.GetInfo(ctx).OriginalRunID, d.commands)
	}
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		ActivityID:          id,
		StartToCloseTimeout: attempt,
		RetryPolicy:         retry,
	})
}

// commandAttempt bounds one attempt of a command activity: the enclosure completes it through
// the outbox, and a completion lost on the way (a VM pause, an outage) must not leave it pending
// for long; the retry writes the mailbox again or finds the command already settled.
const commandAttempt = 5 * time.Minute

// changeLocalDB is the version change that made the read-model writes local activities.
const changeLocalDB = "local-read-model-writes"

// dbWrite runs a short database activity (the read model, the mailbox) until the database
// answers. Since version 1 it is a local activity: one marker event in the history instead of
// three events and a workflow task, which keeps an enclosure's history to a few dozen events.
// Runs recorded before the change replay it as the regular activity it was.
func dbWrite(ctx workflow.Context, activity any, arg, result any) error {
	retry := &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute}
	if workflow.GetVersion(ctx, changeLocalDB, workflow.DefaultVersion, 1) == 1 {
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: 30 * time.Second, RetryPolicy: retry})
		// A method of a nil *activities.X: the SDK runs the worker's registered one by its name.
		return workflow.ExecuteLocalActivity(lctx, activity, arg).Get(ctx, result)
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second, RetryPolicy: retry})
	return workflow.ExecuteActivity(actx, activity, arg).Get(ctx, result)
}

// update writes the read model; it retries until the database answers.
func (d *device) update(ctx workflow.Context, u activities.DeviceUpdate) {
	var a *activities.Recording
	u.SessionID, u.DeviceID = d.in.SessionID, d.in.DeviceID
	if u.At.IsZero() {
		u.At = workflow.Now(ctx)
	}
	if err := dbWrite(ctx, a.UpdateDevice, u, nil); err != nil {
		workflow.GetLogger(ctx).Error("updating the read model", "error", err)
	}
}

// firstStart is the START of the recording's first segment; resumed segments derive from it
// (recording.Start.Resumed).
func (d *device) firstStart() recording.Start {
	return recording.Plan{Duration: d.in.Duration, FragmentHourly: d.in.FragmentHourly, FilePrefix: d.in.FilePrefix,
		TargetFPS: d.in.TargetFPS, ApplyFilter: d.in.ApplyFilter}.Start(d.in.SessionID)
}

// start sends START with params and waits for the enclosure to acknowledge it, for the
// deadline, or for a stop request.
func (d *device) start(ctx workflow.Context, params recording.Start, deadline time.Duration) {
	var a *activities.Recording
	actCtx, cancelStart := workflow.WithCancel(ctx)
	defer cancelStart()
	// Each attempt waits commandAttempt, then the retry writes the mailbox again (the attempt count
	// in the Web UI shows an enclosure that does not answer).
	retry := &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute}
	started := workflow.ExecuteActivity(d.command(actCtx, "start", commandAttempt, retry), a.SendStart,
		activities.StartCommand{DeviceID: d.in.DeviceID, Params: params})
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	timeout := workflow.NewTimer(timerCtx, deadline)

	for done := false; !done && ctx.Err() == nil; {
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(started, func(f workflow.Future) {
			done = true
			var ev recording.Event
			if err := f.Get(ctx, &ev); err != nil {
				if ctx.Err() == nil {
					d.end(recording.DeviceFailed, fmt.Sprintf("could not command the enclosure: %v", err))
				}
				return
			}
			d.onStartResult(ctx, ev)
		})
		sel.AddFuture(timeout, func(workflow.Future) {
			done = true
			cancelStart()
			d.stopAndEnd(ctx, recording.DeviceFailed, fmt.Sprintf("did not start recording within %s", deadline))
		})
		sel.AddReceive(d.stops, func(c workflow.ReceiveChannel, _ bool) {
			var req StopRequest
			c.Receive(ctx, &req)
			d.st.Stop = &req
			done = true
			cancelStart()
		})
		sel.AddReceive(d.events, func(c workflow.ReceiveChannel, _ bool) {
			var ev recording.Event
			c.Receive(ctx, &ev)
			if !d.fresh(ev) {
				return
			}
			switch ev.Kind {
			case recording.EventStarted, recording.EventEnded:
				// A START settled after its activity timed out arrives as a signal instead.
				done = true
				cancelStart()
				d.onStartResult(ctx, ev)
			case recording.EventFileUploaded: // a fragment of an earlier segment
				d.files.uploaded(ctx, ev)
			case recording.EventReset:
				// It rebooted again before this START settled (two reboots while Temporal was slow:
				// the heartbeat path resumed both): handled once this segment is known started.
				if workflow.GetVersion(ctx, changeResetWhileStarting, workflow.DefaultVersion, 1) == 1 {
					d.st.Reset = &ev
				}
			}
		})
		sel.Select(ctx)
	}
}

// changeResumedSegmentEnded is the version change that counts a resumed segment that ended
// before its START settled.
const changeResumedSegmentEnded = "resumed-segment-ended"

// changeResumedSegmentTimeline is the version change that writes the "resumed" timeline event
// for a resumed segment first heard of by its end.
const changeResumedSegmentTimeline = "resumed-segment-timeline"

// changeResetWhileStarting is the version change that handles a reset arriving while a START is
// pending (it was dropped, and with it the lost segment's seconds and the next segment).
const changeResetWhileStarting = "reset-while-starting"

// fresh reports whether an outbox event is new (delivery is at least once).
func (d *device) fresh(ev recording.Event) bool {
	if ev.ID != 0 && ev.ID <= d.st.LastEventID {
		return false
	}
	if ev.ID > d.st.LastEventID {
		d.st.LastEventID = ev.ID
	}
	return true
}

// onStartResult handles how a START ended: recording, or a recording that ended at once.
func (d *device) onStartResult(ctx workflow.Context, ev recording.Event) {
	d.fresh(ev)
	switch ev.Kind {
	case recording.EventStarted:
		first := d.st.Segments == 0
		d.st.Segments++
		d.st.SegmentStart = ev.At
		d.st.Status = recording.DeviceRecording
		kind, msg := "started", "recording"
		// The enclosure's own end of this segment: a planned end moved since is the workflow's
		// to keep (a STOP before it, a new segment after it).
		d.st.SegmentEnd = d.st.PlannedEnd
		if first {
			d.st.StartedAt = ev.At
			d.st.SegmentEnd = ev.At.Add(time.Duration(d.in.Duration) * time.Second)
			d.st.PlannedEnd = d.st.SegmentEnd.Add(time.Duration(d.st.Shift) * time.Second)
		} else {
			kind, msg = "resumed", fmt.Sprintf("recording again (segment %d)", d.st.Segments)
		}
		segments := d.st.Segments
		d.update(ctx, activities.DeviceUpdate{Status: recording.DeviceRecording, StartedAt: &d.st.StartedAt, Segments: &segments,
			Event: kind, EventMessage: msg, At: ev.At})
		if first && d.in.Settings.Resume && workflow.GetVersion(ctx, changeResumeAtOnce, workflow.DefaultVersion, 1) == 1 {
			d.planResume(ctx)
		}
	case recording.EventEnded:
		if d.st.Segments == 0 && ev.Duration > 0 {
			// It recorded, and finished, before this workflow got to it (a short session).
			d.st.Segments = 1
			d.st.StartedAt = ev.At.Add(-time.Duration(ev.Duration) * time.Second)
		} else if ev.Duration > 0 && workflow.GetVersion(ctx, changeResumedSegmentEnded, workflow.DefaultVersion, 1) == 1 {
			// The segment the heartbeat path resumed recorded, and finished, before this workflow
			// heard of the reboot (Temporal was down): it counts, and so does the gap before it.
			d.st.Segments++
			d.st.SegmentStart = ev.At.Add(-time.Duration(ev.Duration) * time.Second)
			if workflow.GetVersion(ctx, changeResumedSegmentTimeline, workflow.DefaultVersion, 1) == 1 {
				// Its start was never reported on its own (a loaded or slow link saw only the
				// end): the timeline still says it recorded again, and when.
				segments := d.st.Segments
				d.update(ctx, activities.DeviceUpdate{Segments: &segments, Event: "resumed",
					EventMessage: fmt.Sprintf("recording again (segment %d)", segments), At: d.st.SegmentStart})
			}
		}
		d.onEnded(ev)
	default: // released: the mailbox was taken over; the enclosure never recorded for us
		d.end(recording.DeviceFailed, "the enclosure was reassigned before it started")
	}
}

// waitRecording waits for the next thing that happens to a recording enclosure.
func (d *device) waitRecording(ctx workflow.Context) {
	if ev := d.st.Reset; ev != nil {
		d.st.Reset = nil
		d.onReset(ctx, *ev) // already counted as seen (fresh)
		return
	}
	if len(d.st.Pending) > 0 {
		ev := d.st.Pending[0]
		d.st.Pending = d.st.Pending[1:]
		d.onEvent(ctx, ev)
		return
	}
	if d.endTimer == nil {
		d.endTimer = workflow.NewTimer(ctx, d.st.PlannedEnd.Add(d.in.Settings.EndGrace).Sub(workflow.Now(ctx)))
	}
	if d.silence == nil && !d.st.SilentSince.IsZero() {
		var silenceCtx workflow.Context
		silenceCtx, d.cancelSilence = workflow.WithCancel(ctx)
		d.silence = workflow.NewTimer(silenceCtx, d.st.SilentSince.Add(d.in.Settings.SilenceTimeout).Sub(workflow.Now(ctx)))
	}
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(d.events, func(c workflow.ReceiveChannel, _ bool) {
		var ev recording.Event
		c.Receive(ctx, &ev)
		d.onEvent(ctx, ev)
	})
	sel.AddReceive(d.stops, func(c workflow.ReceiveChannel, _ bool) {
		var req StopRequest
		c.Receive(ctx, &req)
		d.st.Stop = &req
	})
	sel.AddReceive(d.ends, func(c workflow.ReceiveChannel, _ bool) {
		var change EndChange
		c.Receive(ctx, &change)
		d.moveEnd(ctx, change)
	})
	d.awaitShortEnd(ctx, sel)
	sel.AddFuture(d.endTimer, func(f workflow.Future) {
		if f.Get(ctx, nil) == nil && d.endOverdue(ctx) {
			d.stopAndEnd(ctx, recording.DeviceFailed, fmt.Sprintf("did not report the end of its recording by %s (planned end + %s)",
				d.st.PlannedEnd.Format(time.RFC3339), d.in.Settings.EndGrace))
		}
	})
	if d.silence != nil {
		sel.AddFuture(d.silence, func(f workflow.Future) {
			d.silence = nil
			if f.Get(ctx, nil) == nil {
				d.clear(ctx)
				msg := fmt.Sprintf("lost: silent since %s for %s", d.st.SilentSince.Format(time.RFC3339), d.in.Settings.SilenceTimeout)
				d.end(recording.DeviceFailed, msg)
				d.raise(ctx, recording.AlertEnclosureLost, msg)
				d.lost = true
			}
		})
	}
	sel.Select(ctx)
}

// changeEndByReport is the version change that judges the end deadline by what the enclosure
// reported: after an outage across the planned end (serve or Temporal down), the timer fires
// before the reports of the enclosures reached the workflow.
const changeEndByReport = "end-deadline-by-report"

// endOverdue reports whether the enclosure is past its end deadline, once the timer fired. It
// is not when it reported the end (the report has not reached this workflow yet), nor when the
// service has not heard it since the deadline: it then gets a window of fresh heartbeats
// (bounded by the grace), and the deadline is judged again.
func (d *device) endOverdue(ctx workflow.Context) bool {
	var a *activities.Recording
	if workflow.GetVersion(ctx, changeEndByReport, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return true
	}
	var st activities.EndState
	cmd := activities.DeviceCommand{DeviceID: d.in.DeviceID, SessionID: d.in.SessionID}
	if err := dbWrite(ctx, a.EndState, cmd, &st); err != nil {
		return true
	}
	if st.Ended != nil {
		d.onEnded(*st.Ended)
		return false
	}
	deadline := d.st.PlannedEnd.Add(d.in.Settings.EndGrace)
	if st.LastSeen.Before(deadline) && !d.endRechecked {
		d.endRechecked = true
		d.endTimer = workflow.NewTimer(ctx, min(time.Minute, d.in.Settings.EndGrace))
		return false
	}
	return true
}

// onEvent handles a transition of a recording enclosure.
func (d *device) onEvent(ctx workflow.Context, ev recording.Event) {
	if !d.fresh(ev) {
		return
	}
	switch ev.Kind {
	case recording.EventEnded:
		if !d.extend(ctx, ev) {
			d.onEnded(ev)
		}
	case recording.EventReset:
		d.onReset(ctx, ev)
	case recording.EventSilent:
		d.st.SilentSince = ev.At
		d.update(ctx, activities.DeviceUpdate{Event: "silent", EventMessage: "no heartbeat; waiting for the enclosure to return", At: ev.At})
		d.alertDown(ctx, true, ev.At)
	case recording.EventFileUploaded:
		d.files.uploaded(ctx, ev) // a finished fragment: checked while the recording goes on
	case recording.EventReturned:
		if d.cancelSilence != nil {
			d.cancelSilence()
			d.silence, d.cancelSilence = nil, nil
		}
		gap := ev.At.Sub(d.st.SilentSince).Round(time.Second)
		d.st.SilentSince = time.Time{}
		d.update(ctx, activities.DeviceUpdate{Event: "returned", EventMessage: fmt.Sprintf("heartbeats again after %s", gap), At: ev.At})
		d.alertDown(ctx, false, ev.At)
	}
}

// changeAlerts is the version change that raises an enclosure-DOWN alert when the enclosure
// goes silent mid-session and clears it when it returns.
const changeAlerts = "alerts"

// alertDown raises (down) or clears the session's DOWN alert of this enclosure.
func (d *device) alertDown(ctx workflow.Context, down bool, at time.Time) {
	if workflow.GetVersion(ctx, changeAlerts, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	sig := activities.AlertSignal{Kind: recording.AlertEnclosureDown, SessionID: d.in.SessionID, DeviceID: d.in.DeviceID,
		Active: down, Summary: fmt.Sprintf("%s is DOWN in session %d (marked %s: no heartbeat past the DOWN threshold)", d.name(), d.in.SessionID,
			at.UTC().Format(time.RFC3339))}
	signalAlert(ctx, sig)
}

// signalAlert raises or clears an alert. An alert is no reason to hold up a recording or a
// session: a few attempts of a local activity, then it is only logged.
func signalAlert(ctx workflow.Context, sig activities.AlertSignal) {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 10 * time.Second, MaximumAttempts: 5}})
	var a *activities.Alerts
	if err := workflow.ExecuteLocalActivity(lctx, a.SignalAlert, sig).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("signalling an alert", "kind", sig.Kind, "active", sig.Active, "error", err)
	}
}

// changeAlertConditions is the version change that raises the alerts of the other conditions
// of an enclosure in a session: lost (silent past the silence timeout), FAILED, recorded time
// lost in a reboot gap, a file MISSING or CORRUPT; and the session's finished notice.
const changeAlertConditions = "alert-conditions"

// alertConditions says whether this run raises those alerts (recorded at the first one).
func alertConditions(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, changeAlertConditions, workflow.DefaultVersion, 1) == 1
}

// raise raises one of this enclosure's session alerts, if this run raises them. These
// conditions do not clear by themselves (a lost recording stays lost): a person acknowledges them.
func (d *device) raise(ctx workflow.Context, kind recording.AlertKind, summary string) {
	if !alertConditions(ctx) {
		return
	}
	signalAlert(ctx, activities.AlertSignal{Kind: kind, SessionID: d.in.SessionID, DeviceID: d.in.DeviceID, Active: true,
		Summary: fmt.Sprintf("%s in session %d: %s", d.name(), d.in.SessionID, summary)})
}

func (d *device) name() string {
	return enclosureName(d.in.DeviceName, d.in.DeviceID)
}

// enclosureName names an enclosure in an alert's summary, by its id if it has no name.
func enclosureName(name string, id int64) string {
	return cmp.Or(name, fmt.Sprintf("enclosure %d", id))
}

// onEnded closes the recording with the enclosure's report.
func (d *device) onEnded(ev recording.Event) {
	d.st.Recorded += ev.Duration
	d.endedAt = ev.At
	switch {
	case ev.ErrMsg != "":
		d.end(recording.DeviceFailed, ev.ErrMsg)
	case ev.Stopped:
		d.end(recording.DeviceCanceled, "stopped")
	default:
		d.end(recording.DeviceComplete, "")
	}
}

// changeHonestGaps is the version change that measures a lost segment by the enclosure's last
// report before the loss and its gap from that report's heartbeat (they were measured from the
// restarted client's first heartbeat), and keeps the seconds lost.
const changeHonestGaps = "honest-gaps"

// changeResumeAtOnce is the version change that lets the heartbeat path send the resume START
// on the heartbeat that shows a reboot (it went out one heartbeat later, after this workflow
// had decided): once the recording started, the policy and the plan go in the mailbox.
const changeResumeAtOnce = "resume-at-once"

// planResume writes the resume plan in the mailbox (heartbeat.ResumePlan): the workflow's
// policy (resume on, the minimum segment) and the planned end.
func (d *device) planResume(ctx workflow.Context) {
	var a *activities.Recording
	p := activities.ResumePlan{DeviceID: d.in.DeviceID, SessionID: d.in.SessionID, Plan: heartbeat.ResumePlan{
		PlannedEnd: d.st.PlannedEnd, MinSegment: d.in.Settings.MinSegment, Segments: d.st.Segments, First: d.firstStart()}}
	if err := dbWrite(ctx, a.PlanResume, p, nil); err != nil {
		workflow.GetLogger(ctx).Error("writing the resume plan", "error", err)
	}
}

// onReset handles an enclosure that lost its session mid-recording (PROTOCOL.md 5.6).
func (d *device) onReset(ctx workflow.Context, ev recording.Event) {
	honest := workflow.GetVersion(ctx, changeHonestGaps, workflow.DefaultVersion, 1) == 1 && !ev.LastHeard.IsZero()
	gapFrom := ev.At
	if honest {
		d.st.Recorded += ev.Duration
		gapFrom = ev.LastHeard
	} else if lost := ev.At.Sub(d.st.SegmentStart); lost > 0 {
		d.st.Recorded += int64(lost / time.Second)
	}
	at := workflow.Now(ctx)
	if ev.Resumed {
		// The heartbeat path sent the resume START for the time left then (the same rule as
		// below, heartbeat.ResumeSeconds): this START is that one, and settles with its
		// acknowledgement. Events recorded before the change never say Resumed.
		at = ev.At
	}
	remaining := d.st.PlannedEnd.Sub(at)
	d.update(ctx, activities.DeviceUpdate{Event: "reset", EventMessage: "the enclosure lost its session (rebooted or client restarted)", At: ev.At})
	if !d.in.Settings.Resume {
		d.clear(ctx)
		d.end(recording.DeviceFailed, "the enclosure rebooted mid-recording")
		return
	}
	if remaining < d.in.Settings.MinSegment {
		d.clear(ctx)
		if honest {
			d.addGap(ctx, gapFrom, d.st.PlannedEnd)
			d.end(recording.DeviceComplete, fmt.Sprintf("rebooted %s before the planned end; its last file is unfinalised; not resumed",
				d.st.PlannedEnd.Sub(gapFrom).Round(time.Second)))
			return
		}
		d.end(recording.DeviceComplete, fmt.Sprintf("rebooted %s before the planned end; not resumed", remaining.Round(time.Second)))
		return
	}
	d.st.Status = recording.DevicePending // until the new segment starts
	segments := d.st.Segments
	d.start(ctx, d.firstStart().Resumed(d.st.Segments+1, int64(remaining/time.Second)), min(remaining, d.in.Settings.StartDeadline))
	switch {
	case (d.st.Status == recording.DeviceRecording || d.st.Segments > segments) && honest:
		d.addGap(ctx, gapFrom, d.st.SegmentStart)
	case d.st.Status == recording.DeviceRecording:
		d.update(ctx, activities.DeviceUpdate{Event: "gap", EventMessage: fmt.Sprintf("not recorded for %s", d.st.SegmentStart.Sub(ev.At).Round(time.Second)), At: d.st.SegmentStart})
	}
}

// addGap records a time the enclosure did not record, in the state and the read model.
func (d *device) addGap(ctx workflow.Context, from, to time.Time) {
	secs := max(int64(to.Sub(from)/time.Second), 0)
	d.st.Lost += secs
	d.st.Gaps = append(d.st.Gaps, recording.Gap{From: from, To: to, Seconds: secs})
	lost := d.st.Lost
	d.update(ctx, activities.DeviceUpdate{SecondsLost: &lost, Gaps: d.st.Gaps, Event: "gap",
		EventMessage: fmt.Sprintf("not recorded from %s to %s (%ds)", from.Format(time.RFC3339), to.Format(time.RFC3339), secs), At: to})
	// One alert per enclosure and session: a later gap updates its summary with the total.
	d.raise(ctx, recording.AlertTimeLost, fmt.Sprintf("lost %ds of recording in %d gap(s), the last from %s to %s (a reboot or a client restart)",
		lost, len(d.st.Gaps), from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339)))
}

// end sets the final status (once).
func (d *device) end(status recording.DeviceStatus, message string) {
	if d.ended() {
		return
	}
	d.st.Status, d.st.Message = status, message
}

// clear empties the enclosure's mailbox of this session.
func (d *device) clear(ctx workflow.Context) {
	var a *activities.Recording
	cmd := activities.DeviceCommand{DeviceID: d.in.DeviceID, SessionID: d.in.SessionID}
	if err := dbWrite(ctx, a.ClearAssignment, cmd, nil); err != nil {
		workflow.GetLogger(ctx).Error("clearing the mailbox", "error", err)
	}
}

// stopAndEnd sends STOP, waits (bounded) for the enclosure to confirm, and ends with status.
// An enclosure that is away gets the STOP when it returns; the mailbox keeps it.
func (d *device) stopAndEnd(ctx workflow.Context, status recording.DeviceStatus, message string) {
	var a *activities.Recording
	cmd := activities.DeviceCommand{DeviceID: d.in.DeviceID, SessionID: d.in.SessionID}
	// A silent enclosure gets the STOP when it returns (the mailbox keeps it); the session
	// need not wait for that.
	wait := d.in.Settings.EndGrace
	if !d.st.SilentSince.IsZero() {
		wait = min(wait, 10*time.Second)
	}
	stopCtx := d.command(ctx, "stop", min(wait, commandAttempt), &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute})
	stopCtx = workflow.WithScheduleToCloseTimeout(stopCtx, wait)
	var ev recording.Event
	if err := workflow.ExecuteActivity(stopCtx, a.SendStop, cmd).Get(ctx, &ev); err == nil {
		d.fresh(ev)
		d.st.Recorded += ev.Duration
		if ev.Kind == recording.EventEnded && ev.ErrMsg != "" && status == recording.DeviceCanceled {
			message = message + "; the enclosure reported: " + ev.ErrMsg
		}
	} else {
		workflow.GetLogger(ctx).Warn("STOP not confirmed; it stays in the mailbox", "error", err)
	}
	d.endedAt = workflow.Now(ctx)
	d.end(status, message)
}

// record writes the final status to the read model.
func (d *device) record(ctx workflow.Context) {
	if d.endedAt.IsZero() {
		d.endedAt = workflow.Now(ctx)
	}
	if d.st.Lost > 0 && d.st.Status == recording.DeviceComplete && !strings.Contains(d.st.Message, "lost") {
		// It recorded to the end, but not all of it: say so (the session is PARTIAL).
		d.st.Message = strings.TrimPrefix(strings.Join([]string{d.st.Message, fmt.Sprintf("recorded %ds of %ds planned; lost %ds in %d gap(s)",
			d.st.Recorded, d.in.Duration, d.st.Lost, len(d.st.Gaps))}, "; "), "; ")
	}
	recorded, segments := d.st.Recorded, d.st.Segments
	d.update(ctx, activities.DeviceUpdate{Status: d.st.Status, Message: d.st.Message, EndedAt: &d.endedAt, Final: true,
		RecordingTime: &recorded, Segments: &segments, Event: "ended", EventMessage: strings.TrimSpace(string(d.st.Status) + " " + d.st.Message)})
}

// tellSession reports the end to the parent session at once, so the session's status does
// not wait for the COMPLETE handshake.
func (d *device) tellSession(ctx workflow.Context) {
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if parent == nil {
		return
	}
	err := workflow.SignalExternalWorkflow(ctx, parent.ID, "", SignalDeviceEnded,
		DeviceEnded{DeviceID: d.in.DeviceID, Status: d.st.Status, Lost: d.st.Lost}).Get(ctx, nil)
	if err != nil {
		workflow.GetLogger(ctx).Warn("telling the session", "error", err)
	}
}

// release waits (bounded) for the enclosure to forget the session after COMPLETE, so it is
// free for the next one.
func (d *device) release(ctx workflow.Context) {
	var a *activities.Recording
	// Attempts of a few minutes within the release timeout: a completion lost (a VM paused, an
	// outage) costs one attempt, whose retry finds the enclosure already released.
	attempt := min(commandAttempt, d.in.Settings.ReleaseTimeout)
	retry := &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute}
	releaseCtx := workflow.WithScheduleToCloseTimeout(d.command(ctx, "complete", attempt, retry), d.in.Settings.ReleaseTimeout)
	cmd := activities.DeviceCommand{DeviceID: d.in.DeviceID, SessionID: d.in.SessionID}
	if err := workflow.ExecuteActivity(releaseCtx, a.SendComplete, cmd).Get(ctx, nil); err != nil {
		// COMPLETE keeps going out on the enclosure's heartbeats regardless (stale-session rule).
		workflow.GetLogger(ctx).Warn("the enclosure did not confirm COMPLETE", "error", err)
		d.clear(ctx)
	}
}

// changeEndMoves is the version change that lets a running session's planned end move
// (SignalEndChange): a STOP at an earlier end, a new segment to a later one.
const changeEndMoves = "end-moves"

// moveEnd moves the planned end; before the enclosure started, its start applies the shift.
func (d *device) moveEnd(ctx workflow.Context, c EndChange) {
	if workflow.GetVersion(ctx, changeEndMoves, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	d.st.Shift += c.Seconds
	if d.st.PlannedEnd.IsZero() {
		return
	}
	d.st.PlannedEnd = d.st.PlannedEnd.Add(time.Duration(c.Seconds) * time.Second)
	// New deadlines from the new end; the old timers fire unheard.
	d.endTimer, d.shortEnd, d.endRechecked = nil, nil, false
	d.update(ctx, activities.DeviceUpdate{Event: "end moved", EventMessage: "planned end " + d.st.PlannedEnd.UTC().Format(time.RFC3339)})
}

// awaitShortEnd adds to sel the planned end of a shortened recording: STOP then, as planned.
func (d *device) awaitShortEnd(ctx workflow.Context, sel workflow.Selector) {
	if d.st.Status != recording.DeviceRecording || !d.st.PlannedEnd.Before(d.st.SegmentEnd) {
		return
	}
	if d.shortEnd == nil {
		d.shortEnd = workflow.NewTimer(ctx, d.st.PlannedEnd.Sub(workflow.Now(ctx)))
	}
	sel.AddFuture(d.shortEnd, func(f workflow.Future) {
		d.shortEnd = nil
		if f.Get(ctx, nil) == nil {
			d.stopAndEnd(ctx, recording.DeviceComplete, "stopped at the session's shortened end")
		}
	})
}

// extend starts a new segment when the enclosure finished its segment before a planned end
// moved later (the session was extended), for the time left; it reports whether it did.
func (d *device) extend(ctx workflow.Context, ev recording.Event) bool {
	if ev.ErrMsg != "" || ev.Stopped || !d.st.SegmentEnd.Before(d.st.PlannedEnd) {
		return false
	}
	remaining := d.st.PlannedEnd.Sub(workflow.Now(ctx))
	if remaining < d.in.Settings.MinSegment {
		return false
	}
	d.st.Recorded += ev.Duration
	d.st.Status = recording.DevicePending // until the new segment starts
	d.update(ctx, activities.DeviceUpdate{Event: "extended", EventMessage: fmt.Sprintf("recording %s more (the session was extended)",
		remaining.Round(time.Second)), At: ev.At})
	d.start(ctx, d.firstStart().Resumed(d.st.Segments+1, int64(remaining/time.Second)), min(remaining, d.in.Settings.StartDeadline))
	if d.st.Status == recording.DeviceFailed && d.st.Segments > 0 {
		// It recorded its planned time; only the extension failed.
		d.st.Status, d.st.Message = recording.DeviceComplete, "the extension did not start: "+d.st.Message
	}
	return true
}
