package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/protocol"
)

// EnclosureConfig are the heartbeat path's settings.
type EnclosureConfig struct {
	AutoRegister     bool          // register unknown names on first sight
	DownAfter        time.Duration // silence after which an enclosure is DOWN (server clock)
	StreamKeepAlive  time.Duration // how long one viewer request keeps STREAM going
	TelemetryBucket  time.Duration // downsampling of the telemetry history
	ClockSkewWarning time.Duration // device clock offsets past this are flagged
	// StreamURL is the RTMP base the enclosures' clients publish live video to (their own
	// setting); a stream is at <StreamURL>/<lowercase name>. Empty: not known here.
	StreamURL string
	// AllowedNetworks are where heartbeats without a token may come from (PROTOCOL.md
	// section 8); none: only heartbeats with an enclosure's token are accepted.
	AllowedNetworks []netip.Prefix
	ApproveNew      bool // new names wait for an administrator's approval
	BindOnRegister  bool // a new name is bound to the address it first spoke from
	RegisterRate    Rate // new names registered on first sight, for the whole service; zero = no limit
}

// EnclosureStore is the storage of the enclosure routes.
type EnclosureStore interface {
	Heartbeat(ctx context.Context, hb protocol.Heartbeat, token string, now time.Time, opts store.HeartbeatOptions) (protocol.Reply, error)
	ListDevices(ctx context.Context, now time.Time, down time.Duration, retired bool) ([]store.Device, error)
	DeviceByID(ctx context.Context, id int64, now time.Time, down time.Duration) (store.Device, error)
	DeviceByRef(ctx context.Context, ref string, now time.Time, down time.Duration) (store.Device, error)
	KeepStreamAlive(ctx context.Context, id int64, until time.Time) error
	SetDeviceToken(ctx context.Context, id int64, hash []byte) error
	UpdateDevice(ctx context.Context, id int64, set store.DeviceSettings) error
	SetDeviceAdmission(ctx context.Context, id int64, approve bool) error
	RetireDevice(ctx context.Context, id int64, now time.Time) (deleted bool, err error)
	Telemetry(ctx context.Context, id int64, since, until time.Time) ([]store.TelemetryPoint, error)
}

// heartbeat serves POST /api/device/heartbeat: one Postgres transaction, never a Temporal call.
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	hb, err := protocol.ParseHeartbeat(body)
	var fe *protocol.FieldErrors
	if errors.As(err, &fe) {
		e := invalid(fe.Errors)
		e.Message = "invalid heartbeat: " + e.Message
		return e
	}
	if err != nil {
		return err
	}
	from, _ := netip.ParseAddr(s.clientIP(r))
	from = from.Unmap()
	token := bearer(r)
	if token == "" && !s.allowedNetwork(from) {
		s.metrics.refused("network")
		return errorf(http.StatusForbidden, "heartbeats without an enclosure token are accepted only from the lab's networks (enclosures allowed-networks); %s is not in them", from)
	}
	opts := store.HeartbeatOptions{AutoRegister: s.cfg.Enclosures.AutoRegister, TelemetryBucket: s.cfg.Enclosures.TelemetryBucket,
		ApproveNew: s.cfg.Enclosures.ApproveNew, BindOnRegister: s.cfg.Enclosures.BindOnRegister, From: from}
	if s.registrations != nil {
		opts.Register = func() bool { return s.registrations.wait("") == 0 }
	}
	// Well inside the client's 30 s timeout: a database that does not answer gets a 503.
	ctx, cancel := context.WithTimeout(r.Context(), heartbeatTimeout)
	defer cancel()
	reply, err := s.enclosures.Heartbeat(ctx, hb, token, s.now(), opts)
	if err != nil {
		return s.heartbeatRefused(hb.Name, from, err)
	}
	s.metrics.heartbeat(string(reply.Command))
	if reply.Command == "" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	out, err := protocol.EncodeReply(reply)
	if err != nil {
		return err // never a half-formed command: the client would crash on it
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(out)
	return err
}

// heartbeatTimeout bounds a heartbeat's database work.
const heartbeatTimeout = 10 * time.Second

// heartbeatRefused turns the heartbeat path's errors into what the enclosure is told, and
// counts each refusal by reason (mba_heartbeats_refused_total).
func (s *Server) heartbeatRefused(name string, from netip.Addr, err error) error {
	reason, e := "", error(nil)
	switch {
	case errors.Is(err, store.ErrUnknownDevice):
		reason, e = "unknown", errorf(http.StatusForbidden, "unknown enclosure %q: registration on first sight is off; an administrator must add it", name)
	case errors.Is(err, store.ErrRegistrationLimited):
		reason, e = "registration_limit", &Error{Status: http.StatusTooManyRequests, RetryAfter: time.Minute,
			Message: fmt.Sprintf("enclosure %q is not registered: too many new enclosure names lately (enclosures register-rate); try again later", name)}
	case errors.Is(err, store.ErrDeviceToken):
		reason, e = "token", errorf(http.StatusUnauthorized, "enclosure %q: wrong or unknown enclosure token (Authorization: Bearer)", name)
	case errors.Is(err, store.ErrDeviceRelayed):
		reason, e = "relayed", errorf(http.StatusUnauthorized, "enclosure %q is relayed: its heartbeats must come through its relay (mba agent) with its token", name)
	case errors.Is(err, store.ErrDeviceAddress):
		// Recorded in the audit log (once a minute) and the metric, not a log line per heartbeat.
		reason, e = "address", errorf(http.StatusForbidden, "enclosure %q is bound to another address: heartbeats for it from %s are refused (recorded in the audit log)", name, from)
	case errors.Is(err, store.ErrDeviceRetired):
		reason, e = "retired", errorf(http.StatusForbidden, "enclosure %q is retired; an administrator can approve it to bring it back", name)
	case errors.Is(err, store.ErrDeviceRejected):
		reason, e = "rejected", errorf(http.StatusForbidden, "enclosure %q was rejected by an administrator", name)
	case store.Unavailable(err), errors.Is(err, context.DeadlineExceeded):
		reason = "unavailable"
		e = &Error{Status: http.StatusServiceUnavailable, RetryAfter: 10 * time.Second,
			Message: "the service's database is unavailable; heartbeats are answered again once it is back"}
		s.unavailableLog.warn(s.log, "heartbeats refused: the database is unavailable", err)
	default:
		return err
	}
	s.metrics.refused(reason)
	return e
}

// allowedNetwork reports whether a tokenless heartbeat may come from addr.
func (s *Server) allowedNetwork(addr netip.Addr) bool {
	for _, p := range s.cfg.Enclosures.AllowedNetworks {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// everyLog logs one line per period at most, with how many it held back, so an outage that
// refuses every heartbeat does not write a line per heartbeat.
type everyLog struct {
	period time.Duration
	mu     sync.Mutex
	last   time.Time
	held   int
}

func (l *everyLog) warn(log *slog.Logger, msg string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := time.Now(); now.Sub(l.last) >= l.period {
		log.Warn(msg, "error", err.Error(), "suppressed", l.held, "every", l.period.String())
		l.last, l.held = now, 0
		return
	}
	l.held++
}

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) error {
	devices, err := s.enclosures.ListDevices(r.Context(), s.now(), s.cfg.Enclosures.DownAfter, r.URL.Query().Get("retired") == "true")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, views(devices, s.deviceView))
	return nil
}

// deviceParam finds the {device} of the path: an integer id, or else a name.
func (s *Server) deviceParam(r *http.Request) (store.Device, error) {
	raw := chi.URLParam(r, "device")
	d, err := s.enclosures.DeviceByRef(r.Context(), raw, s.now(), s.cfg.Enclosures.DownAfter)
	if errors.Is(err, store.ErrNotFound) {
		return d, errorf(http.StatusNotFound, "Device %s Not Found", raw)
	}
	return d, err
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := s.deviceParam(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.deviceView(d))
	return nil
}

// streamDevice keeps the enclosure's live stream going for the keep-alive window: STREAM goes
// out on its heartbeats while viewers keep calling.
func (s *Server) streamDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := s.deviceParam(r)
	if err != nil {
		return err
	}
	if !d.SensorStatus.Camera.Recording || d.State == recording.EnclosureDown {
		return errorf(http.StatusServiceUnavailable, "device %s is not recording; live video is only available while it records", d.Name)
	}
	until := s.now().Add(s.cfg.Enclosures.StreamKeepAlive)
	if err := s.enclosures.KeepStreamAlive(r.Context(), d.ID, until); err != nil {
		return err
	}
	// The client publishes to <rtmp base>/<lowercase hostname> (PROTOCOL.md section 4).
	name := strings.ToLower(d.Name)
	streamURL := ""
	if base := strings.TrimRight(s.cfg.Enclosures.StreamURL, "/"); base != "" {
		streamURL = base + "/" + name
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": d.Name, "streaming_until": until, "stream_name": name, "stream_url": streamURL})
	return nil
}

// setDeviceToken gives the enclosure a token of its own, shown once. From then on its
// heartbeats must carry it (the upload agent sends it; the unmodified client sends none, so
// only set one for enclosures whose heartbeats come through something that adds it).
func (s *Server) setDeviceToken(w http.ResponseWriter, r *http.Request) error {
	d, err := s.deviceParam(r)
	if err != nil {
		return err
	}
	token, hash := auth.NewLinkToken()
	if err := s.enclosures.SetDeviceToken(s.audited(r, currentUser(r).ID, recording.AuditDeviceTokenSet, d.Name, ""), d.ID, hash); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"device": d.Name, "token": token})
	return nil
}

func (s *Server) deleteDeviceToken(w http.ResponseWriter, r *http.Request) error {
	d, err := s.deviceParam(r)
	if err != nil {
		return err
	}
	if err := s.enclosures.SetDeviceToken(s.audited(r, currentUser(r).ID, recording.AuditDeviceTokenDelete, d.Name, ""), d.ID, nil); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deviceTelemetry returns the downsampled history for plots: ?since= and ?until= (RFC 3339),
// by default the last 7 days, at most 92 days at once.
func (s *Server) deviceTelemetry(w http.ResponseWriter, r *http.Request) error {
	d, err := s.deviceParam(r)
	if err != nil {
		return err
	}
	until, since := s.now(), s.now().Add(-7*24*time.Hour)
	errs := map[string]string{}
	for name, dst := range map[string]*time.Time{"since": &since, "until": &until} {
		if raw := r.URL.Query().Get(name); raw != "" {
			t, err := time.Parse(time.RFC3339, raw)
			if err != nil {
				errs[name] = "must be an RFC 3339 time like 2026-01-02T15:04:05Z"
				continue
			}
			*dst = t
		}
	}
	if len(errs) == 0 && (!since.Before(until) || until.Sub(since) > 92*24*time.Hour) {
		errs["since"] = "must be before until, at most 92 days earlier"
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	points, err := s.enclosures.Telemetry(r.Context(), d.ID, since, until)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"device": d.Name, "since": since, "until": until, "points": views(points, telemetryPointView)})
	return nil
}

// updateDevice changes how an enclosure is admitted: {"relayed": bool} (its heartbeats must
// carry its token, i.e. come through its relay) and {"bound_address": "10.0.4.7"} (tokenless
// heartbeats for it only from there; "registered" = the address it registered from; "" unbinds).
func (s *Server) updateDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := s.deviceParam(r)
	if err != nil {
		return err
	}
	var req struct {
		Relayed      *bool   `json:"relayed"`
		BoundAddress *string `json:"bound_address"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	set := store.DeviceSettings{Relayed: req.Relayed}
	if b := req.BoundAddress; b != nil {
		addr, err := d.BoundAddressFor(*b)
		if err != nil {
			return invalid(map[string]string{"bound_address": err.Error()})
		}
		set.BoundAddress = &addr
	}
	if set.Relayed != nil && *set.Relayed && !d.HasToken {
		return invalid(map[string]string{"relayed": "give the enclosure a token first (PUT /api/device/{device}/token): its relay sends it"})
	}
	if err := s.enclosures.UpdateDevice(s.audited(r, currentUser(r).ID, recording.AuditDeviceUpdate, d.Name, set.String()), d.ID, set); err != nil {
		return err
	}
	return s.writeDevice(w, r, d.ID)
}

// approveDevice admits a pending (or rejected, or retired) enclosure into the fleet.
func (s *Server) approveDevice(w http.ResponseWriter, r *http.Request) error {
	return s.setAdmission(w, r, true)
}

// rejectDevice refuses an enclosure's heartbeats from now on (403).
func (s *Server) rejectDevice(w http.ResponseWriter, r *http.Request) error {
	return s.setAdmission(w, r, false)
}

func (s *Server) setAdmission(w http.ResponseWriter, r *http.Request, approve bool) error {
	d, err := s.deviceParam(r)
	if err != nil {
		return err
	}
	action := recording.AuditDeviceReject
	if approve {
		action = recording.AuditDeviceApprove
	}
	if err := s.enclosures.SetDeviceAdmission(s.audited(r, currentUser(r).ID, action, d.Name, ""), d.ID, approve); err != nil {
		return err
	}
	return s.writeDevice(w, r, d.ID)
}

// retireDevice takes an enclosure out of the fleet (204): deleted if it never recorded, else
// kept as retired with its sessions' history. 409 while it is in a session.
func (s *Server) retireDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := s.deviceParam(r)
	if err != nil {
		return err
	}
	// The store says which it was (retired or deleted) on the audit row it writes.
	if _, err := s.enclosures.RetireDevice(s.audited(r, currentUser(r).ID, recording.AuditDeviceRetire, d.Name, ""), d.ID, s.now()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) writeDevice(w http.ResponseWriter, r *http.Request, id int64) error {
	d, err := s.enclosures.DeviceByID(r.Context(), id, s.now(), s.cfg.Enclosures.DownAfter)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.deviceView(d))
	return nil
}
