package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/heartbeat"
	"github.com/jax-mba/mba/internal/recording"
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
		events := 0
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
			out := heartbeat.Decide(d.assignment, heartbeat.Report{SessionID: hb.SessionID, Recording: hb.Recording,
				Duration: hb.Duration, ErrMsg: hb.ErrMsg, At: r.now}, d.streaming)
			r.reply = out.Reply
			if a := d.assignment; (a == nil || a.SessionID != hb.SessionID) && hb.SessionID != 0 && !hb.Recording && hb.Duration > 0 {
				// The end of a session no longer assigned: its seconds still count.
				late := recording.Event{Kind: recording.EventEnded, At: r.now, SessionID: hb.SessionID, Duration: hb.Duration, ErrMsg: hb.ErrMsg}
				if err := queueEndReport(wb, d.id, late); err != nil {
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
				n, err := queueEvents(wb, d, a, out, hb, r.now)
				if err != nil {
					return err
				}
				events += n
				queueLiveRecordingTime(wb, d.id, a, hb)
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
// allowed), keyed by name; limited are the new names the registration limit turned away.
func lockDevices(ctx context.Context, tx pgx.Tx, batch []*beatRequest) (devices map[string]lockedDevice, limited map[string]bool, err error) {
	names := make([]string, len(batch))
	for i, r := range batch {
		names[i] = r.hb.Name
	}
	now := batch[0].now
	read := func(names []string) (map[string]lockedDevice, error) {
		rows, err := tx.Query(ctx, `
			SELECT d.name, d.id, d.token_hash, d.last_seen_at, d.recording, d.rec_duration, d.down_since, coalesce(d.stream_until > @now, false),
			       d.relayed, coalesce(host(d.bound_address), ''), d.admission, d.retired_at IS NOT NULL,
			       a.session_id, a.phase, a.start_params, a.workflow_id, coalesce(a.activity_id, ''), a.resume
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
			var name, bound string
			var d lockedDevice
			var sessionID *int64
			var phase, workflowID *string
			var activityID string
			var params, resume []byte
			if err := rows.Scan(&name, &d.id, &d.tokenHash, &d.lastSeen, &d.wasRecording, &d.lastDuration, &d.downSince, &d.streaming,
				&d.relayed, &bound, &d.admission, &d.retired,
				&sessionID, &phase, &params, &workflowID, &activityID, &resume); err != nil {
				return nil, err
			}
			if bound != "" {
				if d.bound, err = netip.ParseAddr(bound); err != nil {
					return nil, err
				}
			}
			if sessionID != nil {
				d.assignment = &heartbeat.Assignment{SessionID: *sessionID, Phase: recording.Phase(*phase), WorkflowID: *workflowID, ActivityID: activityID}
				if len(params) > 0 {
					d.assignment.Start = new(recording.Start)
					if err := json.Unmarshal(params, d.assignment.Start); err != nil {
						return nil, err
					}
				}
				if len(resume) > 0 {
					d.assignment.Resume = new(heartbeat.ResumePlan)
					if err := json.Unmarshal(resume, d.assignment.Resume); err != nil {
						return nil, err
					}
				}
			}
			out[name] = d
		}
		return out, rows.Err()
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
		sum := sha256.Sum256([]byte(r.token))
		if d.tokenHash == nil || subtle.ConstantTimeCompare(sum[:], d.tokenHash) != 1 {
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

// queueEvents queues a heartbeat's transitions for the outbox and returns how many.
func queueEvents(wb *pgx.Batch, d lockedDevice, a *heartbeat.Assignment, out heartbeat.Outcome, hb protocol.Heartbeat, now time.Time) (int, error) {
	var events []recording.Event
	if out.Event != "" {
		ev := recording.Event{Kind: out.Event, At: now, SessionID: a.SessionID, Duration: hb.Duration,
			ErrMsg: hb.ErrMsg, Stopped: a.Phase == recording.PhaseStopping, Resumed: out.Start != nil}
		if ev.Kind == recording.EventReset {
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
		events = append(events, recording.Event{Kind: recording.EventReturned, At: now, SessionID: a.SessionID})
	}
	for i, ev := range events {
		if ev.Kind == recording.EventEnded {
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
