package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/workflows"
)

// SessionConfig are the admission rules of new sessions.
type SessionConfig struct {
	MaxEnclosures  int           // per session, well below Temporal's 2 000 pending children
	MinFPS, MaxFPS int           // accepted target frame rates
	MaxDuration    time.Duration // longest session
	BytesPerSecond int64         // video an enclosure writes per second, for the disk projection
	RejectLowDisk  bool          // refuse (instead of warn about) enclosures without the disk space
	// AnyoneMayStop lets every signed-in user cancel, remove enclosures from and archive any
	// session, as the original service did; otherwise only its creator or an administrator.
	AnyoneMayStop bool
}

// SessionStore is the storage of the session routes.
type SessionStore interface {
	CreateSession(ctx context.Context, ns store.NewSession, ids store.WorkflowIDs) (int64, error)
	RequestStop(ctx context.Context, req store.StopRequest, workflowID string, now time.Time) (bool, error)
	ListSessions(ctx context.Context, archived bool, now time.Time, down time.Duration) ([]store.Session, error)
	Session(ctx context.Context, id int64, now time.Time, down time.Duration) (store.Session, error)
	SessionDevice(ctx context.Context, sessionID, deviceID int64, now time.Time, down time.Duration) (store.DeviceStatus, error)
	SessionEvents(ctx context.Context, id int64) ([]store.SessionEvent, error)
	SetArchived(ctx context.Context, id int64, archived bool) error
}

// SessionWorkflows reaches the running session workflows (cancel and removal go through the
// outbox: RequestStop).
type SessionWorkflows interface {
	Status(ctx context.Context, sessionID int64) (workflows.SessionState, error)
}

// maxPrefix leaves room for the segment suffix a resume adds ("_s12") within the protocol's
// 100-byte limit.
const maxPrefix = 90

type deviceSpec struct {
	DeviceID       *int64 `json:"device_id"`
	FilenamePrefix string `json:"filename_prefix"`
}

type newSessionRequest struct {
	Name           string       `json:"name"`
	Duration       int64        `json:"duration"`
	FragmentHourly bool         `json:"fragment_hourly"`
	TargetFPS      int          `json:"target_fps"`
	ApplyFilter    bool         `json:"apply_filter"`
	DeviceSpec     []deviceSpec `json:"device_spec"`
}

// sessionView is a session as the API returns it, with admission warnings on creation.
type sessionView struct {
	store.Session
	Warnings []string `json:"warnings,omitempty"`
}

// validate checks everything that needs no database, naming each bad field.
func (s *Server) validate(req newSessionRequest) map[string]string {
	errs := map[string]string{}
	cfg := s.cfg.Sessions
	if n := utf8.RuneCountInString(strings.TrimSpace(req.Name)); n == 0 || n > 200 {
		errs["name"] = "is required, at most 200 characters"
	}
	if req.Duration < 1 {
		errs["duration"] = "must be at least 1 second"
	} else if req.Duration > int64(cfg.MaxDuration/time.Second) { // compared in seconds: a huge value must not wrap
		errs["duration"] = fmt.Sprintf("must be at most %d seconds (%s)", int64(cfg.MaxDuration/time.Second), cfg.MaxDuration)
	}
	if req.TargetFPS < cfg.MinFPS || req.TargetFPS > cfg.MaxFPS {
		errs["target_fps"] = fmt.Sprintf("must be between %d and %d", cfg.MinFPS, cfg.MaxFPS)
	}
	switch {
	case len(req.DeviceSpec) == 0:
		errs["device_spec"] = "must list at least one enclosure"
	case len(req.DeviceSpec) > cfg.MaxEnclosures:
		errs["device_spec"] = fmt.Sprintf("at most %d enclosures per session", cfg.MaxEnclosures)
	}
	seen := map[int64]bool{}
	for i, d := range req.DeviceSpec {
		field := fmt.Sprintf("device_spec[%d]", i)
		switch {
		case d.DeviceID == nil:
			errs[field+".device_id"] = "is required"
		case seen[*d.DeviceID]:
			errs[field+".device_id"] = fmt.Sprintf("device %d is listed twice", *d.DeviceID)
		default:
			seen[*d.DeviceID] = true
		}
		if reason := recording.ValidFilePrefix(d.FilenamePrefix); reason != "" {
			errs[field+".filename_prefix"] = reason
		} else if len(d.FilenamePrefix) > maxPrefix {
			errs[field+".filename_prefix"] = fmt.Sprintf("must be at most %d characters (room for a resume suffix)", maxPrefix)
		}
	}
	return errs
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
	var req newSessionRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if errs := s.validate(req); len(errs) > 0 {
		return invalid(errs)
	}
	ids := make([]int64, len(req.DeviceSpec))
	for i, d := range req.DeviceSpec {
		ids[i] = *d.DeviceID
	}
	now := s.now()
	devices, err := s.enclosures.DevicesByIDs(r.Context(), ids, now, s.cfg.Enclosures.DownAfter)
	if err != nil {
		return err
	}
	byID := map[int64]store.Device{}
	for _, d := range devices {
		byID[d.ID] = d
	}
	var unknown []string
	for _, id := range ids {
		if _, ok := byID[id]; !ok {
			unknown = append(unknown, strconv.FormatInt(id, 10))
		}
	}
	if len(unknown) > 0 {
		return &Error{Status: http.StatusBadRequest, Message: "Invalid device IDs: [" + strings.Join(unknown, ", ") + "]",
			Fields: map[string]string{"device_spec": "unknown device ids: " + strings.Join(unknown, ", ")}}
	}
	if bad := unusableDevices(byID); len(bad) > 0 {
		names := slices.Sorted(maps.Keys(bad))
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = n + " (" + bad[n] + ")"
		}
		msg := "enclosures that cannot record: " + strings.Join(parts, ", ")
		return &Error{Status: http.StatusBadRequest, Message: msg, Fields: map[string]string{"device_spec": msg}}
	}

	warnings, diskErrs := s.admission(req, byID)
	if len(diskErrs) > 0 {
		return invalid(diskErrs)
	}
	ns := store.NewSession{Name: strings.TrimSpace(req.Name), Duration: req.Duration, FragmentHourly: req.FragmentHourly,
		TargetFPS: req.TargetFPS, ApplyFilter: req.ApplyFilter, CreatedBy: currentUser(r).ID}
	for _, d := range req.DeviceSpec {
		ns.Devices = append(ns.Devices, store.NewSessionDevice{DeviceID: *d.DeviceID, FilePrefix: d.FilenamePrefix})
	}
	id, err := s.sessions.CreateSession(r.Context(), ns, store.WorkflowIDs{Session: workflows.SessionWorkflowID, Device: workflows.DeviceWorkflowID})
	if err != nil {
		return err
	}
	session, err := s.sessions.Session(r.Context(), id, now, s.cfg.Enclosures.DownAfter)
	if err != nil {
		return err
	}
	s.audit(r, currentUser(r).ID, "session.create", strconv.FormatInt(id, 10))
	writeJSON(w, http.StatusOK, sessionView{Session: session, Warnings: warnings})
	return nil
}

// admission reports enclosures that are busy, silent, or short of disk for the whole
// recording: warnings, or field errors when low disk is configured to refuse.
func (s *Server) admission(req newSessionRequest, byID map[int64]store.Device) (warnings []string, errs map[string]string) {
	errs = map[string]string{}
	needMB := req.Duration * s.cfg.Sessions.BytesPerSecond / 1_000_000
	for i, spec := range req.DeviceSpec {
		d := byID[*spec.DeviceID]
		switch d.State {
		case recording.EnclosureBusy:
			warnings = append(warnings, fmt.Sprintf("%s is busy in session %d: it is listed FAILED", d.Name, *d.SessionID))
		case recording.EnclosureDown:
			warnings = append(warnings, fmt.Sprintf("%s is DOWN: it starts recording when it returns", d.Name))
		}
		free := d.SystemInfo.FreeDisk
		if free == nil || *free >= needMB {
			continue
		}
		msg := fmt.Sprintf("%s needs about %d MB for %d s of video but reports %d MB free", d.Name, needMB, req.Duration, *free)
		if s.cfg.Sessions.RejectLowDisk {
			errs[fmt.Sprintf("device_spec[%d].device_id", i)] = msg
		} else {
			warnings = append(warnings, msg)
		}
	}
	return warnings, errs
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) error {
	archived, err := boolQuery(r, "archived")
	if err != nil {
		return err
	}
	list, err := s.sessions.ListSessions(r.Context(), archived, s.now(), s.cfg.Enclosures.DownAfter)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// boolQuery reads an optional true/false query parameter (false when absent).
func boolQuery(r *http.Request, name string) (bool, error) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		return false, nil
	}
	v, err := strconv.ParseBool(raw)
	if err != nil {
		return false, invalid(map[string]string{name: "must be true or false"})
	}
	return v, nil
}

func idParam(r *http.Request, name, what string) (int64, error) {
	raw := chi.URLParam(r, name)
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, errorf(http.StatusNotFound, "%s %s Not Found", what, raw)
	}
	return id, nil
}

// mayStop refuses a user who may not cancel, change or archive session x (403).
func (s *Server) mayStop(r *http.Request, x store.Session) error {
	me := currentUser(r)
	// Creators are joined by e-mail, unique regardless of case.
	if s.cfg.Sessions.AnyoneMayStop || me.Admin || (x.CreatedBy != nil && strings.EqualFold(*x.CreatedBy, me.Email)) {
		return nil
	}
	return errorf(http.StatusForbidden, "only the session's creator or an administrator may cancel, change or archive recording session %d", x.ID)
}

// sessionParam loads the {sid} session or a 404 naming it.
func (s *Server) sessionParam(r *http.Request) (store.Session, error) {
	id, err := idParam(r, "sid", "Recording session")
	if err != nil {
		return store.Session{}, err
	}
	x, err := s.sessions.Session(r.Context(), id, s.now(), s.cfg.Enclosures.DownAfter)
	if errors.Is(err, store.ErrNotFound) {
		return x, errorf(http.StatusNotFound, "Recording session %d Not Found", id)
	}
	return x, err
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) error {
	x, err := s.sessionParam(r)
	if err != nil {
		return err
	}
	if err := s.addFiles(r, &x); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, x)
	return nil
}

// addFiles lists each enclosure's files, with download links for the user and a summary
// that makes an expected-but-missing file impossible to overlook.
func (s *Server) addFiles(r *http.Request, x *store.Session) error {
	if s.files == nil {
		return nil
	}
	files, err := s.files.SessionFiles(r.Context(), x.ID)
	if err != nil {
		return err
	}
	byDevice := map[int64][]store.SessionFile{}
	for _, f := range files {
		byDevice[f.DeviceID] = append(byDevice[f.DeviceID], f)
	}
	me := currentUser(r)
	for i := range x.DeviceStatuses {
		d := &x.DeviceStatuses[i]
		d.Files = byDevice[d.Device.ID]
		if d.Files == nil {
			d.Files = []store.SessionFile{}
		}
		s.fileLinks(me, x.ID, d.Device.Name, d.Files)
		summary := store.Summarize(d.Files)
		d.FilesSummary = &summary
	}
	return nil
}

// deleteSession cancels what still runs and, with archive=true, archives the session. A
// finished session keeps its status.
func (s *Server) deleteSession(w http.ResponseWriter, r *http.Request) error {
	x, err := s.sessionParam(r)
	if err != nil {
		return err
	}
	archive, err := boolQuery(r, "archive")
	if err != nil {
		return err
	}
	if err := s.mayStop(r, x); err != nil {
		return err
	}
	me := currentUser(r)
	if x.Status == recording.SessionInProgress {
		// CANCELED at once, in the request's own transaction; the workflow learns of it through
		// the outbox, so Temporal being down neither delays nor fails the answer.
		req := store.StopRequest{SessionID: x.ID, UserID: me.ID, Reason: "session canceled by " + me.Email}
		if _, err := s.sessions.RequestStop(r.Context(), req, workflows.SessionWorkflowID(x.ID), s.now()); err != nil {
			return err
		}
		s.audit(r, me.ID, "session.cancel", strconv.FormatInt(x.ID, 10))
	}
	if archive {
		if err := s.sessions.SetArchived(r.Context(), x.ID, true); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) unarchiveSession(w http.ResponseWriter, r *http.Request) error {
	x, err := s.sessionParam(r)
	if err != nil {
		return err
	}
	if err := s.mayStop(r, x); err != nil {
		return err
	}
	if err := s.sessions.SetArchived(r.Context(), x.ID, false); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// sessionDevice loads {did} of the {sid} session, or a 404 naming what is missing; with
// toStop, a user who may not change the session gets a 403.
func (s *Server) sessionDevice(r *http.Request, toStop bool) (store.DeviceStatus, error) {
	x, err := s.sessionParam(r)
	if err != nil {
		return store.DeviceStatus{}, err
	}
	if toStop {
		if err := s.mayStop(r, x); err != nil {
			return store.DeviceStatus{}, err
		}
	}
	did, err := idParam(r, "did", "Device")
	if err != nil {
		return store.DeviceStatus{}, err
	}
	i := slices.IndexFunc(x.DeviceStatuses, func(d store.DeviceStatus) bool { return d.Device.ID == did })
	if i < 0 {
		return store.DeviceStatus{}, errorf(http.StatusNotFound, "Device %d is not in recording session %d", did, x.ID)
	}
	return x.DeviceStatuses[i], nil
}

func (s *Server) getSessionDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := s.sessionDevice(r, false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// removeSessionDevice stops one enclosure if it is pending or recording.
func (s *Server) removeSessionDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := s.sessionDevice(r, true)
	if err != nil {
		return err
	}
	if d.Status == recording.DevicePending || d.Status == recording.DeviceRecording {
		me := currentUser(r)
		req := store.StopRequest{SessionID: d.SessionID, DeviceID: d.Device.ID, UserID: me.ID,
			Reason: "removed from the session by " + me.Email}
		if _, err := s.sessions.RequestStop(r.Context(), req, workflows.SessionWorkflowID(d.SessionID), s.now()); err != nil {
			return err
		}
		s.audit(r, me.ID, "session.remove_device", fmt.Sprintf("%d/%s", d.SessionID, d.Device.Name))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) sessionEvents(w http.ResponseWriter, r *http.Request) error {
	x, err := s.sessionParam(r)
	if err != nil {
		return err
	}
	events, err := s.sessions.SessionEvents(r.Context(), x.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, events)
	return nil
}

// sessionLive asks the running workflow for its live state (a Temporal query).
func (s *Server) sessionLive(w http.ResponseWriter, r *http.Request) error {
	x, err := s.sessionParam(r)
	if err != nil {
		return err
	}
	st, err := s.workflows.Status(r.Context(), x.ID)
	if err != nil {
		return &Error{Status: http.StatusServiceUnavailable, Message: "the session's workflow did not answer; try again", RetryAfter: time.Second}
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
