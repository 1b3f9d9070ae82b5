package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/jax-mba/mba/internal/testenv"
)

// opsRecipes reads the temporal column of the README's ops table, in order: the test runs what
// the README prints, so the two cannot drift apart.
func opsRecipes(t *testing.T) (actions, commands []string) {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	table := regexp.MustCompile(`(?s)<!-- ops-recipes[^>]*-->\n(.*?)<!-- /ops-recipes -->`).FindSubmatch(readme)
	require.NotNil(t, table, "README has no ops-recipes table")
	row := regexp.MustCompile("(?m)^\\| ([^|]+) \\| `(temporal [^`]+)` \\| `?[^|]*`? \\|$")
	for _, m := range row.FindAllStringSubmatch(string(table[1]), -1) {
		actions, commands = append(actions, m[1]), append(commands, m[2])
	}
	require.NotEmpty(t, actions)
	return actions, commands
}

// TestOpsRecipesRunAsPrinted runs every temporal command of the README's ops table against a
// live session (three enclosures recording) and a session stuck on a silent enclosure, with
// the pinned CLI, and checks each succeeds and, where it can be seen, does what it says.
func TestOpsRecipesRunAsPrinted(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Temporal and PostgreSQL")
	}
	cli, err := filepath.Abs("../../.tools/bin/temporal")
	require.NoError(t, err)
	if _, err := os.Stat(cli); err != nil {
		t.Skipf("no Temporal CLI at %s (scripts/test.sh builds it)", cli)
	}
	s := newStack(t)
	ctx := context.Background()
	sim, all := s.enclosures(4, "OPSA")
	ids := all[:3]
	names := []string{sim.Enclosures()[0].Name(), sim.Enclosures()[1].Name(), sim.Enclosures()[2].Name()}

	// An enclosure that registered and went silent: its START stays pending (SendStart).
	_, quiet, stopQuiet := s.enclosuresVia(s.api.URL+"/api", 1, "OPSQ")
	stopQuiet()
	quietID := quiet[0]

	live := s.createSession(ids, 3600)
	stuck := s.createSession([]int64{quietID}, 3600)
	other := s.createSession(all[3:], 3600) // canceled from the CLI
	require.Eventually(t, func() bool {
		for _, st := range append(s.session(live).DeviceStatuses, s.session(other).DeviceStatuses...) {
			if st.Status != "RECORDING" {
				return false
			}
		}
		return true
	}, time.Minute, 100*time.Millisecond, "the sessions never recorded on all enclosures")

	sessionWF := func(sid int64) string { return fmt.Sprintf("recording-session-%d", sid) }
	deviceWF := func(sid, did int64) string { return fmt.Sprintf("recording-session-%d-device-%d", sid, did) }
	run := func(command string) string {
		t.Helper()
		cmd := exec.Command("bash", "-c", command)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(cli)+":"+os.Getenv("PATH"),
			"TEMPORAL_ADDRESS="+testenv.TemporalAddress(t), "TEMPORAL_NAMESPACE=default")
		cmd.Stdin = strings.NewReader("") // a prompt would fail, never wait
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s\n%s", command, out)
		return string(out)
	}
	runID := func(wf string) string {
		d, err := s.temporal.DescribeWorkflowExecution(ctx, wf, "")
		require.NoError(t, err)
		return d.WorkflowExecutionInfo.Execution.RunId
	}
	firstTaskCompleted := func(wf string) int64 {
		it := s.temporal.GetWorkflowHistory(ctx, wf, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			require.NoError(t, err)
			if e.EventType == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
				return e.EventId
			}
		}
		t.Fatalf("%s has no completed workflow task", wf)
		return 0
	}
	newRun := func(wf, before string) {
		t.Helper()
		require.NotEqual(t, before, runID(wf), "the reset started a new run of %s", wf)
	}

	// What each action fills in, and what is checked after it ran.
	type step struct {
		vars  func() map[string]string
		check func(out string, before string)
		// before is read just before the command (e.g. the run id a reset replaces).
		before func() string
	}
	wf1, wf2 := deviceWF(live, ids[0]), deviceWF(live, ids[1])
	steps := map[string]step{
		"list running": {check: func(out, _ string) { require.Contains(t, out, sessionWF(live)) }},
		"a session's workflows": {vars: func() map[string]string { return map[string]string{"<session>": fmt.Sprint(live)} },
			check: func(out, _ string) {
				require.Contains(t, out, sessionWF(live))
				require.Contains(t, out, wf1)
			}},
		"the one recording on an enclosure": {vars: func() map[string]string { return map[string]string{"<enclosure>": names[0]} },
			check: func(out, _ string) { require.Contains(t, out, wf1) }},
		"describe, with pending activities (attempt, last failure)": {
			vars:  func() map[string]string { return map[string]string{"<workflow id>": deviceWF(stuck, quietID)} },
			check: func(out, _ string) { require.Contains(t, out, "SendStart", "the pending command activity is shown") }},
		"history": {vars: func() map[string]string { return map[string]string{"<workflow id>": wf1} },
			check: func(out, _ string) { require.Contains(t, out, "WorkflowExecutionStarted") }},
		"query status": {vars: func() map[string]string { return map[string]string{"<workflow id>": sessionWF(live)} },
			check: func(out, _ string) { require.Contains(t, out, `"Status":"IN_PROGRESS"`) }},
		"remove one enclosure (signal)": {
			vars: func() map[string]string {
				return map[string]string{"<session>": fmt.Sprint(live), "<device>": fmt.Sprint(ids[2])}
			},
			check: func(string, string) {
				require.Eventually(t, func() bool {
					for _, st := range s.session(live).DeviceStatuses {
						if st.Device.ID == ids[2] {
							return st.Status == "CANCELED"
						}
					}
					return false
				}, 2*time.Minute, 200*time.Millisecond, "the removed enclosure is CANCELED")
			}},
		"retry a stuck command now (attempts start again)": {
			vars: func() map[string]string {
				return map[string]string{"<session>": fmt.Sprint(stuck), "<device>": fmt.Sprint(quietID)}
			},
			check: func(string, string) {
				d, err := s.temporal.DescribeWorkflowExecution(ctx, deviceWF(stuck, quietID), "")
				require.NoError(t, err)
				require.Len(t, d.PendingActivities, 1)
				require.Equal(t, "SendStart", d.PendingActivities[0].ActivityType.GetName())
				require.EqualValues(t, 1, d.PendingActivities[0].Attempt, "attempts start again")
			}},
		// TODO(wf): these resets start a new run, which today cannot replay the old run's activity
		// ids (they carry the run id; issue 11, fixed on the wf branch); once merged, also check that
		// the reset workflows carry on to the right read model. Here: the command succeeds and a new
		// run exists.
		"reset to the first workflow task": {
			vars:   func() map[string]string { return map[string]string{"<workflow id>": wf1} },
			before: func() string { return runID(wf1) },
			check:  func(_, before string) { newRun(wf1, before) }},
		"reset to the last workflow task": {
			vars:   func() map[string]string { return map[string]string{"<workflow id>": wf2} },
			before: func() string { return runID(wf2) },
			check:  func(_, before string) { newRun(wf2, before) }},
		"reset to an event (a `WorkflowTaskCompleted` id from the history)": {
			vars: func() map[string]string {
				return map[string]string{"<workflow id>": sessionWF(live), "<event id>": fmt.Sprint(firstTaskCompleted(sessionWF(live)))}
			},
			before: func() string { return runID(sessionWF(live)) },
			check:  func(_, before string) { newRun(sessionWF(live), before) }},
		"batch reset by query (no prompt)": {
			vars: func() map[string]string { return map[string]string{"<session>": fmt.Sprint(live)} },
			// The batch job runs on its own: each workflow the query matched gets a new run.
			before: func() string {
				res, err := s.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
					Query: fmt.Sprintf("MbaSessionId = %d AND ExecutionStatus = 'Running'", live)})
				require.NoError(t, err)
				var runs []string
				for _, e := range res.Executions {
					runs = append(runs, e.Execution.WorkflowId+"="+e.Execution.RunId)
				}
				require.NotEmpty(t, runs)
				return strings.Join(runs, " ")
			},
			check: func(_, before string) {
				for _, run := range strings.Fields(before) {
					wf, old, _ := strings.Cut(run, "=")
					require.Eventually(t, func() bool {
						d, err := s.temporal.DescribeWorkflowExecution(ctx, wf, "")
						return err == nil && d.WorkflowExecutionInfo.Execution.RunId != old
					}, 2*time.Minute, 200*time.Millisecond, "the batch reset %s", wf)
				}
			}},
		"cancel (clean-up runs)": {vars: func() map[string]string { return map[string]string{"<workflow id>": sessionWF(other)} },
			check: func(string, string) {
				require.Eventually(t, func() bool { return !sim.Enclosures()[3].State().Recording }, 3*time.Minute, 100*time.Millisecond,
					"the clean-up stopped the enclosure")
				require.Eventually(t, func() bool {
					d, err := s.temporal.DescribeWorkflowExecution(ctx, sessionWF(other), "")
					return err == nil && d.WorkflowExecutionInfo.Status == enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED
				}, 3*time.Minute, 200*time.Millisecond, "the workflow ends canceled after its clean-up")
				// TODO(rel): a cancel from the CLI fails its own status write today (issue 11, fixed on
				// the rel branch), so the read model is not checked here; once merged, also
				// s.waitSession(other, "CANCELED", time.Minute).
				t.Logf("session %d after the CLI cancel: %s", other, s.session(other).Status)
			}},
		// The stuck session: the live one's workflows were reset above and may have ended (TODO(wf)).
		"terminate (no clean-up)": {vars: func() map[string]string { return map[string]string{"<workflow id>": sessionWF(stuck)} },
			check: func(string, string) {
				d, err := s.temporal.DescribeWorkflowExecution(ctx, sessionWF(stuck), "")
				require.NoError(t, err)
				require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, d.WorkflowExecutionInfo.Status)
			}},
	}

	actions, commands := opsRecipes(t)
	require.Len(t, actions, len(steps), "every README recipe has a step here and back: %q", actions)
	for i, action := range actions {
		st, ok := steps[action]
		require.True(t, ok, "README recipe %q has no step in this test", action)
		command := commands[i]
		if st.vars != nil {
			for k, v := range st.vars() {
				command = strings.ReplaceAll(command, k, v)
			}
		}
		require.NotContains(t, command, "<", "placeholder left in %q", command)
		var before string
		if st.before != nil {
			before = st.before()
		}
		t.Logf("%s: %s", action, command)
		st.check(run(command), before)
	}
}
