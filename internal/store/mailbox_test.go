package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/protocol"
)

// race runs fns at once (as near as goroutines released together get) and waits for them.
func race(fns ...func()) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn()
		}()
	}
	close(start)
	wg.Wait()
}

// rounds of each race: each round is a fresh enclosure, so every interleaving the scheduler
// picks is checked by the same invariant.
const rounds = 8

// TestMailboxTwoHeartbeatsRace: two heartbeats acknowledging one START, in transactions of
// their own or through the batcher, complete the START activity exactly once: the enclosure's
// row lock orders them, and the second finds the mailbox already moved on.
func TestMailboxTwoHeartbeatsRace(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	batcher := f.store.NewHeartbeatBatcher(2, 8)
	t.Cleanup(batcher.Close)
	for i := 0; i < rounds; i++ {
		name := fmt.Sprint("race", i)
		dev := f.device(name)
		sid, params := f.session(dev)
		settled, err := f.store.AssignStart(ctx, dev, params, deviceWorkflow(sid, dev), "start", f.tick())
		require.NoError(t, err)
		require.Nil(t, settled)

		hb, at := f.heartbeat(name, sid, true, 1), f.tick()
		send := func(via heartbeater) func() {
			return func() {
				reply, err := via.Heartbeat(ctx, hb, "", at, options)
				assert.NoError(t, err)
				assert.Equal(t, protocol.Reply{}, reply)
			}
		}
		if i%2 == 0 {
			race(send(f.store), send(f.store))
		} else {
			race(send(batcher), send(batcher), send(f.store))
		}
		require.Equal(t, []string{store.KindStartSession + "/", "started/start"}, f.pendingOf(sid, dev), "round %d", i)
	}
}

// TestMailboxAssignmentAndHeartbeatRace: the START activity registering (AssignStart) and the
// heartbeat acknowledging the START race on one mailbox. Whichever goes first, the activity
// learns it exactly once: settled at once (the heartbeat was first) or completed through the
// outbox (the activity was first), never both and never neither.
func TestMailboxAssignmentAndHeartbeatRace(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i := 0; i < rounds; i++ {
		name := fmt.Sprint("race", i)
		dev := f.device(name)
		sid, params := f.session(dev)
		hb, at := f.heartbeat(name, sid, true, 1), f.tick()
		var settled *startedEvent
		race(func() {
			ev, err := f.store.AssignStart(ctx, dev, params, deviceWorkflow(sid, dev), "start", at)
			assert.NoError(t, err)
			if ev != nil {
				settled = &startedEvent{kind: string(ev.Kind)}
			}
		}, func() {
			reply, err := f.store.Heartbeat(ctx, hb, "", at, options)
			assert.NoError(t, err)
			assert.Equal(t, protocol.Reply{}, reply)
		})
		outbox := f.pendingOf(sid, dev)
		if settled != nil {
			require.Equal(t, "started", settled.kind, "round %d", i)
			require.Equal(t, []string{store.KindStartSession + "/"}, outbox, "round %d: settled at once, nothing queued", i)
		} else {
			require.Equal(t, []string{store.KindStartSession + "/", "started/start"}, outbox, "round %d: completed through the outbox", i)
		}
		// Either way the mailbox says recording: the next heartbeat has nothing to say.
		require.Equal(t, protocol.Reply{}, f.beat(name, sid, true, 2))
		require.Len(t, f.pendingOf(sid, dev), len(outbox), "round %d", i)
	}
}

type startedEvent struct{ kind string }

// heartbeater is the Store, or its batcher.
type heartbeater interface {
	Heartbeat(ctx context.Context, hb protocol.Heartbeat, token string, now time.Time, opts store.HeartbeatOptions) (protocol.Reply, error)
}

// pendingOf is pending limited to one session's workflows.
func (f *fixture) pendingOf(sessionID, deviceID int64) []string {
	f.t.Helper()
	var out []string
	for _, r := range f.pendingRows() {
		if r.WorkflowID == sessionWorkflow(sessionID) || r.WorkflowID == deviceWorkflow(sessionID, deviceID) {
			out = append(out, r.Kind+"/"+r.ActivityID)
		}
	}
	return out
}
