package api

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/workflows"
)

// Changes of a running session. The store checks what needs the database first, as a dry run
// (busy, unknown, unusable enclosures: 400 or 409); then the session's workflow runs the change
// as a Temporal Update, whose validator refuses what its state does not allow (409, nothing in
// the history); an accepted change writes its timeline entry and audit row in the read model.

// SessionChanges reaches a running session's workflow for its changes (dispatch.Sessions).
type SessionChanges interface {
	AddDevices(ctx context.Context, sessionID int64, req workflows.AddDevicesRequest) (workflows.SessionState, error)
	RetryDevice(ctx context.Context, sessionID int64, req workflows.RetryRequest) (workflows.SessionState, error)
	SetDuration(ctx context.Context, sessionID int64, req workflows.DurationRequest) (workflows.SessionState, error)
}

// sessionWorkflowIDs name the workflows in the mailboxes the store writes.
var sessionWorkflowIDs = store.WorkflowIDs{Session: workflows.SessionWorkflowID, Device: workflows.DeviceWorkflowID,
	Retry: workflows.RetryWorkflowID}

// changeableSession loads the {sid} session for a change by its user: 404, 403, or 409 when
// it no longer runs.
func (s *Server) changeableSession(r *http.Request) (store.Session, error) {
	x, err := s.sessionParam(r)
	if err != nil {
		return x, err
	}
	if err := s.mayStop(r, x); err != nil {
		return x, err
	}
	if x.Status != recording.SessionInProgress {
		return x, &Error{Status: http.StatusConflict, Message: fmt.Sprintf("recording session %d is %s: only a running session can change", x.ID, x.Status),
			Fields: map[string]string{"status": string(x.Status)}}
	}
	return x, nil
}

// changesConnected refuses a change of a running session without Temporal (checked after the
// request's own values, so those are 400s either way).
func (s *Server) changesConnected() error {
	if s.changes == nil {
		return errorf(http.StatusServiceUnavailable, "running sessions cannot change: the service is not connected to Temporal")
	}
	return nil
}

// changed answers a change the workflow ran (or its refusal) with the session as the read model shows it now.
func (s *Server) changed(w http.ResponseWriter, r *http.Request, sessionID int64, err error) error {
	if err != nil {
		return err // statusOf maps the workflow's refusals
	}
	x, err := s.sessions.Session(r.Context(), sessionID, s.now(), s.cfg.Enclosures.DownAfter)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sessionView(x))
	return nil
}

// checkSeconds refuses a duration outside 1 s .. the rules' longest session (0 when optional).
func (s *Server) checkSeconds(field string, secs int64, optional bool) error {
	maxSecs := int64(s.cfg.Sessions.MaxDuration / time.Second)
	if (optional && secs == 0) || (secs >= 1 && secs <= maxSecs) {
		return nil
	}
	return invalid(map[string]string{field: fmt.Sprintf("must be between 1 and %d seconds", maxSecs)})
}

type addDevicesRequest struct {
	DeviceSpec []deviceSpec `json:"device_spec"`
	Duration   int64        `json:"duration"` // 0: until the session's planned end
}

// addSessionDevices adds enclosures to a running session.
func (s *Server) addSessionDevices(w http.ResponseWriter, r *http.Request) error {
	x, err := s.changeableSession(r) // who asks first: a stranger learns nothing of the body
	if err != nil {
		return err
	}
	var req addDevicesRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := s.checkSeconds("duration", req.Duration, true); err != nil {
		return err
	}
	if err := s.changesConnected(); err != nil {
		return err
	}
	devices := make([]recording.NewSessionDevice, len(req.DeviceSpec))
	for i, d := range req.DeviceSpec {
		devices[i] = recording.NewSessionDevice{DeviceID: d.DeviceID, FilePrefix: d.FilenamePrefix}
	}
	// The dry run judges the disk for the session's whole duration when none is given.
	check := store.AddDevices{SessionID: x.ID, Devices: devices, Seconds: cmp.Or(req.Duration, x.Duration)}
	if _, err := s.sessions.AddSessionDevices(r.Context(), check, s.cfg.Sessions.Rules, sessionWorkflowIDs, s.now(), s.cfg.Enclosures.DownAfter, true); err != nil {
		return err
	}
	up := workflows.AddDevicesRequest{Duration: req.Duration, UserID: currentUser(r).ID}
	for _, d := range devices {
		up.Devices = append(up.Devices, workflows.NewDevice{DeviceID: *d.DeviceID, FilePrefix: d.FilePrefix})
	}
	_, err = s.changes.AddDevices(r.Context(), x.ID, up)
	return s.changed(w, r, x.ID, err)
}

// retrySessionDevice starts a FAILED enclosure of a running session again.
func (s *Server) retrySessionDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := s.sessionDevice(r, true)
	if err != nil {
		return err
	}
	x, err := s.changeableSession(r)
	if err != nil {
		return err
	}
	if err := s.changesConnected(); err != nil {
		return err
	}
	check := store.RetryDevice{SessionID: x.ID, DeviceID: d.Device.ID, Seconds: x.Duration}
	if _, err := s.sessions.RetrySessionDevice(r.Context(), check, sessionWorkflowIDs, s.now(), s.cfg.Enclosures.DownAfter, true); err != nil {
		return err
	}
	_, err = s.changes.RetryDevice(r.Context(), x.ID, workflows.RetryRequest{DeviceID: d.Device.ID, UserID: currentUser(r).ID})
	return s.changed(w, r, x.ID, err)
}

type durationRequest struct {
	Duration int64 `json:"duration"`
}

// setSessionDuration extends or shortens a running session.
func (s *Server) setSessionDuration(w http.ResponseWriter, r *http.Request) error {
	x, err := s.changeableSession(r)
	if err != nil {
		return err
	}
	var req durationRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := s.checkSeconds("duration", req.Duration, false); err != nil {
		return err
	}
	if err := s.changesConnected(); err != nil {
		return err
	}
	_, err = s.changes.SetDuration(r.Context(), x.ID, workflows.DurationRequest{Duration: req.Duration, UserID: currentUser(r).ID})
	return s.changed(w, r, x.ID, err)
}

// maxNotes bounds a session's notes (the read model's only).
const maxNotes = 10_000

type editSessionRequest struct {
	Name  *string `json:"name"`
	Notes *string `json:"notes"`
}

// editSession changes a session's name or notes, running or not (the read model's only).
func (s *Server) editSession(w http.ResponseWriter, r *http.Request) error {
	x, err := s.sessionParam(r)
	if err != nil {
		return err
	}
	if err := s.mayStop(r, x); err != nil {
		return err
	}
	var req editSessionRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	errs := map[string]string{}
	if req.Name == nil && req.Notes == nil {
		errs["name"] = "give a name or notes to change"
	}
	if req.Name != nil {
		name := strings.TrimSpace(*req.Name)
		if n := utf8.RuneCountInString(name); n == 0 || n > 200 {
			errs["name"] = "is required, at most 200 characters"
		}
		req.Name = &name
	}
	if req.Notes != nil && utf8.RuneCountInString(*req.Notes) > maxNotes {
		errs["notes"] = fmt.Sprintf("at most %d characters", maxNotes)
	}
	if len(errs) > 0 {
		return invalid(errs)
	}
	ctx := s.audited(r, currentUser(r).ID, recording.AuditSessionEdit, strconv.FormatInt(x.ID, 10), "")
	if err := s.sessions.EditSession(ctx, x.ID, store.SessionEdit{Name: req.Name, Notes: req.Notes}); err != nil {
		return err
	}
	return s.changed(w, r, x.ID, nil)
}
