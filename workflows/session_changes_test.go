package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
)

// changes records what the change activities were asked, and the STARTs that went out.
type changes struct {
	mu       sync.Mutex
	added    []activities.AddDevices
	retried  []activities.RetryDevice
	duration []activities.SessionDuration
	starts   []activities.StartCommand
	stops    int
	finals   map[int64]string // device -> its final message
}

// withChanges registers the change activities (they answer as the store would) and counts
// the STARTs and STOPs.
func (st *sessionTest) withChanges() *changes {
	c := &changes{finals: map[int64]string{}}
	var a *activities.SessionChanges
	env := st.env
	env.RegisterActivity(a)
	env.OnActivity(a.AddSessionDevices, mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.AddDevices) ([]activities.PlannedDevice, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.added = append(c.added, req)
		var out []activities.PlannedDevice
		for _, d := range req.Devices {
			out = append(out, activities.PlannedDevice{DeviceID: d.DeviceID, Name: "NV" + string(rune('0'+d.DeviceID)), FilePrefix: d.FilePrefix})
		}
		return out, nil
	})
	env.OnActivity(a.RetrySessionDevice, mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.RetryDevice) (activities.RetriedDevice, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.retried = append(c.retried, req)
		return activities.RetriedDevice{PlannedDevice: activities.PlannedDevice{DeviceID: req.DeviceID, Name: "NV2", FilePrefix: "b_r1"},
			Retry: 1, WorkflowID: RetryWorkflowID(7, req.DeviceID, 1), Recorded: 600}, nil
	})
	env.OnActivity(a.SetSessionDuration, mock.Anything, mock.Anything).Return(func(_ context.Context, req activities.SessionDuration) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.duration = append(c.duration, req)
		return nil
	})
	return c
}

// update sends an update after d; the result is filled in once it ran.
func (st *sessionTest) update(d time.Duration, name string, arg any) *updateResult {
	res := &updateResult{}
	st.env.RegisterDelayedCallback(func() {
		st.env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
			OnAccept: func() {},
			OnReject: func(err error) { res.Refused = err },
			OnComplete: func(_ any, err error) {
				require.NoError(st.t, err)
				res.Done = true
			},
		}, arg)
	}, d)
	return res
}

// signalWorkflow signals the workflow id after d with an outbox event stamped then.
func (st *sessionTest) signalEvent(d time.Duration, workflowID string, ev recording.Event) {
	st.env.RegisterDelayedCallback(func() {
		ev.At = st.env.Now()
		require.NoError(st.t, st.env.SignalWorkflowByID(workflowID, SignalDeviceEvent, ev))
	}, d)
}

// newChangesTest is a session of nv1 (and more) whose STARTs and final messages are recorded.
func newChangesTest(t *testing.T, plan activities.SessionPlan) (*sessionTest, *changes) {
	st := newSessionTestOf(t, plan)
	c := st.withChanges()
	st.onStart = func(cmd activities.StartCommand) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.starts = append(c.starts, cmd)
	}
	st.onUpdate = func(u activities.DeviceUpdate) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if u.Final {
			c.finals[u.DeviceID] = u.Message
		}
	}
	st.onStop = func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.stops++
	}
	return st, c
}

func onePlan(devices ...activities.PlannedDevice) activities.SessionPlan {
	return activities.SessionPlan{ID: 7, Duration: 3600, TargetFPS: 30, Devices: devices}
}

func TestAddedEnclosureRecordsTheRemainingTime(t *testing.T) {
	st, c := newChangesTest(t, onePlan(nv1))
	add := st.update(20*time.Minute, UpdateAddDevices, AddDevicesRequest{Devices: []NewDevice{{DeviceID: 2, FilePrefix: "b"}}, UserID: 5})
	st.deviceEvent(time.Hour, 1, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 3600})
	st.deviceEvent(time.Hour+time.Second, 2, recording.Event{ID: 2, Kind: recording.EventEnded, Duration: 2400})
	res := st.run()
	require.True(t, add.Done, "refused: %v", add.Refused)
	require.Equal(t, []activities.AddDevices{{SessionID: 7, Devices: []activities.AddedDevice{{DeviceID: 2, FilePrefix: "b"}}, Seconds: 2400, By: 5}}, c.added)
	require.Len(t, c.starts, 2)
	require.Equal(t, int64(2400), c.starts[1].Params.Duration, "the added enclosure records until the session's planned end")
	require.Equal(t, map[int64]recording.DeviceStatus{1: recording.DeviceComplete, 2: recording.DeviceComplete}, res.Devices)
	require.Equal(t, recording.SessionComplete, res.Status)
}

func TestAddedEnclosureWithADurationOfItsOwn(t *testing.T) {
	st, c := newChangesTest(t, onePlan(nv1))
	st.update(20*time.Minute, UpdateAddDevices, AddDevicesRequest{Devices: []NewDevice{{DeviceID: 2, FilePrefix: "b"}}, Duration: 600})
	st.deviceEvent(time.Hour, 1, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 3600})
	st.deviceEvent(30*time.Minute, 2, recording.Event{ID: 2, Kind: recording.EventEnded, Duration: 600})
	res := st.run()
	require.Equal(t, int64(600), c.starts[1].Params.Duration)
	require.Equal(t, recording.SessionComplete, res.Status)
}

func TestAddRefusedByTheValidator(t *testing.T) {
	st, c := newChangesTest(t, onePlan(nv1))
	again := st.update(time.Minute, UpdateAddDevices, AddDevicesRequest{Devices: []NewDevice{{DeviceID: 1, FilePrefix: "a"}}})
	late := st.update(time.Hour-5*time.Second, UpdateAddDevices, AddDevicesRequest{Devices: []NewDevice{{DeviceID: 2, FilePrefix: "b"}}})
	st.deviceEvent(time.Hour, 1, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 3600})
	res := st.run()
	require.ErrorContains(t, again.Refused, "already in recording session 7")
	require.ErrorContains(t, late.Refused, "too late")
	require.Empty(t, c.added, "a refused change writes nothing")
	require.Equal(t, map[int64]recording.DeviceStatus{1: recording.DeviceComplete}, res.Devices)
}

func TestRetryAFailedEnclosure(t *testing.T) {
	st, c := newChangesTest(t, onePlan(nv1, nv2))
	st.deviceEvent(10*time.Minute, 2, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 600, ErrMsg: "camera gone"})
	notFailed := st.update(15*time.Minute, UpdateRetryDevice, RetryRequest{DeviceID: 1})
	retry := st.update(20*time.Minute, UpdateRetryDevice, RetryRequest{DeviceID: 2, UserID: 5})
	st.deviceEvent(time.Hour, 1, recording.Event{ID: 2, Kind: recording.EventEnded, Duration: 3600})
	st.signalEvent(time.Hour+time.Second, RetryWorkflowID(7, 2, 1), recording.Event{ID: 3, Kind: recording.EventEnded, Duration: 2400})
	res := st.run()
	require.ErrorContains(t, notFailed.Refused, "only a FAILED enclosure can be retried")
	require.True(t, retry.Done, "refused: %v", retry.Refused)
	require.Equal(t, []activities.RetryDevice{{SessionID: 7, DeviceID: 2, Seconds: 2400, By: 5}}, c.retried)
	require.Len(t, c.starts, 3)
	require.Equal(t, "b_r1", c.starts[2].Params.FilePrefix, "the retry's files never take the failed recording's names")
	require.Equal(t, int64(2400), c.starts[2].Params.Duration, "a new segment for the remaining time")
	require.Equal(t, map[int64]recording.DeviceStatus{1: recording.DeviceComplete, 2: recording.DeviceComplete}, res.Devices)
	require.Equal(t, recording.SessionComplete, res.Status)
}

func TestShortenedSessionStopsAtTheNewEnd(t *testing.T) {
	st, c := newChangesTest(t, onePlan(nv1))
	past := st.update(40*time.Minute, UpdateDuration, DurationRequest{Duration: 1800})
	short := st.update(10*time.Minute, UpdateDuration, DurationRequest{Duration: 1800, UserID: 5})
	res := st.run()
	require.True(t, short.Done, "refused: %v", short.Refused)
	require.Error(t, past.Refused, "after the session ended nothing changes")
	require.Equal(t, []activities.SessionDuration{{SessionID: 7, Duration: 1800, By: 5}}, c.duration)
	require.Equal(t, 1, c.stops, "STOP at the shortened end")
	require.Equal(t, "stopped at the session's shortened end", c.finals[1])
	require.Equal(t, recording.SessionComplete, res.Status)
	require.Equal(t, int64(1800), res.Duration)
}

func TestShorterThanElapsedIsRefused(t *testing.T) {
	st, c := newChangesTest(t, onePlan(nv1))
	short := st.update(40*time.Minute, UpdateDuration, DurationRequest{Duration: 1800})
	same := st.update(41*time.Minute, UpdateDuration, DurationRequest{Duration: 3600})
	st.deviceEvent(time.Hour, 1, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 3600})
	res := st.run()
	require.ErrorContains(t, short.Refused, "cancel it to stop now")
	require.ErrorContains(t, same.Refused, "already 3600 s")
	require.Empty(t, c.duration)
	require.Equal(t, recording.SessionComplete, res.Status)
}

func TestExtendedSessionRecordsANewSegment(t *testing.T) {
	st, c := newChangesTest(t, onePlan(nv1))
	st.update(10*time.Minute, UpdateDuration, DurationRequest{Duration: 5400})
	st.deviceEvent(time.Hour, 1, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 3600})
	st.deviceEvent(90*time.Minute, 1, recording.Event{ID: 2, Kind: recording.EventEnded, Duration: 1800})
	res := st.run()
	require.Len(t, c.starts, 2)
	require.Equal(t, int64(1800), c.starts[1].Params.Duration, "the extension's segment records to the new end")
	require.Equal(t, "a_s2", c.starts[1].Params.FilePrefix)
	require.Equal(t, recording.SessionComplete, res.Status)
	require.Equal(t, map[int64]recording.DeviceStatus{1: recording.DeviceComplete}, res.Devices)
}

func TestSessionsOwnSilenceTimeout(t *testing.T) {
	plan := onePlan(nv1)
	plan.Timeouts = recording.Timeouts{SilenceTimeout: 5 * time.Minute}
	st, c := newChangesTest(t, plan)
	st.deviceEvent(10*time.Minute, 1, recording.Event{ID: 1, Kind: recording.EventSilent})
	res := st.run()
	require.Equal(t, recording.SessionFailed, res.Status)
	require.Contains(t, c.finals[1], "for 5m0s", "lost after the session's own silence timeout, not the server's 30 min")
}
