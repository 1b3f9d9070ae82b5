package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/jax-mba/mba/activities"
)

// TestDigestMailsEachReaderOnce: the digest covers the period before the run, mails each reader
// in an activity of its own, and an address that keeps failing costs only its own mail.
func TestDigestMailsEachReaderOnce(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var d *activities.Digest
	env.RegisterActivity(d)
	start := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	env.SetStartTime(start)
	var asked activities.DigestPeriod
	env.OnActivity(d.DigestMails, mock.Anything, mock.Anything).Return(
		func(_ context.Context, p activities.DigestPeriod) ([]activities.DigestMail, error) {
			asked = p
			return []activities.DigestMail{{To: "ada@lab.example", Subject: "MBA digest"}, {To: "broken@lab.example"}}, nil
		})
	sent := map[string]int{}
	var mu sync.Mutex // the mails run as concurrent activities
	env.OnActivity(d.MailDigest, mock.Anything, mock.Anything).Return(func(_ context.Context, m activities.DigestMail) error {
		mu.Lock()
		sent[m.To]++
		mu.Unlock()
		if m.To == "broken@lab.example" {
			return temporal.NewNonRetryableApplicationError("mailbox unavailable", "SMTP", errors.New("550"))
		}
		return nil
	})

	env.ExecuteWorkflow(Digest, DigestInput{Period: 24 * time.Hour, TimeZone: "Europe/Berlin"})

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res DigestResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, DigestResult{Readers: 2, Sent: 1}, res)
	require.Equal(t, map[string]int{"ada@lab.example": 1, "broken@lab.example": 1}, sent)
	require.True(t, asked.Until.Equal(start), "until is the run's start, got %s", asked.Until)
	require.True(t, asked.Since.Equal(start.Add(-24*time.Hour)))
	require.Equal(t, "Europe/Berlin", asked.TimeZone)
}

// TestDigestFailsWhenItCannotGather: no facts, no mails; the run fails for the schedule's
// history to show (the next run covers its own period).
func TestDigestFailsWhenItCannotGather(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var d *activities.Digest
	env.RegisterActivity(d)
	env.OnActivity(d.DigestMails, mock.Anything, mock.Anything).Return(nil,
		temporal.NewNonRetryableApplicationError("database is down", "DB", nil))

	env.ExecuteWorkflow(Digest, DigestInput{Period: time.Hour, TimeZone: "UTC"})

	require.Error(t, env.GetWorkflowError())
	env.AssertNotCalled(t, "MailDigest", mock.Anything, mock.Anything)
}
