package api

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

// maxAuditRows bounds one page of the audit search.
const maxAuditRows = 500

// listAudit searches the audit log for administrators, newest first: ?actor= (e-mail address)
// &action= &subject= &since= &until= (RFC 3339; since inclusive, until exclusive) &limit=.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.AuditFilter{ActorEmail: q.Get("actor"), Subject: q.Get("subject"), Limit: 100}
	problems := map[string]string{}
	if a := q.Get("action"); a != "" {
		if !slices.Contains(recording.AuditActions, recording.AuditAction(a)) {
			problems["action"] = "is not an audit action"
		}
		f.Action = recording.AuditAction(a)
	}
	for name, into := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if raw := q.Get(name); raw != "" {
			t, err := time.Parse(time.RFC3339, raw)
			if err != nil {
				problems[name] = "must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z"
			}
			*into = t
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		problems["until"] = "must be after since"
	}
	if raw := q.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxAuditRows {
			problems["limit"] = "must be between 1 and " + strconv.Itoa(maxAuditRows)
		}
		f.Limit = n
	}
	if len(problems) > 0 {
		return invalid(problems)
	}
	list, err := s.users.AuditLog(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, views(list, auditView))
	return nil
}
