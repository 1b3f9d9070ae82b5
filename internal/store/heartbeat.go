package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/heartbeat"
	"github.com/jax-mba/mba/protocol"
)

// Errors of the heartbeat path.
var (
	ErrUnknownDevice = errors.New("unknown enclosure")
	ErrDeviceToken   = errors.New("wrong enclosure token")
)

// HeartbeatOptions are the heartbeat path's settings.
type HeartbeatOptions struct {
	AutoRegister    bool          // register unknown names on first sight
	TelemetryBucket time.Duration // downsampling of the telemetry history
}

// OutboxChannel is NOTIFYed when outbox rows are added, to wake the dispatcher.
const OutboxChannel = "mba_outbox"

// Heartbeat handles one heartbeat in one transaction: it records the telemetry, decides the
// reply from the enclosure's mailbox (heartbeat.Decide) and writes any transition to the
// outbox. token is the bearer token the enclosure presented, if any. After the locking read,
// every write goes in one batch: four round trips in all (begin, read, writes, commit).
func (s *Store) Heartbeat(ctx context.Context, hb protocol.Heartbeat, token string, now time.Time, opts HeartbeatOptions) (protocol.Reply, error) {
	for attempt := 1; ; attempt++ {
		reply, err := s.heartbeatOnce(ctx, hb, token, now, opts)
		if !errors.Is(err, errMailboxMoved) || attempt == 3 {
			return reply, err
		}
	}
}

// errMailboxMoved: the mailbox changed between the locking read and the write (a command
// activity committed while the read waited for the lock); the heartbeat is decided again.
var errMailboxMoved = errors.New("the mailbox changed under the heartbeat")

func (s *Store) heartbeatOnce(ctx context.Context, hb protocol.Heartbeat, token string, now time.Time, opts HeartbeatOptions) (protocol.Reply, error) {
	var reply protocol.Reply
	err := s.tx(ctx, func(tx pgx.Tx) error {
		d, err := lockDevice(ctx, tx, hb, opts.AutoRegister, now)
		if err != nil {
			return err
		}
		if d.tokenHash != nil {
			sum := sha256.Sum256([]byte(token))
			if subtle.ConstantTimeCompare(sum[:], d.tokenHash) != 1 {
				return ErrDeviceToken
			}
		}
		report := heartbeat.Report{SessionID: hb.SessionID, Recording: hb.Recording, Duration: hb.Duration, ErrMsg: hb.ErrMsg}
		out := heartbeat.Decide(d.assignment, report, d.streaming)
		reply = out.Reply

		b := &pgx.Batch{}
		checked := false // the batch's first statement is the mailbox change, which must hit its row
		if a := d.assignment; a != nil {
			checked = queueOutcome(b, d.id, a, out, now)
			n, err := queueEvents(b, d, a, out, hb, now)
			if err != nil {
				return err
			}
			if n > 0 {
				b.Queue(notifySQL, pgx.NamedArgs{"channel": OutboxChannel})
			}
		}
		queueTelemetry(b, d, hb, now, opts.TelemetryBucket)
		results := tx.SendBatch(ctx, b)
		if checked {
			tag, err := results.Exec()
			if err == nil && tag.RowsAffected() == 0 {
				err = errMailboxMoved
			}
			if err != nil {
				results.Close()
				return err
			}
		}
		return results.Close()
	})
	return reply, err
}

// lockedDevice is an enclosure row, locked for this heartbeat, with its mailbox.
type lockedDevice struct {
	id           int64
	tokenHash    []byte
	lastSeen     *time.Time
	wasRecording bool
	downSince    *time.Time
	streaming    bool
	assignment   *heartbeat.Assignment
}

// lockDevice reads and locks the enclosure (registering it when allowed). Locking the device
// row serialises its heartbeats with the command activities, which lock it too.
func lockDevice(ctx context.Context, tx pgx.Tx, hb protocol.Heartbeat, autoRegister bool, now time.Time) (lockedDevice, error) {
	const q = `
		SELECT d.id, d.token_hash, d.last_seen_at, d.recording, d.down_since, coalesce(d.stream_until > @now, false),
		       a.session_id, a.phase, a.start_params, a.workflow_id, coalesce(a.activity_id, '')
		FROM devices d LEFT JOIN device_assignments a ON a.device_id = d.id
		WHERE d.name = @name
		FOR UPDATE OF d`
	args := pgx.NamedArgs{"name": hb.Name, "location": hb.Location, "now": now}
	for attempt := 0; ; attempt++ {
		var d lockedDevice
		var sessionID *int64
		var phase, workflowID *string
		var activityID string
		var params []byte
		err := tx.QueryRow(ctx, q, args).Scan(&d.id, &d.tokenHash, &d.lastSeen, &d.wasRecording, &d.downSince, &d.streaming,
			&sessionID, &phase, &params, &workflowID, &activityID)
		if errors.Is(err, pgx.ErrNoRows) && autoRegister && attempt == 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO devices (name, location) VALUES (@name, @location) ON CONFLICT (name) DO NOTHING`, args); err != nil {
				return d, err
			}
			continue
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return d, ErrUnknownDevice
		}
		if err != nil {
			return d, err
		}
		if sessionID != nil {
			a := &heartbeat.Assignment{SessionID: *sessionID, Phase: heartbeat.Phase(*phase), WorkflowID: *workflowID, ActivityID: activityID}
			if len(params) > 0 {
				a.Start = new(protocol.StartParams)
				if err := json.Unmarshal(params, a.Start); err != nil {
					return d, err
				}
			}
			d.assignment = a
		}
		return d, nil
	}
}

// queueOutcome queues the mailbox change of out, if any, conditional on the mailbox still being
// what the decision read (a is it), and reports whether it queued one.
func queueOutcome(b *pgx.Batch, deviceID int64, a *heartbeat.Assignment, out heartbeat.Outcome, now time.Time) bool {
	args := pgx.NamedArgs{"device_id": deviceID, "phase": string(out.NewPhase), "now": now,
		"was_session": a.SessionID, "was_phase": string(a.Phase), "was_activity": a.ActivityID}
	const same = ` AND session_id = @was_session AND phase = @was_phase AND coalesce(activity_id, '') = @was_activity`
	switch {
	case out.Delete:
		b.Queue(`DELETE FROM device_assignments WHERE device_id = @device_id`+same, args)
	case out.NewPhase != "":
		b.Queue(`UPDATE device_assignments SET phase = @phase, activity_id = NULL, updated_at = @now
			WHERE device_id = @device_id`+same, args)
	default:
		return false
	}
	return true
}

const (
	outboxSQL = `INSERT INTO outbox (workflow_id, activity_id, kind, payload)
		VALUES (@workflow_id, nullif(@activity_id, ''), @kind, @payload)`
	notifySQL = `SELECT pg_notify(@channel, '')`
)

func outboxArgs(workflowID, activityID string, ev heartbeat.Event) (pgx.NamedArgs, error) {
	payload, err := json.Marshal(ev)
	return pgx.NamedArgs{"workflow_id": workflowID, "activity_id": activityID, "kind": ev.Kind, "payload": payload}, err
}

// addOutbox queues a transition: a signal to workflowID, or the completion of its activity.
func addOutbox(ctx context.Context, q querier, workflowID, activityID string, ev heartbeat.Event) error {
	args, err := outboxArgs(workflowID, activityID, ev)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, outboxSQL, args)
	return err
}

// queueOutbox is addOutbox in a batch.
func queueOutbox(b *pgx.Batch, workflowID, activityID string, ev heartbeat.Event) error {
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
	var sessionID *int64
	if hb.SessionID != 0 {
		sessionID = &hb.SessionID
	}
	args := pgx.NamedArgs{
		"id": d.id, "location": hb.Location, "now": now, "recording": hb.Recording,
		"session_id": sessionID, "duration": hb.Duration, "fps": fps, "uptime": hb.Uptime, "load": hb.Load,
		"total_ram": hb.TotalRAM, "free_ram": hb.FreeRAM, "total_disk": hb.TotalDisk, "free_disk": hb.FreeDisk,
		"release": hb.Release, "err_msg": hb.ErrMsg, "skew": hb.Timestamp.Sub(now).Milliseconds(),
		"bucket": now.Truncate(bucket),
	}
	b.Queue(`
		UPDATE devices SET location = @location, last_seen_at = @now, down_since = NULL,
			recording = @recording, reported_session_id = @session_id, rec_duration = @duration, fps = @fps,
			uptime = @uptime, load = @load, total_ram = @total_ram, free_ram = @free_ram,
			total_disk = @total_disk, free_disk = @free_disk, release = @release, err_msg = @err_msg,
			clock_skew_ms = @skew
		WHERE id = @id`, args)
	sameBucket := d.lastSeen != nil && d.lastSeen.Truncate(bucket).Equal(now.Truncate(bucket))
	if sameBucket && d.wasRecording == hb.Recording {
		return
	}
	b.Queue(`
		INSERT INTO device_telemetry (device_id, bucket, recording, fps, load, free_ram, free_disk, clock_skew_ms)
		VALUES (@id, @bucket, @recording, @fps, @load, @free_ram, @free_disk, @skew)
		ON CONFLICT (device_id, bucket) DO UPDATE SET recording = excluded.recording, fps = excluded.fps,
			load = excluded.load, free_ram = excluded.free_ram, free_disk = excluded.free_disk,
			clock_skew_ms = excluded.clock_skew_ms`, args)
}
