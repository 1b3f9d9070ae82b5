package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

// TemplateStore keeps the templates: named protocols, versioned (issue 16).
type TemplateStore interface {
	CreateTemplate(ctx context.Context, spec recording.TemplateSpec, rules recording.Rules, userID int64) (int64, error)
	NewTemplateVersion(ctx context.Context, id int64, spec recording.TemplateSpec, rules recording.Rules, userID int64) (int, error)
	ArchiveTemplate(ctx context.Context, id int64) error
	ListTemplates(ctx context.Context, archived bool) ([]store.Template, error)
	Template(ctx context.Context, id int64) (store.Template, error)
	TemplateVersion(ctx context.Context, id int64, version int) (store.Template, error)
}

// Every signed-in user may create, edit and archive the lab's templates: an edit is a new
// version and nothing is ever lost, and each change is in the audit log.
func templateRoutes(r chi.Router, s *Server) {
	r.Get("/templates", s.handle(s.listTemplates))
	r.Post("/templates", s.handle(s.createTemplate))
	r.Get("/templates/{tid}", s.handle(s.getTemplate))
	r.Delete("/templates/{tid}", s.handle(s.archiveTemplate))
	r.Post("/templates/{tid}/versions", s.handle(s.newTemplateVersion))
	r.Post("/templates/{tid}/sessions", s.handle(s.createSessionFromTemplate))
	r.Get("/recording-session/{sid}/clone", s.handle(s.cloneSession))
}

type templateRequest struct {
	Name           string          `json:"name"`
	Duration       int64           `json:"duration"`
	FragmentHourly bool            `json:"fragment_hourly"`
	TargetFPS      int             `json:"target_fps"`
	ApplyFilter    bool            `json:"apply_filter"`
	DeviceIDs      []int64         `json:"device_ids"`
	PrefixPattern  string          `json:"prefix_pattern"`
	Timeouts       json.RawMessage `json:"timeouts"`
	Notes          string          `json:"notes"`
}

func (req templateRequest) spec() recording.TemplateSpec {
	return recording.TemplateSpec{Name: req.Name, Duration: req.Duration, FragmentHourly: req.FragmentHourly,
		TargetFPS: req.TargetFPS, ApplyFilter: req.ApplyFilter, DeviceIDs: req.DeviceIDs, PrefixPattern: req.PrefixPattern,
		Timeouts: req.Timeouts, Notes: req.Notes}
}

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request) error {
	archived, err := boolQuery(r, "archived")
	if err != nil {
		return err
	}
	list, err := s.templates.ListTemplates(r.Context(), archived)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, views(list, templateView))
	return nil
}

func (s *Server) createTemplate(w http.ResponseWriter, r *http.Request) error {
	var req templateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	me := currentUser(r)
	// The store names the new template as the audit row's subject.
	id, err := s.templates.CreateTemplate(s.audited(r, me.ID, recording.AuditTemplateCreate, "", req.Name), req.spec(), s.cfg.Sessions.Rules, me.ID)
	if errors.Is(err, store.ErrConflict) {
		return &Error{Status: http.StatusConflict, Message: fmt.Sprintf("a template named %q exists", req.Name),
			Fields: map[string]string{"name": "is taken by another template"}}
	}
	if err != nil {
		return err
	}
	return s.writeTemplate(w, r, id)
}

func (s *Server) writeTemplate(w http.ResponseWriter, r *http.Request, id int64) error {
	t, err := s.templates.Template(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, templateView(t))
	return nil
}

// templateParam reads {tid}, or a 404 naming it.
func templateParam(r *http.Request) (int64, error) {
	return idParam(r, "tid", "Template")
}

func notFoundTemplate(err error, id int64) error {
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "Template %d Not Found", id)
	}
	return err
}

func (s *Server) getTemplate(w http.ResponseWriter, r *http.Request) error {
	id, err := templateParam(r)
	if err != nil {
		return err
	}
	t, err := s.templates.Template(r.Context(), id)
	if err != nil {
		return notFoundTemplate(err, id)
	}
	writeJSON(w, http.StatusOK, templateView(t))
	return nil
}

func (s *Server) newTemplateVersion(w http.ResponseWriter, r *http.Request) error {
	id, err := templateParam(r)
	if err != nil {
		return err
	}
	var req templateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	me := currentUser(r)
	ctx := s.audited(r, me.ID, recording.AuditTemplateVersion, "template/"+strconv.FormatInt(id, 10), req.Name)
	_, err = s.templates.NewTemplateVersion(ctx, id, req.spec(), s.cfg.Sessions.Rules, me.ID)
	if errors.Is(err, store.ErrConflict) {
		return &Error{Status: http.StatusConflict, Message: fmt.Sprintf("a template named %q exists", req.Name),
			Fields: map[string]string{"name": "is taken by another template"}}
	}
	if err != nil {
		return notFoundTemplate(err, id)
	}
	return s.writeTemplate(w, r, id)
}

// archiveTemplate hides a template from the list and from new sessions; its versions stay,
// since sessions name them.
func (s *Server) archiveTemplate(w http.ResponseWriter, r *http.Request) error {
	id, err := templateParam(r)
	if err != nil {
		return err
	}
	ctx := s.audited(r, currentUser(r).ID, recording.AuditTemplateArchive, "template/"+strconv.FormatInt(id, 10), "")
	if err := s.templates.ArchiveTemplate(ctx, id); err != nil {
		return notFoundTemplate(err, id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// fromTemplateRequest makes a session of a template version; every field is optional and
// overrides the template's. Enclosures without a filename_prefix get the template's pattern.
type fromTemplateRequest struct {
	Version        int          `json:"version"` // 0: the latest
	Name           string       `json:"name"`    // "": the template's name and the date
	Duration       *int64       `json:"duration"`
	FragmentHourly *bool        `json:"fragment_hourly"`
	TargetFPS      *int         `json:"target_fps"`
	ApplyFilter    *bool        `json:"apply_filter"`
	DeviceSpec     []deviceSpec `json:"device_spec"` // nil: the template's enclosures, without subjects
}

func (s *Server) createSessionFromTemplate(w http.ResponseWriter, r *http.Request) error {
	id, err := templateParam(r)
	if err != nil {
		return err
	}
	var req fromTemplateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Version < 0 {
		return invalid(map[string]string{"version": "must be a version of the template (0: the latest)"})
	}
	t, body, err := s.fromTemplate(r.Context(), id, req)
	if errors.Is(err, store.ErrNotFound) {
		if req.Version > 0 {
			return errorf(http.StatusNotFound, "Template %d has no version %d (or is archived)", id, req.Version)
		}
		return errorf(http.StatusNotFound, "Template %d Not Found (or archived)", id)
	}
	if err != nil {
		return err
	}
	if body.Name == "" {
		body.Name = t.Name + " " + s.now().UTC().Format(time.DateOnly)
	}
	if err := body.check(); err != nil {
		return err
	}
	ns := body.newSession(currentUser(r).ID)
	ns.TemplateID, ns.TemplateVersion = t.ID, t.Versions[0].Version
	return s.writeNewSession(w, r, ns, fmt.Sprintf("template %d v%d", ns.TemplateID, ns.TemplateVersion))
}

// fromTemplate reads template id's version req.Version (0: the latest; store.ErrNotFound: no
// such live template or version) and makes the session body it asks for, req's fields
// overriding the template's; the name stays "" unless req names one. Both a session made from
// a template and a schedule naming one take their body from here.
func (s *Server) fromTemplate(ctx context.Context, id int64, req fromTemplateRequest) (store.Template, newSessionRequest, error) {
	t, err := s.templates.TemplateVersion(ctx, id, req.Version)
	if err != nil {
		return t, newSessionRequest{}, err
	}
	v := t.Versions[0]
	body := newSessionRequest{Name: req.Name, Duration: v.Spec.Duration, FragmentHourly: v.Spec.FragmentHourly,
		TargetFPS: v.Spec.TargetFPS, ApplyFilter: v.Spec.ApplyFilter, DeviceSpec: req.DeviceSpec, PrefixPattern: v.Spec.PrefixPattern}
	if req.Duration != nil {
		body.Duration = *req.Duration
	}
	if req.FragmentHourly != nil {
		body.FragmentHourly = *req.FragmentHourly
	}
	if req.TargetFPS != nil {
		body.TargetFPS = *req.TargetFPS
	}
	if req.ApplyFilter != nil {
		body.ApplyFilter = *req.ApplyFilter
	}
	if body.DeviceSpec == nil {
		for _, did := range v.Spec.DeviceIDs {
			body.DeviceSpec = append(body.DeviceSpec, deviceSpec{DeviceID: &did})
		}
	}
	return t, body, nil
}

// writeNewSession creates the session through the one session-creation operation and answers
// with it, as POST /api/recording-session does.
func (s *Server) writeNewSession(w http.ResponseWriter, r *http.Request, ns recording.NewSession, detail string) error {
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	ns.IdempotencyKey = key
	now := s.now()
	// The store names the new session's id as the audit row's subject.
	created, err := s.sessions.CreateSession(s.audited(r, currentUser(r).ID, recording.AuditSessionCreate, "", detail), ns, s.cfg.Sessions.Rules,
		sessionWorkflowIDs, now, s.cfg.Enclosures.DownAfter)
	if err != nil {
		return err
	}
	session, err := s.sessions.Session(r.Context(), created.ID, now, s.cfg.Enclosures.DownAfter)
	if err != nil {
		return err
	}
	v := sessionView(session)
	v.Warnings = created.Warnings
	if created.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// SessionDraft is a new session pre-filled from a past one (clone): post it to
// POST /api/recording-session, or, with FromTemplate, to that template's sessions.
type SessionDraft struct {
	Name           string           `json:"name"`
	Duration       int64            `json:"duration"`
	FragmentHourly bool             `json:"fragment_hourly"`
	TargetFPS      int              `json:"target_fps"`
	ApplyFilter    bool             `json:"apply_filter"`
	DeviceSpec     []DeviceDraft    `json:"device_spec"`
	FromTemplate   *TemplateRefView `json:"from_template"`
	ClonedFrom     int64            `json:"cloned_from"`
	Warnings       []string         `json:"warnings"`
}

// DeviceDraft is one enclosure of a SessionDraft.
type DeviceDraft struct {
	DeviceID       int64        `json:"device_id"`
	FilenamePrefix string       `json:"filename_prefix"`
	Subject        *SubjectView `json:"subject"`
}

// cloneSession pre-fills a new session from a past one: its settings, enclosures, prefixes
// and subjects. Nothing is created; the client edits the draft and posts it.
func (s *Server) cloneSession(w http.ResponseWriter, r *http.Request) error {
	x, err := s.sessionParam(r)
	if err != nil {
		return err
	}
	subjects, err := s.subjects.SessionSubjects(r.Context(), x.ID)
	if err != nil {
		return err
	}
	d := SessionDraft{Name: x.Name + " (copy)", Duration: x.Duration, FragmentHourly: x.FragmentHourly, TargetFPS: x.TargetFPS,
		ApplyFilter: x.ApplyFilter, DeviceSpec: []DeviceDraft{}, ClonedFrom: x.ID, Warnings: []string{}}
	if x.Template != nil {
		d.FromTemplate = templateRefView(x.Template)
	}
	for _, ds := range x.DeviceStatuses {
		dd := DeviceDraft{DeviceID: ds.Device.ID, FilenamePrefix: ds.FilenamePrefix}
		if x.Template != nil {
			dd.FilenamePrefix = "" // the template's pattern makes it again, for the new session
		}
		if sub, ok := subjects[ds.Device.ID]; ok {
			dd.Subject = subjectView(sub)
		}
		if ds.Device.Retired != nil {
			d.Warnings = append(d.Warnings, ds.Device.Name+" is retired: remove it from the new session")
		}
		d.DeviceSpec = append(d.DeviceSpec, dd)
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}
