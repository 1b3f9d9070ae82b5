package store

import (
	"context"
	"time"

	"github.com/jax-mba/mba/protocol"
)

// HeartbeatBatcher runs heartbeats that arrive together in one transaction (group commit):
// one locking read of all their enclosures, one batch of writes, one commit. Alone, a
// heartbeat runs at once; under load, those queued while a transaction runs share the next.
// Each enclosure appears at most once per transaction; any trouble falls back to one
// transaction per heartbeat (Store.Heartbeat), so the result is the same either way.
type HeartbeatBatcher struct {
	store    *Store
	requests chan *beatRequest
	maxBatch int
	stop     chan struct{}
	done     chan struct{}
}

// NewHeartbeatBatcher starts workers goroutines, each running one transaction at a time of up
// to maxBatch heartbeats.
func (s *Store) NewHeartbeatBatcher(workers, maxBatch int) *HeartbeatBatcher {
	b := &HeartbeatBatcher{store: s, requests: make(chan *beatRequest, workers*maxBatch),
		maxBatch: maxBatch, stop: make(chan struct{}), done: make(chan struct{})}
	finished := make(chan struct{}, workers)
	for i := 0; i < workers; i++ {
		go func() { b.work(); finished <- struct{}{} }()
	}
	go func() {
		for i := 0; i < workers; i++ {
			<-finished
		}
		close(b.done)
	}()
	return b
}

// Close stops the workers after the heartbeats already queued.
func (b *HeartbeatBatcher) Close() {
	close(b.stop)
	<-b.done
}

// Heartbeat is Store.Heartbeat, grouped with the heartbeats arriving at the same time.
func (b *HeartbeatBatcher) Heartbeat(ctx context.Context, hb protocol.Heartbeat, token string, now time.Time, opts HeartbeatOptions) (protocol.Reply, error) {
	r := &beatRequest{ctx: ctx, hb: hb, token: token, now: now, opts: opts, done: make(chan struct{})}
	select {
	case b.requests <- r:
	case <-ctx.Done():
		return protocol.Reply{}, failed(ctx.Err(), "Heartbeat %s", hb.Name)
	}
	select {
	case <-r.done:
		return r.result()
	case <-ctx.Done():
		return protocol.Reply{}, failed(ctx.Err(), "Heartbeat %s", hb.Name)
	}
}

func (b *HeartbeatBatcher) work() {
	var carry []*beatRequest // a second heartbeat of an enclosure waits for the next transaction
	for {
		var batch []*beatRequest
		names := map[string]bool{}
		add := func(r *beatRequest) bool {
			if names[r.hb.Name] {
				return false
			}
			names[r.hb.Name] = true
			batch = append(batch, r)
			return true
		}
		var later []*beatRequest
		for _, r := range carry {
			if !add(r) {
				later = append(later, r)
			}
		}
		carry = later
		if len(batch) == 0 {
			select {
			case r := <-b.requests:
				add(r)
			case <-b.stop:
				return
			}
		}
	drain:
		for len(batch) < b.maxBatch {
			select {
			case r := <-b.requests:
				if !add(r) {
					carry = append(carry, r)
				}
			default:
				break drain
			}
		}
		b.run(batch)
	}
}

// run handles one batch, falling back to one transaction per heartbeat on any trouble.
func (b *HeartbeatBatcher) run(batch []*beatRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := b.store.heartbeats(ctx, batch)
	cancel()
	if err == nil {
		for _, r := range batch {
			close(r.done)
		}
		return
	}
	for _, r := range batch {
		b.store.heartbeatAlone(r.ctx, r)
		close(r.done)
	}
}

// BatchedStore is the Store with its heartbeats grouped by a HeartbeatBatcher.
type BatchedStore struct {
	*Store
	Batcher *HeartbeatBatcher
}

// Heartbeat goes through the batcher.
func (b BatchedStore) Heartbeat(ctx context.Context, hb protocol.Heartbeat, token string, now time.Time, opts HeartbeatOptions) (protocol.Reply, error) {
	return b.Batcher.Heartbeat(ctx, hb, token, now, opts)
}
