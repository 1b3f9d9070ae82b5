package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/jax-mba/mba/internal/auth"
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
}

// EnclosureStore is the storage of the enclosure routes.
type EnclosureStore interface {
	Heartbeat(ctx context.Context, hb protocol.Heartbeat, token string, now time.Time, opts store.HeartbeatOptions) (protocol.Reply, error)
	ListDevices(ctx context.Context, now time.Time, down time.Duration) ([]store.Device, error)
	DeviceByID(ctx context.Context, id int64, now time.Time, down time.Duration) (store.Device, error)
	DeviceByName(ctx context.Context, name string, now time.Time, down time.Duration) (store.Device, error)
	DevicesByIDs(ctx context.Context, ids []int64, now time.Time, down time.Duration) ([]store.Device, error)
	KeepStreamAlive(ctx context.Context, id int64, until time.Time) error
	SetDeviceToken(ctx context.Context, id int64, hash []byte) error
	Telemetry(ctx context.Context, id int64, since, until time.Time) ([]store.TelemetryPoint, error)
}

// deviceView is a device as the API returns it: the stored device plus what the API flags.
type deviceView struct {
	store.Device
	ClockSkewFlagged bool `json:"clock_skew_flagged"`
}

func (s *Server) view(d store.Device) deviceView {
	v := deviceView{Device: d}
	if d.ClockSkewMS != nil {
		skew := time.Duration(*d.ClockSkewMS) * time.Millisecond
		v.ClockSkewFlagged = skew > s.cfg.Enclosures.ClockSkewWarning || -skew > s.cfg.Enclosures.ClockSkewWarning
	}
	return v
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
	now := s.now()
	reply, err := s.enclosures.Heartbeat(r.Context(), hb, bearer(r), now, store.HeartbeatOptions{
		AutoRegister: s.cfg.Enclosures.AutoRegister, TelemetryBucket: s.cfg.Enclosures.TelemetryBucket})
	switch {
	case errors.Is(err, store.ErrUnknownDevice):
		return errorf(http.StatusForbidden, "unknown enclosure %q: registration on first sight is off; an administrator must add it", hb.Name)
	case errors.Is(err, store.ErrDeviceToken):
		return errorf(http.StatusUnauthorized, "enclosure %q needs its token (Authorization: Bearer)", hb.Name)
	case err != nil:
		return err
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

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) error {
	devices, err := s.enclosures.ListDevices(r.Context(), s.now(), s.cfg.Enclosures.DownAfter)
	if err != nil {
		return err
	}
	views := make([]deviceView, len(devices))
	for i, d := range devices {
		views[i] = s.view(d)
	}
	writeJSON(w, http.StatusOK, views)
	return nil
}

// deviceParam finds the {device} of the path: an integer id, or else a name.
func (s *Server) deviceParam(r *http.Request) (store.Device, error) {
	raw := chi.URLParam(r, "device")
	var d store.Device
	var err error
	if id, convErr := strconv.ParseInt(raw, 10, 64); convErr == nil {
		d, err = s.enclosures.DeviceByID(r.Context(), id, s.now(), s.cfg.Enclosures.DownAfter)
	} else {
		d, err = s.enclosures.DeviceByName(r.Context(), raw, s.now(), s.cfg.Enclosures.DownAfter)
	}
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
	writeJSON(w, http.StatusOK, s.view(d))
	return nil
}

// streamDevice keeps the enclosure's live stream going for the keep-alive window: STREAM goes
// out on its heartbeats while viewers keep calling.
func (s *Server) streamDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := s.deviceParam(r)
	if err != nil {
		return err
	}
	if !d.SensorStatus.Camera.Recording || d.State == store.DeviceDown {
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
	if err := s.enclosures.SetDeviceToken(r.Context(), d.ID, hash); err != nil {
		return err
	}
	s.audit(r, currentUser(r).ID, "device.token.set", d.Name)
	writeJSON(w, http.StatusOK, map[string]string{"device": d.Name, "token": token})
	return nil
}

func (s *Server) deleteDeviceToken(w http.ResponseWriter, r *http.Request) error {
	d, err := s.deviceParam(r)
	if err != nil {
		return err
	}
	if err := s.enclosures.SetDeviceToken(r.Context(), d.ID, nil); err != nil {
		return err
	}
	s.audit(r, currentUser(r).ID, "device.token.delete", d.Name)
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
	writeJSON(w, http.StatusOK, map[string]any{"device": d.Name, "since": since, "until": until, "points": points})
	return nil
}
