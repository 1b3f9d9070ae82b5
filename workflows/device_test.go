package workflows

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/heartbeat"
	"github.com/jax-mba/mba/internal/recording"
)

// deviceTest runs DeviceRecording with its activities mocked and time skipping.
type deviceTest struct {
	t       *testing.T
	env     *testsuite.TestWorkflowEnvironment
	a       *activities.Recording
	files   *fakeFiles
	starts  []activities.StartCommand
	updates []activities.DeviceUpdate
	stops   int
	plans   []activities.ResumePlan
	// endState is what the service last heard when the end timer fires (nil: an overrun).
	endState func() activities.EndState
	alerts   alertSignals
}

// alertSignals keeps the alerts a workflow raised and cleared.
type alertSignals []activities.AlertSignal

// alertSignalsMu: local activities run in goroutines of their own (a session's enclosures,
// the file checks of one enclosure), so the signals are kept under a lock; the tests read
// them once the workflow ended.
var alertSignalsMu sync.Mutex

func (s *alertSignals) SignalAlert(_ context.Context, sig activities.AlertSignal) error {
	alertSignalsMu.Lock()
	defer alertSignalsMu.Unlock()
	*s = append(*s, sig)
	return nil
}

var testSettings = Settings{StartDeadline: time.Hour, EndGrace: 5 * time.Minute, SilenceTimeout: 30 * time.Minute,
	Resume: true, MinSegment: 10 * time.Second, ReleaseTimeout: time.Hour, UploadDeadline: 24 * time.Hour, Reuploads: 2}

func newDeviceTest(t *testing.T) *deviceTest {
	var s testsuite.WorkflowTestSuite
	dt := &deviceTest{t: t, env: s.NewTestWorkflowEnvironment(), files: newFakeFiles()}
	dt.env.RegisterActivity(dt.a)
	dt.env.RegisterActivity(&activities.Alerts{Raiser: &dt.alerts})
	dt.files.register(dt.env)
	dt.env.OnActivity(dt.a.UpdateDevice, mock.Anything, mock.Anything).Return(func(_ context.Context, u activities.DeviceUpdate) error {
		dt.updates = append(dt.updates, u)
		return nil
	})
	dt.env.OnActivity(dt.a.SendComplete, mock.Anything, mock.Anything).Return(recording.Event{Kind: recording.EventReleased}, nil)
	dt.env.OnActivity(dt.a.ClearAssignment, mock.Anything, mock.Anything).Return(nil)
	dt.env.OnActivity(dt.a.PlanResume, mock.Anything, mock.Anything).Return(func(_ context.Context, p activities.ResumePlan) error {
		dt.plans = append(dt.plans, p)
		return nil
	})
	dt.env.OnActivity(dt.a.EndState, mock.Anything, mock.Anything).Return(func(context.Context, activities.DeviceCommand) (activities.EndState, error) {
		if dt.endState != nil {
			return dt.endState(), nil
		}
		return activities.EndState{LastSeen: dt.env.Now()}, nil // heard just now: an overrun
	})
	dt.env.SetTestTimeout(time.Minute)
	return dt
}

// startsAfter makes every START acknowledged after delay.
func (dt *deviceTest) startsAfter(delay time.Duration) {
	dt.env.OnActivity(dt.a.SendStart, mock.Anything, mock.Anything).Return(func(_ context.Context, cmd activities.StartCommand) (recording.Event, error) {
		dt.starts = append(dt.starts, cmd)
		return recording.Event{Kind: recording.EventStarted, At: dt.env.Now(), SessionID: cmd.Params.SessionID}, nil
	}).After(delay)
}

func (dt *deviceTest) stopsWith(ev recording.Event) {
	dt.env.OnActivity(dt.a.SendStop, mock.Anything, mock.Anything).Return(func(context.Context, activities.DeviceCommand) (recording.Event, error) {
		dt.stops++
		return ev, nil
	})
}

// at sends a device event after d of test time.
func (dt *deviceTest) at(d time.Duration, ev recording.Event) {
	dt.env.RegisterDelayedCallback(func() {
		ev.At = dt.env.Now()
		dt.env.SignalWorkflow(SignalDeviceEvent, ev)
	}, d)
}

func (dt *deviceTest) run(duration time.Duration) DeviceResult {
	dt.env.ExecuteWorkflow(DeviceRecording, DeviceInput{SessionID: 7, DeviceID: 3, DeviceName: "NV3", FilePrefix: "cage3",
		Duration: int64(duration / time.Second), FragmentHourly: true, TargetFPS: 30, Settings: testSettings})
	require.True(dt.t, dt.env.IsWorkflowCompleted())
	require.NoError(dt.t, dt.env.GetWorkflowError())
	var res DeviceResult
	require.NoError(dt.t, dt.env.GetWorkflowResult(&res))
	return res
}

// events are the timeline events of the recording (files aside).
func (dt *deviceTest) events() []string {
	var kinds []string
	for _, k := range dt.allEvents() {
		if !strings.HasPrefix(k, "file") {
			kinds = append(kinds, k)
		}
	}
	return kinds
}

// allEvents are the timeline events, file verification's included.
func (dt *deviceTest) allEvents() []string {
	var kinds []string
	for _, u := range dt.updates {
		if u.Event != "" {
			kinds = append(kinds, u.Event)
		}
	}
	for _, r := range dt.files.results {
		if r.Event != "" {
			kinds = append(kinds, r.Event)
		}
	}
	return kinds
}

// final is the last status the workflow wrote.
func (dt *deviceTest) final() activities.DeviceUpdate {
	for i := len(dt.updates) - 1; i >= 0; i-- {
		if dt.updates[i].Status != "" {
			return dt.updates[i]
		}
	}
	dt.t.Fatal("no status written")
	return activities.DeviceUpdate{}
}

func TestSevenDaySessionCompletes(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(10 * time.Second)
	week := 7 * 24 * time.Hour
	dt.at(10*time.Second+week, recording.Event{ID: 5, Kind: recording.EventEnded, Duration: int64(week / time.Second)})

	res := dt.run(week)
	require.Equal(t, DeviceResult{Status: recording.DeviceComplete, Recorded: int64(week / time.Second), Segments: 1}, res)
	require.Len(t, dt.starts, 1)
	require.Equal(t, int64(week/time.Second), dt.starts[0].Params.Duration)
	require.Equal(t, "cage3", dt.starts[0].Params.FilePrefix)
	require.Equal(t, []string{"started", "ended"}, dt.events())
	final := dt.final()
	require.Equal(t, recording.DeviceComplete, final.Status)
	require.Equal(t, int64(week/time.Second), *final.RecordingTime)
}

func TestDuplicateEventsAreIgnored(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	dt.at(time.Minute, recording.Event{ID: 9, Kind: recording.EventSilent})
	dt.at(2*time.Minute, recording.Event{ID: 9, Kind: recording.EventSilent}) // delivered twice
	dt.at(3*time.Minute, recording.Event{ID: 10, Kind: recording.EventReturned})
	dt.at(time.Hour, recording.Event{ID: 11, Kind: recording.EventEnded, Duration: 3600})
	dt.at(time.Hour+time.Second, recording.Event{ID: 11, Kind: recording.EventEnded, Duration: 3600})
	res := dt.run(time.Hour)
	require.Equal(t, recording.DeviceComplete, res.Status)
	require.Equal(t, int64(3600), res.Recorded, "the repeated end is not counted twice")
	require.Equal(t, []string{"started", "silent", "returned", "ended"}, dt.events())
}

func TestRebootResumesForTheRemainingTime(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(10 * time.Second)
	dt.at(10*time.Second+time.Hour, recording.Event{ID: 1, Kind: recording.EventReset})
	// The second segment starts 10 s after the reset and ends at the planned end.
	dt.at(10*time.Second+3*time.Hour, recording.Event{ID: 2, Kind: recording.EventEnded, Duration: 7180})

	res := dt.run(3 * time.Hour)
	require.Equal(t, recording.DeviceComplete, res.Status)
	require.Equal(t, 2, res.Segments)
	require.Len(t, dt.starts, 2)
	require.Equal(t, "cage3_s2", dt.starts[1].Params.FilePrefix, "a new prefix so the first segment's files are kept")
	require.Equal(t, int64(2*3600), dt.starts[1].Params.Duration, "only the rest of the planned time")
	require.Equal(t, int64(3600+7180), res.Recorded)
	require.Equal(t, []string{"started", "reset", "resumed", "gap", "ended"}, dt.events())
}

// The heartbeat path resumes at once: the workflow puts its policy and the planned end in the
// mailbox once the recording started, and a reset that says the heartbeat already sent the
// resume START is followed by the same START (for the time left at that heartbeat, however late
// the workflow learns of it), which the acknowledgement settles.
func TestRebootResumedByTheHeartbeat(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(10 * time.Second)
	const late = 40 * time.Second // the reset reached the workflow late (Temporal was slow)
	dt.env.RegisterDelayedCallback(func() {
		now := dt.env.Now()
		dt.env.SignalWorkflow(SignalDeviceEvent, recording.Event{ID: 1, Kind: recording.EventReset, At: now.Add(-late),
			Duration: 3590, LastHeard: now.Add(-late - 10*time.Second), Resumed: true})
	}, 10*time.Second+time.Hour)
	dt.at(10*time.Second+3*time.Hour, recording.Event{ID: 2, Kind: recording.EventEnded, Duration: 7180})

	res := dt.run(3 * time.Hour)
	require.Equal(t, recording.DeviceComplete, res.Status)
	require.Equal(t, 2, res.Segments)
	require.Len(t, dt.plans, 1, "written once, when the recording started")
	plan := dt.plans[0]
	require.Equal(t, int64(3), plan.DeviceID)
	require.Equal(t, int64(7), plan.SessionID)
	require.Equal(t, 1, plan.Plan.Segments)
	require.Equal(t, testSettings.MinSegment, plan.Plan.MinSegment)
	require.Equal(t, dt.starts[0].Params, plan.Plan.First)
	require.Len(t, dt.starts, 2)
	require.Equal(t, plan.Plan.First.Resumed(2, 2*3600+int64(late/time.Second)), dt.starts[1].Params,
		"the START the heartbeat path built from the plan, for the time left at its heartbeat")
	require.Equal(t, heartbeat.ResumeSeconds(plan.Plan.PlannedEnd, plan.Plan.PlannedEnd.Add(-2*time.Hour-late), plan.Plan.MinSegment),
		dt.starts[1].Params.Duration)
}

// Two reboots before the workflow heard of the first (Temporal slow): the heartbeat path resumed
// both, and the second reset, arriving while the workflow's START for the second segment is
// pending, is handled once that segment started: three segments, each counted.
func TestSecondRebootWhileTheResumeIsPending(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(10 * time.Second)
	reset := func(id int64, after time.Duration, recorded int64) {
		dt.env.RegisterDelayedCallback(func() {
			now := dt.env.Now()
			dt.env.SignalWorkflow(SignalDeviceEvent, recording.Event{ID: id, Kind: recording.EventReset, At: now,
				Duration: recorded, LastHeard: now.Add(-time.Second), Resumed: true})
		}, after)
	}
	reset(1, 10*time.Second+time.Hour, 3599)
	reset(2, 15*time.Second+time.Hour, 4) // while the second segment's START is pending
	dt.at(10*time.Second+3*time.Hour, recording.Event{ID: 3, Kind: recording.EventEnded, Duration: 7100})

	res := dt.run(3 * time.Hour)
	require.Equal(t, recording.DeviceComplete, res.Status)
	require.Equal(t, 3, res.Segments)
	require.Len(t, dt.starts, 3)
	require.Equal(t, "cage3_s3", dt.starts[2].Params.FilePrefix)
	require.Equal(t, int64(3599+4+7100), res.Recorded, "the short second segment counts")
	require.Equal(t, []string{"started", "reset", "resumed", "gap", "reset", "resumed", "gap", "ended"}, dt.events())
}

// A resumed segment that recorded and finished before the workflow heard of the reboot
// (Temporal down across the rest of the session): it counts, with the gap before it, and the
// enclosure is not shown as a clean COMPLETE.
func TestResumedSegmentEndedBeforeTheWorkflowHeard(t *testing.T) {
	dt := newDeviceTest(t)
	var resumedEnd time.Time
	dt.env.OnActivity(dt.a.SendStart, mock.Anything, mock.Anything).Return(func(_ context.Context, cmd activities.StartCommand) (recording.Event, error) {
		dt.starts = append(dt.starts, cmd)
		if len(dt.starts) == 1 {
			return recording.Event{Kind: recording.EventStarted, At: dt.env.Now(), SessionID: cmd.Params.SessionID}, nil
		}
		// The mailbox holds the end the enclosure reported at the planned end.
		return recording.Event{Kind: recording.EventEnded, At: resumedEnd, SessionID: cmd.Params.SessionID, Duration: 3590}, nil
	})
	dt.env.RegisterDelayedCallback(func() {
		now := dt.env.Now()
		resumedEnd = now // the planned end
		at := now.Add(-3590 * time.Second)
		dt.env.SignalWorkflow(SignalDeviceEvent, recording.Event{ID: 1, Kind: recording.EventReset, At: at,
			Duration: 3600, LastHeard: at.Add(-10 * time.Second), Resumed: true})
	}, 2*time.Hour)

	res := dt.run(2 * time.Hour)
	require.Equal(t, recording.DeviceComplete, res.Status)
	require.Equal(t, 2, res.Segments)
	require.Equal(t, int64(3600+3590), res.Recorded)
	require.Equal(t, int64(10), res.Lost)
	require.Equal(t, int64(2*3600), res.Recorded+res.Lost)
	require.Contains(t, res.Message, "lost 10s in 1 gap(s)")
	require.Equal(t, []string{"started", "reset", "resumed", "gap", "ended"}, dt.events(),
		"the timeline says it recorded again, though only its end was reported")
}

func TestNoResumePlanWhenResumeIsOff(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	dt.at(time.Hour, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 3600})
	dt.env.ExecuteWorkflow(DeviceRecording, DeviceInput{SessionID: 7, DeviceID: 3, FilePrefix: "p", Duration: 3600, TargetFPS: 30,
		Settings: Settings{StartDeadline: time.Hour, EndGrace: time.Minute, SilenceTimeout: time.Hour, ReleaseTimeout: time.Hour}})
	require.NoError(t, dt.env.GetWorkflowError())
	require.Empty(t, dt.plans, "the heartbeat path leaves a reboot to the workflow, which fails it")
}

// A reboot is measured by what the enclosure reported: the lost segment by its last duration
// before the loss, the gap from that heartbeat to the next segment's start (not from the
// restarted client's first heartbeat), and the enclosure does not look like a clean COMPLETE.
func TestRebootAccountingByTheEnclosuresReports(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(10 * time.Second)
	const silent = 84 * time.Second // from its last heartbeat to the restarted client's first
	dt.env.RegisterDelayedCallback(func() {
		now := dt.env.Now()
		dt.env.SignalWorkflow(SignalDeviceEvent, recording.Event{ID: 1, Kind: recording.EventReset, At: now,
			Duration: int64((time.Hour - silent) / time.Second), LastHeard: now.Add(-silent)})
	}, 10*time.Second+time.Hour)
	// The second segment starts 10 s after the reset and runs to the planned end.
	dt.at(10*time.Second+3*time.Hour, recording.Event{ID: 2, Kind: recording.EventEnded, Duration: 7190})

	res := dt.run(3 * time.Hour)
	require.Equal(t, recording.DeviceComplete, res.Status)
	require.Equal(t, 2, res.Segments)
	require.Equal(t, int64(3516+7190), res.Recorded)
	require.Equal(t, int64(84+10), res.Lost, "from the last heartbeat of the lost segment to the next one's start")
	require.Equal(t, int64(3*3600), res.Recorded+res.Lost)
	require.Contains(t, res.Message, "lost 94s in 1 gap(s)")
	var gaps []recording.Gap
	for _, u := range dt.updates {
		if u.Gaps != nil {
			gaps = u.Gaps
		}
		if u.Event == "ended" {
			require.Equal(t, res.Recorded, *u.RecordingTime, "the read model shows what was recorded")
		}
	}
	require.Len(t, gaps, 1)
	require.Equal(t, int64(94), gaps[0].Seconds)
	require.Equal(t, 94*time.Second, gaps[0].To.Sub(gaps[0].From))
}

// A reboot in the last seconds: not resumed, and its unfinalised last file and the lost time
// are said.
func TestRebootInTheLastSecondsSaysSo(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	dt.env.RegisterDelayedCallback(func() {
		now := dt.env.Now()
		dt.env.SignalWorkflow(SignalDeviceEvent, recording.Event{ID: 1, Kind: recording.EventReset, At: now,
			Duration: 3590, LastHeard: now.Add(-5 * time.Second)})
	}, time.Second+time.Hour-5*time.Second)
	res := dt.run(time.Hour)
	require.Equal(t, recording.DeviceComplete, res.Status)
	require.Contains(t, res.Message, "its last file is unfinalised")
	require.Equal(t, int64(3590), res.Recorded)
	require.Equal(t, int64(10), res.Lost)
}

func TestRebootFailsWhenResumeIsOff(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	dt.at(time.Hour, recording.Event{ID: 1, Kind: recording.EventReset})
	dt.env.ExecuteWorkflow(DeviceRecording, DeviceInput{SessionID: 7, DeviceID: 3, FilePrefix: "p", Duration: 7200,
		Settings: Settings{StartDeadline: time.Hour, EndGrace: time.Minute, SilenceTimeout: time.Hour, ReleaseTimeout: time.Hour}})
	var res DeviceResult
	require.NoError(t, dt.env.GetWorkflowResult(&res))
	require.Equal(t, recording.DeviceFailed, res.Status)
	require.Contains(t, res.Message, "rebooted")
}

func TestStartDeadline(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(2 * time.Hour) // never within the hour
	dt.stopsWith(recording.Event{Kind: recording.EventEnded, Stopped: true})
	res := dt.run(time.Hour)
	require.Equal(t, recording.DeviceFailed, res.Status)
	require.Equal(t, "did not start recording within 1h0m0s", res.Message)
	require.Equal(t, 1, dt.stops, "the START left in the mailbox is withdrawn")
}

func TestFailureReportedByTheEnclosure(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	dt.at(time.Minute, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 59, ErrMsg: "camera disconnected"})
	res := dt.run(time.Hour)
	require.Equal(t, DeviceResult{Status: recording.DeviceFailed, Message: "camera disconnected", Recorded: 59, Segments: 1}, res)
}

func TestSilenceThenReturn(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	dt.at(time.Hour, recording.Event{ID: 1, Kind: recording.EventSilent})
	dt.at(time.Hour+20*time.Minute, recording.Event{ID: 2, Kind: recording.EventReturned})
	dt.at(2*time.Hour+time.Second, recording.Event{ID: 3, Kind: recording.EventEnded, Duration: 7200})
	res := dt.run(2 * time.Hour)
	require.Equal(t, recording.DeviceComplete, res.Status, "back within the silence timeout")
}

func TestSilenceThenLost(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	dt.at(time.Hour, recording.Event{ID: 1, Kind: recording.EventSilent})
	res := dt.run(5 * time.Hour)
	require.Equal(t, recording.DeviceFailed, res.Status)
	require.Contains(t, res.Message, "lost: silent since")
}

func TestOverrunIsStopped(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	dt.stopsWith(recording.Event{Kind: recording.EventEnded, Stopped: true, Duration: 4000})
	res := dt.run(time.Hour)
	require.Equal(t, recording.DeviceFailed, res.Status)
	require.Contains(t, res.Message, "did not report the end of its recording")
	require.Equal(t, 1, dt.stops)
}

// An outage across the planned end: the end timer fires before the enclosure's reports reached
// the workflow. One that reported its end completes with what it reported; one not heard since
// the deadline gets a window of fresh heartbeats, and its end report in it completes it.
func TestEndDeadlineJudgedByWhatTheEnclosureReported(t *testing.T) {
	t.Run("reported", func(t *testing.T) {
		dt := newDeviceTest(t)
		dt.startsAfter(time.Second)
		dt.endState = func() activities.EndState {
			return activities.EndState{LastSeen: dt.env.Now(), Ended: &recording.Event{Kind: recording.EventEnded, At: dt.env.Now(), Duration: 3600}}
		}
		res := dt.run(time.Hour)
		require.Equal(t, recording.DeviceComplete, res.Status, res.Message)
		require.Equal(t, int64(3600), res.Recorded)
		require.Zero(t, dt.stops)
	})
	t.Run("heard after the deadline", func(t *testing.T) {
		dt := newDeviceTest(t)
		dt.startsAfter(time.Second)
		dt.endState = func() activities.EndState { return activities.EndState{LastSeen: dt.env.Now().Add(-time.Hour)} }
		dt.at(time.Hour+testSettings.EndGrace+30*time.Second, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 3600})
		res := dt.run(time.Hour)
		require.Equal(t, recording.DeviceComplete, res.Status, res.Message)
		require.Equal(t, int64(3600), res.Recorded)
	})
	t.Run("never heard again", func(t *testing.T) {
		dt := newDeviceTest(t)
		dt.startsAfter(time.Second)
		dt.stopsWith(recording.Event{Kind: recording.EventReleased})
		dt.endState = func() activities.EndState { return activities.EndState{LastSeen: dt.env.Now().Add(-time.Hour)} }
		res := dt.run(time.Hour)
		require.Equal(t, recording.DeviceFailed, res.Status)
		require.Contains(t, res.Message, "did not report the end of its recording")
	})
}

func TestStopWhilePendingAndWhileRecording(t *testing.T) {
	for name, when := range map[string]time.Duration{"pending": time.Minute, "recording": 2 * time.Hour} {
		t.Run(name, func(t *testing.T) {
			dt := newDeviceTest(t)
			dt.startsAfter(30 * time.Minute) // acknowledged after half an hour
			dt.stopsWith(recording.Event{Kind: recording.EventEnded, Stopped: true, Duration: 42})
			dt.env.RegisterDelayedCallback(func() {
				dt.env.SignalWorkflow(SignalStop, StopRequest{UserID: 1, Reason: "session canceled"})
			}, when)
			res := dt.run(10 * time.Hour)
			require.Equal(t, recording.DeviceCanceled, res.Status, res.Message)
			require.Equal(t, "session canceled", res.Message)
			require.Equal(t, 1, dt.stops)
		})
	}
}

func TestCancelingTheWorkflowStopsTheEnclosure(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	dt.stopsWith(recording.Event{Kind: recording.EventEnded, Stopped: true, Duration: 600})
	dt.env.RegisterDelayedCallback(dt.env.CancelWorkflow, 10*time.Minute)
	dt.env.ExecuteWorkflow(DeviceRecording, DeviceInput{SessionID: 7, DeviceID: 3, FilePrefix: "p", Duration: 7200, Settings: testSettings})
	require.Error(t, dt.env.GetWorkflowError())
	require.Equal(t, 1, dt.stops, "clean-up runs on a disconnected context")
	final := dt.final()
	require.Equal(t, recording.DeviceCanceled, final.Status)
}

func TestStopAtEveryStage(t *testing.T) {
	for name, stage := range map[string]func(dt *deviceTest){
		// Silent: the STOP waits in the mailbox; the session does not wait for it.
		"silent": func(dt *deviceTest) {
			dt.at(time.Hour, recording.Event{ID: 1, Kind: recording.EventSilent})
		},
		// Rebooted and being started again for the rest of the time.
		"resuming": func(dt *deviceTest) {
			dt.at(time.Hour, recording.Event{ID: 1, Kind: recording.EventReset})
		},
	} {
		t.Run(name, func(t *testing.T) {
			dt := newDeviceTest(t)
			started := func(_ context.Context, cmd activities.StartCommand) (recording.Event, error) {
				dt.starts = append(dt.starts, cmd)
				return recording.Event{Kind: recording.EventStarted, At: dt.env.Now()}, nil
			}
			dt.env.OnActivity(dt.a.SendStart, mock.Anything, mock.Anything).Return(started).Once()
			// A resumed START is not acknowledged before the stop.
			dt.env.OnActivity(dt.a.SendStart, mock.Anything, mock.Anything).Return(started).After(100 * time.Hour)
			dt.stopsWith(recording.Event{Kind: recording.EventEnded, Stopped: true})
			stage(dt)
			dt.env.RegisterDelayedCallback(func() {
				dt.env.SignalWorkflow(SignalStop, StopRequest{Reason: "removed from the session"})
			}, 70*time.Minute)
			res := dt.run(10 * time.Hour)
			require.Equal(t, recording.DeviceCanceled, res.Status, res.Message)
			require.Equal(t, 1, dt.stops)
		})
	}
}

func TestContinueAsNewCarriesTheState(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	for i := int64(1); i <= 20; i++ {
		kind := recording.EventSilent
		if i%2 == 0 {
			kind = recording.EventReturned
		}
		dt.at(time.Duration(i)*time.Minute, recording.Event{ID: i, Kind: kind})
	}
	dt.env.RegisterDelayedCallback(func() { dt.env.SetContinueAsNewSuggested(true) }, 10*time.Minute+30*time.Second)
	dt.env.ExecuteWorkflow(DeviceRecording, DeviceInput{SessionID: 7, DeviceID: 3, FilePrefix: "p", Duration: 30 * 24 * 3600, Settings: testSettings})
	err := dt.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, err, &can, "a long history continues as new")

	var next DeviceInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Equal(t, recording.DeviceRecording, next.State.Status)
	require.Equal(t, 30*24*time.Hour, next.State.PlannedEnd.Sub(next.State.StartedAt))
	require.Equal(t, 1, next.State.Segments)
	require.GreaterOrEqual(t, next.State.LastEventID, int64(10), "the dedup mark carries over")
	require.Equal(t, "p", next.FilePrefix)
}

func TestEnclosureThatFinishedBeforeItsWorkflowRan(t *testing.T) {
	dt := newDeviceTest(t)
	dt.env.OnActivity(dt.a.SendStart, mock.Anything, mock.Anything).Return(
		recording.Event{Kind: recording.EventEnded, At: time.Now(), Duration: 3}, nil)
	res := dt.run(3 * time.Second)
	require.Equal(t, DeviceResult{Status: recording.DeviceComplete, Recorded: 3, Segments: 1}, res)
}

func TestSilenceRaisesTheDownAlertAndReturnClearsIt(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	// Silent (delivered twice: one alert), back, silent and back again: two raises, two clears.
	for i, kind := range []recording.EventKind{recording.EventSilent, recording.EventSilent, recording.EventReturned,
		recording.EventSilent, recording.EventReturned} {
		dt.at(time.Duration(i+1)*10*time.Minute, recording.Event{ID: int64(1 + max(i, 1)), Kind: kind})
	}
	dt.at(time.Hour, recording.Event{ID: 9, Kind: recording.EventEnded, Duration: 3600})
	dt.recordingFiles(time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC), time.Hour) // its files are fine: no file alert
	require.Equal(t, recording.DeviceComplete, dt.run(time.Hour).Status)

	require.Len(t, dt.alerts, 4, "%+v", dt.alerts)
	require.Equal(t, []bool{true, false, true, false}, []bool{dt.alerts[0].Active, dt.alerts[1].Active,
		dt.alerts[2].Active, dt.alerts[3].Active})
	raised, cleared := dt.alerts[0], dt.alerts[1]
	require.Regexp(t, `^NV3 is DOWN in session 7 \(marked \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: no heartbeat past the DOWN threshold\)$`, raised.Summary)
	raised.Summary = ""
	require.Equal(t, activities.AlertSignal{Kind: recording.AlertEnclosureDown, SessionID: 7, DeviceID: 3, Active: true}, raised)
	require.False(t, cleared.Active)
	require.Equal(t, raised.Kind, cleared.Kind)
	require.Equal(t, raised.DeviceID, cleared.DeviceID)
}

// raised are the kinds of the alerts raised (Active), in order, but the files' (these tests
// upload no files: they are all MISSING).
func (dt *deviceTest) raised() []recording.AlertKind {
	var kinds []recording.AlertKind
	for _, s := range dt.alerts {
		if s.Active && s.Kind != recording.AlertFileBad {
			kinds = append(kinds, s.Kind)
		}
	}
	return kinds
}

// alert is the last signal of kind.
func (dt *deviceTest) alert(kind recording.AlertKind) activities.AlertSignal {
	for i := len(dt.alerts) - 1; i >= 0; i-- {
		if dt.alerts[i].Kind == kind {
			return dt.alerts[i]
		}
	}
	dt.t.Fatalf("no %s alert in %+v", kind, dt.alerts)
	return activities.AlertSignal{}
}

func TestLostEnclosureRaisesTheLostAlertNotAFailedOne(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	dt.at(time.Hour, recording.Event{ID: 1, Kind: recording.EventSilent})
	require.Equal(t, recording.DeviceFailed, dt.run(5*time.Hour).Status)

	require.Equal(t, []recording.AlertKind{recording.AlertEnclosureDown, recording.AlertEnclosureLost}, dt.raised())
	lost := dt.alert(recording.AlertEnclosureLost)
	require.Equal(t, int64(7), lost.SessionID)
	require.Equal(t, int64(3), lost.DeviceID)
	require.Regexp(t, `^NV3 in session 7: lost: silent since \S+ for 30m0s$`, lost.Summary)
}

func TestFailedEnclosureRaisesTheFailedAlert(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	dt.at(time.Minute, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 59, ErrMsg: "camera disconnected"})
	require.Equal(t, recording.DeviceFailed, dt.run(time.Hour).Status)

	require.Equal(t, []recording.AlertKind{recording.AlertDeviceFailed}, dt.raised())
	require.Equal(t, activities.AlertSignal{Kind: recording.AlertDeviceFailed, SessionID: 7, DeviceID: 3, Active: true,
		Summary: "NV3 in session 7: FAILED: camera disconnected"}, dt.alert(recording.AlertDeviceFailed))
}

func TestRebootGapRaisesTimeLost(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(10 * time.Second)
	dt.env.RegisterDelayedCallback(func() {
		now := dt.env.Now()
		dt.env.SignalWorkflow(SignalDeviceEvent, recording.Event{ID: 1, Kind: recording.EventReset, At: now,
			Duration: 3516, LastHeard: now.Add(-84 * time.Second)})
	}, 10*time.Second+time.Hour)
	dt.at(10*time.Second+3*time.Hour, recording.Event{ID: 2, Kind: recording.EventEnded, Duration: 7190})
	require.Equal(t, recording.DeviceComplete, dt.run(3*time.Hour).Status)

	require.Equal(t, []recording.AlertKind{recording.AlertTimeLost}, dt.raised(), "a gap, not a failure")
	require.Regexp(t, `^NV3 in session 7: lost 94s of recording in 1 gap\(s\), the last from \S+Z to \S+Z \(a reboot or a client restart\)$`,
		dt.alert(recording.AlertTimeLost).Summary)
}

func TestCompleteRecordingRaisesNoAlert(t *testing.T) {
	dt := newDeviceTest(t)
	dt.startsAfter(time.Second)
	dt.at(time.Hour, recording.Event{ID: 1, Kind: recording.EventEnded, Duration: 3600})
	require.Equal(t, recording.DeviceComplete, dt.run(time.Hour).Status)
	require.Empty(t, dt.raised())
}
