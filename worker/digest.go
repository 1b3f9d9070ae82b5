package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/jax-mba/mba/workflows"
)

// DigestSchedule is when the digest runs (the alerts.digest settings).
type DigestSchedule struct {
	Enabled bool
	// At is the time of day of a daily digest, minutes after midnight in TimeZone.
	At int
	// Every, when set, runs the digest at this interval instead of daily at At.
	Every     time.Duration
	TimeZone  string // IANA zone of At and of the times in the mail
	SendEmpty bool
}

// EnsureDigestSchedule creates the digest's Temporal Schedule, or brings an existing one to s
// (every worker start calls it: one schedule however many start), or deletes it when s is
// disabled. A run still going when the next is due makes that one skip.
func EnsureDigestSchedule(ctx context.Context, c client.Client, taskQueue string, s DigestSchedule) error {
	id := workflows.DigestScheduleID(taskQueue)
	schedules := c.ScheduleClient()
	if !s.Enabled {
		err := schedules.GetHandle(ctx, id).Delete(ctx)
		var nf *serviceerror.NotFound
		if err != nil && !errors.As(err, &nf) {
			return fmt.Errorf("EnsureDigestSchedule: deleting %s: %w", id, err)
		}
		return nil
	}
	spec := client.ScheduleSpec{TimeZoneName: s.TimeZone}
	period := 24 * time.Hour
	if s.Every > 0 {
		period = s.Every
		spec.Intervals = []client.ScheduleIntervalSpec{{Every: s.Every}}
	} else {
		spec.Calendars = []client.ScheduleCalendarSpec{{Hour: []client.ScheduleRange{{Start: s.At / 60}},
			Minute: []client.ScheduleRange{{Start: s.At % 60}}, Comment: "daily digest"}}
	}
	action := &client.ScheduleWorkflowAction{ID: id, Workflow: workflows.Digest, TaskQueue: taskQueue,
		Args: []any{workflows.DigestInput{Period: period, TimeZone: s.TimeZone, SendEmpty: s.SendEmpty}}}
	_, err := schedules.Create(ctx, client.ScheduleOptions{ID: id, Spec: spec, Action: action,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP})
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		if err != nil {
			return fmt.Errorf("EnsureDigestSchedule: creating %s: %w", id, err)
		}
		return nil
	}
	err = schedules.GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			sched := in.Description.Schedule
			sched.Spec, sched.Action = &spec, action
			if sched.Policy == nil {
				sched.Policy = &client.SchedulePolicies{}
			}
			sched.Policy.Overlap = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
			return &client.ScheduleUpdate{Schedule: &sched}, nil
		}})
	if err != nil {
		return fmt.Errorf("EnsureDigestSchedule: updating %s: %w", id, err)
	}
	return nil
}
