package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func get(t *testing.T, h http.Handler, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestIndexAndAppRoutes(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/", "/sessions/12", "/reset/3/abc_DEF-123"} {
		rec := get(t, h, p)
		require.Equal(t, http.StatusOK, rec.Code, p)
		require.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"), p)
		require.Contains(t, rec.Body.String(), `<script type="module" src="/static/js/app.js">`, p)
		require.Equal(t, "no-cache", rec.Header().Get("Cache-Control"))
	}
}

func TestAssets(t *testing.T) {
	h := Handler()
	for path, ct := range map[string]string{
		"/static/js/app.js":        "text/javascript; charset=utf-8",
		"/static/js/api.js":        "text/javascript; charset=utf-8",
		"/static/app.css":          "text/css; charset=utf-8",
		"/static/favicon.svg":      "image/svg+xml",
		"/static/index.html":       "text/html; charset=utf-8",
		"/static/js/chart.js":      "text/javascript; charset=utf-8",
		"/static/js/pages/auth.js": "text/javascript; charset=utf-8",
	} {
		rec := get(t, h, path)
		require.Equal(t, http.StatusOK, rec.Code, path)
		require.Equal(t, ct, rec.Header().Get("Content-Type"), path)
		etag := rec.Header().Get("ETag")
		require.NotEmpty(t, etag, path)

		// A browser revalidating an unchanged file gets a 304 and no body.
		again := get(t, h, path, "If-None-Match", etag)
		require.Equal(t, http.StatusNotModified, again.Code, path)
		require.Empty(t, again.Body.String())
	}
}

func TestUnknownAssetIs404(t *testing.T) {
	h := Handler()
	for _, p := range []string{"/static/nope.js", "/static/js/", "/static", "/favicon.ico", "/x/y.png"} {
		require.Equal(t, http.StatusNotFound, get(t, h, p).Code, p)
	}
}

// The UI must obey the service's CSP (script-src 'self'; style-src 'self'): no inline script
// or style in the page.
func TestIndexHasNothingInline(t *testing.T) {
	body := get(t, Handler(), "/").Body.String()
	require.NotContains(t, body, "<style")
	require.NotContains(t, body, "style=")
	require.Equal(t, 1, strings.Count(body, "<script"), "only the module script")
	require.Contains(t, body, `<script type="module" src=`)
}
