package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/notify"
	"github.com/jax-mba/mba/internal/recording"
)

// AlertLifecycle is one alert, from its condition being raised to its resolution:
// open → notified → escalated (tier after tier while nobody acknowledges) → acknowledged or
// silenced by a person → resolved once the condition cleared and stayed clear for the
// damping window, with a recovery notice to everyone told. Every wait is a Temporal timer, so
// the escalation survives restarts of the worker, the API and Temporal itself; every
// transition is recorded in the store (alerts, alert_events) for the UI and metrics.
func AlertLifecycle(ctx workflow.Context, in AlertInput) (AlertLifecycleState, error) {
	a := newAlert(ctx, in)
	if err := a.register(ctx); err != nil {
		return a.s, err
	}
	return a.run(ctx)
}

// changeResolveOnAck is the version change that resolves an acknowledged alert whose
// condition never clears by itself (recording.AlertKind.OneShot).
const changeResolveOnAck = "alert-resolve-one-shot-on-ack"

type alert struct {
	in       AlertInput
	s        AlertLifecycleState
	cond     workflow.ReceiveChannel
	wake     workflow.Channel // an update changed the state
	inflight int              // notices being delivered
}

func newAlert(ctx workflow.Context, in AlertInput) *alert {
	a := &alert{in: in, cond: workflow.GetSignalChannel(ctx, SignalAlertCondition),
		wake: workflow.NewBufferedChannel(ctx, 1)}
	if in.State != nil {
		a.s = *in.State
		a.in.State = nil
		return a
	}
	info := workflow.GetInfo(ctx)
	now := workflow.Now(ctx)
	// The run that opens the alert names it: continue-as-new keeps the key in the state, and a
	// condition returning after the resolution opens a new alert in a new run (see run).
	a.s = AlertLifecycleState{Key: info.WorkflowExecution.ID + "/" + info.WorkflowExecution.RunID, State: recording.AlertOpen,
		Active: true, Summary: in.Summary, OpenedAt: now}
	a.event(ctx, recording.AlertOpen, "", in.Summary)
	return a
}

func (a *alert) register(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (AlertLifecycleState, error) { return a.s, nil }); err != nil {
		return fmt.Errorf("AlertLifecycle query handler: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateAcknowledge, a.acknowledge,
		workflow.UpdateHandlerOptions{Validator: a.validateAck}); err != nil {
		return fmt.Errorf("AlertLifecycle acknowledge handler: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateSilence, a.silence,
		workflow.UpdateHandlerOptions{Validator: a.validateSilence}); err != nil {
		return fmt.Errorf("AlertLifecycle silence handler: %w", err)
	}
	return nil
}

func (a *alert) run(ctx workflow.Context) (AlertLifecycleState, error) {
	for {
		if a.s.State == recording.AlertOpen && a.s.Active {
			a.s.State, a.s.NotifiedAt = recording.AlertNotified, workflow.Now(ctx)
			a.event(ctx, recording.AlertNotified, "", "")
			a.send(ctx, notify.NoticeOpened, nil)
			if a.in.Notice {
				now := workflow.Now(ctx)
				a.s.Active, a.s.ClearedAt, a.s.State, a.s.ResolvedAt = false, now, recording.AlertResolved, now
				a.event(ctx, recording.AlertResolved, "", "a notice: resolved once told")
			}
		}
		if a.s.State == recording.AlertAcknowledged && a.in.Kind.OneShot() &&
			workflow.GetVersion(ctx, changeResolveOnAck, workflow.DefaultVersion, 1) == 1 {
			// Nothing will clear it: the person who took it closes it.
			now := workflow.Now(ctx)
			a.s.Active, a.s.ClearedAt, a.s.State, a.s.ResolvedAt = false, now, recording.AlertResolved, now
			a.event(ctx, recording.AlertResolved, a.s.AckedBy, "acknowledged: this condition does not clear by itself")
		}
		a.flush(ctx)
		if a.s.State == recording.AlertResolved {
			// The recovery notices are activities of this run: they must finish before it does.
			_ = workflow.Await(ctx, func() bool { return a.inflight == 0 })
			if c, ok := a.raisedAgain(); ok {
				// Raised while this run was ending (SignalWithStart reached it, not a new run):
				// a new alert, in a new run, so the raise is not lost.
				return a.s, workflow.NewContinueAsNewError(ctx, AlertLifecycle, AlertInput{Kind: a.in.Kind,
					SessionID: a.in.SessionID, DeviceID: a.in.DeviceID, Subject: a.in.Subject, Summary: cmp.Or(c.Summary, a.s.Summary), Policy: a.in.Policy})
			}
			return a.s, nil
		}
		if a.historyFull(ctx) {
			return a.s, a.continueAsNew(ctx)
		}
		a.wait(ctx)
	}
}

// raisedAgain drains the condition signals that arrived after the resolution and reports
// whether the last one raised the condition again.
func (a *alert) raisedAgain() (AlertCondition, bool) {
	if a.in.Notice {
		return AlertCondition{}, false // its own raise (SignalWithStart) is still queued: a notice never reopens
	}
	var last AlertCondition
	for {
		var c AlertCondition
		if !a.cond.ReceiveAsync(&c) {
			return last, last.Active
		}
		last = c
	}
}

// wait blocks until the next deadline, a condition signal or an update, and applies it.
func (a *alert) wait(ctx workflow.Context) {
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	sel := workflow.NewSelector(ctx)
	if at, ok := a.deadline(); ok {
		d := max(at.Sub(workflow.Now(ctx)), 0)
		sel.AddFuture(workflow.NewTimer(tctx, d), func(workflow.Future) { a.onTimer(ctx) })
	}
	sel.AddReceive(a.cond, func(c workflow.ReceiveChannel, _ bool) {
		var ac AlertCondition
		c.Receive(ctx, &ac)
		a.onCondition(ctx, ac)
	})
	sel.AddReceive(a.wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
	sel.Select(ctx)
}

// escalating: a later tier is told if nobody reacts.
func (a *alert) escalating() bool {
	return a.s.Active && (a.s.State == recording.AlertNotified || a.s.State == recording.AlertEscalated) &&
		a.s.Tier+1 < a.in.Policy.Tiers
}

// deadline is the earliest time something happens without a signal.
func (a *alert) deadline() (time.Time, bool) {
	var next []time.Time
	if !a.s.Active {
		next = append(next, a.s.ClearedAt.Add(a.in.Policy.Damping))
	}
	if a.s.State == recording.AlertSilenced {
		next = append(next, a.s.SilencedUntil)
	}
	if a.escalating() {
		next = append(next, a.s.NotifiedAt.Add(a.in.Policy.EscalateAfter))
	}
	if len(next) == 0 {
		return time.Time{}, false
	}
	return slices.MinFunc(next, time.Time.Compare), true
}

func (a *alert) onTimer(ctx workflow.Context) {
	now := workflow.Now(ctx)
	switch {
	case !a.s.Active && !now.Before(a.s.ClearedAt.Add(a.in.Policy.Damping)):
		a.s.State, a.s.ResolvedAt = recording.AlertResolved, now
		a.event(ctx, recording.AlertResolved, "", "the condition cleared")
		if len(a.s.Notified) > 0 {
			a.send(ctx, notify.NoticeRecovered, slices.Clone(a.s.Notified))
		}
	case a.s.State == recording.AlertSilenced && !now.Before(a.s.SilencedUntil):
		a.s.State, a.s.SilencedUntil = recording.AlertNotified, time.Time{}
		if !a.s.Active {
			a.event(ctx, recording.AlertNotified, "", "silence ended; the condition is clear")
			return // resolves at the end of the damping window, or notifies if it returns
		}
		a.s.NotifiedAt = now
		a.event(ctx, recording.AlertNotified, "", "silence ended; the condition still holds")
		a.send(ctx, notify.NoticeReminder, nil)
	case a.escalating() && !now.Before(a.s.NotifiedAt.Add(a.in.Policy.EscalateAfter)):
		a.s.Tier++
		a.s.State, a.s.NotifiedAt = recording.AlertEscalated, now
		a.event(ctx, recording.AlertEscalated, "", fmt.Sprintf("unacknowledged: tier %d told", a.s.Tier))
		a.send(ctx, notify.NoticeEscalated, nil)
	}
}

// onCondition applies a raise or a clear. A condition that returns within the damping window
// is the same alert, counted as a reopen, and tells nobody again (flapping).
func (a *alert) onCondition(ctx workflow.Context, c AlertCondition) {
	if c.Summary != "" {
		a.s.Summary = c.Summary
	}
	switch {
	case c.Active && !a.s.Active:
		a.s.Active, a.s.ClearedAt = true, time.Time{}
		a.s.Reopens++
		a.event(ctx, a.s.State, "", "the condition returned within the damping window")
	case !c.Active && a.s.Active:
		a.s.Active, a.s.ClearedAt = false, workflow.Now(ctx)
		a.event(ctx, a.s.State, "", "the condition cleared")
	}
}

func (a *alert) validateAck(ctx workflow.Context, req AckRequest) error {
	if err := a.validatePerson(req.Key, req.Who, req.Note); err != nil {
		return err
	}
	if a.s.State == recording.AlertAcknowledged {
		return fmt.Errorf("the alert was already acknowledged by %s", a.s.AckedBy)
	}
	return nil
}

func (a *alert) acknowledge(ctx workflow.Context, req AckRequest) (AlertLifecycleState, error) {
	now := workflow.Now(ctx)
	a.s.State, a.s.SilencedUntil = recording.AlertAcknowledged, time.Time{}
	a.s.AckedBy, a.s.AckedAt, a.s.AckNote = strings.TrimSpace(req.Who), now, req.Note
	a.event(ctx, recording.AlertAcknowledged, a.s.AckedBy, req.Note)
	a.wake.SendAsync(nil)
	return a.s, nil
}

func (a *alert) validateSilence(ctx workflow.Context, req SilenceRequest) error {
	if err := a.validatePerson(req.Key, req.Who, req.Note); err != nil {
		return err
	}
	if a.s.State == recording.AlertAcknowledged {
		return errors.New("the alert is acknowledged: it no longer escalates")
	}
	now := workflow.Now(ctx)
	if !req.Until.After(now) {
		return errors.New("until must be in the future")
	}
	if limit := a.in.Policy.MaxSilence; limit > 0 && req.Until.Sub(now) > limit {
		return fmt.Errorf("until must be within %s", limit)
	}
	return nil
}

func (a *alert) silence(ctx workflow.Context, req SilenceRequest) (AlertLifecycleState, error) {
	a.s.State, a.s.SilencedUntil = recording.AlertSilenced, req.Until
	who := strings.TrimSpace(req.Who)
	a.event(ctx, recording.AlertSilenced, who, strings.TrimSpace(req.Note+" (until "+req.Until.UTC().Format(time.RFC3339)+")"))
	a.wake.SendAsync(nil)
	return a.s, nil
}

// validatePerson checks what every person's request carries.
func (a *alert) validatePerson(key, who, note string) error {
	switch {
	case a.s.State == recording.AlertResolved:
		return errors.New("the alert is resolved")
	case key != "" && key != a.s.Key:
		return errors.New("the alert is resolved (this is a later alert of the same condition)")
	case strings.TrimSpace(who) == "":
		return errors.New("who must name the person")
	case len(who) > MaxAlertWho:
		return fmt.Errorf("who must be at most %d bytes", MaxAlertWho)
	case len(note) > MaxAlertNote:
		return fmt.Errorf("note must be at most %d bytes", MaxAlertNote)
	}
	return nil
}

// event appends a transition to be recorded.
func (a *alert) event(ctx workflow.Context, state recording.AlertState, actor, note string) {
	a.s.Seq++
	a.s.Pending = append(a.s.Pending, activities.AlertEvent{Seq: a.s.Seq, State: state, Actor: actor, Note: note,
		At: workflow.Now(ctx)})
}

// flush records the alert's row and its pending transitions; it retries until the database
// answers (dbWrite), so no transition is lost.
func (a *alert) flush(ctx workflow.Context) {
	if len(a.s.Pending) == 0 {
		return
	}
	var act *activities.Alerts
	if err := dbWrite(ctx, act.RecordAlert, a.record(ctx), nil); err != nil {
		workflow.GetLogger(ctx).Error("recording the alert", "error", err)
		return
	}
	a.s.Pending = nil
}

func (a *alert) record(ctx workflow.Context) activities.AlertRecord {
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	return activities.AlertRecord{Key: a.s.Key, WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, Kind: a.in.Kind,
		SessionID: a.in.SessionID, DeviceID: a.in.DeviceID, Subject: a.in.Subject, Summary: a.s.Summary, State: a.s.State, Tier: a.s.Tier,
		Reopens: a.s.Reopens, AckedBy: a.s.AckedBy, AckedAt: opt(a.s.AckedAt), AckNote: a.s.AckNote,
		SilencedUntil: opt(a.s.SilencedUntil), OpenedAt: a.s.OpenedAt, UpdatedAt: workflow.Now(ctx),
		ResolvedAt: opt(a.s.ResolvedAt), Events: a.s.Pending}
}

// send delivers a notice in the background, so a slow or broken channel delays neither the
// escalation timers nor other channels: to recipients, or to the current tier when nil.
func (a *alert) send(ctx workflow.Context, what string, recipients []activities.Recipient) {
	n := notify.Notice{Notice: what, AlertKey: a.s.Key, Kind: string(a.in.Kind), Summary: a.s.Summary,
		SessionID: a.in.SessionID, DeviceID: a.in.DeviceID, Tier: a.s.Tier, OpenedAt: a.s.OpenedAt, At: workflow.Now(ctx)}
	a.inflight++
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { a.inflight-- }()
		var act *activities.Alerts
		if recipients == nil {
			q := activities.RecipientQuery{Kind: a.in.Kind, SessionID: a.in.SessionID, DeviceID: a.in.DeviceID, Subject: a.in.Subject,
				Tier: n.Tier, Owner: a.in.Owner}
			if err := dbWrite(ctx, act.AlertRecipients, q, &recipients); err != nil {
				workflow.GetLogger(ctx).Error("finding the alert's recipients", "error", err)
				return
			}
		}
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2,
				MaximumInterval: 5 * time.Minute, MaximumAttempts: int32(max(a.in.Policy.NotifyAttempts, 1))},
		})
		futures := make([]workflow.Future, len(recipients))
		for i, r := range recipients {
			futures[i] = workflow.ExecuteActivity(actx, act.Notify, activities.NotifyRequest{To: r, Notice: n})
			if !slices.Contains(a.s.Notified, r) {
				a.s.Notified = append(a.s.Notified, r)
			}
		}
		for i, f := range futures {
			if err := f.Get(ctx, nil); err != nil {
				// Recorded as failed deliveries (the channel's health); the alert goes on.
				workflow.GetLogger(ctx).Error("notice not delivered", "to", recipients[i].Target, "error", err)
			}
		}
	})
}

// historyFull: the history grows with every transition and delivery; long-open alerts
// continue as new before the server's limits.
func (a *alert) historyFull(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() ||
		(a.in.Policy.HistoryLimit > 0 && info.GetCurrentHistoryLength() >= a.in.Policy.HistoryLimit)
}

// continueAsNew carries the state into a new run, once deliveries and handlers finished and
// with the signals that arrived meanwhile applied (none is lost).
func (a *alert) continueAsNew(ctx workflow.Context) error {
	_ = workflow.Await(ctx, func() bool { return a.inflight == 0 && workflow.AllHandlersFinished(ctx) })
	for {
		var c AlertCondition
		if !a.cond.ReceiveAsync(&c) {
			break
		}
		a.onCondition(ctx, c)
	}
	a.flush(ctx)
	in := a.in
	s := a.s
	in.State = &s
	return workflow.NewContinueAsNewError(ctx, AlertLifecycle, in)
}
