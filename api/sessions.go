package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/workflows"
)

// SessionConfig are the rules of new sessions, which the store runs (the worker's session
// activity gets the same), and who may stop a session.
type SessionConfig struct {
	recording.Rules
	// AnyoneMayStop lets every signed-in user cancel, remove enclosures from and archive any
	// session, as the original service did; otherwise only its creator or an administrator.
	AnyoneMayStop bool
}

// SessionStore is the storage of the session routes.
type SessionStore interface {
	CreateSession(ctx context.Context, ns recording.NewSession, rules recording.Rules, ids store.WorkflowIDs,
		now time.Time, down time.Duration) (store.CreatedSession, error)
	RequestStop(ctx context.Context, req store.StopRequest, workflowID string, now time.Time) (bool, error)
	ListSessions(ctx context.Context, archived bool, now time.Time, down time.Duration) ([]store.Session, error)
	Session(ctx context.Context, id int64, now time.Time, down time.Duration) (store.Session, error)
	SessionDevice(ctx context.Context, sessionID, deviceID int64, now time.Time, down time.Duration) (store.DeviceStatus, error)
	SessionEvents(ctx context.Context, id int64) ([]store.SessionEvent, error)
	SetArchived(ctx context.Context, id int64, archived bool) error
	// Changes of a running session (session_changes.go).
	AddSessionDevices(ctx context.Context, req store.AddDevices, rules recording.Rules, ids store.WorkflowIDs,
		now time.Time, down time.Duration, dryRun bool) ([]store.PlannedDevice, error)
	RetrySessionDevice(ctx context.Context, req store.RetryDevice, ids store.WorkflowIDs, now time.Time, down time.Duration,
		dryRun bool) (store.RetriedDevice, error)
	EditSession(ctx context.Context, id int64, e store.SessionEdit) error
}

// SessionWorkflows reaches the running session workflows, to ask them only (a query). Every
// change goes by one road, the outbox: creating a session queues start_session
// (CreateSession), a cancel or a removal cancel_session or remove_device (RequestStop), in the
// request's transaction. So the answer never waits for Temporal nor fails with it, and what the
// user was told is what the workflow is eventually asked.
type SessionWorkflows interface {
	Status(ctx context.Context, sessionID int64) (workflows.SessionState, error)
}

type deviceSpec struct {
	DeviceID       *int64       `json:"device_id"`
	FilenamePrefix string       `json:"filename_prefix"`
	Subject        *subjectBody `json:"subject"`
}

type newSessionRequest struct {
	Name           string       `json:"name"`
	Duration       int64        `json:"duration"`
	FragmentHourly bool         `json:"fragment_hourly"`
	TargetFPS      int          `json:"target_fps"`
	ApplyFilter    bool         `json:"apply_filter"`
	DeviceSpec     []deviceSpec `json:"device_spec"`
	// PrefixPattern makes the prefix of each enclosure that names none (recording.ExpandPrefix).
	PrefixPattern string `json:"prefix_pattern"`
	// The session's own timeouts, in seconds; 0 or absent: the server's setting.
	StartDeadline  int64 `json:"start_deadline"`
	SilenceTimeout int64 `json:"silence_timeout"`
	EndGrace       int64 `json:"end_grace"`
}

// empty: the request names nothing (a schedule that names a template instead).
func (req newSessionRequest) empty() bool {
	return req.Name == "" && req.Duration == 0 && !req.FragmentHourly && req.TargetFPS == 0 && !req.ApplyFilter &&
		len(req.DeviceSpec) == 0 && req.PrefixPattern == "" && req.StartDeadline == 0 && req.SilenceTimeout == 0 && req.EndGrace == 0
}

// check refuses what newSession cannot convert (a date of birth that is no date).
func (req newSessionRequest) check() error {
	errs := map[string]string{}
	for i, d := range req.DeviceSpec {
		if d.Subject != nil {
			d.Subject.check(fmt.Sprintf("device_spec[%d].subject.", i), errs)
		}
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	return nil
}

// newSession is the request as the rules of a new session take it.
func (req newSessionRequest) newSession(createdBy int64) recording.NewSession {
	ns := recording.NewSession{Name: req.Name, Duration: req.Duration, FragmentHourly: req.FragmentHourly,
		TargetFPS: req.TargetFPS, ApplyFilter: req.ApplyFilter, CreatedBy: createdBy, PrefixPattern: req.PrefixPattern,
		Timeouts: recording.Timeouts{StartDeadline: seconds(req.StartDeadline), SilenceTimeout: seconds(req.SilenceTimeout),
			EndGrace: seconds(req.EndGrace)}}
	for _, d := range req.DeviceSpec {
		nd := recording.NewSessionDevice{DeviceID: d.DeviceID, FilePrefix: d.FilenamePrefix}
		if d.Subject != nil {
			nd.Subject = d.Subject.subject()
		}
		ns.Devices = append(ns.Devices, nd)
	}
	return ns
}

// seconds is a request's count of seconds as a duration; a huge one saturates (and is refused).
func seconds(n int64) time.Duration {
	if n > int64(math.MaxInt64/time.Second) || n < int64(math.MinInt64/time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(n) * time.Second
}

// createSession decodes the request; the store validates, admits and writes it in one
// transaction (store.CreateSession), and its refusals are 400s naming the fields.
func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
	var req newSessionRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := req.check(); err != nil {
		return err
	}
	return s.writeNewSession(w, r, req.newSession(currentUser(r).ID), req.Name)
}

// idempotencyKey reads the optional Idempotency-Key header: the same user sending the same key
// gets the session the first request created (200, Idempotent-Replayed: true) instead of a
// second one; the same key with another body is a 422.
func idempotencyKey(r *http.Request) (string, error) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		return "", nil
	}
	if !validIdempotencyKey(key) {
		return "", &Error{Status: http.StatusBadRequest, Message: "Idempotency-Key header: " + idempotencyKeyRule,
			Fields: map[string]string{"Idempotency-Key": idempotencyKeyRule}}
	}
	return key, nil
}

const idempotencyKeyRule = "must be 1 to 100 characters of letters, digits and - _ . :"

func validIdempotencyKey(key string) bool {
	if len(key) > 100 {
		return false
	}
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:", c)) {
			return false
		}
	}
	return key != ""
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) error {
	archived, err := boolQuery(r, "archived")
	if err != nil {
		return err
	}
	search, err := sessionSearch(r)
	if err != nil {
		return err
	}
	var list []store.Session
	if search == (store.SessionSearch{}) {
		list, err = s.sessions.ListSessions(r.Context(), archived, s.now(), s.cfg.Enclosures.DownAfter)
	} else {
		list, err = s.subjects.SearchSessions(r.Context(), archived, search, s.now(), s.cfg.Enclosures.DownAfter)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, views(list, sessionView))
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
	v := sessionView(x)
	if err := s.addFiles(r, &v); err != nil {
		return err
	}
	if err := s.addSubjects(r, &v); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// addFiles lists each enclosure's files, with download links for the user and a summary
// that makes an expected-but-missing file impossible to overlook.
func (s *Server) addFiles(r *http.Request, x *SessionView) error {
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
		files := byDevice[d.Device.ID]
		d.Files = views(files, fileView)
		if d.Files == nil {
			d.Files = []FileView{}
		}
		s.fileLinks(me, x.ID, d.Device.Name, d.Files)
		summary := FilesSummaryView(store.Summarize(files))
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
		ctx := s.audited(r, me.ID, recording.AuditSessionCancel, strconv.FormatInt(x.ID, 10), "")
		if _, err := s.sessions.RequestStop(ctx, req, workflows.SessionWorkflowID(x.ID), s.now()); err != nil {
			return err
		}
	}
	if archive {
		if err := s.sessions.SetArchived(s.audited(r, me.ID, recording.AuditSessionArchive, strconv.FormatInt(x.ID, 10), ""), x.ID, true); err != nil {
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
	ctx := s.audited(r, currentUser(r).ID, recording.AuditSessionUnarchive, strconv.FormatInt(x.ID, 10), "")
	if err := s.sessions.SetArchived(ctx, x.ID, false); err != nil {
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
	writeJSON(w, http.StatusOK, sessionDeviceView(d))
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
		ctx := s.audited(r, me.ID, recording.AuditSessionRemoveDevice, fmt.Sprintf("%d/%s", d.SessionID, d.Device.Name), "")
		if _, err := s.sessions.RequestStop(ctx, req, workflows.SessionWorkflowID(d.SessionID), s.now()); err != nil {
			return err
		}
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
	writeJSON(w, http.StatusOK, views(events, sessionEventView))
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
