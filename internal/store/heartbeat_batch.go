package store

import (
	"context"
	"errors"
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

// result is r's reply, or its refusal or failure, which names the enclosure.
func (r *beatRequest) result() (protocol.Reply, error) {
	return r.reply, failed(r.err, "Heartbeat %s", r.hb.Name)
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

// heartbeats decides and records a batch of heartbeats of distinct enclosures in one
// transaction; an error means nothing was recorded.
func (s *Store) heartbeats(ctx context.Context, batch []*beatRequest) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		devices, limited, err := lockDevices(ctx, tx, batch)
		if err != nil {
			return err
		}
		// Writes in enclosure order, as the locks were taken.
		slices.SortFunc(batch, func(x, y *beatRequest) int {
			return int(devices[x.hb.Name].id - devices[y.hb.Name].id)
		})
		wb := &pgx.Batch{}
		var checked []int // positions in wb of the mailbox changes that must hit their row
		for _, r := range batch {
			d, ok := devices[r.hb.Name]
			if !ok {
				r.err = ErrUnknownDevice
				if limited[r.hb.Name] {
					r.err = ErrRegistrationLimited
				}
				continue
			}
			if r.err = admit(d, r); r.err != nil {
				if errors.Is(r.err, ErrDeviceAddress) {
					queueAddressAlert(wb, r)
				}
				continue
			}
			hb := r.hb
			if d.admission == admissionPending {
				// Seen, so an administrator can judge it, but never commanded.
				r.reply = protocol.Reply{}
				queueTelemetry(wb, d, hb, r.now, r.opts.TelemetryBucket)
				continue
			}
			out := heartbeat.Decide(d.assignment, d.report(hb, r.now), d.streaming)
			r.reply = out.Reply
			if out.EndReport != nil {
				if err := queueEndReport(wb, d.id, *out.EndReport); err != nil {
					return err
				}
			}
			if a := d.assignment; a != nil {
				queued, err := queueOutcome(wb, d.id, a, out, r.now)
				if err != nil {
					return err
				}
				if queued {
					checked = append(checked, wb.Len()-1)
				}
				entries := make([]outboxEntry, len(out.Transitions))
				for i, t := range out.Transitions {
					entries[i] = eventEntry(a.WorkflowID, t.ActivityID, t.Event)
				}
				if err := queueOutbox(wb, entries...); err != nil {
					return err
				}
				queueLiveRecordingTime(wb, d.id, a, hb)
			}
			queueTelemetry(wb, d, hb, r.now, r.opts.TelemetryBucket)
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
// allowed), keyed by name; limited are the new names the registration limit turned away.
func lockDevices(ctx context.Context, tx pgx.Tx, batch []*beatRequest) (devices map[string]lockedDevice, limited map[string]bool, err error) {
	names := make([]string, len(batch))
	for i, r := range batch {
		names[i] = r.hb.Name
	}
	now := batch[0].now
	read := func(names []string) (map[string]lockedDevice, error) {
		locked, err := queryAll(ctx, tx, `
			SELECT d.name, d.id, d.token_hash, d.last_seen_at, d.recording, d.rec_duration, d.down_since,
			       coalesce(d.stream_until > @now, false) AS streaming,
			       d.relayed, coalesce(host(d.bound_address), '') AS bound_address, d.admission, d.retired_at IS NOT NULL AS retired,
			       `+mailboxColumns+`
			FROM devices d LEFT JOIN device_assignments a ON a.device_id = d.id
			WHERE d.name = ANY(@names)
			ORDER BY d.id
			FOR UPDATE OF d`, pgx.NamedArgs{"names": names, "now": now}, byNameChecked(lockedRow.lockedDevice))
		out := map[string]lockedDevice{}
		for _, d := range locked {
			out[d.name] = d
		}
		return out, err
	}
	devices, err = read(names)
	if err != nil || len(devices) == len(names) || !batch[0].opts.AutoRegister {
		return devices, nil, err
	}
	// Only a tokenless heartbeat registers its name: a token belongs to a known enclosure.
	var missing, where, from, admission, bound []string
	limited = map[string]bool{}
	for _, r := range batch {
		if _, ok := devices[r.hb.Name]; ok || r.token != "" {
			continue
		}
		if r.opts.Register != nil && !r.opts.Register() {
			limited[r.hb.Name] = true
			continue
		}
		addr, state, bind := "", admissionApproved, ""
		if r.opts.From.IsValid() {
			addr = r.opts.From.Unmap().String()
		}
		if r.opts.ApproveNew {
			state = admissionPending
		}
		if r.opts.BindOnRegister {
			bind = addr
		}
		missing, where = append(missing, r.hb.Name), append(where, r.hb.Location)
		from, admission, bound = append(from, addr), append(admission, state), append(bound, bind)
	}
	if len(missing) == 0 {
		return devices, limited, nil
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO devices (name, location, registered_from, admission, bound_address)
		SELECT n, l, nullif(f, '')::inet, a, nullif(b, '')::inet
		FROM unnest(@names::text[], @locations::text[], @from::text[], @admission::text[], @bound::text[]) AS u(n, l, f, a, b)
		ON CONFLICT (name) DO NOTHING`,
		pgx.NamedArgs{"names": missing, "locations": where, "from": from, "admission": admission, "bound": bound}); err != nil {
		return nil, nil, err
	}
	added, err := read(missing)
	for n, d := range added {
		devices[n] = d
	}
	return devices, limited, err
}

// Admission states of an enclosure.
const (
	admissionApproved = "approved"
	admissionPending  = "pending"
	admissionRejected = "rejected"
)

// admit checks who may speak for the enclosure (PROTOCOL.md section 8). A heartbeat with a
// token must carry the enclosure's own (it came through the relay); one without is accepted
// unless the enclosure is relayed or bound to another address. Tokenless heartbeats from
// outside the allowed networks never get here (the API refuses them first). An upload token
// alone never locks out the unmodified client, which sends none.
func admit(d lockedDevice, r *beatRequest) error {
	switch {
	case d.retired:
		return ErrDeviceRetired
	case d.admission == admissionRejected:
		return ErrDeviceRejected
	case r.token != "":
		if !tokenMatches(r.token, d.tokenHash) {
			return ErrDeviceToken
		}
	case d.relayed:
		return ErrDeviceRelayed
	case d.bound.IsValid() && d.bound != r.opts.From.Unmap():
		return ErrDeviceAddress
	}
	return nil
}

// AuditWrongAddress is the audit action of a heartbeat refused for coming from an address its
// enclosure is not bound to: someone else may be speaking for it.
const AuditWrongAddress = "device.heartbeat.wrong_address"

// queueAddressAlert records a refused heartbeat from a wrong address in the audit log, once a
// minute per enclosure and address, so a flood of them cannot flood the log.
func queueAddressAlert(wb *pgx.Batch, r *beatRequest) {
	wb.Queue(`
		INSERT INTO audit_log (at, action, subject, client_ip)
		SELECT @now, @action, @name, @ip
		WHERE NOT EXISTS (SELECT 1 FROM audit_log WHERE at > @now::timestamptz - interval '1 minute'
			AND action = @action AND subject = @name AND client_ip = @ip)`,
		pgx.NamedArgs{"now": r.now, "action": AuditWrongAddress, "name": r.hb.Name, "ip": r.opts.From.Unmap().String()})
}

// queueLiveRecordingTime keeps the enclosure's recorded seconds in its session's read model
// current while it records (the front ends show them as progress), in the heartbeat's own
// transaction. A duration lower than the last one starts a new segment (a resume after a
// reboot), whose seconds add to the earlier ones'. recording_time never goes down.
func queueLiveRecordingTime(wb *pgx.Batch, deviceID int64, a *heartbeat.Assignment, hb protocol.Heartbeat) {
	if !hb.Recording || !hb.HasDuration || hb.SessionID != a.SessionID {
		return
	}
	wb.Queue(`
		UPDATE session_devices SET
			live_base = live_base + CASE WHEN @duration < live_last THEN live_last ELSE 0 END,
			live_last = @duration,
			recording_time = greatest(recording_time,
				live_base + CASE WHEN @duration < live_last THEN live_last ELSE 0 END + @duration)
		WHERE session_id = @session_id AND device_id = @device_id AND status IN ('PENDING', 'RECORDING')`,
		pgx.NamedArgs{"session_id": a.SessionID, "device_id": deviceID, "duration": hb.Duration})
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
