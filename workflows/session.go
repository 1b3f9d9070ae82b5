package workflows

import (
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
)

// RecordingSession runs one session: a DeviceRecording child per enclosure, cancel and
// remove-enclosure requests, and the session's status the moment its last enclosure ends.
func RecordingSession(ctx workflow.Context, in SessionInput) (SessionState, error) {
	var a *activities.Recording
	s := &session{in: in, st: SessionState{SessionID: in.SessionID, Status: recording.SessionInProgress, Devices: map[int64]recording.DeviceStatus{}}}
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (SessionState, error) { return s.st, nil }); err != nil {
		return s.st, err
	}
	s.wake = workflow.NewChannel(ctx)
	if err := s.registerUpdates(ctx); err != nil {
		return s.st, err
	}
	err := s.run(ctx)
	if errors.Is(ctx.Err(), workflow.ErrCanceled) {
		// Canceled by an operator: the children are canceled with us and stop their enclosures.
		cleanup, _ := workflow.NewDisconnectedContext(ctx)
		s.st.Canceled = true
		if workflow.GetVersion(cleanup, changeCancelAtOnce, workflow.DefaultVersion, 1) == 1 {
			// As the API's cancel: CANCELED in the read model now, not once every enclosure
			// confirmed STOP (one out of reach would hold it IN_PROGRESS for the end grace).
			if err := dbWrite(cleanup, a.CancelSession,
				activities.SessionCancel{SessionID: in.SessionID, Reason: "workflow canceled"}, nil); err != nil {
				workflow.GetLogger(ctx).Error("writing the cancel", "error", err)
			}
		}
		for _, id := range s.order {
			if s.adopted[id] { // not our children: the cancellation does not reach them by itself
				s.stopChild(cleanup, id, StopRequest{Reason: "workflow canceled"})
			}
		}
		s.waitChildren(cleanup)
		s.setStatus(cleanup, recording.SessionCanceled)
		s.writeManifest(cleanup)
		return s.st, temporal.NewCanceledError()
	}
	if err == nil {
		s.writeManifest(ctx)
	}
	return s.st, err
}

// changeManifest is the version change after which a session writes its manifest beside its
// files once every enclosure's workflow (and so its file checks) has ended.
const changeManifest = "write-manifest"

// writeManifest stores the session's manifest; its failure is logged, never the session's.
func (s *session) writeManifest(ctx workflow.Context) {
	if workflow.GetVersion(ctx, changeManifest, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	var m *activities.Manifests
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute, MaximumAttempts: 10}})
	if err := workflow.ExecuteActivity(actx, m.WriteManifest, s.in.SessionID).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("writing the session's manifest", "error", err)
	}
}

// running is an enclosure's state in the session's query until it ends; its own workflow and
// the read model tell PENDING from RECORDING.
const running = "RUNNING"

type session struct {
	in       SessionInput
	st       SessionState
	children map[int64]workflow.ChildWorkflowFuture
	// adopted are enclosure workflows an earlier run of this session started and that still run
	// (this run is a reset): they report their end with SignalDeviceEnded like any other.
	adopted map[int64]bool
	order   []int64 // device ids in plan order: never range over the map (replay must be deterministic)

	// Changes while it runs (session_changes.go).
	plan        activities.SessionPlan
	started     time.Time        // the workflow's start: the planned end counts from it
	wake        workflow.Channel // an accepted change: the main loop looks again
	busy        int              // accepted changes being written
	workflowIDs map[int64]string // a retried enclosure's current workflow
}

func (s *session) run(ctx workflow.Context) error {
	var a *activities.Recording
	var plan activities.SessionPlan
	if err := dbWrite(ctx, a.LoadSessionPlan, s.in.SessionID, &plan); err != nil {
		return err
	}
	s.useOwnTimeouts(ctx, plan.Timeouts)
	s.plan, s.started = plan, workflow.GetInfo(ctx).WorkflowStartTime
	s.st.Duration, s.st.PlannedEnd = plan.Duration, s.started.Add(time.Duration(plan.Duration)*time.Second)
	attrs := []temporal.SearchAttributeUpdate{AttrSessionID.ValueSet(s.in.SessionID), AttrStatus.ValueSet(string(recording.SessionInProgress))}
	if names := deviceNames(plan); names != nil {
		attrs = append(attrs, AttrDeviceNames.ValueSet(names))
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, attrs...); err != nil {
		return err
	}
	s.startChildren(ctx, plan)

	cancels := workflow.GetSignalChannel(ctx, SignalCancel)
	removals := workflow.GetSignalChannel(ctx, SignalRemoveDevice)
	ends := workflow.GetSignalChannel(ctx, SignalDeviceEnded)
	if len(plan.Devices) == 0 {
		s.setStatus(ctx, recording.SessionFailed)
	}
	for (len(s.children) > 0 || len(s.adopted) > 0 || s.busy > 0) && ctx.Err() == nil {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(s.wake, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			s.finishIfDone(ctx)
		})
		for _, id := range s.runningIDs() {
			sel.AddFuture(s.children[id], func(f workflow.Future) {
				delete(s.children, id)
				var res DeviceResult
				if err := f.Get(ctx, &res); s.adopt(ctx, id, err) {
					return
				} else if err != nil {
					res.Status = recording.DeviceFailed
					var canceled *temporal.CanceledError
					if errors.As(err, &canceled) {
						res.Status = recording.DeviceCanceled
					}
				}
				s.noteLost(id, res.Lost)
				s.deviceEnded(ctx, id, res.Status)
			})
		}
		sel.AddReceive(cancels, func(c workflow.ReceiveChannel, _ bool) {
			var req StopRequest
			c.Receive(ctx, &req)
			s.st.Canceled = true
			for _, id := range s.order { // the running ones: children, and adopted after a reset
				s.stopChild(ctx, id, req)
			}
		})
		sel.AddReceive(removals, func(c workflow.ReceiveChannel, _ bool) {
			var req RemoveRequest
			c.Receive(ctx, &req)
			if _, ok := s.st.Devices[req.DeviceID]; ok && workflow.GetVersion(ctx, changeRemovedNoFailure, workflow.DefaultVersion, 1) == 1 {
				if s.st.Removed == nil {
					s.st.Removed = map[int64]bool{}
				}
				s.st.Removed[req.DeviceID] = true
			}
			s.stopChild(ctx, req.DeviceID, StopRequest{UserID: req.UserID, Reason: "removed from the session"})
		})
		sel.AddReceive(ends, func(c workflow.ReceiveChannel, _ bool) {
			var e DeviceEnded
			c.Receive(ctx, &e)
			s.noteLost(e.DeviceID, e.Lost)
			s.deviceEnded(ctx, e.DeviceID, e.Status)
		})
		sel.Select(ctx)
	}
	if ctx.Err() == nil {
		// An update accepted as the last enclosure ended finishes (its reply) before the run does.
		_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	}
	return ctx.Err()
}

// changeOwnTimeouts is the version change after which a session's own start deadline, silence
// timeout and end grace (set at its creation) replace the server-wide ones.
const changeOwnTimeouts = "per-session-timeouts"

func (s *session) useOwnTimeouts(ctx workflow.Context, t recording.Timeouts) {
	if t == (recording.Timeouts{}) || workflow.GetVersion(ctx, changeOwnTimeouts, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	if t.StartDeadline > 0 {
		s.in.Settings.StartDeadline = t.StartDeadline
	}
	if t.SilenceTimeout > 0 {
		s.in.Settings.SilenceTimeout = t.SilenceTimeout
	}
	if t.EndGrace > 0 {
		s.in.Settings.EndGrace = t.EndGrace
	}
}

// maxNamesBytes keeps the session's list of enclosure names under Temporal's size limit of a
// search attribute value (2 KB by default); each enclosure's own workflow carries its name, so
// a large session is still found by enclosure.
const maxNamesBytes = 1800

// deviceNames is the session's MbaDeviceNames, or nil when the list would be too large.
func deviceNames(plan activities.SessionPlan) []string {
	names := make([]string, len(plan.Devices))
	size := 0
	for i, d := range plan.Devices {
		names[i] = d.Name
		size += len(d.Name) + 4 // the JSON list's quotes and commas
	}
	if size > maxNamesBytes {
		return nil
	}
	return names
}

func (s *session) startChildren(ctx workflow.Context, plan activities.SessionPlan) {
	s.children = map[int64]workflow.ChildWorkflowFuture{}
	for _, d := range plan.Devices {
		s.startChild(ctx, plan, d, DeviceWorkflowID(s.in.SessionID, d.DeviceID), DeviceState{})
	}
}

// startChild starts the workflow of one enclosure's recording; state is what an earlier
// recording of it (a retried one) already counted.
func (s *session) startChild(ctx workflow.Context, plan activities.SessionPlan, d activities.PlannedDevice, workflowID string, state DeviceState) {
	childCtx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:        workflowID,
		ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		TypedSearchAttributes: temporal.NewSearchAttributes(AttrSessionID.ValueSet(s.in.SessionID),
			AttrDeviceNames.ValueSet([]string{d.Name}), AttrStatus.ValueSet(string(recording.SessionInProgress))),
	})
	s.children[d.DeviceID] = workflow.ExecuteChildWorkflow(childCtx, DeviceRecording, DeviceInput{
		SessionID: s.in.SessionID, DeviceID: d.DeviceID, DeviceName: d.Name, FilePrefix: d.FilePrefix,
		Duration: plan.Duration, FragmentHourly: plan.FragmentHourly, TargetFPS: plan.TargetFPS,
		ApplyFilter: plan.ApplyFilter, Settings: s.in.Settings, State: state,
	})
	if _, known := s.st.Devices[d.DeviceID]; !known {
		s.order = append(s.order, d.DeviceID)
	}
	s.st.Devices[d.DeviceID] = running
}

// running_ lists the children still running, in plan order.
func (s *session) runningIDs() []int64 {
	var ids []int64
	for _, id := range s.order {
		if _, ok := s.children[id]; ok {
			ids = append(ids, id)
		}
	}
	return ids
}

func (s *session) stopChild(ctx workflow.Context, id int64, req StopRequest) {
	f, ok := s.children[id]
	switch {
	case s.adopted[id]:
	case !ok:
		return // already ended, or not in this session
	case f.GetChildWorkflowExecution().Get(ctx, nil) != nil:
		return // it never started
	}
	// To the current run: the child may have continued as new since it started.
	if err := workflow.SignalExternalWorkflow(ctx, s.deviceWorkflowID(id), "", SignalStop, req).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("stopping an enclosure", "device", id, "error", err)
	}
}

// changeAdoptChildren is the version change after which a session run that finds its enclosure
// workflows already running (an operator reset it) waits for them instead of failing them.
const changeAdoptChildren = "adopt-running-children"

// adopt reports whether err says the enclosure's workflow already runs, started by an earlier
// run of this session, and if so waits for it.
func (s *session) adopt(ctx workflow.Context, id int64, err error) bool {
	var started *temporal.ChildWorkflowExecutionAlreadyStartedError
	if !errors.As(err, &started) || workflow.GetVersion(ctx, changeAdoptChildren, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return false
	}
	if s.adopted == nil {
		s.adopted = map[int64]bool{}
	}
	s.adopted[id] = true
	return true
}

// noteLost keeps the seconds an enclosure did not record (enclosure workflows from before
// they were counted report none).
func (s *session) noteLost(id, lost int64) {
	if lost > 0 {
		if s.st.Lost == nil {
			s.st.Lost = map[int64]int64{}
		}
		s.st.Lost[id] = lost
	}
}

// deviceEnded records an enclosure's end; the last one decides the session's status.
func (s *session) deviceEnded(ctx workflow.Context, id int64, status recording.DeviceStatus) {
	delete(s.adopted, id)
	if old, ok := s.st.Devices[id]; !ok || old != running {
		return
	}
	s.st.Devices[id] = status
	if ctx.Err() != nil && workflow.GetVersion(ctx, changeFinalStatus, workflow.DefaultVersion, 1) == 1 {
		return // canceled from outside: the clean-up writes CANCELED once the children are done
	}
	s.finishIfDone(ctx)
}

// finishIfDone sets the session's status once no enclosure runs and no change is being made.
func (s *session) finishIfDone(ctx workflow.Context) {
	if s.busy > 0 || len(s.order) == 0 {
		return
	}
	for _, other := range s.order {
		if s.st.Devices[other] == running {
			return
		}
	}
	s.setStatus(ctx, s.outcome())
}

// changeRemovedNoFailure is the version change after which an enclosure removed on purpose
// no longer makes its session PARTIAL.
const changeRemovedNoFailure = "removed-is-no-failure"

// outcome: CANCELED when canceled (or every enclosure was removed); COMPLETE when every
// enclosure that stayed recorded all of its time; FAILED when none recorded; PARTIAL otherwise
// (some failed, or lost time to a reboot).
func (s *session) outcome() recording.SessionStatus {
	if s.st.Canceled {
		return recording.SessionCanceled
	}
	clean, recorded, counted := 0, 0, 0
	for _, id := range s.order {
		if s.st.Removed[id] && s.st.Devices[id] == recording.DeviceCanceled {
			continue
		}
		counted++
		if s.st.Devices[id] == recording.DeviceComplete {
			recorded++
			if s.st.Lost[id] == 0 {
				clean++
			}
		}
	}
	switch {
	case clean == counted && counted == 0 && len(s.order) > 0:
		return recording.SessionCanceled
	case clean == counted:
		return recording.SessionComplete
	case recorded == 0:
		return recording.SessionFailed
	}
	return recording.SessionPartial
}

// changeCancelWrite is the version change that writes the status of a session canceled from
// outside (temporal workflow cancel) on a disconnected context: on the canceled one the write
// failed at once ("canceled") and the read model said IN_PROGRESS until the orphan sweep.
const changeCancelWrite = "cancel-status-write"

// changeCancelAtOnce: a cancel from Temporal writes the read model before the clean-up.
const changeCancelAtOnce = "cancel-read-model-at-once"

func (s *session) setStatus(ctx workflow.Context, status recording.SessionStatus) {
	var a *activities.Recording
	if s.st.Status != recording.SessionInProgress {
		return
	}
	if ctx.Err() != nil && workflow.GetVersion(ctx, changeCancelWrite, workflow.DefaultVersion, 1) == 1 {
		// The last enclosure ended because the session itself was canceled.
		ctx, _ = workflow.NewDisconnectedContext(ctx)
		s.st.Canceled = true
		status = recording.SessionCanceled
	}
	s.st.Status = status
	now := workflow.Now(ctx)
	if err := dbWrite(ctx, a.SetSessionStatus,
		activities.SessionStatus{SessionID: s.in.SessionID, Status: status, EndedAt: &now}, nil); err != nil {
		workflow.GetLogger(ctx).Error("writing the session status", "error", err)
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, AttrStatus.ValueSet(string(status))); err != nil {
		workflow.GetLogger(ctx).Error("search attributes", "error", err)
	}
	s.noticeFinished(ctx, status)
}

// noticeFinished tells the session's people it finished (not when canceled: a person did that).
func (s *session) noticeFinished(ctx workflow.Context, status recording.SessionStatus) {
	if status != recording.SessionComplete && status != recording.SessionPartial && status != recording.SessionFailed {
		return
	}
	if !alertConditions(ctx) {
		return
	}
	complete := 0
	for _, id := range s.order {
		if st := s.st.Devices[id]; st == recording.DeviceComplete {
			complete++
		}
	}
	signalAlert(ctx, activities.AlertSignal{Kind: recording.AlertSessionFinished, SessionID: s.in.SessionID, Active: true, Notice: true,
		Summary: fmt.Sprintf("session %d finished %s (%d of %d enclosures COMPLETE)", s.in.SessionID, status, complete, len(s.order))})
}

// waitChildren waits (bounded) for the children to finish their own clean-up.
func (s *session) waitChildren(ctx workflow.Context) {
	deadline := workflow.Now(ctx).Add(s.in.Settings.EndGrace + time.Minute)
	for _, id := range s.runningIDs() {
		f := s.children[id]
		timerCtx, cancel := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(timerCtx, deadline.Sub(workflow.Now(ctx)))
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(f, func(workflow.Future) { s.deviceEnded(ctx, id, recording.DeviceCanceled) })
		sel.AddFuture(timer, func(workflow.Future) {})
		sel.Select(ctx)
		cancel()
	}
}
