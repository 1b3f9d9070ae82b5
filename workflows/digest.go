package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
)

// DigestScheduleID is the ID of the Temporal Schedule that runs the digest of a deployment.
func DigestScheduleID(taskQueue string) string { return "mba-digest-" + taskQueue }

// DigestInput is the digest's schedule action: the period each run looks back over (the
// schedule's interval, a day for a daily time) and how to write it.
type DigestInput struct {
	Period    time.Duration
	TimeZone  string
	SendEmpty bool
}

// DigestResult says how many readers got their digest.
type DigestResult struct {
	Readers int
	Sent    int
}

// Digest mails one summary of the last in.Period to each reader who gets one. Each mail is an
// activity of its own, so a failing address is retried alone and never resends the others.
func Digest(ctx workflow.Context, in DigestInput) (DigestResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 5 * time.Minute, MaximumAttempts: 6},
	})
	until := workflow.Now(ctx)
	var d *activities.Digest
	var mails []activities.DigestMail
	period := activities.DigestPeriod{Since: until.Add(-in.Period), Until: until, TimeZone: in.TimeZone, SendEmpty: in.SendEmpty}
	if err := workflow.ExecuteActivity(ctx, d.DigestMails, period).Get(ctx, &mails); err != nil {
		return DigestResult{}, err
	}
	sends := make([]workflow.Future, len(mails))
	for i, m := range mails {
		sends[i] = workflow.ExecuteActivity(ctx, d.MailDigest, m)
	}
	res := DigestResult{Readers: len(mails)}
	for i, f := range sends {
		if err := f.Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("mailing a digest", "to", mails[i].To, "error", err)
			continue
		}
		res.Sent++
	}
	return res, nil
}
