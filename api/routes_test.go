package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/internal/dispatch"
	"github.com/jax-mba/mba/internal/testenv"
)

// access is who may call a route.
type access int

const (
	public access = iota
	// ownCredential routes check a credential of their own (refresh or link token) instead.
	ownCredential
	signedIn
	adminOnly
	// enclosureToken routes are the upload agent's: an enclosure's name and its own token.
	enclosureToken
	// sessionOwner routes change a session: its creator or an administrator (or every
	// signed-in user with SessionConfig.AnyoneMayStop).
	sessionOwner
	// metricsToken: the scraper's bearer token on the API listener (or an address of its own).
	metricsToken
	// scheduleOwner routes change a schedule: its owner or an administrator.
	scheduleOwner
)

// routeAccess lists every route of the router with who may call it. TestEveryRouteIsListed
// fails when a route is added without being listed here, so no route escapes the check.
var routeAccess = map[string]access{
	"GET /healthz":                 public,
	"GET /readyz":                  public,
	"GET /metrics":                 metricsToken,
	"GET /swagger.json":            public,
	"GET /swaggerui":               public,
	"GET /swaggerui/":              public,
	"GET /swaggerui/*":             public,
	"GET /api/":                    public,
	"GET /":                        public,
	"GET /static/*":                public,
	"GET /api/info":                signedIn,
	"GET /api/swagger.json":        public,
	"POST /api/auth/login":         public,
	"POST /api/auth/refresh":       ownCredential,
	"POST /api/auth/logout":        ownCredential,
	"POST /api/user/send_pw_reset": public,
	"POST /api/user/{uid}/reset_password/{token}":                 ownCredential,
	"POST /api/device/heartbeat":                                  public, // the enclosure protocol has no user token
	"GET /api/device":                                             signedIn,
	"GET /api/device/{device}":                                    signedIn,
	"GET /api/device/{device}/telemetry":                          signedIn,
	"PUT /api/device/{device}/token":                              adminOnly,
	"DELETE /api/device/{device}/token":                           adminOnly,
	"PATCH /api/device/{device}":                                  adminOnly,
	"DELETE /api/device/{device}":                                 adminOnly,
	"POST /api/device/{device}/approve":                           adminOnly,
	"POST /api/device/{device}/reject":                            adminOnly,
	"GET /api/device/stream/{device}":                             signedIn,
	"GET /api/recording-session":                                  signedIn,
	"POST /api/recording-session":                                 signedIn,
	"GET /api/recording-session/{sid}":                            signedIn,
	"DELETE /api/recording-session/{sid}":                         sessionOwner,
	"POST /api/recording-session/{sid}/unarchive":                 sessionOwner,
	"GET /api/recording-session/{sid}/events":                     signedIn,
	"GET /api/recording-session/{sid}/live":                       signedIn,
	"GET /api/recording-session/{sid}/device-status/{did}":        signedIn,
	"DELETE /api/recording-session/{sid}/device-status/{did}":     sessionOwner,
	"PATCH /api/recording-session/{sid}":                          sessionOwner,
	"POST /api/recording-session/{sid}/devices":                   sessionOwner,
	"POST /api/recording-session/{sid}/device-status/{did}/retry": sessionOwner,
	"PUT /api/recording-session/{sid}/duration":                   sessionOwner,
	"GET /api/user/{uid}":                                         signedIn,
	"PUT /api/user/{uid}/change_password":                         signedIn,
	"GET /api/user":                                               adminOnly,
	"GET /api/audit":                                              adminOnly,
	"POST /api/user/invite":                                       adminOnly,
	"PATCH /api/user/{uid}":                                       adminOnly,
	"GET /api/agent/manifest":                                     enclosureToken,
	"POST /api/agent/uploads":                                     enclosureToken,
	"POST /api/agent/uploads/":                                    enclosureToken,
	"HEAD /api/agent/uploads/{upload}":                            enclosureToken,
	"PATCH /api/agent/uploads/{upload}":                           enclosureToken,
	"GET /api/files/{sid}/{device}/{name}":                        ownCredential, // a signed download link
	"GET /api/alerts":                                             signedIn,
	"GET /api/alerts/channels":                                    adminOnly,
	"GET /api/alerts/{aid}":                                       signedIn,
	"POST /api/alerts/{aid}/acknowledge":                          signedIn, // whoever answers at 3 a.m.
	"POST /api/alerts/{aid}/silence":                              signedIn,
	"GET /api/users/me/notification-prefs":                        signedIn, // one's own
	"PUT /api/users/me/notification-prefs":                        signedIn,
	"GET /api/schedules":                                          signedIn,
	"POST /api/schedules":                                         signedIn,
	"GET /api/schedules/{schid}":                                  signedIn,
	"PUT /api/schedules/{schid}":                                  scheduleOwner,
	"DELETE /api/schedules/{schid}":                               scheduleOwner,
	"POST /api/schedules/{schid}/pause":                           scheduleOwner,
	"POST /api/schedules/{schid}/resume":                          scheduleOwner,
	"POST /api/schedules/{schid}/trigger":                         scheduleOwner,
	// Templates are the lab's: every edit is a new version, each change audited.
	"GET /api/templates":                                             signedIn,
	"POST /api/templates":                                            signedIn,
	"GET /api/templates/{tid}":                                       signedIn,
	"DELETE /api/templates/{tid}":                                    signedIn,
	"POST /api/templates/{tid}/versions":                             signedIn,
	"POST /api/templates/{tid}/sessions":                             signedIn,
	"GET /api/recording-session/{sid}/clone":                         signedIn,
	"GET /api/recording-session/{sid}/manifest.json":                 signedIn,
	"GET /api/recording-session/{sid}/manifest.csv":                  signedIn,
	"PATCH /api/recording-session/{sid}/device-status/{did}/subject": sessionOwner,
}

func walkRoutes(t *testing.T, h http.Handler) []string {
	t.Helper()
	var routes []string
	require.NoError(t, chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		// chi reports sub-router routes with a "/*" joint; normalise to the pattern a request sees.
		route = strings.ReplaceAll(route, "/*/", "/")
		routes = append(routes, method+" "+route)
		return nil
	}))
	return routes
}

func TestEveryRouteIsListed(t *testing.T) {
	srv := NewServer(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	routes := walkRoutes(t, srv.Handler())
	for _, r := range routes {
		_, ok := routeAccess[r]
		require.True(t, ok, "route %s is not in routeAccess: say who may call it", r)
	}
	require.Len(t, routes, len(routeAccess), "routeAccess lists a route the router does not have")
}

// TestRoutesEnforceAuthentication calls every route without a token, with a user's token and
// with an administrator's token, and checks who gets in.
func TestRoutesEnforceAuthentication(t *testing.T) {
	h := newHarness(t)
	admin := h.user("admin@lab.example", "correct horse", true)
	ann := h.user("ann@lab.example", "correct horse", false)
	carl := h.user("carl@lab.example", "correct horse", false)
	adminToken, _ := h.login("admin@lab.example", "correct horse")
	userToken, userRefresh := h.login("ann@lab.example", "correct horse")
	creatorToken, _ := h.login("carl@lab.example", "correct horse")
	// Session 1, with enclosure 1 in it, is carl's: ann is a signed-in user who is not its creator.
	h.send(beat("NV1", 0, false, ""))
	require.Equal(t, int64(1), h.deviceID("NV1"))
	require.Equal(t, int64(1), h.sessionBy(carl.ID, 1))
	// Schedule 1 is carl's too (its Temporal side is absent here: the changes end in a 503).
	h.scheduleBy(carl.ID)

	for route, who := range routeAccess {
		method, pattern, _ := strings.Cut(route, " ")
		// Each caller names itself where a route takes a user id, so only the role decides.
		path := func(uid int64) string {
			return strings.NewReplacer("{uid}", fmt.Sprint(uid), "{token}", "x", "{device}", "1", "{sid}", "1", "{did}", "1", "{upload}", "x", "{name}", "x.avi", "{aid}", "1", "{schid}", "1", "{tid}", "1", "*", "index.html").Replace(pattern)
		}
		var body any
		if method != http.MethodGet {
			body = map[string]string{"password": "a long enough password"}
		}
		t.Run(route, func(t *testing.T) {
			anon := h.do(method, path(ann.ID), "", body)
			asUser := h.do(method, path(ann.ID), userToken, body)
			asAdmin := h.do(method, path(admin.ID), adminToken, body)
			switch who {
			case public:
				require.NotContains(t, []int{401, 403}, anon.status, "public route refused an anonymous call: %s", anon.body)
			case ownCredential:
				require.Equal(t, http.StatusUnauthorized, anon.status)
				require.Equal(t, http.StatusUnauthorized, asAdmin.status, "an access token is not the credential")
			case signedIn:
				require.Equal(t, http.StatusUnauthorized, anon.status)
				require.NotContains(t, []int{401, 403}, asUser.status, "%s", asUser.body)
				require.NotContains(t, []int{401, 403}, asAdmin.status, "%s", asAdmin.body)
			case adminOnly:
				require.Equal(t, http.StatusUnauthorized, anon.status)
				require.Equal(t, http.StatusForbidden, asUser.status)
				require.NotContains(t, []int{401, 403}, asAdmin.status, "%s", asAdmin.body)
			case sessionOwner, scheduleOwner:
				require.Equal(t, http.StatusUnauthorized, anon.status)
				require.Equal(t, http.StatusForbidden, asUser.status, "a user who did not create the session: %s", asUser.body)
				require.NotContains(t, []int{401, 403}, h.do(method, path(carl.ID), creatorToken, body).status, "its creator")
				require.NotContains(t, []int{401, 403}, asAdmin.status, "%s", asAdmin.body)
			case metricsToken:
				require.Contains(t, []int{401, 404}, anon.status)
				require.Contains(t, []int{401, 404}, asAdmin.status, "a user's token is not the metrics token")
				require.Equal(t, http.StatusOK, h.do(method, path(ann.ID), testMetricsToken, nil).status)
			case enclosureToken:
				require.Equal(t, http.StatusUnauthorized, anon.status)
				require.Equal(t, http.StatusUnauthorized, asUser.status, "a user's token is not an enclosure's")
				require.Equal(t, http.StatusUnauthorized, asAdmin.status, "a user's token is not an enclosure's")
			}
			// A refresh token is never an access token.
			if who == signedIn || who == adminOnly || who == sessionOwner || who == scheduleOwner {
				require.Equal(t, http.StatusUnauthorized, h.do(method, path(ann.ID), userRefresh, body).status)
			}
		})
	}
}

func TestOpenAPIListsEveryRoute(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(openAPI, &doc))
	srv := NewServer(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for _, r := range walkRoutes(t, srv.Handler()) {
		method, path, _ := strings.Cut(r, " ")
		ops, ok := doc.Paths[path]
		require.True(t, ok, "openapi.json lacks path %s", path)
		_, ok = ops[strings.ToLower(method)]
		require.True(t, ok, "openapi.json lacks %s", r)
	}
}

func TestDocsAreServed(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"/api/swagger.json", "/swagger.json"} {
		res := h.do("GET", p, "", nil)
		require.Equal(t, http.StatusOK, res.status)
		require.Equal(t, "3.0.3", res.json(t)["openapi"])
	}
	for _, p := range []string{"/api/", "/swaggerui/"} {
		res := h.do("GET", p, "", nil)
		require.Equal(t, http.StatusOK, res.status)
		require.Contains(t, string(res.body), `<div id="swagger-ui">`)
	}
	res := h.do("GET", "/swaggerui/swagger-ui-bundle.js", "", nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Greater(t, len(res.body), 500_000)
}

func TestEdge(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Config.CORSOrigins = []string{"https://ui.lab.example"} })

	res := h.do("GET", "/no/such/thing", "", nil)
	require.Equal(t, http.StatusNotFound, res.status)
	require.Equal(t, "no such resource", res.json(t)["message"])
	require.NotEmpty(t, res.header.Get("X-Request-Id"))
	require.Equal(t, "nosniff", res.header.Get("X-Content-Type-Options"))

	require.Equal(t, http.StatusMethodNotAllowed, h.do("DELETE", "/api/auth/login", "", nil).status)

	req, _ := http.NewRequest("OPTIONS", h.http.URL+"/api/auth/login", nil)
	req.Header.Set("Origin", "https://ui.lab.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	pre, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	pre.Body.Close()
	require.Equal(t, http.StatusNoContent, pre.StatusCode)
	require.Equal(t, "https://ui.lab.example", pre.Header.Get("Access-Control-Allow-Origin"))

	req.Header.Set("Origin", "https://elsewhere.example")
	pre, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	pre.Body.Close()
	require.Empty(t, pre.Header.Get("Access-Control-Allow-Origin"), "unknown origins get no CORS grant")

	require.Equal(t, http.StatusOK, h.do("GET", "/healthz", "", nil).status)
	h.do("POST", "/api/auth/login", "", map[string]string{"email_address": "x@lab.example", "password": "12345678"})
	metrics := h.metrics()
	require.Contains(t, metrics, `mba_http_requests_total{method="POST",route="/api/auth/login",status="401"} 1`)
	require.Contains(t, metrics, "mba_db_pool_max_connections")
	require.Contains(t, metrics, "mba_outbox_pending 0")
}

func TestPanicsBecome500WithoutDetail(t *testing.T) {
	srv := NewServer(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Config: Config{MaxBodyBytes: 1024, RequestTimeout: time.Second}})
	r := chi.NewRouter()
	r.Use(srv.recoverPanics)
	r.Get("/boom", func(http.ResponseWriter, *http.Request) { panic("secret internal detail") })
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))
	require.Equal(t, http.StatusInternalServerError, rec.Code)
	require.JSONEq(t, `{"message":"internal server error"}`, rec.Body.String())
}

func TestReadyz(t *testing.T) {
	h := newHarness(t)
	res := h.do("GET", "/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, res.status, "no Temporal client configured")

	c, err := client.Dial(client.Options{HostPort: testenv.TemporalAddress(t)})
	require.NoError(t, err)
	defer c.Close()
	h = newHarness(t, func(d *Deps) {
		d.Temporal = pingFunc(func(ctx context.Context) error { return dispatch.Ready(ctx, c, "default") })
	})
	res = h.do("GET", "/readyz", "", nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, map[string]any{"postgres": "ok", "temporal": "ok"}, res.json(t)["checks"])

	// A server that answers but lacks the configured namespace is no use: 503, saying why.
	h = newHarness(t, func(d *Deps) {
		d.Temporal = pingFunc(func(ctx context.Context) error { return dispatch.Ready(ctx, c, "mba-typo") })
	})
	res = h.do("GET", "/readyz", "", nil)
	require.Equal(t, http.StatusServiceUnavailable, res.status, "%s", res.body)
	require.Equal(t, `namespace "mba-typo" does not exist on the Temporal server`,
		res.json(t)["checks"].(map[string]any)["temporal"])
}

type pingFunc func(ctx context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }
