package store

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
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
	ErrDeviceToken   = errors.New("wrong enclosure token")
	// ErrDeviceRelayed: a tokenless heartbeat for an enclosure whose heartbeats must come
	// through its relay with its token.
	ErrDeviceRelayed = errors.New("the enclosure is relayed: its heartbeats must carry its token")
	// ErrDeviceAddress: a tokenless heartbeat for an enclosure bound to another address.
	ErrDeviceAddress  = errors.New("heartbeat from an address the enclosure is not bound to")
	ErrDeviceRetired  = errors.New("the enclosure is retired")
	ErrDeviceRejected = errors.New("the enclosure was rejected by an administrator")
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

// OutboxChannel is NOTIFYed when outbox rows are added, to wake the dispatcher.
const OutboxChannel = "mba_outbox"

// Heartbeat handles one heartbeat in one transaction: it records the telemetry, decides the
// reply from the enclosure's mailbox (heartbeat.Decide) and writes any transition to the
// outbox. token is the bearer token the enclosure presented, if any. It is the batch path
// (HeartbeatBatcher) with a batch of one: four round trips (begin, locking read, one batch
// of writes, commit).
func (s *Store) Heartbeat(ctx context.Context, hb protocol.Heartbeat, token string, now time.Time, opts HeartbeatOptions) (protocol.Reply, error) {
	for attempt := 1; ; attempt++ {
		r := &beatRequest{hb: hb, token: token, now: now, opts: opts}
		err := s.heartbeats(ctx, []*beatRequest{r})
		if err == nil {
			return r.reply, r.err
		}
		if !errors.Is(err, errMailboxMoved) || attempt == 3 {
			return protocol.Reply{}, err
		}
	}
}

// errMailboxMoved: the mailbox changed between the locking read and the write (a command
// activity committed while the read waited for the lock); the heartbeat is decided again.
var errMailboxMoved = errors.New("the mailbox changed under the heartbeat")

// lockedDevice is an enclosure row, locked for this heartbeat, with its mailbox.
type lockedDevice struct {
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

const (
	outboxSQL = `INSERT INTO outbox (workflow_id, activity_id, kind, payload)
		VALUES (@workflow_id, nullif(@activity_id, ''), @kind, @payload)`
	notifySQL = `SELECT pg_notify(@channel, '')`
)

func outboxArgs(workflowID, activityID string, ev recording.Event) (pgx.NamedArgs, error) {
	payload, err := json.Marshal(ev)
	return pgx.NamedArgs{"workflow_id": workflowID, "activity_id": activityID, "kind": ev.Kind, "payload": payload}, err
}

// addOutbox queues a transition: a signal to workflowID, or the completion of its activity.
func addOutbox(ctx context.Context, q querier, workflowID, activityID string, ev recording.Event) error {
	args, err := outboxArgs(workflowID, activityID, ev)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, outboxSQL, args)
	return err
}

// queueOutbox is addOutbox in a batch.
func queueOutbox(b *pgx.Batch, workflowID, activityID string, ev recording.Event) error {
	args, err := outboxArgs(workflowID, activityID, ev)
	if err == nil {
		b.Queue(outboxSQL, args)
	}
	return err
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

// Unavailable reports an error that means the database cannot be reached or is going away
// (connection refused or lost, shutting down, not accepting connections), rather than a fault
// of the request: the caller should try again later.
func Unavailable(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return false
	case errors.As(err, &connectErr), errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown, cannot connect now.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	return false
}
