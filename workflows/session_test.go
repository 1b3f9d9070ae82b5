package workflows

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
)

// sessionTest runs RecordingSession with real DeviceRecording children and mocked activities.
type sessionTest struct {
	t        *testing.T
	env      *testsuite.TestWorkflowEnvironment
	a        *activities.Recording
	statuses []string
	alerts   alertSignals
	// manifests are the sessions whose manifest was written, in order.
	manifests manifestLog
	// Hooks of the change tests (session_changes_test.go); nil: none.
	onStart  func(activities.StartCommand)
	onUpdate func(activities.DeviceUpdate)
	onStop   func()
}

type manifestLog struct{ sessions []int64 }

func (m *manifestLog) Write(_ context.Context, sessionID int64) error {
	m.sessions = append(m.sessions, sessionID)
	return nil
}

func newSessionTest(t *testing.T, devices ...activities.PlannedDevice) *sessionTest {
	return newSessionTestOf(t, activities.SessionPlan{ID: 7, Duration: 3600, TargetFPS: 30, Devices: devices})
}

// newSessionTestOf runs the session of plan.
func newSessionTestOf(t *testing.T, plan activities.SessionPlan) *sessionTest {
	var s testsuite.WorkflowTestSuite
	st := &sessionTest{t: t, env: s.NewTestWorkflowEnvironment()}
	env := st.env
	env.RegisterWorkflow(DeviceRecording)
	env.RegisterActivity(st.a)
	env.RegisterActivity(&activities.Alerts{Raiser: &st.alerts})
	env.RegisterActivity(&activities.Manifests{Writer: &st.manifests})
	newFakeFiles().register(env)
	env.OnActivity(st.a.LoadSessionPlan, mock.Anything, int64(7)).Return(plan, nil)
	env.OnActivity(st.a.SendStart, mock.Anything, mock.Anything).Return(func(_ context.Context, cmd activities.StartCommand) (recording.Event, error) {
		if st.onStart != nil {
			st.onStart(cmd)
		}
		return recording.Event{Kind: recording.EventStarted, At: env.Now()}, nil
	})
	env.OnActivity(st.a.SendStop, mock.Anything, mock.Anything).Return(func(context.Context, activities.DeviceCommand) (recording.Event, error) {
		if st.onStop != nil {
			st.onStop()
		}
		return recording.Event{Kind: recording.EventEnded, Stopped: true, Duration: 60}, nil
	})
	env.OnActivity(st.a.SendComplete, mock.Anything, mock.Anything).Return(recording.Event{Kind: recording.EventReleased}, nil)
	env.OnActivity(st.a.UpdateDevice, mock.Anything, mock.Anything).Return(func(_ context.Context, u activities.DeviceUpdate) error {
		if st.onUpdate != nil {
			st.onUpdate(u)
		}
		return nil
	})
	env.OnActivity(st.a.ClearAssignment, mock.Anything, mock.Anything).Return(nil)
	env.OnActivity(st.a.SetSessionStatus, mock.Anything, mock.Anything).Return(func(_ context.Context, s activities.SessionStatus) error {
		st.statuses = append(st.statuses, string(s.Status))
		return nil
	})
	// A cancel from Temporal is written as the API writes one (activities.CancelSession),
	// before the status: listed in statuses as "cancel: <reason>".
	env.OnActivity(st.a.CancelSession, mock.Anything, mock.Anything).Return(func(_ context.Context, c activities.SessionCancel) error {
		require.Equal(t, int64(7), c.SessionID)
		st.statuses = append(st.statuses, "cancel: "+c.Reason)
		return nil
	})
	env.SetTestTimeout(time.Minute)
	return st
}

// deviceEvent signals a child workflow after d.
func (st *sessionTest) deviceEvent(d time.Duration, deviceID int64, ev recording.Event) {
	st.env.RegisterDelayedCallback(func() {
		ev.At = st.env.Now()
		require.NoError(st.t, st.env.SignalWorkflowByID(DeviceWorkflowID(7, deviceID), SignalDeviceEvent, ev))
	}, d)
}

func (st *sessionTest) run() SessionState {
	st.env.ExecuteWorkflow(RecordingSession, SessionInput{SessionID: 7, Settings: testSettings})
	require.True(st.t, st.env.IsWorkflowCompleted())
	require.NoError(st.t, st.env.GetWorkflowError())
	var res SessionState
	require.NoError(st.t, st.env.GetWorkflowResult(&res))
	return res
}

var nv1, nv2 = activities.PlannedDevice{DeviceID: 1, Name: "NV1", FilePrefix: "a"}, activities.PlannedDevice{DeviceID: 2, Name: "NV2", FilePrefix: "b"}
var nv3 = activities.PlannedDevice{DeviceID: 3, Name: "NV3", FilePrefix: "c"}

func TestSessionCompletesWhenEveryEnclosureDid(t *testing.T) {
	st := newSessionTest(t, nv1, nv2)
	st.deviceEvent(time.Hour, 1, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 3600})
	st.deviceEvent(time.Hour+time.Second, 2, recording.Event{ID: 2, Kind: recording.EventEnded, Duration: 3600})
	res := st.run()
	require.Equal(t, recording.SessionComplete, res.Status)
	require.Equal(t, []string{string(recording.SessionComplete)}, st.statuses, "written once, when the last enclosure ended")
	require.Equal(t, []int64{7}, st.manifests.sessions, "the manifest is written once, at the end")
}

func TestSessionPartialWhenSomeFailed(t *testing.T) {
	st := newSessionTest(t, nv1, nv2)
	st.deviceEvent(time.Hour, 1, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 3600})
	st.deviceEvent(time.Minute, 2, recording.Event{ID: 2, Kind: recording.EventEnded, Duration: 60, ErrMsg: "disk full"})
	res := st.run()
	require.Equal(t, recording.SessionPartial, res.Status)
	require.Equal(t, map[int64]recording.DeviceStatus{1: recording.DeviceComplete, 2: recording.DeviceFailed}, res.Devices)
}

func TestSessionCancel(t *testing.T) {
	st := newSessionTest(t, nv1, nv2)
	st.deviceEvent(time.Minute, 1, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 60, ErrMsg: "early failure"})
	st.env.RegisterDelayedCallback(func() { st.env.SignalWorkflow(SignalCancel, StopRequest{UserID: 1, Reason: "canceled"}) }, 10*time.Minute)
	res := st.run()
	require.Equal(t, recording.SessionCanceled, res.Status)
	require.Equal(t, map[int64]recording.DeviceStatus{1: recording.DeviceFailed, 2: recording.DeviceCanceled}, res.Devices,
		"cancel stops only what still runs; the failed enclosure keeps its status")
	require.Equal(t, []int64{7}, st.manifests.sessions, "a canceled session has its manifest too")
}

func TestSessionRemoveOneEnclosure(t *testing.T) {
	st := newSessionTest(t, nv1, nv2)
	st.env.RegisterDelayedCallback(func() { st.env.SignalWorkflow(SignalRemoveDevice, RemoveRequest{DeviceID: 2, UserID: 1}) }, 10*time.Minute)
	st.deviceEvent(time.Hour, 1, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 3600})
	res := st.run()
	require.Equal(t, map[int64]recording.DeviceStatus{1: recording.DeviceComplete, 2: recording.DeviceCanceled}, res.Devices)
	require.Equal(t, recording.SessionComplete, res.Status, "an enclosure removed on purpose is no failure")
	require.Equal(t, map[int64]bool{2: true}, res.Removed)
}

func TestSessionRemovedAndFailedIsPartial(t *testing.T) {
	st := newSessionTest(t, nv1, nv2, nv3)
	st.env.RegisterDelayedCallback(func() { st.env.SignalWorkflow(SignalRemoveDevice, RemoveRequest{DeviceID: 3, UserID: 1}) }, 10*time.Minute)
	st.deviceEvent(time.Hour, 1, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 3600})
	st.deviceEvent(time.Minute, 2, recording.Event{ID: 2, Kind: recording.EventEnded, Duration: 60, ErrMsg: "disk full"})
	res := st.run()
	require.Equal(t, recording.SessionPartial, res.Status, "the enclosure that failed still counts")
}

func TestSessionEveryEnclosureRemovedIsCanceled(t *testing.T) {
	st := newSessionTest(t, nv1)
	st.env.RegisterDelayedCallback(func() { st.env.SignalWorkflow(SignalRemoveDevice, RemoveRequest{DeviceID: 1, UserID: 1}) }, 10*time.Minute)
	res := st.run()
	require.Equal(t, recording.SessionCanceled, res.Status)
}

func TestSessionWithoutEnclosuresFails(t *testing.T) {
	st := newSessionTest(t)
	res := st.run()
	require.Equal(t, recording.SessionFailed, res.Status)
}

func TestLargeSessionsLeaveNamesToTheirEnclosures(t *testing.T) {
	small := activities.SessionPlan{Devices: []activities.PlannedDevice{nv1, nv2}}
	require.Equal(t, []string{"NV1", "NV2"}, deviceNames(small))
	var large activities.SessionPlan
	for i := 0; i < 1000; i++ {
		large.Devices = append(large.Devices, activities.PlannedDevice{DeviceID: int64(i), Name: fmt.Sprint("NV", i)})
	}
	require.Nil(t, deviceNames(large), "over Temporal's 2 KB limit of a search attribute value")
}

// notices are the session_finished alerts raised.
func (st *sessionTest) notices() []activities.AlertSignal {
	var out []activities.AlertSignal
	for _, s := range st.alerts {
		if s.Kind == recording.AlertSessionFinished {
			out = append(out, s)
		}
	}
	return out
}

func TestSessionFinishedIsANotice(t *testing.T) {
	st := newSessionTest(t, nv1, nv2)
	st.deviceEvent(time.Hour, 1, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 3600})
	st.deviceEvent(time.Hour, 2, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 3600, ErrMsg: "camera disconnected"})
	require.Equal(t, recording.SessionPartial, st.run().Status)
	require.Equal(t, []activities.AlertSignal{{Kind: recording.AlertSessionFinished, SessionID: 7, Active: true, Notice: true,
		Summary: "session 7 finished PARTIAL (1 of 2 enclosures COMPLETE)"}}, st.notices())
}

func TestCanceledSessionHasNoFinishedNotice(t *testing.T) {
	st := newSessionTest(t, nv1)
	st.env.RegisterDelayedCallback(func() { st.env.SignalWorkflow(SignalCancel, StopRequest{UserID: 1, Reason: "done early"}) }, time.Minute)
	require.Equal(t, recording.SessionCanceled, st.run().Status)
	require.Empty(t, st.notices(), "a person canceled it")
}
