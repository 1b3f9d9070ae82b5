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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/workflows"
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
// live session (three enclosures recording), a session canceled from the CLI while recording,
// one whose only enclosure went silent before START (canceled once it is DOWN) and one stuck
// the same way (terminated), with the pinned CLI and the fleet monitor running as serve runs
// it. Each command must succeed and do what the README says: resets leave a healthy run that
// carries on (no START delivered twice, the live session ends COMPLETE), a cancel ends the
// session CANCELED in the read model and in MbaStatus, a terminate is cleaned up.
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
	// DOWN after 10 s of silence (the API shows DOWN after 5 s): long enough that a live
	// enclosure's heartbeats, late under load, never count as an outage.
	s.startFleetMonitor(10 * time.Second)
	ctx := context.Background()
	sim, all := s.enclosures(4, "OPSA")
	ids := all[:3]
	names := []string{sim.Enclosures()[0].Name(), sim.Enclosures()[1].Name(), sim.Enclosures()[2].Name()}

	// Enclosures that registered and went silent: their START stays pending (SendStart).
	_, quiet, stopQuiet := s.enclosuresVia(s.api.URL+"/api", 2, "OPSQ")
	stopQuiet()

	// The live session outlasts the recipes before its end (a few seconds, more under load)
	// and then ends on its own, after resets of every kind.
	const duration = 90
	live := s.createSession(ids, duration)
	stuck := s.createSession(quiet[:1], 3600) // terminated from the CLI
	down := s.createSession(quiet[1:], 3600)  // canceled from the CLI once DOWN
	other := s.createSession(all[3:], 3600)   // canceled from the CLI while recording
	require.Eventually(t, func() bool {
		for _, st := range append(s.session(live).DeviceStatuses, s.session(other).DeviceStatuses...) {
			if st.Status != recording.DeviceRecording {
				return false
			}
		}
		return true
	}, time.Minute, 100*time.Millisecond, "the sessions never recorded on all enclosures")

	sessionWF, deviceWF := workflows.SessionWorkflowID, workflows.DeviceWorkflowID
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
		id, _, _ := s.runOf(wf)
		return id
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
	// startedOnce: every enclosure of the simulator got START once, whatever was reset.
	startedOnce := func(why string) {
		t.Helper()
		for _, e := range sim.Enclosures() {
			st := e.State()
			require.Equal(t, 1, st.StartsReceived, "%s: %s got START more than once", why, st.Name)
			require.Zero(t, st.Violations, "%s: %s", st.Name, st.LastErr)
		}
	}
	// carriesOn: the reset left a healthy new run (it answers the status query) and the
	// enclosures record on, started once.
	carriesOn := func(wf, before string) {
		t.Helper()
		s.waitNewRun(wf, before)
		for _, e := range sim.Enclosures()[:2] {
			require.True(t, e.State().Recording, "%s records on after the reset of %s", e.Name(), wf)
		}
		startedOnce("after the reset of " + wf)
	}
	// tagEventually: the workflow's current run is tagged MbaStatus = want (a list by
	// MbaStatus finds it), and is no longer running.
	tagEventually := func(wf, want string) {
		t.Helper()
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			_, status, tag := s.runOf(wf)
			assert.Equal(c, want, tag, "%s's MbaStatus", wf)
			assert.NotEqual(c, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, status, "%s has ended", wf)
		}, time.Minute, 200*time.Millisecond)
		require.Eventually(t, func() bool {
			res, err := s.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Query: fmt.Sprintf("WorkflowId = '%s' AND MbaStatus = '%s'", wf, want)})
			return err == nil && len(res.Executions) > 0
		}, 30*time.Second, 200*time.Millisecond, "listing by MbaStatus = '%s' finds %s", want, wf)
	}
	// canceled: a cancel from the CLI ends the session CANCELED in the read model within a
	// bounded time (not IN_PROGRESS until its enclosures answer), and its workflows' tags say so.
	canceled := func(sid, did int64) {
		t.Helper()
		x := s.waitSession(sid, recording.SessionCanceled, time.Minute)
		require.Len(t, x.DeviceStatuses, 1)
		require.Equal(t, recording.DeviceCanceled, x.DeviceStatuses[0].Status, x.DeviceStatuses[0].Message)
		require.NotNil(t, x.EndedAt)
		require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, s.waitClosed(sessionWF(sid)))
		tagEventually(sessionWF(sid), string(recording.SessionCanceled))
		tagEventually(deviceWF(sid, did), string(recording.DeviceCanceled))
		require.Equal(t, recording.SessionCanceled, s.session(sid).Status, "the workflows' ends keep CANCELED")
	}

	// What each action fills in, and what is checked after it ran.
	type step struct {
		vars func() map[string]string
		// before is read just before the command (e.g. the run id a reset replaces).
		before func() string
		check  func(out string, before string)
		// again runs the same recipe once more, on other workflows.
		again *step
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
			vars: func() map[string]string { return map[string]string{"<workflow id>": deviceWF(stuck, quiet[0])} },
			// On a loaded machine the workflow may not have scheduled its START yet.
			before: func() string {
				wid := deviceWF(stuck, quiet[0])
				require.Eventually(t, func() bool {
					d, err := s.temporal.DescribeWorkflowExecution(context.Background(), wid, "")
					return err == nil && len(d.PendingActivities) > 0
				}, time.Minute, 100*time.Millisecond, "%s has no pending command", wid)
				return ""
			},
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
							return st.Status == recording.DeviceCanceled
						}
					}
					return false
				}, 2*time.Minute, 200*time.Millisecond, "the removed enclosure is CANCELED")
				require.Eventually(t, func() bool { return !sim.Enclosures()[2].State().Recording }, time.Minute, 100*time.Millisecond,
					"the removed enclosure is stopped")
				// Its ended workflow says so, not IN_PROGRESS.
				tagEventually(deviceWF(live, ids[2]), string(recording.DeviceCanceled))
			}},
		"retry a stuck command now (attempts start again)": {
			vars: func() map[string]string {
				return map[string]string{"<session>": fmt.Sprint(stuck), "<device>": fmt.Sprint(quiet[0])}
			},
			check: func(string, string) {
				d, err := s.temporal.DescribeWorkflowExecution(ctx, deviceWF(stuck, quiet[0]), "")
				require.NoError(t, err)
				require.Len(t, d.PendingActivities, 1)
				require.Equal(t, "SendStart", d.PendingActivities[0].ActivityType.GetName())
				require.EqualValues(t, 1, d.PendingActivities[0].Attempt, "attempts start again")
			}},
		"reset to the first workflow task": {
			vars:   func() map[string]string { return map[string]string{"<workflow id>": wf1} },
			before: func() string { return runID(wf1) },
			check:  func(_, before string) { carriesOn(wf1, before) }},
		"reset to the last workflow task": {
			vars:   func() map[string]string { return map[string]string{"<workflow id>": wf2} },
			before: func() string { return runID(wf2) },
			check:  func(_, before string) { carriesOn(wf2, before) }},
		"reset to an event (a `WorkflowTaskCompleted` id from the history)": {
			vars: func() map[string]string {
				return map[string]string{"<workflow id>": sessionWF(live), "<event id>": fmt.Sprint(firstTaskCompleted(sessionWF(live)))}
			},
			before: func() string { return runID(sessionWF(live)) },
			check: func(_, before string) {
				carriesOn(sessionWF(live), before)
				// The session's new run still knows the enclosure removed before the reset (a
				// removal, no failure: the session can end COMPLETE).
				require.EventuallyWithT(t, func(c *assert.CollectT) {
					v, err := s.temporal.QueryWorkflow(ctx, sessionWF(live), "", workflows.QueryStatus)
					if !assert.NoError(c, err) {
						return
					}
					var st workflows.SessionState
					if !assert.NoError(c, v.Get(&st)) {
						return
					}
					assert.Equal(c, recording.SessionInProgress, st.Status)
					assert.True(c, st.Removed[ids[2]], "the removal survives the reset: %+v", st)
					assert.Equal(c, recording.DeviceCanceled, st.Devices[ids[2]], "%+v", st)
				}, 30*time.Second, 200*time.Millisecond)
			}},
		"batch reset by query (no prompt)": {
			vars: func() map[string]string { return map[string]string{"<session>": fmt.Sprint(live)} },
			// The batch job runs on its own: each workflow the query matched gets a new run.
			before: func() string {
				var runs []string
				require.EventuallyWithT(t, func(c *assert.CollectT) { // visibility is eventually consistent
					res, err := s.temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
						Query: fmt.Sprintf("MbaSessionId = %d AND ExecutionStatus = 'Running'", live)})
					runs = runs[:0]
					if !assert.NoError(c, err) {
						return
					}
					for _, e := range res.Executions {
						runs = append(runs, e.Execution.WorkflowId+"="+e.Execution.RunId)
					}
					// The session and its two recording enclosures (the removed one has ended).
					assert.Len(c, runs, 3, "the live session's running workflows")
				}, 30*time.Second, 200*time.Millisecond)
				return strings.Join(runs, " ")
			},
			check: func(_, before string) {
				for _, run := range strings.Fields(before) {
					wf, old, _ := strings.Cut(run, "=")
					carriesOn(wf, old)
				}
			}},
		"cancel (clean-up runs)": {vars: func() map[string]string { return map[string]string{"<workflow id>": sessionWF(other)} },
			check: func(string, string) {
				canceled(other, all[3])
				require.Eventually(t, func() bool { return !sim.Enclosures()[3].State().Recording }, time.Minute, 100*time.Millisecond,
					"the clean-up stopped the enclosure")
			},
			// A session whose only enclosure went DOWN before START: canceled at once too, and the
			// enclosure released (no START or STOP left for it).
			again: &step{
				vars: func() map[string]string { return map[string]string{"<workflow id>": sessionWF(down)} },
				before: func() string {
					require.Eventually(t, func() bool {
						x := s.session(down)
						return x.Status == recording.SessionInProgress && x.DeviceStatuses[0].Device.State == recording.EnclosureDown
					}, time.Minute, 200*time.Millisecond, "the silent enclosure is DOWN")
					require.Eventually(t, func() bool { // and the fleet monitor told its workflow
						var marked bool
						require.NoError(t, s.pool.QueryRow(ctx, `SELECT down_since IS NOT NULL FROM devices WHERE id = $1`, quiet[1]).Scan(&marked))
						return marked
					}, time.Minute, 200*time.Millisecond, "the fleet monitor marks the silent enclosure DOWN")
					return ""
				},
				check: func(string, string) {
					canceled(down, quiet[1])
					require.False(t, s.session(down).DeviceStatuses[0].StopPending, "no STOP waits for an enclosure never started")
					var left int
					require.NoError(t, s.pool.QueryRow(ctx, `SELECT count(*) FROM device_assignments WHERE device_id = $1`, quiet[1]).Scan(&left))
					require.Zero(t, left, "the DOWN enclosure is released")
				}}},
		"terminate (no clean-up)": {vars: func() map[string]string { return map[string]string{"<workflow id>": sessionWF(stuck)} },
			check: func(string, string) {
				d, err := s.temporal.DescribeWorkflowExecution(ctx, sessionWF(stuck), "")
				require.NoError(t, err)
				require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, d.WorkflowExecutionInfo.Status)
				// Its enclosure's workflow is canceled with it and cleans up (tagged CANCELED); the
				// fleet monitor releases what the terminated workflow itself left.
				tagEventually(deviceWF(stuck, quiet[0]), string(recording.DeviceCanceled))
				x := s.waitSession(stuck, recording.SessionCanceled, time.Minute)
				require.Equal(t, recording.DeviceCanceled, x.DeviceStatuses[0].Status)
			}},
	}

	actions, commands := opsRecipes(t)
	require.Len(t, actions, len(steps), "every README recipe has a step here and back: %q", actions)
	for i, action := range actions {
		first, ok := steps[action]
		require.True(t, ok, "README recipe %q has no step in this test", action)
		for st := &first; st != nil; st = st.again {
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

	// After every kind of reset the live session ends on its own, right: the enclosures that
	// recorded to the end COMPLETE with the whole duration in one segment, the removed one
	// CANCELED (a removal is no failure, so COMPLETE), each started once.
	x := s.waitSession(live, recording.SessionComplete, 3*duration*time.Second)
	for _, d := range x.DeviceStatuses {
		if d.Device.ID == ids[2] {
			require.Equal(t, recording.DeviceCanceled, d.Status, d.Message)
			continue
		}
		require.Equal(t, recording.DeviceComplete, d.Status, "%s: %s", d.Device.Name, d.Message)
		require.Equal(t, 1, d.Segments, d.Device.Name)
		require.GreaterOrEqual(t, d.RecordingTime, int64(duration), d.Device.Name)
	}
	require.Equal(t, string(recording.SessionComplete), s.waitCompleted(sessionWF(live)))
	require.Equal(t, string(recording.DeviceComplete), s.waitCompleted(wf1))
	require.Equal(t, string(recording.DeviceComplete), s.waitCompleted(wf2))
	require.Eventually(t, func() bool {
		for _, e := range sim.Enclosures() {
			if e.State().SessionID != 0 {
				return false
			}
		}
		return true
	}, time.Minute, 100*time.Millisecond, "the enclosures took COMPLETE and hold no session")
	onlyOnce(t, sim)
	startedOnce("at the end")
}
