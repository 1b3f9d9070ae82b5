// Package api is the HTTP edge of the service: the chi router, its middleware, the handlers of
// the REST API the lab's front end uses, and the OpenAPI document that describes them.
package api

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	tus "github.com/tus/tusd/v2/pkg/handler"

	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/dispatch"
	"github.com/jax-mba/mba/internal/mail"
	"github.com/jax-mba/mba/internal/storage"
)

// Config holds the HTTP settings; cmd/mba fills it from the binary's configuration.
type Config struct {
	MaxBodyBytes   int64
	RequestTimeout time.Duration
	CORSOrigins    []string
	TrustProxy     bool
	Info           InfoConfig // what GET /api/info tells the web UI
	// LinkOrigins are the origins invite and reset links may point at; anything else is
	// refused so the service cannot be made to mail a link to a phishing site.
	LinkOrigins []string
	LinkTTL     time.Duration
	// Throttles of login and password-reset attempts. The per-account ones count an account's
	// attempts from one client address (see accountClient).
	LoginPerAccount, LoginPerClient, ResetPerAccount, ResetPerClient Rate
	// HashMemoryKiB is the memory all password hashes running at once may take; it sets how
	// many run together (at least one). Zero means 128 MiB.
	HashMemoryKiB uint64
	// HashWait is how long a login waits for a free hash before a 503; zero means 2 s.
	HashWait time.Duration
	// MetricsToken, when set, lets a scraper read /metrics on the API listener with
	// Authorization: Bearer <token>; without it /metrics is served only by MetricsHandler
	// on an address of its own.
	MetricsToken string
	// RefusalLogEvery is how often refused requests (429, 503) are summed up in the log after
	// the first is logged; zero means a minute.
	RefusalLogEvery time.Duration
	Enclosures      EnclosureConfig
	Sessions        SessionConfig
	Uploads         UploadConfig
	Schedules       ScheduleConfig
	Alerts          AlertConfig
}

// HealthChecker is the part of the Temporal client /readyz needs.
type HealthChecker interface {
	Ping(ctx context.Context) error
}

// Deps are the Server's collaborators.
type Deps struct {
	Config     Config
	Log        *slog.Logger
	Pool       *pgxpool.Pool
	Users      UserStore
	Enclosures EnclosureStore
	Sessions   SessionStore
	Workflows  SessionWorkflows
	// Changes runs the changes of running sessions on their workflows (nil: those routes
	// answer 503).
	Changes  SessionChanges
	Mailer   mail.Sender
	Tokens   auth.Issuer
	Hasher   auth.Hasher
	Temporal HealthChecker
	Files    FileStore
	Storage  storage.Storage  // nil: uploads and downloads are off
	Now      func() time.Time // time.Now when nil

	// Alerts are read from the store; AlertWorkflows acknowledges and silences them (nil:
	// those routes answer 503).
	Alerts         AlertStore
	AlertWorkflows AlertWorkflows
	Prefs          PrefsStore // the users' notification preferences

	// Schedules is the read model of scheduled sessions; ScheduleTemporal their Temporal
	// Schedules (nil: the schedule changes answer 503).
	Schedules        ScheduleStore
	ScheduleTemporal Scheduler
	Templates        TemplateStore // the session templates
	Subjects         SubjectStore  // sessions' subjects, their search and manifests
}

// Server serves the API.
type Server struct {
	cfg        Config
	log        *slog.Logger
	pool       *pgxpool.Pool
	users      UserStore
	enclosures EnclosureStore
	sessions   SessionStore
	workflows  SessionWorkflows
	changes    SessionChanges
	mailer     mail.Sender
	tokens     auth.Issuer
	hasher     auth.Hasher
	temporal   HealthChecker
	files      FileStore
	storage    storage.Storage
	tus        *tus.UnroutedHandler // nil without storage
	staging    stagingStore         // tus's staged uploads
	now        func() time.Time
	metrics    *metrics
	// registrations limits new enclosure names (nil: no limit); unavailableLog bounds the
	// log lines of heartbeats refused while the database is away.
	registrations  *throttle
	unavailableLog *everyLog
	// background tracks mail sent after the response (password reset), so shutdown waits.
	background chan struct{}
	// hashSlots bounds the password hashes running at once (each takes the hasher's memory).
	hashSlots chan struct{}
	refusals  *refusalLog

	loginPerAccount, loginPerClient, resetPerAccount, resetPerClient *throttle

	alerts         AlertStore
	alertWorkflows AlertWorkflows
	prefs          PrefsStore

	schedules         ScheduleStore
	schedulesTemporal Scheduler
	templates         TemplateStore
	subjects          SubjectStore
}

// NewServer builds a Server from its dependencies.
func NewServer(d Deps) *Server {
	now := d.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{
		cfg: d.Config, log: d.Log, pool: d.Pool, users: d.Users, mailer: d.Mailer,
		enclosures: d.Enclosures, sessions: d.Sessions, workflows: d.Workflows, changes: d.Changes,
		tokens: d.Tokens, hasher: d.Hasher, temporal: d.Temporal, now: now,
		metrics:         newMetrics(d.Pool, now, d.Config.Enclosures.DownAfter, d.Config.Alerts),
		background:      make(chan struct{}, 64),
		hashSlots:       make(chan struct{}, hashSlots(d.Config.HashMemoryKiB, d.Hasher)),
		refusals:        newRefusalLog(d.Log, cmp.Or(d.Config.RefusalLogEvery, time.Minute)),
		loginPerAccount: newThrottle(d.Config.LoginPerAccount, now),
		loginPerClient:  newThrottle(d.Config.LoginPerClient, now),
		resetPerAccount: newThrottle(d.Config.ResetPerAccount, now),
		resetPerClient:  newThrottle(d.Config.ResetPerClient, now),
		files:           d.Files,
		storage:         d.Storage,
		unavailableLog:  &everyLog{period: 30 * time.Second},

		alerts: d.Alerts, alertWorkflows: d.AlertWorkflows, prefs: d.Prefs,
		schedules: d.Schedules, schedulesTemporal: d.ScheduleTemporal,
		templates: d.Templates, subjects: d.Subjects,
	}
	if d.Config.Enclosures.RegisterRate.Burst > 0 {
		s.registrations = newThrottle(d.Config.Enclosures.RegisterRate, now)
	}
	if s.storage != nil {
		var err error
		if s.tus, err = s.newTus(); err != nil {
			s.log.Error("uploads are off", "error", err)
		}
	}
	return s
}

// hashSlots is how many password hashes of h fit in budgetKiB at once.
func hashSlots(budgetKiB uint64, h auth.Hasher) int {
	if budgetKiB == 0 {
		budgetKiB = 128 << 10
	}
	return int(max(1, min(1024, budgetKiB/uint64(max(h.MemoryKiB, 1)))))
}

// heartbeatRoute is the enclosures' poll (PROTOCOL.md section 1).
const heartbeatRoute = "/api/device/heartbeat"

// Handler returns the router with every route of the service.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(requestID, s.accessLog, s.recoverPanics, securityHeaders, s.cors)
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.handle(func(http.ResponseWriter, *http.Request) error {
		return errorf(http.StatusMethodNotAllowed, "method not allowed")
	}))

	r.Group(func(r chi.Router) {
		r.Use(s.limits)
		r.Get("/healthz", s.healthz)
		r.Get("/readyz", s.readyz)
		r.Method(http.MethodGet, "/metrics", s.metricsOnAPI())
		docsRoutes(r)
		// The web UI (package web): public static files; its data comes from /api like anyone's.
		r.Get("/", webUI.ServeHTTP)
		r.Get("/static/*", webUI.ServeHTTP)
	})

	r.Route("/api", func(r chi.Router) {
		r.Use(noStore)
		s.fileTransferRoutes(r)
		r.Group(func(r chi.Router) {
			r.Use(s.limits)
			r.Get("/", serveSwaggerIndex)
			r.Get("/swagger.json", serveOpenAPI)
			r.Post("/auth/login", s.handle(s.login))
			r.Post("/auth/refresh", s.handle(s.refresh))
			r.Post("/auth/logout", s.handle(s.logout))
			r.Post("/user/send_pw_reset", s.handle(s.sendPasswordReset))
			r.Post("/user/{uid}/reset_password/{token}", s.handle(s.resetPassword))
			// The enclosures' protocol: no user token (PROTOCOL.md section 1).
			r.Post(strings.TrimPrefix(heartbeatRoute, "/api"), s.handle(s.heartbeat))
			r.With(s.authenticateEnclosure).Get(strings.TrimPrefix(manifestRoute, "/api"), s.handle(s.agentManifest))

			r.Group(func(r chi.Router) {
				r.Use(s.authenticated)
				r.Get("/info", s.handle(s.info))
				r.Get("/user/{uid}", s.handle(s.getUser))
				r.Put("/user/{uid}/change_password", s.handle(s.changePassword))
				r.Get("/device", s.handle(s.listDevices))
				r.Get("/device/{device}", s.handle(s.getDevice))
				r.Get("/device/stream/{device}", s.handle(s.streamDevice))
				r.Get("/device/{device}/telemetry", s.handle(s.deviceTelemetry))
				r.Get("/recording-session", s.handle(s.listSessions))
				r.Post("/recording-session", s.handle(s.createSession))
				r.Get("/recording-session/{sid}", s.handle(s.getSession))
				r.Delete("/recording-session/{sid}", s.handle(s.deleteSession))
				r.Post("/recording-session/{sid}/unarchive", s.handle(s.unarchiveSession))
				r.Get("/recording-session/{sid}/events", s.handle(s.sessionEvents))
				r.Get("/recording-session/{sid}/live", s.handle(s.sessionLive))
				r.Get("/recording-session/{sid}/device-status/{did}", s.handle(s.getSessionDevice))
				r.Delete("/recording-session/{sid}/device-status/{did}", s.handle(s.removeSessionDevice))
				r.Patch("/recording-session/{sid}", s.handle(s.editSession))
				r.Post("/recording-session/{sid}/devices", s.handle(s.addSessionDevices))
				r.Post("/recording-session/{sid}/device-status/{did}/retry", s.handle(s.retrySessionDevice))
				r.Put("/recording-session/{sid}/duration", s.handle(s.setSessionDuration))
				alertRoutes(r, s)
				scheduleRoutes(r, s)
				templateRoutes(r, s)
				subjectRoutes(r, s)
				r.Get("/users/me/notification-prefs", s.handle(s.getNotificationPrefs))
				r.Put("/users/me/notification-prefs", s.handle(s.putNotificationPrefs))
				r.Group(func(r chi.Router) {
					r.Use(s.adminOnly)
					r.Get("/user", s.handle(s.listUsers))
					r.Get("/audit", s.handle(s.listAudit))
					r.Post("/user/invite", s.handle(s.invite))
					r.Patch("/user/{uid}", s.handle(s.updateUser))
					r.Put("/device/{device}/token", s.handle(s.setDeviceToken))
					r.Delete("/device/{device}/token", s.handle(s.deleteDeviceToken))
					r.Patch("/device/{device}", s.handle(s.updateDevice))
					r.Delete("/device/{device}", s.handle(s.retireDevice))
					r.Post("/device/{device}/approve", s.handle(s.approveDevice))
					r.Post("/device/{device}/reject", s.handle(s.rejectDevice))
				})
			})
		})
	})
	return r
}

// Wait blocks until background work (mail sent after a response) has finished or ctx ends.
func (s *Server) Wait(ctx context.Context) {
	for i := 0; i < cap(s.background); i++ {
		select {
		case s.background <- struct{}{}:
		case <-ctx.Done():
			return
		}
	}
}

// goBackground runs fn after the response, bounded in number, so shutdown can wait for it.
func (s *Server) goBackground(fn func()) {
	s.background <- struct{}{}
	go func() {
		defer func() { <-s.background }()
		fn()
	}()
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports whether the service can do its work: Postgres and Temporal both answer, and
// Temporal has the namespace and search attributes the workflows need.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"postgres": "ok", "temporal": "ok"}
	status := http.StatusOK
	if err := s.pool.Ping(ctx); err != nil {
		checks["postgres"], status = "unreachable", http.StatusServiceUnavailable
		s.log.WarnContext(ctx, "readiness: postgres", "error", err.Error())
	}
	if s.temporal == nil {
		checks["temporal"], status = "not configured", http.StatusServiceUnavailable
	} else if err := s.temporal.Ping(ctx); err != nil {
		checks["temporal"], status = "unreachable", http.StatusServiceUnavailable
		// A server that answers but cannot run our workflows says why (an operator's setting).
		if notReady := (*dispatch.NotReady)(nil); errors.As(err, &notReady) {
			checks["temporal"] = notReady.Problem
		}
		s.log.WarnContext(ctx, "readiness: temporal", "error", err.Error())
	}
	word := "ready"
	if status != http.StatusOK {
		word = "not ready"
	}
	writeJSON(w, status, map[string]any{"status": word, "checks": checks})
}
