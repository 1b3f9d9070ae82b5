package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/heartbeat"
)

// Device is an enclosure as the API shows it.
type Device struct {
	ID           int64      `json:"id"`
	Name         string     `json:"name"`
	Location     string     `json:"location"`
	LastUpdate   *time.Time `json:"last_update"`
	SessionID    *int64     `json:"session_id"` // current assignment
	State        string     `json:"state"`      // IDLE, BUSY or DOWN
	SensorStatus struct {
		Camera struct {
			Recording bool     `json:"recording"`
			Duration  *int64   `json:"duration"`
			FPS       *float64 `json:"fps"`
		} `json:"camera"`
	} `json:"sensor_status"`
	SystemInfo struct {
		Uptime    *int64   `json:"uptime"`
		Load      *float64 `json:"load"`
		TotalRAM  *int64   `json:"total_ram"`
		FreeRAM   *int64   `json:"free_ram"`
		FreeDisk  *int64   `json:"free_disk"`
		TotalDisk *int64   `json:"total_disk"`
		Release   string   `json:"release"`
	} `json:"system_info"`
	ReportedSessionID *int64 `json:"reported_session_id"` // what the enclosure believes
	ClockSkewMS       *int64 `json:"clock_skew_ms"`
	ErrMsg            string `json:"err_msg,omitempty"`
}

// Device states.
const (
	DeviceIdle = "IDLE"
	DeviceBusy = "BUSY"
	DeviceDown = "DOWN"
)

// deviceSelect reads devices with their state computed on the server clock: @now and @down
// (the silence after which an enclosure is DOWN) are its arguments.
const deviceSelect = `
	SELECT d.id, d.name, d.location, d.last_seen_at, sd.session_id,
	       CASE WHEN d.last_seen_at IS NULL OR d.last_seen_at < @now::timestamptz - @down::interval THEN 'DOWN'
	            WHEN sd.session_id IS NOT NULL THEN 'BUSY' ELSE 'IDLE' END,
	       d.recording, d.rec_duration, d.fps, d.uptime, d.load, d.total_ram, d.free_ram, d.free_disk,
	       d.total_disk, d.release, d.reported_session_id, d.clock_skew_ms, d.err_msg
	FROM devices d
	LEFT JOIN session_devices sd ON sd.device_id = d.id AND sd.status IN ('PENDING', 'RECORDING')`

func scanDevice(row pgx.Row) (Device, error) {
	var d Device
	c, si := &d.SensorStatus.Camera, &d.SystemInfo
	err := row.Scan(&d.ID, &d.Name, &d.Location, &d.LastUpdate, &d.SessionID, &d.State,
		&c.Recording, &c.Duration, &c.FPS, &si.Uptime, &si.Load, &si.TotalRAM, &si.FreeRAM, &si.FreeDisk,
		&si.TotalDisk, &si.Release, &d.ReportedSessionID, &d.ClockSkewMS, &d.ErrMsg)
	return d, notFound(err)
}

func deviceArgs(now time.Time, down time.Duration, more pgx.NamedArgs) pgx.NamedArgs {
	args := pgx.NamedArgs{"now": now, "down": down}
	for k, v := range more {
		args[k] = v
	}
	return args
}

// ListDevices returns every enclosure ordered by name.
func (s *Store) ListDevices(ctx context.Context, now time.Time, down time.Duration) ([]Device, error) {
	rows, err := s.pool.Query(ctx, deviceSelect+` ORDER BY d.name`, deviceArgs(now, down, nil))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Device, error) { return scanDevice(r) })
}

// DeviceByID finds an enclosure by id.
func (s *Store) DeviceByID(ctx context.Context, id int64, now time.Time, down time.Duration) (Device, error) {
	return scanDevice(s.pool.QueryRow(ctx, deviceSelect+` WHERE d.id = @id`, deviceArgs(now, down, pgx.NamedArgs{"id": id})))
}

// DeviceByName finds an enclosure by hostname.
func (s *Store) DeviceByName(ctx context.Context, name string, now time.Time, down time.Duration) (Device, error) {
	return scanDevice(s.pool.QueryRow(ctx, deviceSelect+` WHERE d.name = @name`, deviceArgs(now, down, pgx.NamedArgs{"name": name})))
}

// DevicesByIDs returns the enclosures among ids that exist.
func (s *Store) DevicesByIDs(ctx context.Context, ids []int64, now time.Time, down time.Duration) ([]Device, error) {
	rows, err := s.pool.Query(ctx, deviceSelect+` WHERE d.id = ANY(@ids) ORDER BY d.name`, deviceArgs(now, down, pgx.NamedArgs{"ids": ids}))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Device, error) { return scanDevice(r) })
}

// KeepStreamAlive asks for STREAM on the enclosure's heartbeats until until.
func (s *Store) KeepStreamAlive(ctx context.Context, id int64, until time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE devices SET stream_until = greatest(coalesce(stream_until, @until), @until) WHERE id = @id`,
		pgx.NamedArgs{"id": id, "until": until})
	return err
}

// MarkSilent flags enclosures not heard from since cutoff and, in the same transaction,
// queues a "silent" transition for the workflow of each one that is assigned. Each silence is
// reported once: the next heartbeat clears down_since and reports the return. It returns the
// names of the newly silent enclosures.
func (s *Store) MarkSilent(ctx context.Context, cutoff, now time.Time) ([]string, error) {
	var names []string
	err := s.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			WITH silent AS (
				UPDATE devices SET down_since = @now
				WHERE down_since IS NULL AND last_seen_at < @cutoff
				RETURNING id, name)
			SELECT s.name, a.session_id, a.workflow_id
			FROM silent s LEFT JOIN device_assignments a ON a.device_id = s.id`,
			pgx.NamedArgs{"cutoff": cutoff, "now": now})
		if err != nil {
			return err
		}
		type silent struct {
			Name       string
			SessionID  *int64
			WorkflowID *string
		}
		found, err := pgx.CollectRows(rows, pgx.RowToStructByPos[silent])
		if err != nil {
			return err
		}
		for _, f := range found {
			names = append(names, f.Name)
			if f.WorkflowID == nil {
				continue
			}
			ev := heartbeat.Event{Kind: heartbeat.EventSilent, At: now, SessionID: *f.SessionID}
			if err := addOutbox(ctx, tx, *f.WorkflowID, "", ev); err != nil {
				return err
			}
		}
		if len(found) > 0 {
			err = notifyOutbox(ctx, tx)
		}
		return err
	})
	return names, err
}

// SetDeviceToken sets (or, with a nil hash, removes) the enclosure's own token.
func (s *Store) SetDeviceToken(ctx context.Context, id int64, hash []byte) error {
	return s.execOne(ctx, `UPDATE devices SET token_hash = @hash WHERE id = @id`, pgx.NamedArgs{"id": id, "hash": hash})
}

// TelemetryPoint is one downsampled sample of an enclosure, for plots.
type TelemetryPoint struct {
	At          time.Time `json:"at"`
	Recording   bool      `json:"recording"`
	FPS         *float64  `json:"fps"`
	Load        *float64  `json:"load"`
	FreeRAM     *int64    `json:"free_ram"`
	FreeDisk    *int64    `json:"free_disk"`
	ClockSkewMS *int64    `json:"clock_skew_ms"`
	// MaxGapMS is the longest time between two heartbeats in the bucket (the latest bucket's
	// so far): silences and network trouble show as spikes.
	MaxGapMS *int64 `json:"max_gap_ms"`
}

// Telemetry returns an enclosure's downsampled history in [since, until), oldest first.
func (s *Store) Telemetry(ctx context.Context, id int64, since, until time.Time) ([]TelemetryPoint, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT t.bucket, t.recording, t.fps, t.load, t.free_ram, t.free_disk, t.clock_skew_ms,
			-- The newest bucket is still filling: its longest gap so far is on the enclosure's row.
			CASE WHEN t.bucket = (SELECT max(bucket) FROM device_telemetry WHERE device_id = @id)
				THEN greatest(t.max_gap_ms, d.bucket_max_gap_ms) ELSE t.max_gap_ms END
		FROM device_telemetry t JOIN devices d ON d.id = t.device_id
		WHERE t.device_id = @id AND t.bucket >= @since AND t.bucket < @until ORDER BY t.bucket`,
		pgx.NamedArgs{"id": id, "since": since, "until": until})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[TelemetryPoint])
}

// ErrNoDeviceToken refuses uploads from an enclosure that has no token of its own.
var ErrNoDeviceToken = errors.New("the enclosure has no token")

// AuthenticateEnclosure returns the id of the enclosure name whose own token is token:
// ErrNotFound for an unknown name, ErrNoDeviceToken when it has none, ErrDeviceToken when it
// does not match (compared in constant time).
func (s *Store) AuthenticateEnclosure(ctx context.Context, name, token string) (int64, error) {
	var id int64
	var hash []byte
	err := s.pool.QueryRow(ctx, `SELECT id, token_hash FROM devices WHERE name = @name`,
		pgx.NamedArgs{"name": name}).Scan(&id, &hash)
	if err != nil {
		return 0, notFound(err)
	}
	if hash == nil {
		return 0, ErrNoDeviceToken
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], hash) != 1 {
		return 0, ErrDeviceToken
	}
	return id, nil
}
