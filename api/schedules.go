package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/jax-mba/mba/internal/dispatch"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/workflows"
)

// ScheduleConfig are the settings of scheduled sessions.
type ScheduleConfig struct {
	// TimeZone is the lab's: the times of a schedule are read and shown in it (nil: UTC).
	TimeZone *time.Location
	// MinInterval is the shortest interval of a recurring schedule; zero: 10 s.
	MinInterval time.Duration
}

// ScheduleStore is the storage of the schedule routes (the read model; Temporal decides when
// a schedule fires).
type ScheduleStore interface {
	CreateSchedule(ctx context.Context, ns store.NewSchedule, start func(id int64) error) (int64, error)
	ChangeSchedule(ctx context.Context, id int64, c store.ScheduleChange, apply func() error) error
	Schedules(ctx context.Context) ([]store.Schedule, error)
	Schedule(ctx context.Context, id int64) (store.Schedule, error)
	ScheduleFires(ctx context.Context, id int64, limit int) ([]store.ScheduleFire, error)
	ScheduleSessions(ctx context.Context, id int64, limit int) ([]store.ScheduleSession, error)
}

// Scheduler keeps the schedules' Temporal Schedules (dispatch.Schedules).
type Scheduler interface {
	Create(ctx context.Context, p dispatch.SchedulePlan) error
	Update(ctx context.Context, p dispatch.SchedulePlan) error
	Pause(ctx context.Context, id int64, note string) error
	Resume(ctx context.Context, id int64, note string) error
	Trigger(ctx context.Context, id int64) error
	Delete(ctx context.Context, id int64) error
	Describe(ctx context.Context, id int64) (dispatch.ScheduleRuns, error)
}

func scheduleRoutes(r chi.Router, s *Server) {
	r.Get("/schedules", s.handle(s.listSchedules))
	r.Post("/schedules", s.handle(s.createSchedule))
	r.Get("/schedules/{schid}", s.handle(s.getSchedule))
	r.Put("/schedules/{schid}", s.handle(s.updateSchedule))
	r.Delete("/schedules/{schid}", s.handle(s.deleteSchedule))
	r.Post("/schedules/{schid}/pause", s.handle(s.pauseSchedule))
	r.Post("/schedules/{schid}/resume", s.handle(s.resumeSchedule))
	r.Post("/schedules/{schid}/trigger", s.handle(s.triggerSchedule))
}

// scheduleSpec is when a schedule fires and its policies, as the API takes and returns it
// (kept as given in the read model). Times are the lab's local wall-clock times.
type scheduleSpec struct {
	Kind          string `json:"kind"`                  // once, calendar or interval
	At            string `json:"at,omitempty"`          // once: "2026-12-02T18:00"
	TimeOfDay     string `json:"time_of_day,omitempty"` // calendar: "18:00"
	DaysOfWeek    []int  `json:"days_of_week,omitempty"`
	Every         int64  `json:"every,omitempty"`    // interval: seconds
	StartAt       string `json:"start_at,omitempty"` // first run not before
	EndAt         string `json:"end_at,omitempty"`   // no run after
	Count         int    `json:"count,omitempty"`    // at most this many runs
	Overlap       string `json:"overlap,omitempty"`  // Temporal's overlap policy; default skip
	CatchupWindow int64  `json:"catchup_window,omitempty"`
	BusyPolicy    string `json:"busy_policy,omitempty"` // skip_enclosure (default), skip_run, wait
	WaitLimit     int64  `json:"wait_limit,omitempty"`  // wait: seconds
	// Template, instead of the request's session, makes each fire a session of that template
	// version (version 0: the latest when the schedule is saved; kept pinned).
	Template *scheduleTemplate `json:"template,omitempty"`
}

type scheduleTemplate struct {
	ID      int64 `json:"id"`
	Version int   `json:"version"`
}

type scheduleRequest struct {
	Name string `json:"name"`
	scheduleSpec
	Paused  bool              `json:"paused"`
	Note    string            `json:"note"`
	Session newSessionRequest `json:"session"`
}

const (
	localLayout          = "2006-01-02T15:04"
	defaultCatchupWindow = 10 * time.Minute
	maxWaitLimit         = 24 * time.Hour
)

var timeOfDay = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])$`)

func (s *Server) location() *time.Location {
	if s.cfg.Schedules.TimeZone != nil {
		return s.cfg.Schedules.TimeZone
	}
	return time.UTC
}

// plan validates a schedule request, naming every bad field, and returns the Temporal plan
// (its Fire.ScheduleID is set by the caller).
func (s *Server) plan(ctx context.Context, req *scheduleRequest, owner store.User) (dispatch.SchedulePlan, error) {
	loc := s.location()
	errs := map[string]string{}
	if n := utf8.RuneCountInString(strings.TrimSpace(req.Name)); n == 0 || n > 200 {
		errs["name"] = "is required, at most 200 characters"
	}
	if len(req.Note) > workflows.MaxAlertNote {
		errs["note"] = fmt.Sprintf("at most %d bytes", workflows.MaxAlertNote)
	}
	local := func(field, raw string) time.Time {
		if raw == "" {
			return time.Time{}
		}
		t, err := time.ParseInLocation(localLayout, raw, loc)
		if err != nil {
			errs[field] = "must be a local time like 2026-12-02T18:00 (" + loc.String() + ")"
		}
		return t
	}
	sp := &req.scheduleSpec
	p := dispatch.SchedulePlan{Kind: sp.Kind, TimeZone: loc.String(), StartAt: local("start_at", sp.StartAt),
		EndAt: local("end_at", sp.EndAt), Count: sp.Count, Paused: req.Paused, Note: req.Note,
		At: local("at", sp.At), Every: time.Duration(sp.Every) * time.Second}
	now := s.now()
	switch sp.Kind {
	case dispatch.ScheduleOnce:
		if sp.At == "" {
			errs["at"] = "is required for a schedule of kind once"
		} else if _, bad := errs["at"]; !bad && !p.At.After(now) {
			errs["at"] = "must be in the future"
		}
		p.Count = 1
	case dispatch.ScheduleCalendar:
		m := timeOfDay.FindStringSubmatch(sp.TimeOfDay)
		if m == nil {
			errs["time_of_day"] = "must be HH:MM (24 h) for a schedule of kind calendar"
		} else {
			p.Hour, _ = strconv.Atoi(m[1])
			p.Minute, _ = strconv.Atoi(m[2])
		}
		for i, d := range sp.DaysOfWeek {
			if d < 0 || d > 6 {
				errs[fmt.Sprintf("days_of_week[%d]", i)] = "must be 0 (Sunday) to 6 (Saturday)"
			}
		}
		p.DaysOfWeek = sp.DaysOfWeek
	case dispatch.ScheduleInterval:
		if least := max(s.cfg.Schedules.MinInterval, 10*time.Second); p.Every < least || p.Every > 366*24*time.Hour {
			errs["every"] = fmt.Sprintf("must be between %d and %d seconds", int64(least/time.Second), 366*24*3600)
		}
	default:
		errs["kind"] = "must be once, calendar or interval"
	}
	if !p.EndAt.IsZero() && !p.EndAt.After(now) {
		errs["end_at"] = "must be in the future"
	} else if !p.EndAt.IsZero() && !p.StartAt.IsZero() && !p.EndAt.After(p.StartAt) {
		errs["end_at"] = "must be after start_at"
	}
	if sp.Count < 0 || sp.Count > 10000 {
		errs["count"] = "must be between 0 (no limit) and 10000"
	}
	if sp.Overlap == "" {
		sp.Overlap = "skip"
	}
	if !dispatch.ValidOverlap(sp.Overlap) {
		errs["overlap"] = "must be skip, buffer_one, buffer_all, allow_all or cancel_other"
	}
	p.Overlap = sp.Overlap
	p.CatchupWindow = time.Duration(sp.CatchupWindow) * time.Second
	if sp.CatchupWindow == 0 {
		p.CatchupWindow = defaultCatchupWindow
	} else if p.CatchupWindow < 10*time.Second || p.CatchupWindow > 366*24*time.Hour {
		errs["catchup_window"] = "must be between 10 seconds and 366 days"
	}
	if sp.BusyPolicy == "" {
		sp.BusyPolicy = string(workflows.BusySkipEnclosure)
	}
	busy := workflows.BusyPolicy(sp.BusyPolicy)
	switch {
	case !slices.Contains(workflows.BusyPolicies, busy):
		errs["busy_policy"] = "must be skip_enclosure, skip_run or wait"
	case busy == workflows.BusyWait && (sp.WaitLimit < 1 || time.Duration(sp.WaitLimit)*time.Second > maxWaitLimit):
		errs["wait_limit"] = fmt.Sprintf("must be between 1 and %d seconds with busy_policy wait", int64(maxWaitLimit/time.Second))
	case busy != workflows.BusyWait && sp.WaitLimit != 0:
		errs["wait_limit"] = "only with busy_policy wait"
	}
	ns, err := s.scheduleSession(ctx, req, owner.ID, errs)
	if err != nil {
		return p, err
	}
	if len(errs) > 0 {
		return p, invalid(errs)
	}
	req.Name = strings.TrimSpace(req.Name)
	p.Fire = workflows.ScheduledSessionInput{Name: req.Name, Owner: owner.Email, Session: ns, Busy: busy,
		WaitLimit: time.Duration(sp.WaitLimit) * time.Second}
	return p, nil
}

// scheduleSession is the session each fire creates: the request's, or the named template
// version's (a version never changes, so the fire's input holds it whole). Refusals join errs
// under session. or template.; the error is the store's.
func (s *Server) scheduleSession(ctx context.Context, req *scheduleRequest, ownerID int64, errs map[string]string) (recording.NewSession, error) {
	body := req.Session
	tr := req.Template
	if tr != nil {
		switch {
		case !req.Session.empty():
			errs["template"] = "names the session each fire creates: give a template or a session, not both"
			return recording.NewSession{}, nil
		case tr.Version < 0:
			errs["template.version"] = "must be a version of the template (0: the latest)"
			return recording.NewSession{}, nil
		}
		t, fromT, err := s.fromTemplate(ctx, tr.ID, fromTemplateRequest{Version: tr.Version})
		switch {
		case errors.Is(err, store.ErrNotFound) && tr.Version > 0:
			errs["template.version"] = fmt.Sprintf("template %d has no version %d (or is archived)", tr.ID, tr.Version)
			return recording.NewSession{}, nil
		case errors.Is(err, store.ErrNotFound):
			errs["template.id"] = fmt.Sprintf("names no template (%d), or an archived one", tr.ID)
			return recording.NewSession{}, nil
		case err != nil:
			return recording.NewSession{}, err
		}
		body, tr.Version = fromT, t.Versions[0].Version
		body.Name = t.Name
	}
	ns, err := s.cfg.Sessions.Rules.Validate(body.newSession(ownerID))
	var refusal *recording.Refusal
	if errors.As(err, &refusal) {
		for f, why := range refusal.Fields {
			errs["session."+f] = why
		}
	}
	if tr != nil {
		ns.TemplateID, ns.TemplateVersion = tr.ID, tr.Version
	}
	return ns, nil
}

// scheduler is the Temporal side of schedules, or a 503 when this server has none.
func (s *Server) scheduler() (Scheduler, error) {
	if s.schedulesTemporal == nil {
		return nil, &Error{Status: http.StatusServiceUnavailable, Message: "schedules need Temporal, which this server is not connected to",
			RetryAfter: 10 * time.Second}
	}
	return s.schedulesTemporal, nil
}

// temporalRefused is the 503 of a Temporal call that failed (the row was not changed).
func temporalRefused(err error) error {
	if err == nil {
		return nil
	}
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return err
	}
	return &Error{Status: http.StatusServiceUnavailable, Message: "Temporal did not take the change; nothing was changed: try again",
		RetryAfter: 5 * time.Second}
}

func (s *Server) createSchedule(w http.ResponseWriter, r *http.Request) error {
	var req scheduleRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	me := currentUser(r)
	p, err := s.plan(r.Context(), &req, me)
	if err != nil {
		return err
	}
	temporal, err := s.scheduler()
	if err != nil {
		return err
	}
	spec, _ := json.Marshal(req.scheduleSpec) // plain fields always encode
	body, _ := json.Marshal(req.Session)
	ctx := s.audited(r, me.ID, recording.AuditScheduleCreate, "", req.Name)
	id, err := s.schedules.CreateSchedule(ctx, store.NewSchedule{Name: req.Name, OwnerID: me.ID, Spec: spec, Session: body,
		Paused: req.Paused, Note: req.Note}, func(id int64) error {
		p.Fire.ScheduleID = id
		return temporal.Create(r.Context(), p)
	})
	if err != nil {
		return temporalRefused(err)
	}
	return s.writeSchedule(w, r, id, http.StatusCreated)
}

// scheduleParam loads the {schid} schedule or a 404 naming it; with toChange, a user who is
// neither its owner nor an administrator gets a 403.
func (s *Server) scheduleParam(r *http.Request, toChange bool) (store.Schedule, error) {
	id, err := idParam(r, "schid", "Schedule")
	if err != nil {
		return store.Schedule{}, err
	}
	x, err := s.schedules.Schedule(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return x, errorf(http.StatusNotFound, "Schedule %d Not Found", id)
	}
	if err != nil || !toChange {
		return x, err
	}
	me := currentUser(r)
	if me.Admin || (x.OwnerID != nil && *x.OwnerID == me.ID) {
		return x, nil
	}
	return x, errorf(http.StatusForbidden, "only the schedule's owner or an administrator may change schedule %d", id)
}

func (s *Server) updateSchedule(w http.ResponseWriter, r *http.Request) error {
	x, err := s.scheduleParam(r, true)
	if err != nil {
		return err
	}
	var req scheduleRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	// The owner stays: each fire creates the session as its owner.
	owner := store.User{Email: deref(x.OwnerEmail)}
	if x.OwnerID != nil {
		owner.ID = *x.OwnerID
	}
	p, err := s.plan(r.Context(), &req, owner)
	if err != nil {
		return err
	}
	temporal, err := s.scheduler()
	if err != nil {
		return err
	}
	p.Fire.ScheduleID = x.ID
	spec, _ := json.Marshal(req.scheduleSpec)
	body, _ := json.Marshal(req.Session)
	ctx := s.audited(r, currentUser(r).ID, recording.AuditScheduleUpdate, strconv.FormatInt(x.ID, 10), req.Name)
	err = s.schedules.ChangeSchedule(ctx, x.ID, store.ScheduleChange{Name: &req.Name, Spec: spec, Session: body},
		func() error { return temporal.Update(r.Context(), p) })
	if err != nil {
		return temporalRefused(err)
	}
	return s.writeSchedule(w, r, x.ID, http.StatusOK)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

type scheduleNoteRequest struct {
	Note string `json:"note"`
}

// changeSchedule runs one of the Temporal-only changes (pause, resume, trigger, delete) with its
// row's change and audit entry in one transaction.
func (s *Server) changeSchedule(w http.ResponseWriter, r *http.Request, action recording.AuditAction,
	change func(note string) store.ScheduleChange, apply func(t Scheduler, id int64, note string) error) error {
	x, err := s.scheduleParam(r, true)
	if err != nil {
		return err
	}
	var req scheduleNoteRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	if len(req.Note) > workflows.MaxAlertNote {
		return invalid(map[string]string{"note": fmt.Sprintf("at most %d bytes", workflows.MaxAlertNote)})
	}
	temporal, err := s.scheduler()
	if err != nil {
		return err
	}
	ctx := s.audited(r, currentUser(r).ID, action, strconv.FormatInt(x.ID, 10), req.Note)
	if err := s.schedules.ChangeSchedule(ctx, x.ID, change(req.Note), func() error { return apply(temporal, x.ID, req.Note) }); err != nil {
		return temporalRefused(err)
	}
	if action == recording.AuditScheduleDelete {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return s.writeSchedule(w, r, x.ID, http.StatusOK)
}

func (s *Server) pauseSchedule(w http.ResponseWriter, r *http.Request) error {
	return s.setPaused(w, r, true)
}

func (s *Server) resumeSchedule(w http.ResponseWriter, r *http.Request) error {
	return s.setPaused(w, r, false)
}

// setPaused pauses or resumes the schedule, with the person's note (Temporal keeps one too).
func (s *Server) setPaused(w http.ResponseWriter, r *http.Request, paused bool) error {
	action, apply, verb := recording.AuditScheduleResume, Scheduler.Resume, "resumed"
	if paused {
		action, apply, verb = recording.AuditSchedulePause, Scheduler.Pause, "paused"
	}
	return s.changeSchedule(w, r, action,
		func(note string) store.ScheduleChange { return store.ScheduleChange{Paused: &paused, Note: &note} },
		func(t Scheduler, id int64, note string) error { return apply(t, r.Context(), id, cmpNote(note, verb)) })
}

func (s *Server) triggerSchedule(w http.ResponseWriter, r *http.Request) error {
	return s.changeSchedule(w, r, recording.AuditScheduleTrigger,
		func(string) store.ScheduleChange { return store.ScheduleChange{} },
		func(t Scheduler, id int64, _ string) error { return t.Trigger(r.Context(), id) })
}

func (s *Server) deleteSchedule(w http.ResponseWriter, r *http.Request) error {
	return s.changeSchedule(w, r, recording.AuditScheduleDelete,
		func(string) store.ScheduleChange { return store.ScheduleChange{Delete: true} },
		func(t Scheduler, id int64, _ string) error { return t.Delete(r.Context(), id) })
}

func cmpNote(note, otherwise string) string {
	if note == "" {
		return otherwise + " in the MBA web UI"
	}
	return note
}

func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request) error {
	list, err := s.schedules.Schedules(r.Context())
	if err != nil {
		return err
	}
	out := make([]ScheduleView, len(list))
	for i, x := range list {
		out[i] = s.scheduleView(r.Context(), x)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request) error {
	x, err := s.scheduleParam(r, false)
	if err != nil {
		return err
	}
	return s.writeScheduleDetail(w, r, x, http.StatusOK)
}

func (s *Server) writeSchedule(w http.ResponseWriter, r *http.Request, id int64, status int) error {
	x, err := s.schedules.Schedule(r.Context(), id)
	if err != nil {
		return err
	}
	return s.writeScheduleDetail(w, r, x, status)
}

// writeScheduleDetail sends a schedule with its runs, its fires' outcomes and its sessions.
func (s *Server) writeScheduleDetail(w http.ResponseWriter, r *http.Request, x store.Schedule, status int) error {
	v := s.scheduleView(r.Context(), x)
	fires, err := s.schedules.ScheduleFires(r.Context(), x.ID, 50)
	if err != nil {
		return err
	}
	sessions, err := s.schedules.ScheduleSessions(r.Context(), x.ID, 100)
	if err != nil {
		return err
	}
	v.Fires = orEmpty(views(fires, scheduleFireView))
	v.Sessions = orEmpty(views(sessions, scheduleSessionView))
	writeJSON(w, status, v)
	return nil
}

// scheduleView is the row with what Temporal says of its runs; when Temporal does not answer,
// TemporalError says so and the runs are empty (the read model still lists it).
func (s *Server) scheduleView(ctx context.Context, x store.Schedule) ScheduleView {
	v := ScheduleView{ID: x.ID, Name: x.Name, Owner: x.OwnerEmail, Spec: x.Spec, Session: x.Session, Paused: x.Paused,
		Note: x.Note, TimeZone: s.location().String(), CreatedAt: x.CreatedAt, UpdatedAt: x.UpdatedAt,
		NextRuns: []time.Time{}, RecentRuns: []ScheduleRunView{}}
	if s.schedulesTemporal == nil {
		v.TemporalError = "not connected to Temporal"
		return v
	}
	runs, err := s.schedulesTemporal.Describe(ctx, x.ID)
	if err != nil {
		s.log.WarnContext(ctx, "describing a schedule", "schedule", x.ID, "error", err)
		v.TemporalError = "Temporal did not describe the schedule"
		return v
	}
	v.Paused, v.Note, v.RemainingRuns, v.Runs = runs.Paused, runs.Note, runs.RemainingActions, runs.Actions
	v.NextRuns = append(v.NextRuns, runs.NextRuns...)
	for _, run := range runs.RecentRuns {
		v.RecentRuns = append(v.RecentRuns, ScheduleRunView(run))
	}
	return v
}

func orEmpty[V any](list []V) []V {
	if list == nil {
		return []V{}
	}
	return list
}
