package heartbeat

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/protocol"
)

var params = &protocol.StartParams{SessionID: 12, Duration: 86400, FragmentHourly: true, FilePrefix: "cage7", TargetFPS: 30}

func assigned(p Phase, activity string) *Assignment {
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
		{"assigned, no session: START", assigned(Starting, "a1"), Report{}, false, Outcome{Reply: start}},
		{"START acknowledged completes the START activity", assigned(Starting, "a1"), Report{SessionID: 12, Recording: true}, false,
			Outcome{NewPhase: Recording, Event: EventStarted, CompleteActivity: true}},
		{"acknowledged before the activity registered: it settles when it runs", assigned(Starting, ""), Report{SessionID: 12, Recording: true}, false,
			Outcome{NewPhase: Recording}},
		{"START failed at once: COMPLETE, START activity learns", assigned(Starting, "a1"), Report{SessionID: 12, ErrMsg: "no camera"}, false,
			Outcome{Reply: cmd(protocol.Complete), NewPhase: Completing, Event: EventEnded, CompleteActivity: true}},

		// 5.2 recording.
		{"recording: nothing to say", assigned(Recording, ""), Report{SessionID: 12, Recording: true, Duration: 60}, false, Outcome{Reply: none}},
		{"recording with a viewer: STREAM", assigned(Recording, ""), Report{SessionID: 12, Recording: true}, true, Outcome{Reply: cmd(protocol.Stream)}},

		// 5.3 STOP while still recording.
		{"stopping and still recording: STOP", assigned(Stopping, "s1"), Report{SessionID: 12, Recording: true}, true, Outcome{Reply: cmd(protocol.Stop)}},
		{"stopped: COMPLETE, STOP activity learns", assigned(Stopping, "s1"), Report{SessionID: 12, Duration: 100}, false,
			Outcome{Reply: cmd(protocol.Complete), NewPhase: Completing, Event: EventEnded, CompleteActivity: true}},
		{"stopping an enclosure that never started", assigned(Stopping, "s1"), Report{}, false,
			Outcome{Delete: true, Event: EventEnded, CompleteActivity: true}},

		// 5.4 ended: COMPLETE, and again while the session is still held.
		{"finished on its own: COMPLETE and signal", assigned(Recording, ""), Report{SessionID: 12, Duration: 86400}, false,
			Outcome{Reply: cmd(protocol.Complete), NewPhase: Completing, Event: EventEnded}},
		{"failed: COMPLETE and signal", assigned(Recording, ""), Report{SessionID: 12, ErrMsg: "disk full"}, false,
			Outcome{Reply: cmd(protocol.Complete), NewPhase: Completing, Event: EventEnded}},
		{"COMPLETE lost: COMPLETE again, no new event", assigned(Completing, "c1"), Report{SessionID: 12}, false, Outcome{Reply: cmd(protocol.Complete)}},
		{"session forgotten: released completes COMPLETE", assigned(Completing, "c1"), Report{}, false,
			Outcome{Delete: true, Event: EventReleased, CompleteActivity: true}},
		{"session forgotten before COMPLETE activity registered", assigned(Completing, ""), Report{}, false,
			Outcome{Delete: true}},
		{"recording again a session that ended: STOP", assigned(Completing, ""), Report{SessionID: 12, Recording: true}, false, Outcome{Reply: cmd(protocol.Stop)}},

		// 5.5 stale session while assigned another.
		{"assigned 12, still recording 9: STOP", assigned(Starting, "a1"), Report{SessionID: 9, Recording: true}, false, Outcome{Reply: cmd(protocol.Stop)}},
		{"assigned 12, holding finished 9: COMPLETE", assigned(Starting, "a1"), Report{SessionID: 9}, false, Outcome{Reply: cmd(protocol.Complete)}},

		// 5.6 reboot mid-recording.
		{"lost its session mid-recording: reset", assigned(Recording, ""), Report{}, false, Outcome{NewPhase: Reset, Event: EventReset}},
		{"reset, waiting for the workflow", assigned(Reset, ""), Report{}, false, Outcome{}},
		{"reset but recording our session after all: the resume's START settles", assigned(Reset, ""), Report{SessionID: 12, Recording: true}, false,
			Outcome{NewPhase: Recording}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Decide(tc.a, tc.r, tc.streaming))
		})
	}
}

// TestEveryReplyIsSafe runs Decide over every phase and report shape and checks each reply
// the real client could receive against PROTOCOL.md section 3.
func TestEveryReplyIsSafe(t *testing.T) {
	phases := []Phase{Starting, Recording, Stopping, Completing, Reset}
	assignments := []*Assignment{nil}
	for _, p := range phases {
		assignments = append(assignments, assigned(p, ""), assigned(p, "x"))
	}
	for _, a := range assignments {
		for _, sid := range []int64{0, 12, 9} {
			for _, rec := range []bool{false, true} {
				for _, streaming := range []bool{false, true} {
					out := Decide(a, Report{SessionID: sid, Recording: rec}, streaming)
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
