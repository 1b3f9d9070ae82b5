package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/mail"
	"github.com/jax-mba/mba/internal/notify"
	"github.com/jax-mba/mba/internal/recording"
)

// memAlerts keeps what the alert activities write, in memory: these tests are about the
// workflow's timing (the store and the channels have tests of their own against real servers).
type memAlerts struct {
	mu         sync.Mutex
	records    []activities.AlertRecord
	deliveries []activities.DeliveryRecord
	mails      []mail.Message
}

func (m *memAlerts) RecordAlert(_ context.Context, r activities.AlertRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.records = append(m.records, r)
	return nil
}

func (m *memAlerts) RecordDelivery(_ context.Context, d activities.DeliveryRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deliveries = append(m.deliveries, d)
	return nil
}

func (m *memAlerts) SessionCreator(context.Context, int64) (activities.Person, bool, error) {
	return activities.Person{UserID: 2, Email: "ann@lab.example"}, true, nil
}

func (m *memAlerts) SubjectNames(_ context.Context, sessionID, deviceID int64) (activities.SubjectNames, error) {
	return activities.SubjectNames{Session: fmt.Sprint("session ", sessionID), Device: fmt.Sprint("NV", deviceID)}, nil
}

func (m *memAlerts) Admins(context.Context) ([]activities.Person, error) {
	return []activities.Person{{UserID: 1, Email: "admin@lab.example"}}, nil
}

func (m *memAlerts) PeopleByEmail(context.Context, []string) ([]activities.Person, error) {
	return nil, nil
}

func (m *memAlerts) Send(_ context.Context, msg mail.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mails = append(m.mails, msg)
	return nil
}

// sent lists "recipient notice" of every mail so far, in order.
func (m *memAlerts) sent() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, msg := range m.mails {
		what, _, _ := strings.Cut(strings.TrimPrefix(msg.Subject, "[MBA "), "]")
		out = append(out, msg.To+" "+what)
	}
	return out
}

// events lists the recorded transitions' states and notes, in order.
func (m *memAlerts) events() []activities.AlertEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []activities.AlertEvent
	for _, r := range m.records {
		out = append(out, r.Events...)
	}
	return out
}

type alertTest struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	mem *memAlerts
}

var testAlertPolicy = AlertPolicy{EscalateAfter: 10 * time.Minute, Tiers: 2, Damping: time.Minute,
	MaxSilence: 24 * time.Hour, NotifyAttempts: 3}

func newAlertTest(t *testing.T) *alertTest {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	mem := &memAlerts{}
	env.RegisterActivity(&activities.Alerts{Store: mem, Mail: mem, Tiers: [][]string{{"boss@lab.example"}}})
	env.RegisterWorkflow(AlertLifecycle)
	env.SetTestTimeout(time.Minute)
	return &alertTest{t: t, env: env, mem: mem}
}

// at runs fn when the workflow's clock has advanced by d.
func (a *alertTest) at(d time.Duration, fn func()) { a.env.RegisterDelayedCallback(fn, d) }

func (a *alertTest) state() AlertLifecycleState {
	v, err := a.env.QueryWorkflow(QueryStatus)
	require.NoError(a.t, err)
	var st AlertLifecycleState
	require.NoError(a.t, v.Get(&st))
	return st
}

func (a *alertTest) condition(active bool) {
	a.env.SignalWorkflow(SignalAlertCondition, AlertCondition{Active: active})
}

// updateResult is how an update ended: Refused by the validator, or Done (accepted, completed).
type updateResult struct {
	Done    bool
	Refused error
}

// update sends an update; the test environment runs it after the callback that sent it, so a
// later callback looks at the result.
func (a *alertTest) update(name string, arg any) *updateResult {
	res := &updateResult{}
	a.env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { res.Refused = err },
		OnComplete: func(_ any, err error) {
			require.NoError(a.t, err)
			res.Done = true
		},
	}, arg)
	return res
}

// requireSent checks the mail sent: first in order, then the rest in any order (the notices of
// one step go out in parallel).
func (a *alertTest) requireSent(inOrder []string, thenAnyOrder ...string) {
	a.t.Helper()
	sent := a.mem.sent()
	require.Len(a.t, sent, len(inOrder)+len(thenAnyOrder), "%v", sent)
	require.Equal(a.t, inOrder, sent[:len(inOrder)])
	require.ElementsMatch(a.t, thenAnyOrder, sent[len(inOrder):])
}

func (a *alertTest) run() AlertLifecycleState {
	a.env.ExecuteWorkflow(AlertLifecycle, AlertInput{Kind: recording.AlertEnclosureDown, SessionID: 7, DeviceID: 3,
		Summary: "NV3 is DOWN", Policy: testAlertPolicy})
	require.True(a.t, a.env.IsWorkflowCompleted())
	require.NoError(a.t, a.env.GetWorkflowError())
	var st AlertLifecycleState
	require.NoError(a.t, a.env.GetWorkflowResult(&st))
	return st
}

func TestAlertNotifiesThenEscalatesThenRecovers(t *testing.T) {
	a := newAlertTest(t)
	a.at(5*time.Minute, func() {
		st := a.state()
		require.Equal(t, recording.AlertNotified, st.State)
		require.Equal(t, []string{"ann@lab.example ALERT"}, a.mem.sent(), "the session's creator first")
	})
	a.at(15*time.Minute, func() {
		st := a.state()
		require.Equal(t, recording.AlertEscalated, st.State, "unacknowledged after 10 minutes")
		require.Equal(t, 1, st.Tier)
		require.Equal(t, []string{"ann@lab.example ALERT", "boss@lab.example ESCALATED"}, a.mem.sent())
	})
	a.at(25*time.Minute, func() { a.condition(false) })
	a.at(25*time.Minute+30*time.Second, func() {
		require.Equal(t, recording.AlertEscalated, a.state().State, "resolves only after the damping window")
	})
	st := a.run()

	require.Equal(t, recording.AlertResolved, st.State)
	require.Equal(t, 1, st.Tier, "no further tier: there are two")
	a.requireSent([]string{"ann@lab.example ALERT", "boss@lab.example ESCALATED"},
		"ann@lab.example RESOLVED", "boss@lab.example RESOLVED") // a recovery notice to everyone told
	var states []recording.AlertState
	for i, e := range a.mem.events() {
		require.Equal(t, i+1, e.Seq)
		states = append(states, e.State)
	}
	require.Equal(t, []recording.AlertState{recording.AlertOpen, recording.AlertNotified, recording.AlertEscalated,
		recording.AlertEscalated /* cleared */, recording.AlertResolved}, states)
	require.Len(t, a.mem.deliveries, 4)
	for _, d := range a.mem.deliveries {
		require.Equal(t, "sent", d.Outcome)
	}
}

func TestAlertAcknowledgedStopsEscalating(t *testing.T) {
	a := newAlertTest(t)
	var ack *updateResult
	a.at(5*time.Minute, func() {
		ack = a.update(UpdateAcknowledge, AckRequest{Key: a.state().Key, Who: "ann@lab.example", Note: "on my way"})
	})
	a.at(5*time.Minute+time.Second, func() {
		require.True(t, ack.Done)
		st := a.state()
		require.Equal(t, recording.AlertAcknowledged, st.State)
		require.Equal(t, "ann@lab.example", st.AckedBy)
		require.Equal(t, "on my way", st.AckNote)
	})
	a.at(90*time.Minute, func() {
		require.Equal(t, recording.AlertAcknowledged, a.state().State)
		a.condition(false)
	})
	st := a.run()

	require.Equal(t, 0, st.Tier, "never escalated")
	require.Equal(t, []string{"ann@lab.example ALERT", "ann@lab.example RESOLVED"}, a.mem.sent())
	events := a.mem.events()
	acked := events[slices.IndexFunc(events, func(e activities.AlertEvent) bool { return e.State == recording.AlertAcknowledged })]
	require.Equal(t, "ann@lab.example", acked.Actor)
	require.Equal(t, "on my way", acked.Note)
}

func TestAlertSilencedNotifiesAgainWhenStillOpen(t *testing.T) {
	a := newAlertTest(t)
	var silence *updateResult
	a.at(2*time.Minute, func() {
		silence = a.update(UpdateSilence, SilenceRequest{Who: "ann@lab.example", Note: "known, rebooting",
			Until: a.env.Now().Add(30 * time.Minute)})
	})
	a.at(2*time.Minute+time.Second, func() {
		require.True(t, silence.Done)
		require.Equal(t, recording.AlertSilenced, a.state().State)
	})
	a.at(25*time.Minute, func() {
		require.Equal(t, recording.AlertSilenced, a.state().State, "no escalation while silenced")
		require.Equal(t, []string{"ann@lab.example ALERT"}, a.mem.sent())
	})
	a.at(35*time.Minute, func() {
		st := a.state()
		require.Equal(t, recording.AlertNotified, st.State, "the silence ended and it still holds")
		require.Equal(t, []string{"ann@lab.example ALERT", "ann@lab.example STILL OPEN"}, a.mem.sent())
	})
	a.at(43*time.Minute, func() {
		require.Equal(t, recording.AlertEscalated, a.state().State, "escalation counts from the reminder")
		a.condition(false)
	})
	st := a.run()
	require.Equal(t, recording.AlertResolved, st.State)
	a.requireSent([]string{"ann@lab.example ALERT", "ann@lab.example STILL OPEN", "boss@lab.example ESCALATED"},
		"ann@lab.example RESOLVED", "boss@lab.example RESOLVED")
}

func TestAlertFlappingIsDamped(t *testing.T) {
	a := newAlertTest(t)
	a.at(3*time.Minute, func() { a.condition(false) })
	a.at(3*time.Minute+30*time.Second, func() { a.condition(true) })
	a.at(4*time.Minute, func() { a.condition(false) })
	a.at(4*time.Minute+20*time.Second, func() { a.condition(true) })
	a.at(6*time.Minute, func() {
		st := a.state()
		require.Equal(t, recording.AlertNotified, st.State)
		require.Equal(t, 2, st.Reopens)
		require.Equal(t, []string{"ann@lab.example ALERT"}, a.mem.sent(), "a returning condition notifies nobody again")
		a.condition(false)
	})
	st := a.run()
	require.Equal(t, 2, st.Reopens)
	require.Equal(t, []string{"ann@lab.example ALERT", "ann@lab.example RESOLVED"}, a.mem.sent())
}

func TestAlertUpdatesRefuseBadRequests(t *testing.T) {
	a := newAlertTest(t)
	refused := func(r *updateResult, reason string) {
		t.Helper()
		require.False(t, r.Done)
		require.ErrorContains(t, r.Refused, reason)
	}
	var bad []*updateResult
	a.at(time.Minute, func() {
		bad = []*updateResult{
			a.update(UpdateAcknowledge, AckRequest{Who: "  "}),
			a.update(UpdateAcknowledge, AckRequest{Key: "other/run", Who: "ann"}),
			a.update(UpdateSilence, SilenceRequest{Who: "ann", Until: a.env.Now().Add(-time.Minute)}),
			a.update(UpdateSilence, SilenceRequest{Who: "ann", Until: a.env.Now().Add(48 * time.Hour)}),
			a.update(UpdateAcknowledge, AckRequest{Who: "ann", Note: strings.Repeat("x", MaxAlertNote+1)}),
		}
	})
	var ack *updateResult
	a.at(time.Minute+time.Second, func() {
		refused(bad[0], "who must name the person")
		refused(bad[1], "later alert")
		refused(bad[2], "until must be in the future")
		refused(bad[3], "until must be within 24h0m0s")
		refused(bad[4], "note must be at most 2000 bytes")
		require.Equal(t, recording.AlertNotified, a.state().State, "refused updates change nothing")
		ack = a.update(UpdateAcknowledge, AckRequest{Who: "ann"})
	})
	a.at(time.Minute+2*time.Second, func() {
		require.True(t, ack.Done)
		bad = []*updateResult{
			a.update(UpdateAcknowledge, AckRequest{Who: "bob"}),
			a.update(UpdateSilence, SilenceRequest{Who: "bob", Until: a.env.Now().Add(time.Hour)}),
		}
	})
	a.at(time.Minute+3*time.Second, func() {
		refused(bad[0], "already acknowledged by ann")
		refused(bad[1], "acknowledged")
		a.condition(false)
	})
	a.run()
	for _, e := range a.mem.events() {
		require.NotEqual(t, "bob", e.Actor, "a refused update leaves no trace")
	}
}

func TestAlertValidatorRefusesAResolvedAlert(t *testing.T) {
	a := &alert{s: AlertLifecycleState{Key: "k", State: recording.AlertResolved}}
	require.ErrorContains(t, a.validatePerson("k", "ann", ""), "the alert is resolved")
}

func TestAlertContinuesAsNewWithItsState(t *testing.T) {
	a := newAlertTest(t)
	policy := testAlertPolicy
	policy.HistoryLimit = 30
	a.at(3*time.Minute, func() { a.condition(false) })
	a.at(3*time.Minute+10*time.Second, func() { a.condition(true) })
	a.at(5*time.Minute, func() {
		a.env.SetCurrentHistoryLength(policy.HistoryLimit)
		a.condition(true) // wakes the loop, which finds the history long enough
	})
	a.env.ExecuteWorkflow(AlertLifecycle, AlertInput{Kind: recording.AlertEnclosureDown, SessionID: 7, DeviceID: 3,
		Summary: "NV3 is DOWN", Policy: policy})
	err := a.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(err, &can), "continued as new, got %v", err)
	var next AlertInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.State)
	require.Equal(t, recording.AlertNotified, next.State.State)
	require.Positive(t, next.State.Reopens)
	require.Empty(t, next.State.Pending, "recorded before handing over")
	require.Equal(t, []string{"ann@lab.example ALERT"}, a.mem.sent())
	require.Equal(t, notify.NoticeOpened, a.mem.deliveries[0].Notice)
}

// TestAlertRaisedWhileEndingOpensANewAlert: a raise that reaches the run while it sends its
// recovery notices (the workflow still runs, so SignalWithStart signals it) is not lost.
func TestAlertRaisedWhileEndingOpensANewAlert(t *testing.T) {
	a := newAlertTest(t)
	a.at(3*time.Minute, func() { a.condition(false) })
	raised := false
	a.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		var req activities.NotifyRequest
		if info.ActivityType.Name == "Notify" && args.Get(&req) == nil && req.Notice.Notice == notify.NoticeRecovered && !raised {
			raised = true
			a.env.SignalWorkflow(SignalAlertCondition, AlertCondition{Active: true, Summary: "NV3 is DOWN again"})
		}
	})
	a.env.ExecuteWorkflow(AlertLifecycle, AlertInput{Kind: recording.AlertEnclosureDown, SessionID: 7, DeviceID: 3,
		Summary: "NV3 is DOWN", Policy: testAlertPolicy})
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(a.env.GetWorkflowError(), &can), "got %v", a.env.GetWorkflowError())
	var next AlertInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Nil(t, next.State, "a new alert")
	require.Equal(t, "NV3 is DOWN again", next.Summary)
	require.Equal(t, recording.AlertResolved, a.mem.records[len(a.mem.records)-1].State, "the first one stays resolved")
}

// A notice (a session finished) is told once and resolves at once: no escalation, no
// recovery notice, and its own raise, still queued, does not reopen it.
func TestNoticeIsToldOnceAndResolves(t *testing.T) {
	a := newAlertTest(t)
	a.env.ExecuteWorkflow(AlertLifecycle, AlertInput{Kind: recording.AlertSessionFinished, SessionID: 7,
		Summary: "session 7 finished COMPLETE", Policy: testAlertPolicy, Notice: true})
	require.True(t, a.env.IsWorkflowCompleted())
	require.NoError(t, a.env.GetWorkflowError())
	var st AlertLifecycleState
	require.NoError(t, a.env.GetWorkflowResult(&st))

	require.Equal(t, recording.AlertResolved, st.State)
	require.False(t, st.Active)
	require.Zero(t, st.Tier)
	a.requireSent([]string{"ann@lab.example ALERT"})
	var states []recording.AlertState
	for _, e := range a.mem.events() {
		states = append(states, e.State)
	}
	require.Equal(t, []recording.AlertState{recording.AlertOpen, recording.AlertNotified, recording.AlertResolved}, states)
}

// TestOneShotAlertResolvesOnAcknowledgement: an alert whose condition never clears by itself
// (a FAILED enclosure) resolves when a person acknowledges it, with no recovery notice (the
// person knows), so it neither stays open forever nor escalates.
func TestOneShotAlertResolvesOnAcknowledgement(t *testing.T) {
	a := newAlertTest(t)
	var ack *updateResult
	a.at(5*time.Minute, func() {
		ack = a.update(UpdateAcknowledge, AckRequest{Key: a.state().Key, Who: "ann@lab.example", Note: "replacing the camera"})
	})
	a.env.ExecuteWorkflow(AlertLifecycle, AlertInput{Kind: recording.AlertDeviceFailed, SessionID: 7, DeviceID: 3,
		Summary: "NV3 FAILED", Policy: testAlertPolicy})
	require.True(t, a.env.IsWorkflowCompleted())
	require.NoError(t, a.env.GetWorkflowError())
	var st AlertLifecycleState
	require.NoError(t, a.env.GetWorkflowResult(&st))

	require.True(t, ack.Done)
	require.Equal(t, recording.AlertResolved, st.State)
	require.Equal(t, "ann@lab.example", st.AckedBy)
	require.Equal(t, 0, st.Tier, "never escalated")
	require.Equal(t, []string{"ann@lab.example ALERT"}, a.mem.sent())
	events := a.mem.events()
	last := events[len(events)-1]
	require.Equal(t, recording.AlertResolved, last.State)
	require.Equal(t, "ann@lab.example", last.Actor)
	require.Equal(t, recording.AlertAcknowledged, events[len(events)-2].State)
}

// TestBrokenChannelIsNotToldThroughItself: the channel_broken alert of a channel goes to the
// administrators through the other channels, never through the broken one.
func TestBrokenChannelIsNotToldThroughItself(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	mem := &memAlerts{}
	env.RegisterActivity(&activities.Alerts{Store: mem, Mail: mem, FleetRecipients: []string{"admin@lab.example", "ops@lab.example"}})
	env.RegisterWorkflow(AlertLifecycle)
	env.SetTestTimeout(time.Minute)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalAlertCondition, AlertCondition{Active: false})
	}, 5*time.Minute)
	env.ExecuteWorkflow(AlertLifecycle, AlertInput{Kind: recording.AlertChannelBroken,
		Subject: activities.ChannelSubject(activities.ChannelEmail, "ops@lab.example"), Summary: "ops@lab.example is broken",
		Policy: testAlertPolicy})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"admin@lab.example ALERT", "admin@lab.example RESOLVED"}, mem.sent())
	require.Equal(t, activities.ChannelSubject(activities.ChannelEmail, "ops@lab.example"), mem.records[0].Subject)
}
