package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/heartbeat"
	"github.com/jax-mba/mba/internal/recording"
)

// Device is an enclosure in the read model (the API sends its own view of it: api.DeviceView).
type Device struct {
	ID           int64
	Name         string
	Location     string
	LastUpdate   *time.Time
	SessionID    *int64 // current assignment
	State        recording.EnclosureState
	SensorStatus struct {
		Camera struct {
			Recording bool
			Duration  *int64
			FPS       *float64
		}
	}
	SystemInfo struct {
		Uptime    *int64
		Load      *float64
		TotalRAM  *int64
		FreeRAM   *int64
		FreeDisk  *int64
		TotalDisk *int64
		Release   string
	}
	ReportedSessionID *int64 // what the enclosure believes
	ClockSkewMS       *int64
	ErrMsg            string
	// Admission (PROTOCOL.md section 8): approved, pending (a new name waiting for an
	// administrator) or rejected; Retired is when it left the fleet.
	Admission      string
	Retired        *time.Time
	Relayed        bool    // heartbeats must come through its relay with its token
	HasToken       bool    // it has a token of its own (relay, upload agent)
	BoundAddress   *string // tokenless heartbeats only from this address
	RegisteredFrom *string
}

// Usable says why the enclosure cannot be put in a session, or "" when it can.
func (d Device) Usable() string {
	switch {
	case d.Retired != nil:
		return "retired"
	case d.Admission == admissionPending:
		return "waiting for approval"
	case d.Admission == admissionRejected:
		return "rejected"
	}
	return ""
}

// deviceSelect reads devices with their state computed on the server clock: @now and @down
// (the silence after which an enclosure is DOWN) are its arguments.
const deviceSelect = `
	SELECT d.id, d.name, d.location, d.last_seen_at, sd.session_id AS assigned_session_id,
	       CASE WHEN d.last_seen_at IS NULL OR d.last_seen_at < @now::timestamptz - @down::interval THEN 'DOWN'
	            WHEN sd.session_id IS NOT NULL THEN 'BUSY' ELSE 'IDLE' END AS state,
	       d.recording, d.rec_duration, d.fps, d.uptime, d.load, d.total_ram, d.free_ram, d.free_disk,
	       d.total_disk, d.release, d.reported_session_id, d.clock_skew_ms, d.err_msg,
	       d.admission, d.retired_at, d.relayed, d.token_hash IS NOT NULL AS has_token, host(d.bound_address) AS bound_address, host(d.registered_from) AS registered_from
	FROM devices d
	LEFT JOIN session_devices sd ON sd.device_id = d.id AND sd.status IN ('PENDING', 'RECORDING')`

// deviceRow is an enclosure as deviceSelect reads it.
type deviceRow struct {
	ID                int64                    `db:"id"`
	Name              string                   `db:"name"`
	Location          string                   `db:"location"`
	LastSeenAt        *time.Time               `db:"last_seen_at"`
	AssignedSessionID *int64                   `db:"assigned_session_id"`
	State             recording.EnclosureState `db:"state"`
	Recording         bool                     `db:"recording"`
	RecDuration       *int64                   `db:"rec_duration"`
	FPS               *float64                 `db:"fps"`
	Uptime            *int64                   `db:"uptime"`
	Load              *float64                 `db:"load"`
	TotalRAM          *int64                   `db:"total_ram"`
	FreeRAM           *int64                   `db:"free_ram"`
	FreeDisk          *int64                   `db:"free_disk"`
	TotalDisk         *int64                   `db:"total_disk"`
	Release           string                   `db:"release"`
	ReportedSessionID *int64                   `db:"reported_session_id"`
	ClockSkewMS       *int64                   `db:"clock_skew_ms"`
	ErrMsg            string                   `db:"err_msg"`
	Admission         string                   `db:"admission"`
	RetiredAt         *time.Time               `db:"retired_at"`
	Relayed           bool                     `db:"relayed"`
	HasToken          bool                     `db:"has_token"`
	BoundAddress      *string                  `db:"bound_address"`
	RegisteredFrom    *string                  `db:"registered_from"`
}

func (r deviceRow) device() Device {
	d := Device{ID: r.ID, Name: r.Name, Location: r.Location, LastUpdate: r.LastSeenAt, SessionID: r.AssignedSessionID,
		State: r.State, ReportedSessionID: r.ReportedSessionID, ClockSkewMS: r.ClockSkewMS, ErrMsg: r.ErrMsg,
		Admission: r.Admission, Retired: r.RetiredAt, Relayed: r.Relayed, HasToken: r.HasToken,
		BoundAddress: r.BoundAddress, RegisteredFrom: r.RegisteredFrom}
	c, si := &d.SensorStatus.Camera, &d.SystemInfo
	c.Recording, c.Duration, c.FPS = r.Recording, r.RecDuration, r.FPS
	si.Uptime, si.Load, si.TotalRAM, si.FreeRAM, si.FreeDisk, si.TotalDisk, si.Release =
		r.Uptime, r.Load, r.TotalRAM, r.FreeRAM, r.FreeDisk, r.TotalDisk, r.Release
	return d
}

var readDevice = byName(deviceRow.device)

// queryDevices reads the enclosures of deviceSelect+where on the server clock now, DOWN after down.
func (s *Store) queryDevices(ctx context.Context, where string, now time.Time, down time.Duration, args pgx.NamedArgs) ([]Device, error) {
	return queryAll(ctx, s.pool, deviceSelect+where, deviceArgs(now, down, args), readDevice)
}

// queryDevice is queryDevices of one enclosure: ErrNotFound when there is none.
func (s *Store) queryDevice(ctx context.Context, where string, now time.Time, down time.Duration, args pgx.NamedArgs) (Device, error) {
	d, err := queryOne(ctx, s.pool, deviceSelect+where, deviceArgs(now, down, args), readDevice)
	return d, notFound(err)
}

func deviceArgs(now time.Time, down time.Duration, more pgx.NamedArgs) pgx.NamedArgs {
	args := pgx.NamedArgs{"now": now, "down": down}
	for k, v := range more {
		args[k] = v
	}
	return args
}

// ListDevices returns the enclosures of the fleet ordered by name, or with retired the retired ones.
func (s *Store) ListDevices(ctx context.Context, now time.Time, down time.Duration, retired bool) ([]Device, error) {
	devices, err := s.queryDevices(ctx, ` WHERE (d.retired_at IS NOT NULL) = @retired ORDER BY d.name`, now, down,
		pgx.NamedArgs{"retired": retired})
	return devices, failed(err, "ListDevices retired %t", retired)
}

// DeviceByID finds an enclosure by id.
func (s *Store) DeviceByID(ctx context.Context, id int64, now time.Time, down time.Duration) (Device, error) {
	d, err := s.queryDevice(ctx, ` WHERE d.id = @id`, now, down, pgx.NamedArgs{"id": id})
	return d, failed(err, "DeviceByID %d", id)
}

// DeviceByName finds an enclosure by hostname.
func (s *Store) DeviceByName(ctx context.Context, name string, now time.Time, down time.Duration) (Device, error) {
	d, err := s.queryDevice(ctx, ` WHERE d.name = @name`, now, down, pgx.NamedArgs{"name": name})
	return d, failed(err, "DeviceByName %s", name)
}

// DeviceByRef finds an enclosure by ref: an integer id, or else a name.
func (s *Store) DeviceByRef(ctx context.Context, ref string, now time.Time, down time.Duration) (Device, error) {
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		return s.DeviceByID(ctx, id, now, down)
	}
	return s.DeviceByName(ctx, ref, now, down)
}

// KeepStreamAlive asks for STREAM on the enclosure's heartbeats until until.
func (s *Store) KeepStreamAlive(ctx context.Context, id int64, until time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE devices SET stream_until = greatest(coalesce(stream_until, @until), @until) WHERE id = @id`,
		pgx.NamedArgs{"id": id, "until": until})
	return failed(err, "KeepStreamAlive device %d", id)
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
			Name       string  `db:"name"`
			SessionID  *int64  `db:"session_id"`
			WorkflowID *string `db:"workflow_id"`
		}
		found, err := pgx.CollectRows(rows, pgx.RowToStructByName[silent])
		if err != nil {
			return err
		}
		var queued []outboxEntry
		for _, f := range found {
			names = append(names, f.Name)
			if f.WorkflowID == nil {
				continue
			}
			ev := recording.Event{Kind: recording.EventSilent, At: now, SessionID: *f.SessionID}
			queued = append(queued, eventEntry(*f.WorkflowID, "", ev))
		}
		return enqueueOutbox(ctx, tx, queued...)
	})
	return names, failed(err, "MarkSilent cutoff %s", cutoff)
}

// SetDeviceToken sets (or, with a nil hash, removes) the enclosure's own token.
func (s *Store) SetDeviceToken(ctx context.Context, id int64, hash []byte) error {
	err := s.execOne(ctx, `UPDATE devices SET token_hash = @hash WHERE id = @id`, pgx.NamedArgs{"id": id, "hash": hash})
	return failed(err, "SetDeviceToken device %d", id)
}

// BoundAddressFor reads an administrator's bound address for d: an IP address, "registered"
// (the one it registered from) or "" (unbind: the zero Addr).
func (d Device) BoundAddressFor(raw string) (netip.Addr, error) {
	raw = strings.TrimSpace(raw)
	if raw == "registered" {
		if d.RegisteredFrom == nil {
			return netip.Addr{}, errors.New("the enclosure's registration address is not known; give an address")
		}
		raw = *d.RegisteredFrom
	}
	if raw == "" {
		return netip.Addr{}, nil
	}
	addr, err := netip.ParseAddr(raw)
	if err != nil {
		return netip.Addr{}, errors.New(`must be an IP address like 10.0.4.7, "registered" or "" (unbind)`)
	}
	return addr, nil
}

// DeviceSettings are an administrator's changes to an enclosure; nil fields stay.
type DeviceSettings struct {
	Relayed      *bool
	BoundAddress *netip.Addr // the zero Addr unbinds
}

// String is the change as the audit log's detail says it, e.g. "relayed=true bound_address=10.0.0.5".
func (set DeviceSettings) String() string {
	var parts []string
	if set.Relayed != nil {
		parts = append(parts, fmt.Sprintf("relayed=%v", *set.Relayed))
	}
	if set.BoundAddress != nil {
		parts = append(parts, "bound_address="+set.BoundAddress.String()) // "invalid IP": unbound
	}
	return strings.Join(parts, " ")
}

// UpdateDevice applies settings.
func (s *Store) UpdateDevice(ctx context.Context, id int64, set DeviceSettings) error {
	var bound *string
	if set.BoundAddress != nil {
		b := ""
		if set.BoundAddress.IsValid() {
			b = set.BoundAddress.Unmap().String()
		}
		bound = &b
	}
	err := s.execOne(ctx, `
		UPDATE devices SET relayed = coalesce(@relayed, relayed),
			bound_address = CASE WHEN @bound::text IS NULL THEN bound_address ELSE nullif(@bound, '')::inet END
		WHERE id = @id`, pgx.NamedArgs{"id": id, "relayed": set.Relayed, "bound": bound})
	return failed(err, "UpdateDevice %d", id)
}

// SetDeviceAdmission approves or rejects an enclosure. Approving a retired one brings it back
// into the fleet.
func (s *Store) SetDeviceAdmission(ctx context.Context, id int64, approve bool) error {
	if approve {
		err := s.execOne(ctx, `UPDATE devices SET admission = 'approved', retired_at = NULL WHERE id = @id`, pgx.NamedArgs{"id": id})
		return failed(err, "SetDeviceAdmission approve %d", id)
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := checkIdle(ctx, tx, id); err != nil {
			return err
		}
		return notFound(tx.QueryRow(ctx, `UPDATE devices SET admission = 'rejected' WHERE id = @id RETURNING id`,
			pgx.NamedArgs{"id": id}).Scan(&id))
	})
	return failed(err, "SetDeviceAdmission reject %d", id)
}

// ErrDeviceBusy: the enclosure is in a session that has not ended.
var ErrDeviceBusy = errors.New("the enclosure is in a session that has not ended; cancel it or remove the enclosure first")

// checkIdle locks the enclosure and refuses it while it has a session or a command pending.
func checkIdle(ctx context.Context, tx pgx.Tx, id int64) error {
	var busy bool
	err := tx.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM session_devices WHERE device_id = d.id AND status IN ('PENDING', 'RECORDING'))
		    OR EXISTS (SELECT 1 FROM device_assignments WHERE device_id = d.id)
		FROM devices d WHERE d.id = @id FOR UPDATE`, pgx.NamedArgs{"id": id}).Scan(&busy)
	if err != nil {
		return notFound(err)
	}
	if busy {
		return ErrDeviceBusy
	}
	return nil
}

// RetireDevice takes an idle enclosure out of the fleet. One that never recorded is deleted;
// one that did is kept as retired, so the sessions it recorded keep their history (and its
// name, when it heartbeats again, is refused until an administrator approves it). It reports
// whether the enclosure was deleted.
func (s *Store) RetireDevice(ctx context.Context, id int64, now time.Time) (deleted bool, err error) {
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if err := checkIdle(ctx, tx, id); err != nil {
			return err
		}
		var recorded bool
		if err := tx.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM session_devices WHERE device_id = @id)
			    OR EXISTS (SELECT 1 FROM session_events WHERE device_id = @id)
			    OR EXISTS (SELECT 1 FROM session_files WHERE device_id = @id)`, pgx.NamedArgs{"id": id}).Scan(&recorded); err != nil {
			return err
		}
		if recorded {
			_, err := tx.Exec(ctx, `UPDATE devices SET retired_at = coalesce(retired_at, @now), stream_until = NULL WHERE id = @id`,
				pgx.NamedArgs{"id": id, "now": now})
			return err
		}
		deleted = true
		amendAudit(ctx, func(e *AuditEntry) { e.Action = recording.AuditDeviceDelete })
		_, err := tx.Exec(ctx, `DELETE FROM devices WHERE id = @id`, pgx.NamedArgs{"id": id})
		return err
	})
	return deleted, failed(err, "RetireDevice %d", id)
}

// TelemetryPoint is one downsampled sample of an enclosure, for plots.
type TelemetryPoint struct {
	At          time.Time `db:"bucket"`
	Recording   bool      `db:"recording"`
	FPS         *float64  `db:"fps"`
	Load        *float64  `db:"load"`
	FreeRAM     *int64    `db:"free_ram"`
	FreeDisk    *int64    `db:"free_disk"`
	ClockSkewMS *int64    `db:"clock_skew_ms"`
	// MaxGapMS is the longest time between two heartbeats in the bucket (the latest bucket's
	// so far): silences and network trouble show as spikes.
	MaxGapMS *int64 `db:"max_gap_ms"`
}

// Telemetry returns an enclosure's downsampled history in [since, until), oldest first.
func (s *Store) Telemetry(ctx context.Context, id int64, since, until time.Time) ([]TelemetryPoint, error) {
	points, err := queryAll(ctx, s.pool, `
		SELECT t.bucket, t.recording, t.fps, t.load, t.free_ram, t.free_disk, t.clock_skew_ms,
			-- The newest bucket is still filling: its longest gap so far is on the enclosure's row.
			CASE WHEN t.bucket = (SELECT max(bucket) FROM device_telemetry WHERE device_id = @id)
				THEN greatest(t.max_gap_ms, d.bucket_max_gap_ms) ELSE t.max_gap_ms END AS max_gap_ms
		FROM device_telemetry t JOIN devices d ON d.id = t.device_id
		WHERE t.device_id = @id AND t.bucket >= @since AND t.bucket < @until ORDER BY t.bucket`,
		pgx.NamedArgs{"id": id, "since": since, "until": until}, pgx.RowToStructByName[TelemetryPoint])
	return points, failed(err, "Telemetry device %d", id)
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
	switch {
	case err != nil:
		return 0, failed(notFound(err), "AuthenticateEnclosure %s", name)
	case hash == nil:
		return 0, failed(ErrNoDeviceToken, "AuthenticateEnclosure %s", name)
	case !heartbeat.TokenMatches(token, hash):
		return 0, failed(ErrDeviceToken, "AuthenticateEnclosure %s", name)
	}
	return id, nil
}
