package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/jax-mba/mba/internal/auth"
)

// routePattern is the chi route that matched, e.g. /api/user/{uid}; "unmatched" for 404s.
// Logs and metrics use it instead of the path, which can hold secrets (reset tokens).
func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
	}
	return "unmatched"
}

// requestIDPattern is what a client's X-Request-Id (a proxy's, usually) must look like to be
// kept: short and plain, so it cannot forge log lines or bloat them.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{8,64}$`)

// requestID gives each request an id (the client's when it is well-formed, else a new one)
// for the logs, and echoes it so a user can quote it in a bug report.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(middleware.RequestIDHeader)
		if !requestIDPattern.MatchString(id) {
			id = auth.RandomID()
		}
		w.Header().Set(middleware.RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), middleware.RequestIDKey, id)))
	})
}

// noStore keeps API answers (tokens, user data, sessions) out of browser and proxy caches.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// refusalLog bounds the log lines of refused requests (429, 503): the first of an interval is
// logged, the others are counted and summed up in one line per route when the interval ends,
// so a flood writes a few lines instead of one per request.
type refusalLog struct {
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	open    bool           // an interval is running
	skipped map[string]int // route -> refusals not logged in it
}

func newRefusalLog(log *slog.Logger, every time.Duration) *refusalLog {
	return &refusalLog{log: log, every: every, skipped: map[string]int{}}
}

// first reports whether a refusal on route is the first of its interval (log it).
func (l *refusalLog) first(route string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open {
		l.skipped[route]++
		return false
	}
	l.open = true
	time.AfterFunc(l.every, l.flush)
	return true
}

func (l *refusalLog) flush() {
	l.mu.Lock()
	skipped := l.skipped
	l.skipped, l.open = map[string]int{}, false
	l.mu.Unlock()
	for route, n := range skipped {
		l.log.Warn("refused requests not logged one by one", "route", route, "count", n, "interval", l.every.String())
	}
}

// accessLog logs one structured line per request and records its metrics.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		elapsed := time.Since(start)
		route := routePattern(r)
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		s.metrics.observe(route, r.Method, status, elapsed)
		if (route == heartbeatRoute || route == manifestRoute) && status < 300 {
			return // a fleet's routine polls are in the metrics; a line each would drown the log
		}
		if route == heartbeatRoute && status == http.StatusServiceUnavailable {
			return // an outage: the heartbeat handler logs it now and then, not once per enclosure poll
		}
		refused := status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
		if refused && !s.refusals.first(route) {
			return
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		s.log.Log(r.Context(), level, "http request",
			"method", r.Method, "route", route, "status", status, "bytes", ww.BytesWritten(),
			"duration_ms", float64(elapsed.Microseconds())/1000, "client_ip", s.clientIP(r),
			"request_id", middleware.GetReqID(r.Context()))
	})
}

// recoverPanics turns a panic into a logged 500 instead of a dropped connection.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			rec := recover()
			if rec == nil {
				return
			}
			if rec == http.ErrAbortHandler {
				panic(rec)
			}
			s.log.ErrorContext(r.Context(), "panic serving request", "panic", fmt.Sprint(rec),
				"stack", string(debug.Stack()), "request_id", middleware.GetReqID(r.Context()))
			writeError(w, r, s.log, errors.New("panic"))
		}()
		next.ServeHTTP(w, r)
	})
}

// limits bounds each request's body size and running time (every route but the file
// transfers: see fileTransferRoutes).
func (s *Server) limits(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.cfg.MaxBodyBytes {
			writeError(w, r, s.log, &http.MaxBytesError{Limit: s.cfg.MaxBodyBytes})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// securityHeaders are safe defaults for every response, API and pages alike.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		// Swagger UI needs data: images and nothing inline.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		next.ServeHTTP(w, r)
	})
}

// cors allows the configured origins (none by default: same-origin only).
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		w.Header().Add("Vary", "Origin")
		if origin == "" || !(slices.Contains(s.cfg.CORSOrigins, origin) || slices.Contains(s.cfg.CORSOrigins, "*")) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "Retry-After, X-Request-Id")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// clientIP is the address throttling and logs use. X-Forwarded-For is believed only behind a
// trusted proxy (nginx appends the real peer as the last entry).
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.TrustProxy {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			parts := strings.Split(xff, ",")
			if ip := strings.TrimSpace(parts[len(parts)-1]); net.ParseIP(ip) != nil {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
