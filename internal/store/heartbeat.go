package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/jax-mba/mba/internal/heartbeat"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/protocol"
)

// Errors of the heartbeat path.
var (
	ErrUnknownDevice = errors.New("unknown enclosure")
	// The refusals of heartbeat.Admit (who may speak for the enclosure).
	ErrDeviceToken    = heartbeat.ErrToken
	ErrDeviceRelayed  = heartbeat.ErrRelayed
	ErrDeviceAddress  = heartbeat.ErrAddress
	ErrDeviceRetired  = heartbeat.ErrRetired
	ErrDeviceRejected = heartbeat.ErrRejected
	// ErrRegistrationLimited: too many new names lately; the name is not registered.
	ErrRegistrationLimited = errors.New("too many new enclosures registered lately")
)

// HeartbeatOptions are the heartbeat path's settings, and who sent the heartbeat.
type HeartbeatOptions struct {
	AutoRegister    bool          // register unknown names on first sight
	TelemetryBucket time.Duration // downsampling of the telemetry history
	ApproveNew      bool          // names registered on first sight wait for an administrator
	BindOnRegister  bool          // bind a new name to the address it registered from
	// Register, when set, is asked before each new name is registered (a rate limit).
	Register func() bool
	// From is the sender's address; a tokenless heartbeat for a bound enclosure must come from it.
	From netip.Addr
}

// Heartbeat handles one heartbeat in one transaction: it records the telemetry, decides the
// reply from the enclosure's mailbox (heartbeat.Decide) and writes any transition to the
// outbox. token is the bearer token the enclosure presented, if any. It is the batch path
// (HeartbeatBatcher) with a batch of one: four round trips (begin, locking read, one batch
// of writes, commit).
func (s *Store) Heartbeat(ctx context.Context, hb protocol.Heartbeat, token string, now time.Time, opts HeartbeatOptions) (protocol.Reply, error) {
	r := &beatRequest{hb: hb, token: token, now: now, opts: opts}
	s.heartbeatAlone(ctx, r)
	return r.result()
}

// heartbeatAlone runs r in a transaction of its own, deciding it again when the mailbox moved
// under it or PostgreSQL chose it as a deadlock's victim (up to three times).
func (s *Store) heartbeatAlone(ctx context.Context, r *beatRequest) {
	for attempt := 1; ; attempt++ {
		r.reply, r.err = protocol.Reply{}, nil
		err := s.heartbeats(ctx, []*beatRequest{r})
		if err == nil {
			return
		}
		if !(errors.Is(err, errMailboxMoved) || lostARace(err)) || attempt == 3 {
			r.reply, r.err = protocol.Reply{}, err
			return
		}
	}
}

// lostARace reports whether PostgreSQL rolled the transaction back to break a deadlock or a
// serialization conflict with a concurrent one: nothing was written, and running it again is
// the documented remedy (a heartbeat and a workflow's write can meet in either order).
func lostARace(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "40P01" || pg.Code == "40001") // deadlock_detected, serialization_failure
}

// errMailboxMoved: the mailbox changed between the locking read and the write (a command
// activity committed while the read waited for the lock); the heartbeat is decided again.
var errMailboxMoved = errors.New("the mailbox changed under the heartbeat")

// beatRequest is one heartbeat of a transaction, and its answer (ctx: the batcher's caller).
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
			if r.err = heartbeat.Admit(d.enclosure(), heartbeat.Sender{Token: r.token, From: r.opts.From}); r.err != nil {
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
				if err := queueOutbox(wb, transitionEntries(a.WorkflowID, out.Transitions)...); err != nil {
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
// allowed), keyed by name; limited are the new names the registration limit turned away. The
// lock leaves the key free (NO KEY UPDATE, as every lock of an enclosure that does not delete
// it): a workflow's timeline write share-locks the enclosure through its foreign key while
// holding the session row a heartbeat writes next, and FOR UPDATE deadlocked the two.
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
			FOR NO KEY UPDATE OF d`, pgx.NamedArgs{"names": names, "now": now}, byNameChecked(lockedRow.lockedDevice))
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

// lockedDevice is an enclosure row, locked for this heartbeat, with its mailbox.
type lockedDevice struct {
	name         string
	id           int64
	tokenHash    []byte
	lastSeen     *time.Time
	wasRecording bool
	lastDuration *int64 // the duration of the enclosure's previous heartbeat
	downSince    *time.Time
	streaming    bool
	relayed      bool
	bound        netip.Addr // invalid: not bound
	admission    string
	retired      bool
	assignment   *heartbeat.Assignment
}

// enclosure is what d's row says of who may speak for it.
func (d lockedDevice) enclosure() heartbeat.Enclosure {
	return heartbeat.Enclosure{TokenHash: d.tokenHash, Relayed: d.relayed, Bound: d.bound, Retired: d.retired,
		Rejected: d.admission == admissionRejected}
}

// report is what hb says, with what the service knew of the enclosure before it.
func (d lockedDevice) report(hb protocol.Heartbeat, now time.Time) heartbeat.Report {
	return heartbeat.Report{SessionID: hb.SessionID, Recording: hb.Recording, Duration: hb.Duration, ErrMsg: hb.ErrMsg, At: now,
		Previous: heartbeat.Previous{LastSeen: d.lastSeen, Recording: d.wasRecording, Duration: d.lastDuration, Silent: d.downSince != nil}}
}

// lockedRow is an enclosure and its mailbox as lockDevices reads them.
type lockedRow struct {
	Name         string     `db:"name"`
	ID           int64      `db:"id"`
	TokenHash    []byte     `db:"token_hash"`
	LastSeenAt   *time.Time `db:"last_seen_at"`
	Recording    bool       `db:"recording"`
	RecDuration  *int64     `db:"rec_duration"`
	DownSince    *time.Time `db:"down_since"`
	Streaming    bool       `db:"streaming"`
	Relayed      bool       `db:"relayed"`
	BoundAddress string     `db:"bound_address"` // "": not bound
	Admission    string     `db:"admission"`
	Retired      bool       `db:"retired"`
	mailboxRow
}

func (r lockedRow) lockedDevice() (lockedDevice, error) {
	d := lockedDevice{name: r.Name, id: r.ID, tokenHash: r.TokenHash, lastSeen: r.LastSeenAt, wasRecording: r.Recording,
		lastDuration: r.RecDuration, downSince: r.DownSince, streaming: r.Streaming, relayed: r.Relayed,
		admission: r.Admission, retired: r.Retired}
	var err error
	if r.BoundAddress != "" {
		if d.bound, err = netip.ParseAddr(r.BoundAddress); err != nil {
			return d, fmt.Errorf("the bound address of %s: %w", r.Name, err)
		}
	}
	d.assignment, err = r.assignment()
	return d, err
}

// Admission states of an enclosure.
const (
	admissionApproved = "approved"
	admissionPending  = "pending"
	admissionRejected = "rejected"
)

// queueAddressAlert records a refused heartbeat from a wrong address in the audit log, once a
// minute per enclosure and address, so a flood of them cannot flood the log.
func queueAddressAlert(wb *pgx.Batch, r *beatRequest) {
	wb.Queue(`
		INSERT INTO audit_log (at, action, subject, client_ip)
		SELECT @now, @action, @name, @ip
		WHERE NOT EXISTS (SELECT 1 FROM audit_log WHERE at > @now::timestamptz - interval '1 minute'
			AND action = @action AND subject = @name AND client_ip = @ip)`,
		pgx.NamedArgs{"now": r.now, "action": recording.AuditDeviceWrongAddress, "name": r.hb.Name, "ip": r.opts.From.Unmap().String()})
}

// queueOutcome queues the mailbox change of out, if any, conditional on the mailbox still being
// what the decision read (a is it), and reports whether it queued one.
func queueOutcome(b *pgx.Batch, deviceID int64, a *heartbeat.Assignment, out heartbeat.Outcome, now time.Time) (bool, error) {
	args := pgx.NamedArgs{"device_id": deviceID, "phase": string(out.NewPhase), "now": now,
		"was_session": a.SessionID, "was_phase": string(a.Phase), "was_activity": a.ActivityID}
	const same = ` AND session_id = @was_session AND phase = @was_phase AND coalesce(activity_id, '') = @was_activity`
	switch {
	case out.Delete:
		b.Queue(`DELETE FROM device_assignments WHERE device_id = @device_id`+same, args)
	case out.Start != nil:
		// The resume START this heartbeat sends: it goes out again until acknowledged, and the
		// workflow's SendStart for it names its activity here.
		start, err := json.Marshal(out.Start)
		if err != nil {
			return false, err
		}
		plan, err := json.Marshal(out.Resume)
		if err != nil {
			return false, err
		}
		args["start"], args["resume"] = start, plan
		b.Queue(`UPDATE device_assignments SET phase = @phase, start_params = @start, resume = @resume,
			activity_id = NULL, updated_at = @now
			WHERE device_id = @device_id`+same, args)
	case out.NewPhase != "":
		// A reset keeps the time its recording started: a START settling late reports it (AssignStart).
		b.Queue(`UPDATE device_assignments SET phase = @phase, activity_id = NULL,
			updated_at = CASE WHEN @phase = 'reset' THEN updated_at ELSE @now END
			WHERE device_id = @device_id`+same, args)
	default:
		return false, nil
	}
	return true, nil
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

// queueEndReport keeps the enclosure's report of its recording's end on its session row (see
// endReport), once, in the heartbeat's batch. When the session's workflow has already written
// the enclosure's end without it (the enclosure was away when the session was canceled, so the
// STOP was never confirmed), the reported seconds are added there, so they are not lost.
// Otherwise the report raises the live recorded seconds, as a recording heartbeat does, even on
// a row a cancel already made CANCELED (whose heartbeats no longer update it): a workflow still
// running may settle its STOP without this report (the cancel's STOP went out from the mailbox
// and the enclosure forgot the session first), and its final write never lowers the figure.
func queueEndReport(b *pgx.Batch, deviceID int64, ev recording.Event) error {
	report, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	b.Queue(`
		WITH row AS (
			SELECT workflow_ended AS late FROM session_devices
			WHERE session_id = @session_id AND device_id = @device_id AND end_report IS NULL FOR UPDATE),
		kept AS (
			UPDATE session_devices SET end_report = @report,
				recording_time = CASE WHEN row.late THEN recording_time + @duration
					ELSE greatest(recording_time, live_base + CASE WHEN @duration < live_last THEN live_last ELSE 0 END + @duration) END,
				segments = CASE WHEN row.late THEN greatest(segments, 1) ELSE segments END
			FROM row WHERE session_id = @session_id AND device_id = @device_id
			RETURNING row.late)
		INSERT INTO session_events (session_id, device_id, kind, message, at)
		SELECT @session_id, @device_id, 'late-report', @message, @at FROM kept WHERE late`,
		pgx.NamedArgs{"report": report, "session_id": ev.SessionID, "device_id": deviceID, "duration": ev.Duration, "at": ev.At,
			"message": fmt.Sprintf("reported after its workflow ended: recorded %ds", ev.Duration)})
	return nil
}

// queueTelemetry records the latest values, and one sample per bucket of the plot history:
// the first of the bucket, or any that changes the recording state (never written behind).
func queueTelemetry(b *pgx.Batch, d lockedDevice, hb protocol.Heartbeat, now time.Time, bucket time.Duration) {
	var fps *float64
	if hb.HasFPS {
		fps = &hb.FPS
	}
	var duration *int64 // NULL: the client's garbage before its first START, never shown
	if hb.HasDuration {
		duration = &hb.Duration
	}
	var sessionID *int64
	if hb.SessionID != 0 {
		sessionID = &hb.SessionID
	}
	args := pgx.NamedArgs{
		"id": d.id, "location": hb.Location, "now": now, "recording": hb.Recording,
		"session_id": sessionID, "duration": duration, "fps": fps, "uptime": hb.Uptime, "load": hb.Load,
		"total_ram": hb.TotalRAM, "free_ram": hb.FreeRAM, "total_disk": hb.TotalDisk, "free_disk": hb.FreeDisk,
		"release": hb.Release, "err_msg": hb.ErrMsg, "skew": hb.Timestamp.Sub(now).Milliseconds(),
		"bucket": now.Truncate(bucket),
	}
	sameBucket := d.lastSeen != nil && d.lastSeen.Truncate(bucket).Equal(now.Truncate(bucket))
	args["same_bucket"] = sameBucket
	args["gap"] = nil // the time since the last heartbeat: the plot's heartbeat gaps
	if d.lastSeen != nil {
		args["gap"] = max(0, now.Sub(*d.lastSeen).Milliseconds())
		if !sameBucket {
			// The bucket the last heartbeat was in is over: keep its longest gap.
			args["last_bucket"] = d.lastSeen.Truncate(bucket)
			b.Queue(`
				UPDATE device_telemetry t SET max_gap_ms = greatest(t.max_gap_ms, d.bucket_max_gap_ms)
				FROM devices d WHERE d.id = @id AND t.device_id = @id AND t.bucket = @last_bucket`, args)
		}
	}
	b.Queue(`
		UPDATE devices SET location = @location, last_seen_at = @now, down_since = NULL,
			recording = @recording, reported_session_id = @session_id, rec_duration = @duration, fps = @fps,
			uptime = @uptime, load = @load, total_ram = @total_ram, free_ram = @free_ram,
			total_disk = @total_disk, free_disk = @free_disk, release = @release, err_msg = @err_msg,
			clock_skew_ms = @skew,
			bucket_max_gap_ms = CASE WHEN @same_bucket THEN greatest(bucket_max_gap_ms, @gap::bigint) ELSE @gap::bigint END
		WHERE id = @id`, args)
	if sameBucket && d.wasRecording == hb.Recording {
		return
	}
	b.Queue(`
		INSERT INTO device_telemetry (device_id, bucket, recording, fps, load, free_ram, free_disk, clock_skew_ms, max_gap_ms)
		VALUES (@id, @bucket, @recording, @fps, @load, @free_ram, @free_disk, @skew, @gap::bigint)
		ON CONFLICT (device_id, bucket) DO UPDATE SET recording = excluded.recording, fps = excluded.fps,
			load = excluded.load, free_ram = excluded.free_ram, free_disk = excluded.free_disk,
			clock_skew_ms = excluded.clock_skew_ms,
			max_gap_ms = greatest(device_telemetry.max_gap_ms, excluded.max_gap_ms)`, args)
}
