package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
)

// Changes of a running session, as Temporal Updates: the validator refuses a change the
// session's state does not allow before anything is written to the history; an accepted one
// is written to the read model (its timeline and the audit row of the person who asked) and
// then applied. The API checks what needs the database (busy and unknown enclosures) before it
// asks, so a refusal there never reaches the workflow either.

// Updates of a RecordingSession; each returns the SessionState after it.
const (
	UpdateAddDevices  = "add-devices"  // an AddDevicesRequest
	UpdateRetryDevice = "retry-device" // a RetryRequest
	UpdateDuration    = "set-duration" // a DurationRequest
)

// SignalEndChange moves a DeviceRecording's planned end (an EndChange): its session was
// extended or shortened.
const SignalEndChange = "end-change"

// EndChange moves an enclosure's planned end by Seconds (negative: earlier).
type EndChange struct {
	Seconds int64
}

// AddDevicesRequest adds enclosures to a running session.
type AddDevicesRequest struct {
	Devices []NewDevice
	// Duration is how long each records (seconds); 0: until the session's planned end.
	Duration int64
	UserID   int64
}

// NewDevice is an enclosure added to a running session.
type NewDevice struct {
	DeviceID   int64
	FilePrefix string
}

// RetryRequest starts a FAILED enclosure again for the session's remaining time.
type RetryRequest struct {
	DeviceID int64
	UserID   int64
}

// DurationRequest extends or shortens a running session to Duration seconds in all.
type DurationRequest struct {
	Duration int64
	UserID   int64
}

func (s *session) registerUpdates(ctx workflow.Context) error {
	// A slice, not a map: the workflow code stays free of map iteration (make lint).
	for _, h := range []struct {
		name          string
		run, validate any
	}{
		{UpdateAddDevices, s.addDevices, s.validateAdd},
		{UpdateRetryDevice, s.retryDevice, s.validateRetry},
		{UpdateDuration, s.setDuration, s.validateDuration},
	} {
		if err := workflow.SetUpdateHandlerWithOptions(ctx, h.name, h.run, workflow.UpdateHandlerOptions{Validator: h.validate}); err != nil {
			return fmt.Errorf("RecordingSession %s handler: %w", h.name, err)
		}
	}
	return nil
}

// Kinds of a change's refusal, the type of its ApplicationError (whose detail names the
// request's field): the API answers 409, 400 and 404.
const (
	RefusedConflict = "SessionChangeConflict" // the session's or the enclosure's state does not allow it
	RefusedInvalid  = "SessionChangeInvalid"  // a value the request gives
	RefusedUnknown  = "SessionChangeUnknown"  // an enclosure not in the session
)

// refuse is a validator's refusal of kind, naming the request's field.
func refuse(kind, field, format string, args ...any) error {
	return temporal.NewApplicationErrorWithOptions(fmt.Sprintf(format, args...), kind,
		temporal.ApplicationErrorOptions{NonRetryable: true, Details: []any{field}})
}

// running says whether the session still takes changes.
func (s *session) validateRunning() error {
	if s.st.Status != recording.SessionInProgress || s.st.Canceled {
		status := s.st.Status
		if s.st.Canceled {
			status = recording.SessionCanceled
		}
		return refuse(RefusedConflict, "status", "recording session %d is %s: only a running session can change", s.in.SessionID, status)
	}
	return nil
}

// remaining is the time to the session's planned end.
func (s *session) remaining(ctx workflow.Context) time.Duration {
	return s.st.PlannedEnd.Sub(workflow.Now(ctx))
}

// tooLate refuses a recording of secs seconds that would be shorter than a worthwhile segment.
func (s *session) tooLate(ctx workflow.Context, secs int64) error {
	if min := s.in.Settings.MinSegment; time.Duration(secs)*time.Second < min {
		return refuse(RefusedConflict, "duration", "the session ends in %s: too late to start an enclosure (at least %s)",
			max(s.remaining(ctx), 0).Round(time.Second), min)
	}
	return nil
}

// addSeconds is how long enclosures added by req record.
func (s *session) addSeconds(ctx workflow.Context, req AddDevicesRequest) int64 {
	if req.Duration > 0 {
		return req.Duration
	}
	return int64(s.remaining(ctx) / time.Second)
}

func (s *session) validateAdd(ctx workflow.Context, req AddDevicesRequest) error {
	if err := s.validateRunning(); err != nil {
		return err
	}
	if len(req.Devices) == 0 {
		return refuse(RefusedInvalid, "device_spec", "list at least one enclosure to add")
	}
	for _, d := range req.Devices {
		if _, ok := s.st.Devices[d.DeviceID]; ok {
			return refuse(RefusedConflict, "device_spec", "enclosure %d is already in recording session %d", d.DeviceID, s.in.SessionID)
		}
	}
	return s.tooLate(ctx, s.addSeconds(ctx, req))
}

// changing holds the session open while an accepted change is written: its last enclosure
// ending meanwhile must not end the session under it.
func (s *session) changing(ctx workflow.Context, fn func() error) (SessionState, error) {
	s.busy++
	err := fn()
	s.busy--
	s.wake.SendAsync(nil) // the main loop waits on the new children too, or ends the session
	return s.st, err
}

func (s *session) addDevices(ctx workflow.Context, req AddDevicesRequest) (SessionState, error) {
	return s.changing(ctx, func() error {
		var a *activities.SessionChanges
		secs := s.addSeconds(ctx, req)
		in := activities.AddDevices{SessionID: s.in.SessionID, Seconds: secs, By: req.UserID}
		for _, d := range req.Devices {
			in.Devices = append(in.Devices, activities.AddedDevice(d))
		}
		var added []activities.PlannedDevice
		if err := dbWrite(ctx, a.AddSessionDevices, in, &added); err != nil {
			return refusal(err)
		}
		plan := s.plan
		plan.Duration = secs
		for _, d := range added {
			s.startChild(ctx, plan, d, DeviceWorkflowID(s.in.SessionID, d.DeviceID), DeviceState{})
		}
		return nil
	})
}

// refusal is the store's refusal of an accepted change (the state changed since the API
// checked it), in its own words.
func refusal(err error) error {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return temporal.NewNonRetryableApplicationError(app.Message(), app.Type(), nil)
	}
	return err
}

func (s *session) validateRetry(ctx workflow.Context, req RetryRequest) error {
	if err := s.validateRunning(); err != nil {
		return err
	}
	st, ok := s.st.Devices[req.DeviceID]
	switch {
	case !ok:
		return refuse(RefusedUnknown, "did", "enclosure %d is not in recording session %d", req.DeviceID, s.in.SessionID)
	case st == running:
		// Its workflow writes FAILED to the read model just before it tells the session.
		return refuse(RefusedConflict, "status", "enclosure %d is still recording or ending its recording: only a FAILED enclosure can be retried (try again in a moment if it has just failed)",
			req.DeviceID)
	case st != recording.DeviceFailed:
		return refuse(RefusedConflict, "status", "enclosure %d is %s: only a FAILED enclosure can be retried", req.DeviceID, st)
	}
	return s.tooLate(ctx, int64(s.remaining(ctx)/time.Second))
}

func (s *session) retryDevice(ctx workflow.Context, req RetryRequest) (SessionState, error) {
	return s.changing(ctx, func() error {
		var a *activities.SessionChanges
		secs := int64(s.remaining(ctx) / time.Second)
		var r activities.RetriedDevice
		if err := dbWrite(ctx, a.RetrySessionDevice, activities.RetryDevice{SessionID: s.in.SessionID, DeviceID: req.DeviceID,
			Seconds: secs, By: req.UserID}, &r); err != nil {
			return refusal(err)
		}
		if s.workflowIDs == nil {
			s.workflowIDs = map[int64]string{}
		}
		s.workflowIDs[r.DeviceID] = r.WorkflowID
		plan := s.plan
		plan.Duration = secs
		s.startChild(ctx, plan, r.PlannedDevice, r.WorkflowID, DeviceState{Recorded: r.Recorded})
		return nil
	})
}

func (s *session) validateDuration(ctx workflow.Context, req DurationRequest) error {
	if err := s.validateRunning(); err != nil {
		return err
	}
	elapsed := workflow.Now(ctx).Sub(s.started).Round(time.Second)
	switch {
	case req.Duration == s.st.Duration:
		return refuse(RefusedInvalid, "duration", "the session's duration is already %d s", req.Duration)
	case time.Duration(req.Duration)*time.Second <= elapsed:
		// Decided: a shortening to what already ran is no stop; cancelling is.
		return refuse(RefusedInvalid, "duration", "the session has already run %s (%d s): a shorter duration would end it in the past; cancel it to stop now",
			elapsed, int64(elapsed/time.Second))
	}
	return nil
}

func (s *session) setDuration(ctx workflow.Context, req DurationRequest) (SessionState, error) {
	return s.changing(ctx, func() error {
		var a *activities.SessionChanges
		if err := dbWrite(ctx, a.SetSessionDuration, activities.SessionDuration{SessionID: s.in.SessionID, Duration: req.Duration,
			By: req.UserID}, nil); err != nil {
			return refusal(err)
		}
		change := EndChange{Seconds: req.Duration - s.st.Duration}
		s.st.Duration = req.Duration
		s.st.PlannedEnd = s.started.Add(time.Duration(req.Duration) * time.Second)
		for _, id := range s.order {
			if s.st.Devices[id] != running {
				continue
			}
			if err := workflow.SignalExternalWorkflow(ctx, s.deviceWorkflowID(id), "", SignalEndChange, change).Get(ctx, nil); err != nil {
				workflow.GetLogger(ctx).Warn("moving an enclosure's end", "device", id, "error", err)
			}
		}
		return nil
	})
}

// deviceWorkflowID is the workflow of the enclosure's current recording (a retry's, once retried).
func (s *session) deviceWorkflowID(id int64) string {
	if wid, ok := s.workflowIDs[id]; ok {
		return wid
	}
	return DeviceWorkflowID(s.in.SessionID, id)
}
