package workflows

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/internal/recording"
)

// Issue 13: every activity has a bound or a heartbeat, so a paused VM (a worker that took an
// attempt and never answers) cannot leave one pending for an hour.

// longestUnwatched is the longest attempt an activity may have without a heartbeat timeout.
const longestUnwatched = 10 * time.Minute

// TestBoundEveryActivityOptionHasStartToClose reads workflows/*.go: every ActivityOptions and
// LocalActivityOptions sets StartToCloseTimeout, and one longer than longestUnwatched (or not
// a plain constant) sets HeartbeatTimeout too. The command activities take their attempt as a
// parameter; TestBoundCommandActivities checks the values they get.
func TestBoundEveryActivityOptionHasStartToClose(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	found := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := lit.Type.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "ActivityOptions" && sel.Sel.Name != "LocalActivityOptions") {
				return true
			}
			found++
			fields := map[string]ast.Expr{}
			for _, e := range lit.Elts {
				if kv, ok := e.(*ast.KeyValueExpr); ok {
					fields[kv.Key.(*ast.Ident).Name] = kv.Value
				}
			}
			at := fset.Position(lit.Pos())
			stc, ok := fields["StartToCloseTimeout"]
			require.True(t, ok, "%s: %s without StartToCloseTimeout: an attempt a paused worker took stays pending until the workflow ends", at, sel.Sel.Name)
			if id, ok := stc.(*ast.Ident); ok && id.Name == "attempt" {
				return true // command(): checked with its values below
			}
			if d, ok := constDuration(stc); ok && d <= longestUnwatched {
				return true
			}
			_, watched := fields["HeartbeatTimeout"]
			require.True(t, watched, "%s: an attempt that may exceed %s needs a HeartbeatTimeout", at, longestUnwatched)
			return true
		})
	}
	require.GreaterOrEqual(t, found, 7, "the check found the activity options")
}

// constDuration evaluates N * time.Unit, time.Unit and N.
func constDuration(e ast.Expr) (time.Duration, bool) {
	units := map[string]time.Duration{"Millisecond": time.Millisecond, "Second": time.Second, "Minute": time.Minute, "Hour": time.Hour}
	switch x := e.(type) {
	case *ast.SelectorExpr:
		if pkg, ok := x.X.(*ast.Ident); ok && pkg.Name == "time" {
			d, ok := units[x.Sel.Name]
			return d, ok
		}
	case *ast.BasicLit:
		n, err := strconv.ParseInt(x.Value, 10, 64)
		return time.Duration(n), err == nil
	case *ast.BinaryExpr:
		a, aok := constDuration(x.X)
		b, bok := constDuration(x.Y)
		if x.Op == token.MUL && aok && bok {
			return a * b, true
		}
	}
	return 0, false
}

// activityBounds records the options of every activity a workflow schedules, and divides the
// attempt bounds of the command activities by scale: the test environment measures activity
// timeouts in real time, where a five-minute attempt would take five minutes.
type activityBounds struct {
	interceptor.WorkerInterceptorBase
	scale time.Duration

	mu   sync.Mutex
	seen map[string][]workflow.ActivityOptions
}

func (b *activityBounds) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &boundsInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}, b: b}
}

type boundsInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	b *activityBounds
}

func (i *boundsInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&boundsOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}, b: i.b})
}

type boundsOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	b *activityBounds
}

func isCommand(activity string) bool {
	return activity == "SendStart" || activity == "SendStop" || activity == "SendComplete"
}

func (o *boundsOutbound) ExecuteActivity(ctx workflow.Context, activity string, args ...any) workflow.Future {
	opts := workflow.GetActivityOptions(ctx)
	o.b.mu.Lock()
	o.b.seen[activity] = append(o.b.seen[activity], opts)
	o.b.mu.Unlock()
	if isCommand(activity) && o.b.scale > 1 {
		ctx = workflow.WithStartToCloseTimeout(ctx, opts.StartToCloseTimeout/o.b.scale)
		if opts.ScheduleToCloseTimeout > 0 {
			ctx = workflow.WithScheduleToCloseTimeout(ctx, opts.ScheduleToCloseTimeout/o.b.scale)
		}
	}
	return o.Next.ExecuteActivity(ctx, activity, args...)
}

func (o *boundsOutbound) ExecuteLocalActivity(ctx workflow.Context, activity string, args ...any) workflow.Future {
	opts := workflow.GetLocalActivityOptions(ctx)
	o.b.mu.Lock()
	o.b.seen["local "+activity] = append(o.b.seen["local "+activity], workflow.ActivityOptions{
		StartToCloseTimeout: opts.StartToCloseTimeout, ScheduleToCloseTimeout: opts.ScheduleToCloseTimeout, RetryPolicy: opts.RetryPolicy})
	o.b.mu.Unlock()
	return o.Next.ExecuteLocalActivity(ctx, activity, args...)
}

func newBoundsTest(t *testing.T, scale time.Duration) (*deviceTest, *activityBounds) {
	dt := newDeviceTest(t)
	b := &activityBounds{scale: scale, seen: map[string][]workflow.ActivityOptions{}}
	dt.env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{b}})
	return dt, b
}

// TestBoundCommandActivities runs a recording to its end and a canceled one, and checks what
// every activity they schedule is given: each attempt of START, STOP and COMPLETE ends within
// commandAttempt and is retried (the mailbox is written again), STOP and COMPLETE also give up
// within their overall bound; the read-model writes have short attempts.
func TestBoundCommandActivities(t *testing.T) {
	seen := map[string][]workflow.ActivityOptions{}
	{
		dt, b := newBoundsTest(t, 1)
		dt.startsAfter(10 * time.Second)
		dt.at(10*time.Second+time.Hour, recording.Event{ID: 5, Kind: recording.EventEnded, Duration: 3600})
		require.Equal(t, recording.DeviceComplete, dt.run(time.Hour).Status)
		for k, v := range b.seen {
			seen[k] = append(seen[k], v...)
		}
	}
	{
		dt, b := newBoundsTest(t, 1)
		dt.startsAfter(10 * time.Second)
		dt.stopsWith(recording.Event{Kind: recording.EventEnded, Duration: 50})
		dt.env.RegisterDelayedCallback(func() {
			dt.env.SignalWorkflow(SignalStop, StopRequest{UserID: 1, Reason: "session canceled"})
		}, time.Minute)
		require.Equal(t, recording.DeviceCanceled, dt.run(time.Hour).Status)
		for k, v := range b.seen {
			seen[k] = append(seen[k], v...)
		}
	}
	for _, a := range []string{"SendStart", "SendStop", "SendComplete"} {
		require.NotEmpty(t, seen[a], "%s was scheduled", a)
		for _, o := range seen[a] {
			require.Positive(t, o.StartToCloseTimeout, a)
			require.LessOrEqual(t, o.StartToCloseTimeout, commandAttempt, "%s: one attempt of a command is bounded", a)
			require.NotNil(t, o.RetryPolicy, a)
			require.NotEqual(t, int32(1), o.RetryPolicy.MaximumAttempts, "%s: an attempt lost to a paused worker is retried", a)
			require.Positive(t, o.RetryPolicy.MaximumInterval, a)
			require.LessOrEqual(t, o.RetryPolicy.MaximumInterval, time.Minute, "%s: the next attempt follows within a minute", a)
			for _, nr := range o.RetryPolicy.NonRetryableErrorTypes {
				require.NotContains(t, strings.ToLower(nr), "timeout", "%s: a timed-out attempt is retried", a)
			}
		}
	}
	for _, a := range []string{"SendStop", "SendComplete"} {
		for _, o := range seen[a] {
			require.Positive(t, o.ScheduleToCloseTimeout, "%s gives up in the end (the mailbox keeps the command)", a)
			require.LessOrEqual(t, o.ScheduleToCloseTimeout, max(testSettings.EndGrace, testSettings.ReleaseTimeout), a)
		}
	}
	for a, opts := range seen {
		for _, o := range opts {
			require.Positive(t, o.StartToCloseTimeout, "%s has an attempt bound", a)
			if !isCommand(a) {
				require.LessOrEqual(t, o.StartToCloseTimeout, time.Minute, "%s: a database write", a)
			}
		}
	}
}

// TestBoundStartWhoseWorkerNeverAnswers: the worker took the START attempt and never answers
// (its VM is paused): the attempt ends at its StartToClose bound (the activity's context ends
// there, the workflow sees a START_TO_CLOSE timeout), not after the hour of the start
// deadline. The test environment reports that first timeout as final; the server retries it
// per the policy TestBoundCommandActivities checks, so an enclosure waits at most
// commandAttempt plus a minute of backoff for its START to be written again.
func TestBoundStartWhoseWorkerNeverAnswers(t *testing.T) {
	const scale = 1000 // commandAttempt (5 min) becomes 300 ms of real time
	dt, b := newBoundsTest(t, scale)
	var mu sync.Mutex
	var bounds []time.Duration // deadline - start of each attempt, as the activity saw it
	var attempts int
	dt.env.OnActivity(dt.a.SendStart, mock.Anything, mock.Anything).Return(func(ctx context.Context, cmd activities.StartCommand) (recording.Event, error) {
		deadline, ok := ctx.Deadline()
		mu.Lock()
		attempts++
		if ok {
			bounds = append(bounds, time.Until(deadline))
		}
		mu.Unlock()
		<-ctx.Done() // the paused worker: never answers
		return recording.Event{}, ctx.Err()
	})
	began := time.Now()
	res := dt.run(time.Hour)
	waited := time.Since(began)

	require.Len(t, b.seen["SendStart"], 1)
	require.Equal(t, commandAttempt, b.seen["SendStart"][0].StartToCloseTimeout)
	require.Equal(t, 1, attempts)
	require.Len(t, bounds, 1, "the attempt's context has a deadline")
	require.LessOrEqual(t, bounds[0], commandAttempt/scale, "the attempt ends at its bound")
	// The whole run (an hour of start deadline in test time) took about one scaled attempt.
	require.Less(t, waited, 20*commandAttempt/scale+10*time.Second, "the blocked attempt ended at its bound")
	require.Equal(t, recording.DeviceFailed, res.Status)
	final := dt.final()
	require.Contains(t, final.Message, "could not command the enclosure")
	require.Contains(t, strings.ToLower(final.Message), "timeout", "the workflow saw the attempt time out")
	require.Contains(t, final.Message, "StartToClose", "the timeout is the attempt's bound")
}
