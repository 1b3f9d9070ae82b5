package dispatch

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/workflows"
)

// Schedules keeps the Temporal Schedules of scheduled sessions: Temporal decides when each
// fires (spec, overlap, catch-up window, pause, remaining actions) and starts a
// workflows.ScheduledSession each time.
type Schedules struct {
	Temporal  client.Client
	TaskQueue string
}

// Schedule kinds.
const (
	ScheduleOnce     = "once"     // one run at At
	ScheduleCalendar = "calendar" // at Hour:Minute on DaysOfWeek (every day when empty)
	ScheduleInterval = "interval" // every Every
)

// Overlap policies, as the API names them.
var overlapPolicies = map[string]enumspb.ScheduleOverlapPolicy{
	"skip":         enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
	"buffer_one":   enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE,
	"buffer_all":   enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL,
	"allow_all":    enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL,
	"cancel_other": enumspb.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER,
}

// ValidOverlap reports whether name is an overlap policy.
func ValidOverlap(name string) bool { _, ok := overlapPolicies[name]; return ok }

// SchedulePlan is when a schedule fires and what each fire runs.
type SchedulePlan struct {
	Kind          string
	At            time.Time // once
	Hour, Minute  int       // calendar, in TimeZone
	DaysOfWeek    []int     // calendar: 0 is Sunday; empty: every day
	Every         time.Duration
	StartAt       time.Time // zero: now
	EndAt         time.Time // zero: no end
	TimeZone      string    // IANA name
	Count         int       // runs left; 0: no limit
	Overlap       string
	CatchupWindow time.Duration
	Paused        bool
	Note          string
	Fire          workflows.ScheduledSessionInput
}

func (p SchedulePlan) spec() client.ScheduleSpec {
	spec := client.ScheduleSpec{StartAt: p.StartAt, EndAt: p.EndAt, TimeZoneName: p.TimeZone}
	switch p.Kind {
	case ScheduleOnce:
		spec.Calendars = []client.ScheduleCalendarSpec{{
			Second: []client.ScheduleRange{{Start: 0}}, Minute: []client.ScheduleRange{{Start: p.At.Minute()}},
			Hour: []client.ScheduleRange{{Start: p.At.Hour()}}, DayOfMonth: []client.ScheduleRange{{Start: p.At.Day()}},
			Month: []client.ScheduleRange{{Start: int(p.At.Month())}}, Year: []client.ScheduleRange{{Start: p.At.Year()}}}}
	case ScheduleCalendar:
		cal := client.ScheduleCalendarSpec{Second: []client.ScheduleRange{{Start: 0}}, Minute: []client.ScheduleRange{{Start: p.Minute}},
			Hour: []client.ScheduleRange{{Start: p.Hour}}, DayOfMonth: []client.ScheduleRange{{Start: 1, End: 31}},
			Month: []client.ScheduleRange{{Start: 1, End: 12}}, DayOfWeek: []client.ScheduleRange{{Start: 0, End: 6}}}
		if len(p.DaysOfWeek) > 0 {
			cal.DayOfWeek = nil
			for _, d := range p.DaysOfWeek {
				cal.DayOfWeek = append(cal.DayOfWeek, client.ScheduleRange{Start: d})
			}
		}
		spec.Calendars = []client.ScheduleCalendarSpec{cal}
	case ScheduleInterval:
		// Intervals count from the epoch: the offset makes the first run fall at StartAt.
		var offset time.Duration
		if !p.StartAt.IsZero() && p.Every > 0 {
			offset = time.Duration(p.StartAt.UnixNano() % int64(p.Every))
		}
		spec.Intervals = []client.ScheduleIntervalSpec{{Every: p.Every, Offset: offset}}
	}
	return spec
}

func (p SchedulePlan) action(taskQueue string) *client.ScheduleWorkflowAction {
	return &client.ScheduleWorkflowAction{
		ID: workflows.ScheduleFireWorkflowID(taskQueue, p.Fire.ScheduleID), Workflow: workflows.ScheduledSession,
		Args: []any{p.Fire}, TaskQueue: taskQueue,
		// A fire waits at most its limit; the hour is for the activities' retries.
		WorkflowExecutionTimeout: p.Fire.WaitLimit + time.Hour,
	}
}

// Create makes the schedule's Temporal Schedule.
func (s Schedules) Create(ctx context.Context, p SchedulePlan) error {
	_, err := s.Temporal.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID: workflows.ScheduleID(s.TaskQueue, p.Fire.ScheduleID), Spec: p.spec(), Action: p.action(s.TaskQueue),
		Overlap: overlapPolicies[p.Overlap], CatchupWindow: p.CatchupWindow, Paused: p.Paused, Note: p.Note,
		RemainingActions: p.Count,
	})
	return wrap(err, "Schedules.Create %d", p.Fire.ScheduleID)
}

// Update replaces the schedule's spec, action and policies; its pause stays as it is.
func (s Schedules) Update(ctx context.Context, p SchedulePlan) error {
	err := s.handle(ctx, p.Fire.ScheduleID).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			sched := in.Description.Schedule
			spec := p.spec()
			sched.Spec = &spec
			sched.Action = p.action(s.TaskQueue)
			sched.Policy = &client.SchedulePolicies{Overlap: overlapPolicies[p.Overlap], CatchupWindow: p.CatchupWindow}
			state := *sched.State
			state.LimitedActions, state.RemainingActions = p.Count > 0, p.Count
			sched.State = &state
			return &client.ScheduleUpdate{Schedule: &sched}, nil
		},
	})
	return wrap(err, "Schedules.Update %d", p.Fire.ScheduleID)
}

// Pause stops the schedule's fires, with a note saying why.
func (s Schedules) Pause(ctx context.Context, id int64, note string) error {
	return wrap(s.handle(ctx, id).Pause(ctx, client.SchedulePauseOptions{Note: note}), "Schedules.Pause %d", id)
}

// Resume lets the schedule fire again.
func (s Schedules) Resume(ctx context.Context, id int64, note string) error {
	return wrap(s.handle(ctx, id).Unpause(ctx, client.ScheduleUnpauseOptions{Note: note}), "Schedules.Resume %d", id)
}

// Trigger fires the schedule now (paused or not; it counts no remaining action).
func (s Schedules) Trigger(ctx context.Context, id int64) error {
	return wrap(s.handle(ctx, id).Trigger(ctx, client.ScheduleTriggerOptions{}), "Schedules.Trigger %d", id)
}

// Delete removes the Temporal Schedule; the fires already started run to their end.
func (s Schedules) Delete(ctx context.Context, id int64) error {
	return wrap(s.handle(ctx, id).Delete(ctx), "Schedules.Delete %d", id)
}

// ScheduleRuns is what Temporal says of a schedule's runs.
type ScheduleRuns struct {
	NextRuns         []time.Time
	RecentRuns       []RecentRun
	Paused           bool
	Note             string
	RemainingActions *int // nil: no limit
	Actions          int  // taken so far
}

// RecentRun is one action a schedule took.
type RecentRun struct {
	ScheduledAt time.Time
	ActualAt    time.Time
	WorkflowID  string
}

// Describe asks Temporal for the schedule's next and recent runs.
func (s Schedules) Describe(ctx context.Context, id int64) (ScheduleRuns, error) {
	d, err := s.handle(ctx, id).Describe(ctx)
	if err != nil {
		return ScheduleRuns{}, wrap(err, "Schedules.Describe %d", id)
	}
	out := ScheduleRuns{NextRuns: d.Info.NextActionTimes, Actions: d.Info.NumActions}
	if st := d.Schedule.State; st != nil {
		out.Paused, out.Note = st.Paused, st.Note
		if st.LimitedActions {
			n := st.RemainingActions
			out.RemainingActions = &n
		}
	}
	for _, a := range d.Info.RecentActions {
		r := RecentRun{ScheduledAt: a.ScheduleTime, ActualAt: a.ActualTime}
		if a.StartWorkflowResult != nil {
			r.WorkflowID = a.StartWorkflowResult.WorkflowID
		}
		out.RecentRuns = append(out.RecentRuns, r)
	}
	return out, nil
}

func (s Schedules) handle(ctx context.Context, id int64) client.ScheduleHandle {
	return s.Temporal.ScheduleClient().GetHandle(ctx, workflows.ScheduleID(s.TaskQueue, id))
}

func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
