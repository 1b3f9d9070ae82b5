package heartbeat

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/protocol"
)

var params = &recording.Start{SessionID: 12, Duration: 86400, FragmentHourly: true, FilePrefix: "cage7", TargetFPS: 30}

func assigned(p recording.Phase, activity string) *Assignment {
	return &Assignment{SessionID: 12, Phase: p, Start: params, WorkflowID: "wf", ActivityID: activity}
}

func cmd(c protocol.Command) protocol.Reply { return protocol.Reply{Command: c} }

func TestDecide(t *testing.T) {
	none := protocol.Reply{}
	start := protocol.Reply{Command: protocol.Start, Start: params}
	for _, tc := range []struct {
		name      string
		a         *Assignment
		r         Report
		streaming bool
		want      Outcome
	}{
		// Not assigned.
		{"idle enclosure", nil, Report{}, false, Outcome{}},
		{"unassigned but recording a session: stop it (5.5)", nil, Report{SessionID: 9, Recording: true}, false, Outcome{Reply: cmd(protocol.Stop)}},
		{"unassigned holding a finished session: complete it (5.5)", nil, Report{SessionID: 9}, false, Outcome{Reply: cmd(protocol.Complete)}},

		// 5.1 START until acknowledged.
		{"assigned, no session: START", assigned(recording.PhaseStarting, "a1"), Report{}, false, Outcome{Reply: start}},
		{"START acknowledged completes the START activity", assigned(recording.PhaseStarting, "a1"), Report{SessionID: 12, Recording: true}, false,
			Outcome{NewPhase: recording.PhaseRecording, Event: recording.EventStarted, CompleteActivity: true}},
		{"acknowledged before the activity registered: it settles when it runs", assigned(recording.PhaseStarting, ""), Report{SessionID: 12, Recording: true}, false,
			Outcome{NewPhase: recording.PhaseRecording}},
		{"START failed at once: COMPLETE, START activity learns", assigned(recording.PhaseStarting, "a1"), Report{SessionID: 12, ErrMsg: "no camera"}, false,
			Outcome{Reply: cmd(protocol.Complete), NewPhase: recording.PhaseCompleting, Event: recording.EventEnded, CompleteActivity: true}},

		// 5.2 recording.
		{"recording: nothing to say", assigned(recording.PhaseRecording, ""), Report{SessionID: 12, Recording: true, Duration: 60}, false, Outcome{Reply: none}},
		{"recording with a viewer: STREAM", assigned(recording.PhaseRecording, ""), Report{SessionID: 12, Recording: true}, true, Outcome{Reply: cmd(protocol.Stream)}},

		// 5.3 STOP while still recording.
		{"stopping and still recording: STOP", assigned(recording.PhaseStopping, "s1"), Report{SessionID: 12, Recording: true}, true, Outcome{Reply: cmd(protocol.Stop)}},
		{"stopped: COMPLETE, STOP activity learns", assigned(recording.PhaseStopping, "s1"), Report{SessionID: 12, Duration: 100}, false,
			Outcome{Reply: cmd(protocol.Complete), NewPhase: recording.PhaseCompleting, Event: recording.EventEnded, CompleteActivity: true}},
		{"stopping an enclosure that never started", assigned(recording.PhaseStopping, "s1"), Report{}, false,
			Outcome{Delete: true, Event: recording.EventEnded, CompleteActivity: true}},

		// 5.4 ended: COMPLETE, and again while the session is still held.
		{"finished on its own: COMPLETE and signal", assigned(recording.PhaseRecording, ""), Report{SessionID: 12, Duration: 86400}, false,
			Outcome{Reply: cmd(protocol.Complete), NewPhase: recording.PhaseCompleting, Event: recording.EventEnded}},
		{"failed: COMPLETE and signal", assigned(recording.PhaseRecording, ""), Report{SessionID: 12, ErrMsg: "disk full"}, false,
			Outcome{Reply: cmd(protocol.Complete), NewPhase: recording.PhaseCompleting, Event: recording.EventEnded}},
		{"COMPLETE lost: COMPLETE again, no new event", assigned(recording.PhaseCompleting, "c1"), Report{SessionID: 12}, false, Outcome{Reply: cmd(protocol.Complete)}},
		{"session forgotten: released completes COMPLETE", assigned(recording.PhaseCompleting, "c1"), Report{}, false,
			Outcome{Delete: true, Event: recording.EventReleased, CompleteActivity: true}},
		{"session forgotten before COMPLETE activity registered", assigned(recording.PhaseCompleting, ""), Report{}, false,
			Outcome{Delete: true}},
		{"recording again a session that ended: STOP", assigned(recording.PhaseCompleting, ""), Report{SessionID: 12, Recording: true}, false, Outcome{Reply: cmd(protocol.Stop)}},

		// 5.5 stale session while assigned another.
		{"assigned 12, still recording 9: STOP", assigned(recording.PhaseStarting, "a1"), Report{SessionID: 9, Recording: true}, false, Outcome{Reply: cmd(protocol.Stop)}},
		{"assigned 12, holding finished 9: COMPLETE", assigned(recording.PhaseStarting, "a1"), Report{SessionID: 9}, false, Outcome{Reply: cmd(protocol.Complete)}},

		// 5.6 reboot mid-recording.
		{"lost its session mid-recording: reset", assigned(recording.PhaseRecording, ""), Report{}, false, Outcome{NewPhase: recording.PhaseReset, Event: recording.EventReset}},
		{"reset, waiting for the workflow", assigned(recording.PhaseReset, ""), Report{}, false, Outcome{}},
		{"reset but recording our session after all: the resume's START settles", assigned(recording.PhaseReset, ""), Report{SessionID: 12, Recording: true}, false,
			Outcome{NewPhase: recording.PhaseRecording}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Decide(tc.a, tc.r, tc.streaming))
		})
	}
}

// TestEveryReplyIsSafe runs Decide over every phase and report shape and checks each reply
// the real client could receive against PROTOCOL.md section 3.
func TestEveryReplyIsSafe(t *testing.T) {
	phases := []recording.Phase{recording.PhaseStarting, recording.PhaseRecording, recording.PhaseStopping, recording.PhaseCompleting, recording.PhaseReset}
	assignments := []*Assignment{nil}
	for _, p := range phases {
		assignments = append(assignments, assigned(p, ""), assigned(p, "x"))
		withPlan := assigned(p, "")
		withPlan.Resume = &ResumePlan{PlannedEnd: time.Now().Add(time.Hour), Segments: 1, First: *params}
		assignments = append(assignments, withPlan)
	}
	for _, a := range assignments {
		for _, sid := range []int64{0, 12, 9} {
			for _, rec := range []bool{false, true} {
				for _, streaming := range []bool{false, true} {
					out := Decide(a, Report{SessionID: sid, Recording: rec, At: time.Now()}, streaming)
					name := fmt.Sprintf("%+v/%d/%v/%v", a, sid, rec, streaming)
					if out.Reply.Command == "" {
						continue // 204
					}
					body, err := protocol.EncodeReply(out.Reply)
					require.NoError(t, err, name)
					require.NoError(t, protocol.CheckReply(200, "application/json", body), name)
					if out.Reply.Command == protocol.Start {
						require.Equal(t, int64(0), sid, "START only to an enclosure without a session: %s", name)
					}
				}
			}
		}
	}
}

// TestResumeOnTheHeartbeatOfTheReset: with a resume plan in the mailbox, the heartbeat that
// shows a reboot mid-recording gets the resume START itself (PROTOCOL.md 5.6): the time left to
// the planned end on the next segment's prefix, never after the planned end nor shorter than the
// minimum segment; the workflow still learns of the reset.
func TestResumeOnTheHeartbeatOfTheReset(t *testing.T) {
	at := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	planned := func(left time.Duration, segments int) *Assignment {
		a := assigned(recording.PhaseRecording, "")
		a.Start = &recording.Start{SessionID: 12, Duration: 10, FragmentHourly: true, FilePrefix: "cage7_s2", TargetFPS: 30}
		a.Resume = &ResumePlan{PlannedEnd: at.Add(left), MinSegment: time.Minute, Segments: segments, First: *params}
		return a
	}

	out := Decide(planned(2*time.Hour+1500*time.Millisecond, 2), Report{At: at}, false)
	want := recording.Start{SessionID: 12, Duration: 7201, FragmentHourly: true, FilePrefix: "cage7_s3", TargetFPS: 30}
	require.Equal(t, Outcome{Reply: protocol.Reply{Command: protocol.Start, Start: &want}, NewPhase: recording.PhaseStarting, Start: &want,
		Resume: &ResumePlan{PlannedEnd: at.Add(2*time.Hour + 1500*time.Millisecond), MinSegment: time.Minute, Segments: 3, First: *params},
		Event:  recording.EventReset}, out)
	require.Equal(t, want, params.Resumed(3, 7201), "built by the rule the workflow uses")

	// The resumed START goes out again until acknowledged; its acknowledgement settles it.
	a := planned(2*time.Hour, 3)
	a.Phase, a.Start = recording.PhaseStarting, &want
	require.Equal(t, Outcome{Reply: protocol.Reply{Command: protocol.Start, Start: &want}}, Decide(a, Report{At: at.Add(time.Second)}, false))
	require.Equal(t, Outcome{NewPhase: recording.PhaseRecording}, Decide(a, Report{SessionID: 12, Recording: true, At: at.Add(2 * time.Second)}, false))

	reset := Outcome{NewPhase: recording.PhaseReset, Event: recording.EventReset}
	for name, a := range map[string]*Assignment{
		"less than the minimum segment left": planned(time.Minute-time.Millisecond, 1),
		"after the planned end":              planned(-time.Second, 1),
		"at the planned end":                 planned(0, 1),
		"no plan (resume off, or an older workflow)": func() *Assignment {
			a := planned(time.Hour, 1)
			a.Resume = nil
			return a
		}(),
	} {
		require.Equal(t, reset, Decide(a, Report{At: at}, false), "%s: the workflow decides", name)
	}
	// A minimum segment of 0 still never sends a START of 0 seconds.
	a = planned(999*time.Millisecond, 1)
	a.Resume.MinSegment = 0
	require.Equal(t, reset, Decide(a, Report{At: at}, false))
	a.Resume.PlannedEnd = at.Add(time.Second)
	require.Equal(t, int64(1), Decide(a, Report{At: at}, false).Start.Duration)
}

func TestResumeSeconds(t *testing.T) {
	end := time.Date(2026, 12, 2, 2, 0, 0, 0, time.UTC)
	require.Equal(t, int64(3600), ResumeSeconds(end, end.Add(-time.Hour-900*time.Millisecond), time.Minute), "whole seconds, rounded down")
	require.Equal(t, int64(60), ResumeSeconds(end, end.Add(-time.Minute), time.Minute), "exactly the minimum")
	require.Zero(t, ResumeSeconds(end, end.Add(-59*time.Second), time.Minute))
	require.Zero(t, ResumeSeconds(end, end.Add(time.Second), 0), "never after the planned end")
}
