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
// outbox. token is the bearer token the enclosure presented, if any.
func (s *Store) Heartbeat(ctx context.Context, hb protocol.Heartbeat, token string, now time.Time, opts HeartbeatOptions) (protocol.Reply, error) {
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
		events := 0
		if a := d.assignment; a != nil {
			if err := applyOutcome(ctx, tx, d.id, a, out, now); err != nil {
				return err
			}
			if out.Event != "" {
				events++
				ev := heartbeat.Event{Kind: out.Event, At: now, SessionID: a.SessionID, Duration: hb.Duration,
					ErrMsg: hb.ErrMsg, Stopped: a.Phase == heartbeat.Stopping}
				activity := ""
				if out.CompleteActivity {
					activity = a.ActivityID
				}
				if err := addOutbox(ctx, tx, a.WorkflowID, activity, ev); err != nil {
					return err
				}
			}
			if d.downSince != nil && !out.Delete {
				events++
				ev := heartbeat.Event{Kind: heartbeat.EventReturned, At: now, SessionID: a.SessionID}
				if err := addOutbox(ctx, tx, a.WorkflowID, "", ev); err != nil {
					return err
				}
			}
		}
		if err := saveTelemetry(ctx, tx, d.id, hb, now, opts.TelemetryBucket); err != nil {
			return err
		}
		if events > 0 {
			err = notifyOutbox(ctx, tx)
		}
		return err
	})
	return reply, err
}

// lockedDevice is an enclosure row, locked for this heartbeat, with its mailbox.
type lockedDevice struct {
	id         int64
	tokenHash  []byte
	downSince  *time.Time
	streaming  bool
	assignment *heartbeat.Assignment
}

// lockDevice reads and locks the enclosure (registering it when allowed). Locking the device
// row serialises its heartbeats with the command activities, which lock it too.
func lockDevice(ctx context.Context, tx pgx.Tx, hb protocol.Heartbeat, autoRegister bool, now time.Time) (lockedDevice, error) {
	const q = `
		SELECT d.id, d.token_hash, d.down_since, coalesce(d.stream_until > @now, false),
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
		err := tx.QueryRow(ctx, q, args).Scan(&d.id, &d.tokenHash, &d.downSince, &d.streaming,
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

func applyOutcome(ctx context.Context, tx pgx.Tx, deviceID int64, a *heartbeat.Assignment, out heartbeat.Outcome, now time.Time) error {
	args := pgx.NamedArgs{"device_id": deviceID, "phase": string(out.NewPhase), "now": now}
	switch {
	case out.Delete:
		_, err := tx.Exec(ctx, `DELETE FROM device_assignments WHERE device_id = @device_id`, args)
		return err
	case out.NewPhase != "":
		_, err := tx.Exec(ctx, `
			UPDATE device_assignments SET phase = @phase, activity_id = NULL, updated_at = @now
			WHERE device_id = @device_id`, args)
		return err
	}
	return nil
}

// addOutbox queues a transition: a signal to workflowID, or the completion of its activity.
func addOutbox(ctx context.Context, q querier, workflowID, activityID string, ev heartbeat.Event) error {
	payload, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `
		INSERT INTO outbox (workflow_id, activity_id, kind, payload)
		VALUES (@workflow_id, nullif(@activity_id, ''), @kind, @payload)`,
		pgx.NamedArgs{"workflow_id": workflowID, "activity_id": activityID, "kind": ev.Kind, "payload": payload})
	return err
}

func saveTelemetry(ctx context.Context, tx pgx.Tx, deviceID int64, hb protocol.Heartbeat, now time.Time, bucket time.Duration) error {
	var fps *float64
	if hb.HasFPS {
		fps = &hb.FPS
	}
	var sessionID *int64
	if hb.SessionID != 0 {
		sessionID = &hb.SessionID
	}
	args := pgx.NamedArgs{
		"id": deviceID, "location": hb.Location, "now": now, "recording": hb.Recording,
		"session_id": sessionID, "duration": hb.Duration, "fps": fps, "uptime": hb.Uptime, "load": hb.Load,
		"total_ram": hb.TotalRAM, "free_ram": hb.FreeRAM, "total_disk": hb.TotalDisk, "free_disk": hb.FreeDisk,
		"release": hb.Release, "err_msg": hb.ErrMsg, "skew": hb.Timestamp.Sub(now).Milliseconds(),
		"bucket": now.Truncate(bucket),
	}
	if _, err := tx.Exec(ctx, `
		UPDATE devices SET location = @location, last_seen_at = @now, down_since = NULL,
			recording = @recording, reported_session_id = @session_id, rec_duration = @duration, fps = @fps,
			uptime = @uptime, load = @load, total_ram = @total_ram, free_ram = @free_ram,
			total_disk = @total_disk, free_disk = @free_disk, release = @release, err_msg = @err_msg,
			clock_skew_ms = @skew
		WHERE id = @id`, args); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO device_telemetry (device_id, bucket, recording, fps, load, free_ram, free_disk, clock_skew_ms)
		VALUES (@id, @bucket, @recording, @fps, @load, @free_ram, @free_disk, @skew)
		ON CONFLICT (device_id, bucket) DO UPDATE SET recording = excluded.recording, fps = excluded.fps,
			load = excluded.load, free_ram = excluded.free_ram, free_disk = excluded.free_disk,
			clock_skew_ms = excluded.clock_skew_ms`, args)
	return err
}
