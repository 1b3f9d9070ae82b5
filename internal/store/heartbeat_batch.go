package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/heartbeat"
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

type beatRequest struct {
	ctx   context.Context
	hb    protocol.Heartbeat
	token string
	now   time.Time
	opts  HeartbeatOptions
	reply protocol.Reply
	err   error
	done  chan struct{}
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
		return protocol.Reply{}, ctx.Err()
	}
	select {
	case <-r.done:
		return r.reply, r.err
	case <-ctx.Done():
		return protocol.Reply{}, ctx.Err()
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
		r.reply, r.err = b.store.Heartbeat(r.ctx, r.hb, r.token, r.now, r.opts)
		close(r.done)
	}
}

// heartbeats decides and records a batch of heartbeats of distinct enclosures in one
// transaction; an error means nothing was recorded.
func (s *Store) heartbeats(ctx context.Context, batch []*beatRequest) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		devices, err := lockDevices(ctx, tx, batch)
		if err != nil {
			return err
		}
		// Writes in enclosure order, as the locks were taken.
		slices.SortFunc(batch, func(x, y *beatRequest) int {
			return int(devices[x.hb.Name].id - devices[y.hb.Name].id)
		})
		wb := &pgx.Batch{}
		var checked []int // positions in wb of the mailbox changes that must hit their row
		events := 0
		for _, r := range batch {
			d, ok := devices[r.hb.Name]
			if !ok {
				r.err = ErrUnknownDevice
				continue
			}
			if d.tokenHash != nil {
				sum := sha256.Sum256([]byte(r.token))
				if subtle.ConstantTimeCompare(sum[:], d.tokenHash) != 1 {
					r.err = ErrDeviceToken
					continue
				}
			}
			hb := r.hb
			out := heartbeat.Decide(d.assignment, heartbeat.Report{SessionID: hb.SessionID, Recording: hb.Recording,
				Duration: hb.Duration, ErrMsg: hb.ErrMsg}, d.streaming)
			r.reply = out.Reply
			if a := d.assignment; (a == nil || a.SessionID != hb.SessionID) && hb.SessionID != 0 && !hb.Recording && hb.Duration > 0 {
				// The end of a session no longer assigned: its seconds still count.
				late := heartbeat.Event{Kind: heartbeat.EventEnded, At: r.now, SessionID: hb.SessionID, Duration: hb.Duration, ErrMsg: hb.ErrMsg}
				if err := queueEndReport(wb, d.id, late); err != nil {
					return err
				}
			}
			if a := d.assignment; a != nil {
				if queueOutcome(wb, d.id, a, out, r.now) {
					checked = append(checked, wb.Len()-1)
				}
				n, err := queueEvents(wb, d, a, out, hb, r.now)
				if err != nil {
					return err
				}
				events += n
			}
			queueTelemetry(wb, d, hb, r.now, r.opts.TelemetryBucket)
		}
		if events > 0 {
			wb.Queue(notifySQL, pgx.NamedArgs{"channel": OutboxChannel})
		}
		results := tx.SendBatch(ctx, wb)
		defer results.Close()
		for i := 0; i < wb.Len(); i++ {
			tag, err := results.Exec()
			if err != nil {
				return err
			}
			if slices.Contains(checked, i) && tag.RowsAffected() == 0 {
				return errMailboxMoved
			}
		}
		return results.Close()
	})
}

// lockDevices reads and locks the batch's enclosures in id order (registering unknown ones when
// allowed), keyed by name.
func lockDevices(ctx context.Context, tx pgx.Tx, batch []*beatRequest) (map[string]lockedDevice, error) {
	names := make([]string, len(batch))
	locations := make([]string, len(batch))
	for i, r := range batch {
		names[i], locations[i] = r.hb.Name, r.hb.Location
	}
	now := batch[0].now
	read := func(names []string) (map[string]lockedDevice, error) {
		rows, err := tx.Query(ctx, `
			SELECT d.name, d.id, d.token_hash, d.last_seen_at, d.recording, d.rec_duration, d.down_since, coalesce(d.stream_until > @now, false),
			       a.session_id, a.phase, a.start_params, a.workflow_id, coalesce(a.activity_id, '')
			FROM devices d LEFT JOIN device_assignments a ON a.device_id = d.id
			WHERE d.name = ANY(@names)
			ORDER BY d.id
			FOR UPDATE OF d`, pgx.NamedArgs{"names": names, "now": now})
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[string]lockedDevice{}
		for rows.Next() {
			var name string
			var d lockedDevice
			var sessionID *int64
			var phase, workflowID *string
			var activityID string
			var params []byte
			if err := rows.Scan(&name, &d.id, &d.tokenHash, &d.lastSeen, &d.wasRecording, &d.lastDuration, &d.downSince, &d.streaming,
				&sessionID, &phase, &params, &workflowID, &activityID); err != nil {
				return nil, err
			}
			if sessionID != nil {
				d.assignment = &heartbeat.Assignment{SessionID: *sessionID, Phase: heartbeat.Phase(*phase), WorkflowID: *workflowID, ActivityID: activityID}
				if len(params) > 0 {
					d.assignment.Start = new(protocol.StartParams)
					if err := json.Unmarshal(params, d.assignment.Start); err != nil {
						return nil, err
					}
				}
			}
			out[name] = d
		}
		return out, rows.Err()
	}
	devices, err := read(names)
	if err != nil || len(devices) == len(names) || !batch[0].opts.AutoRegister {
		return devices, err
	}
	var missing, where []string
	for i, n := range names {
		if _, ok := devices[n]; !ok {
			missing, where = append(missing, n), append(where, locations[i])
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO devices (name, location) SELECT * FROM unnest(@names::text[], @locations::text[])
		ON CONFLICT (name) DO NOTHING`, pgx.NamedArgs{"names": missing, "locations": where}); err != nil {
		return nil, err
	}
	added, err := read(missing)
	for n, d := range added {
		devices[n] = d
	}
	return devices, err
}

// queueEvents queues a heartbeat's transitions for the outbox and returns how many.
func queueEvents(wb *pgx.Batch, d lockedDevice, a *heartbeat.Assignment, out heartbeat.Outcome, hb protocol.Heartbeat, now time.Time) (int, error) {
	var events []heartbeat.Event
	if out.Event != "" {
		ev := heartbeat.Event{Kind: out.Event, At: now, SessionID: a.SessionID, Duration: hb.Duration,
			ErrMsg: hb.ErrMsg, Stopped: a.Phase == heartbeat.Stopping}
		if ev.Kind == heartbeat.EventReset {
			// The restarted client's duration means nothing: the lost segment is measured by the
			// enclosure's last report before the loss, and its gap begins at that heartbeat.
			ev.Duration = 0
			if d.wasRecording && d.lastDuration != nil && *d.lastDuration > 0 {
				ev.Duration = *d.lastDuration
			}
			if d.lastSeen != nil {
				ev.LastHeard = *d.lastSeen
			}
		}
		events = append(events, ev)
	}
	if d.downSince != nil && !out.Delete {
		events = append(events, heartbeat.Event{Kind: heartbeat.EventReturned, At: now, SessionID: a.SessionID})
	}
	for i, ev := range events {
		if ev.Kind == heartbeat.EventEnded {
			if err := queueEndReport(wb, d.id, ev); err != nil {
				return 0, err
			}
		}
		activity := ""
		if i == 0 && out.CompleteActivity {
			activity = a.ActivityID
		}
		if err := queueOutbox(wb, a.WorkflowID, activity, ev); err != nil {
			return 0, err
		}
	}
	return len(events), nil
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
