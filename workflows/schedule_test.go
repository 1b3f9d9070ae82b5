package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
)

// fireTest runs ScheduledSession with fake enclosure states: busy[id] is how long (test time)
// enclosure id stays busy after the fire starts; forever when negative.
type fireTest struct {
	t         *testing.T
	env       *testsuite.TestWorkflowEnvironment
	start     time.Time
	busy      map[int64]time.Duration
	checks    int
	created   []recording.NewSession
	createdAt []time.Time
	fires     []activities.ScheduleFire
	alerts    alertSignals
}

func newFireTest(t *testing.T, busy map[int64]time.Duration) *fireTest {
	var s testsuite.WorkflowTestSuite
	ft := &fireTest{t: t, env: s.NewTestWorkflowEnvironment(), busy: busy}
	var sched *activities.Schedules
	var sessions *activities.Sessions
	ft.env.RegisterActivity(sched)
	ft.env.RegisterActivity(sessions)
	ft.env.RegisterActivity(&activities.Alerts{Raiser: &ft.alerts})
	ft.env.OnActivity(sched.EnclosureStates, mock.Anything, mock.Anything).Return(func(_ context.Context, ids []int64) ([]activities.EnclosureState, error) {
		ft.checks++
		var out []activities.EnclosureState
		for _, id := range ids {
			st := activities.EnclosureState{DeviceID: id, Name: map[int64]string{1: "NV1", 2: "NV2"}[id], Free: true}
			if d, ok := ft.busy[id]; ok && (d < 0 || ft.env.Now().Sub(ft.start) < d) {
				st.Free, st.Reason = false, "busy in session 3"
			}
			out = append(out, st)
		}
		return out, nil
	})
	ft.env.OnActivity(sessions.CreateSession, mock.Anything, mock.Anything).Return(func(_ context.Context, ns recording.NewSession) (activities.CreatedSession, error) {
		ft.created = append(ft.created, ns)
		ft.createdAt = append(ft.createdAt, ft.env.Now())
		return activities.CreatedSession{ID: 40 + int64(len(ft.created))}, nil
	})
	ft.env.OnActivity(sched.RecordScheduleFire, mock.Anything, mock.Anything).Return(func(_ context.Context, f activities.ScheduleFire) error {
		ft.fires = append(ft.fires, f)
		return nil
	})
	ft.env.SetTestTimeout(time.Minute)
	return ft
}

func (ft *fireTest) run(policy BusyPolicy, wait time.Duration) ScheduledSessionResult {
	one, two := int64(1), int64(2)
	in := ScheduledSessionInput{ScheduleID: 5, Name: "nightly", Owner: "ann@lab.example", Busy: policy, WaitLimit: wait,
		RecheckEvery: time.Minute,
		Session: recording.NewSession{Name: "night", Duration: 600, TargetFPS: 30, CreatedBy: 9,
			Devices: []recording.NewSessionDevice{{DeviceID: &one, FilePrefix: "a"}, {DeviceID: &two, FilePrefix: "b"}}}}
	ft.start = ft.env.Now()
	ft.env.ExecuteWorkflow(ScheduledSession, in)
	require.True(ft.t, ft.env.IsWorkflowCompleted())
	require.NoError(ft.t, ft.env.GetWorkflowError())
	var res ScheduledSessionResult
	require.NoError(ft.t, ft.env.GetWorkflowResult(&res))
	require.Len(ft.t, ft.fires, 1, "every fire records what it did")
	require.Equal(ft.t, res.Outcome, ft.fires[0].Outcome)
	require.Equal(ft.t, int64(5), ft.fires[0].ScheduleID)
	return res
}

func TestFireCreatesTheSessionWithAKeyOfItsOwn(t *testing.T) {
	ft := newFireTest(t, nil)
	res := ft.run(BusySkipEnclosure, 0)
	require.Equal(t, activities.FireCreated, res.Outcome)
	require.Equal(t, int64(41), res.SessionID)
	require.Len(t, ft.created, 1)
	ns := ft.created[0]
	require.Len(t, ns.Devices, 2)
	require.Equal(t, int64(5), ns.ScheduleID)
	require.Equal(t, int64(9), ns.CreatedBy, "the owner creates it")
	require.Regexp(t, `^fire:.+`, ns.IdempotencyKey, "the fire's workflow id: a retried activity finds the same session")
	require.Empty(t, ft.alerts, "nothing skipped, nothing to tell")
}

func TestFireSkipsABusyEnclosure(t *testing.T) {
	ft := newFireTest(t, map[int64]time.Duration{2: -1})
	res := ft.run(BusySkipEnclosure, 0)
	require.Equal(t, activities.FireCreatedPartial, res.Outcome)
	require.Len(t, ft.created, 1)
	require.Len(t, ft.created[0].Devices, 1)
	require.Equal(t, int64(1), *ft.created[0].Devices[0].DeviceID)
	require.Equal(t, []string{"NV2 (busy in session 3)"}, res.Skipped)
	require.Len(t, ft.alerts, 1)
	a := ft.alerts[0]
	require.Equal(t, recording.AlertScheduleSkipped, a.Kind)
	require.Equal(t, "ann@lab.example", a.Owner, "the schedule's owner is told")
	require.Equal(t, res.SessionID, a.SessionID)
	require.True(t, a.Notice)
	require.Contains(t, a.Summary, `schedule "nightly": session 41 created without NV2 (busy in session 3)`)
}

func TestFireSkipsTheRun(t *testing.T) {
	ft := newFireTest(t, map[int64]time.Duration{2: -1})
	res := ft.run(BusySkipRun, 0)
	require.Equal(t, activities.FireSkipped, res.Outcome)
	require.Empty(t, ft.created, "no session")
	require.Zero(t, res.SessionID)
	require.Len(t, ft.alerts, 1)
	require.Equal(t, int64(2), ft.alerts[0].DeviceID, "a skipped run's notice is about the busy enclosure")
	require.Contains(t, ft.alerts[0].Summary, "run skipped: NV2 (busy in session 3)")
}

func TestFireWaitsForABusyEnclosureAndNeverStartsEarly(t *testing.T) {
	ft := newFireTest(t, map[int64]time.Duration{2: 150 * time.Second})
	res := ft.run(BusyWait, 10*time.Minute)
	require.Equal(t, activities.FireCreated, res.Outcome, "NV2 was free before the limit")
	require.Len(t, ft.created, 1)
	require.Len(t, ft.created[0].Devices, 2)
	require.GreaterOrEqual(t, ft.createdAt[0].Sub(ft.start), 150*time.Second, "created only once NV2 was free")
	require.Equal(t, 4, ft.checks, "checked at 0, 1, 2 and 3 minutes")
	require.Empty(t, ft.alerts)
}

func TestFireWaitsUpToTheLimitThenSkipsTheEnclosure(t *testing.T) {
	ft := newFireTest(t, map[int64]time.Duration{2: -1})
	res := ft.run(BusyWait, 150*time.Second)
	require.Equal(t, activities.FireCreatedPartial, res.Outcome)
	require.Len(t, ft.created[0].Devices, 1)
	require.Equal(t, 150*time.Second, ft.createdAt[0].Sub(ft.start), "at the limit, not before")
	require.Len(t, ft.alerts, 1)
}

func TestFireWithEveryEnclosureBusySkipsTheRun(t *testing.T) {
	ft := newFireTest(t, map[int64]time.Duration{1: -1, 2: -1})
	res := ft.run(BusySkipEnclosure, 0)
	require.Equal(t, activities.FireSkipped, res.Outcome, "a session of no enclosure is no session")
	require.Empty(t, ft.created)
	require.Equal(t, []string{"NV1 (busy in session 3)", "NV2 (busy in session 3)"}, res.Skipped)
}
