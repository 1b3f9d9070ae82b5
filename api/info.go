package api

import (
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/jax-mba/mba/api/web"
)

// InfoConfig is what GET /api/info tells signed-in clients about this deployment, so a front
// end can link to the Temporal Web UI without being configured separately.
type InfoConfig struct {
	TemporalUIURL     string // base URL of the Temporal Web UI, e.g. http://localhost:8233
	TemporalNamespace string
	Version           string        // the binary's build
	AuditRetention    time.Duration // the audit.retention setting; zero: forever
}

type infoView struct {
	TemporalUIURL     string `json:"temporal_ui_url"`
	TemporalNamespace string `json:"temporal_namespace"`
	Version           string `json:"version"`
	TimeZone          string `json:"time_zone"` // the lab's: schedules' times are in it
	// Whole days, rounded up so that a retention under a day does not read as 0 (forever).
	AuditRetentionDays int `json:"audit_retention_days"`
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	i := s.cfg.Info
	writeJSON(w, http.StatusOK, infoView{TemporalUIURL: strings.TrimRight(i.TemporalUIURL, "/"),
		TemporalNamespace: i.TemporalNamespace, Version: i.Version, TimeZone: s.location().String(),
		AuditRetentionDays: int(math.Ceil(i.AuditRetention.Hours() / 24))})
	return nil
}

// webUI is the embedded front end (package web).
var webUI = web.Handler()

// notFound answers a browser asking for a page of the front end (a bookmarked /sessions/12)
// with the app, and everything else, the API above all, with the JSON 404.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.Contains(r.Header.Get("Accept"), "text/html") &&
		p != "/api" && !strings.HasPrefix(p, "/api/") && web.IsAppRoute(p) {
		webUI.ServeHTTP(w, r)
		return
	}
	s.handle(func(http.ResponseWriter, *http.Request) error {
		return errorf(http.StatusNotFound, "no such resource")
	})(w, r)
}
