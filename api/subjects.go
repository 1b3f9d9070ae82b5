package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/jax-mba/mba/internal/manifest"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

// SubjectStore keeps who was in each enclosure of a session, finds sessions by them, and
// reads what a session's manifest is made of.
type SubjectStore interface {
	SetSubject(ctx context.Context, sessionID, deviceID int64, subject recording.Subject, today time.Time) error
	SessionSubjects(ctx context.Context, sessionID int64) (map[int64]recording.Subject, error)
	SearchSessions(ctx context.Context, archived bool, f store.SessionSearch, now time.Time, down time.Duration) ([]store.Session, error)
	manifest.Source
}

func subjectRoutes(r chi.Router, s *Server) {
	r.Patch("/recording-session/{sid}/device-status/{did}/subject", s.handle(s.patchSubject))
	r.Get("/recording-session/{sid}/manifest.json", s.handle(s.sessionManifest(false)))
	r.Get("/recording-session/{sid}/manifest.csv", s.handle(s.sessionManifest(true)))
}

// subjectBody is a subject as the REST API takes it (in a new session's device_spec, and the
// PATCH of one enclosure's subject, where a field left out stays as it was).
type subjectBody struct {
	SubjectIDs  *[]string          `json:"subject_ids"`
	Strain      *string            `json:"strain"`
	Sex         *string            `json:"sex"`
	DateOfBirth *string            `json:"date_of_birth"` // YYYY-MM-DD; "" for none
	Cage        *string            `json:"cage"`
	Extra       *map[string]string `json:"extra"`
	Notes       *string            `json:"notes"`
}

// check refuses what cannot be converted (the store validates the rest).
func (b subjectBody) check(prefix string, errs map[string]string) {
	if b.DateOfBirth != nil && *b.DateOfBirth != "" {
		if _, err := time.Parse(time.DateOnly, *b.DateOfBirth); err != nil {
			errs[prefix+"date_of_birth"] = "must be a date, YYYY-MM-DD"
		}
	}
}

// subject is the body as a whole subject.
func (b subjectBody) subject() recording.Subject {
	return b.onto(recording.Subject{})
}

// onto applies the fields the body has to s.
func (b subjectBody) onto(s recording.Subject) recording.Subject {
	if b.SubjectIDs != nil {
		s.IDs = *b.SubjectIDs
	}
	if b.Strain != nil {
		s.Strain = *b.Strain
	}
	if b.Sex != nil {
		s.Sex = *b.Sex
	}
	if b.DateOfBirth != nil {
		s.DateOfBirth = nil
		if t, err := time.Parse(time.DateOnly, *b.DateOfBirth); err == nil {
			s.DateOfBirth = &t
		}
	}
	if b.Cage != nil {
		s.Cage = *b.Cage
	}
	if b.Extra != nil {
		s.Extra = *b.Extra
	}
	if b.Notes != nil {
		s.Notes = *b.Notes
	}
	return s
}

// addSubjects puts each enclosure's subject into a session's detail.
func (s *Server) addSubjects(r *http.Request, x *SessionView) error {
	subjects, err := s.subjects.SessionSubjects(r.Context(), x.ID)
	if err != nil {
		return err
	}
	for i := range x.DeviceStatuses {
		if sub, ok := subjects[x.DeviceStatuses[i].Device.ID]; ok {
			x.DeviceStatuses[i].Subject = subjectView(sub)
		}
	}
	return nil
}

// patchSubject edits one enclosure's subject, in any state of the session: what a field says
// is what the lab found out, during the run or after it. After the end, the manifest beside
// the files is written again.
func (s *Server) patchSubject(w http.ResponseWriter, r *http.Request) error {
	d, err := s.sessionDevice(r, true)
	if err != nil {
		return err
	}
	var body subjectBody
	if err := decodeJSON(r, &body); err != nil {
		return err
	}
	errs := map[string]string{}
	body.check("", errs)
	if len(errs) > 0 {
		return invalid(errs)
	}
	subjects, err := s.subjects.SessionSubjects(r.Context(), d.SessionID)
	if err != nil {
		return err
	}
	sub := body.onto(subjects[d.Device.ID])
	ctx := s.audited(r, currentUser(r).ID, recording.AuditSessionSubject, fmt.Sprintf("%d/%s", d.SessionID, d.Device.Name),
		"subject "+sub.First())
	if err := s.subjects.SetSubject(ctx, d.SessionID, d.Device.ID, sub, s.now()); err != nil {
		return err
	}
	x, err := s.sessions.Session(r.Context(), d.SessionID, s.now(), s.cfg.Enclosures.DownAfter)
	if err != nil {
		return err
	}
	if x.Status != recording.SessionInProgress && s.storage != nil {
		// The session wrote its manifest when it ended; this edit came after.
		if err := (manifest.Writer{Source: s.subjects, Storage: s.storage}).Write(r.Context(), x.ID); err != nil {
			s.log.WarnContext(r.Context(), "rewriting the manifest after a subject edit", "session", x.ID, "error", err.Error())
		}
	}
	writeJSON(w, http.StatusOK, subjectView(sub))
	return nil
}

// sessionManifest serves the session's manifest as it is now, as JSON or CSV (a download).
func (s *Server) sessionManifest(asCSV bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		x, err := s.sessionParam(r)
		if err != nil {
			return err
		}
		m, err := manifest.Load(r.Context(), s.subjects, x.ID, s.now())
		if err != nil {
			return err
		}
		body, kind, ext := m.JSON(), "application/json", "json"
		if asCSV {
			body, kind, ext = m.CSV(), "text/csv; charset=utf-8", "csv"
		}
		w.Header().Set("Content-Type", kind)
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="session-%d-manifest.%s"`, x.ID, ext))
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
		return nil
	}
}

// maxSearchResults bounds a search of the sessions (the plain list is the archive's size).
const maxSearchResults = 200

// sessionSearch reads ?subject= &strain= &q= (part of the name), each at most 100 bytes.
func sessionSearch(r *http.Request) (store.SessionSearch, error) {
	q := r.URL.Query()
	f := store.SessionSearch{Subject: q.Get("subject"), Strain: q.Get("strain"), Name: q.Get("q")}
	errs := map[string]string{}
	for name, v := range map[string]string{"subject": f.Subject, "strain": f.Strain, "q": f.Name} {
		if reason := recording.BoundedText(v, recording.MaxSubjectText); reason != "" {
			errs[name] = reason
		}
	}
	if raw := q.Get("template"); raw != "" {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || id <= 0 {
			errs["template"] = "must be a template id"
		}
		f.TemplateID = id
	}
	if len(errs) > 0 {
		return f, invalid(errs)
	}
	if f != (store.SessionSearch{}) {
		f.Limit = maxSearchResults
	}
	return f, nil
}
