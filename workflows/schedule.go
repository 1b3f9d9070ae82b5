package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
)

// ScheduleID is the ID of the Temporal Schedule of schedule id (one per deployment's task
// queue, as the other singleton IDs); `temporal schedule list` shows it.
func ScheduleID(taskQueue string, id int64) string {
	return fmt.Sprintf("mba-%s-schedule-%d", taskQueue, id)
}

// ScheduleFireWorkflowID is the ID of the schedule's action: Temporal appends each fire's
// time to it, so every fire has an ID of its own (its idempotency key).
func ScheduleFireWorkflowID(taskQueue string, id int64) string {
	return fmt.Sprintf("mba-%s-schedule-%d-fire", taskQueue, id)
}

// BusyPolicy is what a schedule's fire does when one of its enclosures is busy in another
// session, DOWN or unusable at fire time.
type BusyPolicy string

const (
	BusySkipEnclosure BusyPolicy = "skip_enclosure" // create the session without it
	BusySkipRun       BusyPolicy = "skip_run"       // create no session this time
	// BusyWait re-checks until every enclosure is free or the limit passes, then skips the
	// ones still busy. The session is created only then: never early, since START goes out at once.
	BusyWait BusyPolicy = "wait"
)

// BusyPolicies lists every policy, for validation.
var BusyPolicies = []BusyPolicy{BusySkipEnclosure, BusySkipRun, BusyWait}

// ScheduledSessionInput is the argument of every fire of a schedule (its Temporal Schedule's
// action). A schedule naming a template has that version's session here, its TemplateID and
// TemplateVersion set (a version never changes, so the fire need not read it).
type ScheduledSessionInput struct {
	ScheduleID int64
	Name       string // the schedule's, for notices
	Owner      string // its owner's e-mail: told of skipped runs and enclosures
	// Session is what each fire creates; CreatedBy is the owner. The fire sets ScheduleID and
	// an IdempotencyKey of its own.
	Session   recording.NewSession
	Busy      BusyPolicy
	WaitLimit time.Duration // BusyWait: the longest wait
	// RecheckEvery is BusyWait's durable timer between checks; zero: 30 s.
	RecheckEvery time.Duration
}

// ScheduledSessionResult is what a fire did (also recorded in the store: activities.ScheduleFire).
type ScheduledSessionResult struct {
	Outcome   string
	Message   string
	SessionID int64
	Skipped   []string // enclosures left out, with why
}

// attrScheduledStart is the search attribute Temporal sets on a schedule's actions.
var attrScheduledStart = temporal.NewSearchAttributeKeyTime("TemporalScheduledStartTime")

// ScheduledSession is one fire of a schedule: it checks the enclosures, applies the busy
// policy, creates the session through the one session-creation operation (with a key of the
// fire, so a retried activity never creates two), records what happened and tells the owner
// of anything skipped.
func ScheduledSession(ctx workflow.Context, in ScheduledSessionInput) (ScheduledSessionResult, error) {
	info := workflow.GetInfo(ctx)
	firedAt, ok := workflow.GetTypedSearchAttributes(ctx).GetTime(attrScheduledStart)
	if !ok {
		firedAt = info.WorkflowStartTime
	}
	if firedAt.IsZero() {
		firedAt = workflow.Now(ctx)
	}
	var sched *activities.Schedules
	unavailable, err := awaitFree(ctx, in)
	if err != nil {
		return ScheduledSessionResult{}, err
	}

	res := ScheduledSessionResult{}
	for _, u := range unavailable {
		res.Skipped = append(res.Skipped, u.Name+" ("+u.Reason+")")
	}
	ns := in.Session
	ns.ScheduleID = in.ScheduleID
	ns.IdempotencyKey = "fire:" + info.WorkflowExecution.ID
	ns.Devices = slices.DeleteFunc(slices.Clone(ns.Devices), func(d recording.NewSessionDevice) bool {
		return d.DeviceID != nil && slices.ContainsFunc(unavailable, func(u activities.EnclosureState) bool { return u.DeviceID == *d.DeviceID })
	})
	switch {
	case len(unavailable) > 0 && (in.Busy == BusySkipRun || len(ns.Devices) == 0):
		res.Outcome, res.Message = activities.FireSkipped, "run skipped: "+strings.Join(res.Skipped, ", ")
	default:
		actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute}})
		var sessions *activities.Sessions
		var created activities.CreatedSession
		err := workflow.ExecuteActivity(actx, sessions.CreateSession, ns).Get(ctx, &created)
		switch {
		case err != nil:
			res.Outcome, res.Message = activities.FireFailed, "the session was refused: "+err.Error()
		case len(unavailable) > 0:
			res.Outcome, res.SessionID = activities.FireCreatedPartial, created.ID
			res.Message = fmt.Sprintf("session %d created without %s", created.ID, strings.Join(res.Skipped, ", "))
		default:
			res.Outcome, res.SessionID = activities.FireCreated, created.ID
			res.Message = fmt.Sprintf("session %d created", created.ID)
		}
	}

	fire := activities.ScheduleFire{ScheduleID: in.ScheduleID, WorkflowID: info.WorkflowExecution.ID, FiredAt: firedAt,
		Outcome: res.Outcome, Message: res.Message, SessionID: res.SessionID}
	if err := dbWrite(ctx, sched.RecordScheduleFire, fire, nil); err != nil {
		workflow.GetLogger(ctx).Error("recording the schedule's fire", "error", err)
	}
	if res.Outcome != activities.FireCreated {
		// One notice per fire: the created session's (SessionID), or the first unavailable
		// enclosure's for a skipped run, so two schedules' notices do not share an alert.
		sig := activities.AlertSignal{Kind: recording.AlertScheduleSkipped, SessionID: res.SessionID, Active: true, Notice: true,
			Owner: in.Owner, Summary: fmt.Sprintf("schedule %q: %s", in.Name, res.Message)}
		if res.SessionID == 0 && len(unavailable) > 0 {
			sig.DeviceID = unavailable[0].DeviceID
		}
		signalAlert(ctx, sig)
	}
	return res, nil
}

// awaitFree checks the schedule's enclosures and returns those that cannot start; with
// BusyWait it re-checks on a durable timer until none is left or the wait limit passes.
func awaitFree(ctx workflow.Context, in ScheduledSessionInput) ([]activities.EnclosureState, error) {
	var sched *activities.Schedules
	ids := make([]int64, 0, len(in.Session.Devices))
	for _, d := range in.Session.Devices {
		if d.DeviceID != nil {
			ids = append(ids, *d.DeviceID)
		}
	}
	recheck := in.RecheckEvery
	if recheck <= 0 {
		recheck = 30 * time.Second
	}
	deadline := workflow.Now(ctx).Add(in.WaitLimit)
	for {
		var states []activities.EnclosureState
		if err := dbWrite(ctx, sched.EnclosureStates, ids, &states); err != nil {
			return nil, err
		}
		unavailable := notFree(ids, states)
		wait := deadline.Sub(workflow.Now(ctx))
		if len(unavailable) == 0 || in.Busy != BusyWait || wait <= 0 {
			return unavailable, nil
		}
		workflow.GetLogger(ctx).Info("waiting for enclosures", "unavailable", len(unavailable))
		if err := workflow.Sleep(ctx, min(recheck, wait)); err != nil {
			return nil, err
		}
	}
}

// notFree lists the enclosures of ids that cannot start now, in the schedule's order; one the
// store does not know any more is among them.
func notFree(ids []int64, states []activities.EnclosureState) []activities.EnclosureState {
	var out []activities.EnclosureState
	for _, id := range ids {
		i := slices.IndexFunc(states, func(s activities.EnclosureState) bool { return s.DeviceID == id })
		switch {
		case i < 0:
			out = append(out, activities.EnclosureState{DeviceID: id, Name: fmt.Sprintf("enclosure %d", id), Reason: "unknown"})
		case !states[i].Free:
			out = append(out, states[i])
		}
	}
	return out
}
