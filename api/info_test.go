package api

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestInfo(t *testing.T) {
	h := newHarness(t, func(d *Deps) {
		d.Config.Info = InfoConfig{TemporalUIURL: "http://temporal.lab.example:8233/", TemporalNamespace: "mba", Version: "v1.2.3",
			AuditRetention: 90*24*time.Hour + time.Minute}
	})
	h.user("ann@lab.example", "correct horse", false)
	token, _ := h.login("ann@lab.example", "correct horse")
	res := h.do("GET", "/api/info", token, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, map[string]any{"temporal_ui_url": "http://temporal.lab.example:8233", "temporal_namespace": "mba", "version": "v1.2.3",
		"time_zone": "UTC", "audit_retention_days": float64(91)}, res.json(t),
		"the lab's time zone (schedules' times are read and shown in it); the audit retention in days, rounded up")
}

// The web UI is served at /, and a browser asking for an app page by path gets it too, while
// API clients and everything under /api keep their JSON 404.
func TestWebUIRoutes(t *testing.T) {
	h := newHarness(t)
	get := func(path, accept string) (*http.Response, string) {
		req, err := http.NewRequest("GET", h.http.URL+path, nil)
		require.NoError(t, err)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res, string(body)
	}
	html := "text/html,application/xhtml+xml,*/*;q=0.8"
	for _, p := range []string{"/", "/reset/4/some-token_x"} {
		res, body := get(p, html)
		require.Equal(t, http.StatusOK, res.StatusCode, p)
		require.Contains(t, body, "/static/js/app.js", p)
		require.NotEmpty(t, res.Header.Get("Content-Security-Policy"), "the UI gets the same CSP")
	}
	res, _ := get("/static/js/app.js", "")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/javascript; charset=utf-8", res.Header.Get("Content-Type"))

	for _, c := range []struct{ path, accept string }{
		{"/no/such/thing", ""}, {"/api/no/such/thing", html}, {"/static/missing.js", html}, {"/image.png", html},
	} {
		res, body := get(c.path, c.accept)
		require.Equal(t, http.StatusNotFound, res.StatusCode, c.path)
		if c.path != "/static/missing.js" {
			require.JSONEq(t, `{"message":"no such resource"}`, body, c.path)
		}
	}
}
