package api

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// FuzzDecodeJSON: whatever a client sends, decoding succeeds or fails with a 4xx, never a 500;
// what it accepts is valid UTF-8 without NUL in any string and without unknown fields.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"email_address":"a@b.c","password":"x"}`, ``, `{`, `[]`, `{"password":7}`, `{} {}`, `null`, "\xff",
		`{"password":"a\u0000b"}`, `{"pasword":"x"}`, `{"name":"x","duration":18446744074,"device_spec":[{"device_id":1,"filename_prefix":"\u0000"}]}`,
		`{"fragment_hourlly":true}`, "{\"name\":\"\xc3\"}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, v := range []any{&loginRequest{}, &newSessionRequest{}} {
			r := httptest.NewRequest("POST", "/", strings.NewReader(body))
			r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 1<<10)
			if err := decodeJSON(r, v); err != nil {
				e := statusOf(err)
				require.GreaterOrEqual(t, e.Status, 400, "%v", err)
				require.Less(t, e.Status, 500, "%v", err)
				continue
			}
			require.True(t, utf8.ValidString(body), "accepted invalid UTF-8")
			_, hasNUL := nulField(reflect.ValueOf(v), "")
			require.False(t, hasNUL, "accepted a NUL")
		}
	})
}

func TestDecodeJSONNamesUnknownFields(t *testing.T) {
	r := httptest.NewRequest("POST", "/", strings.NewReader(`{"name":"x","fragment_hourlly":true}`))
	var req newSessionRequest
	e := statusOf(decodeJSON(r, &req))
	require.Equal(t, http.StatusBadRequest, e.Status)
	require.Equal(t, `unknown field "fragment_hourlly" in request body`, e.Message)
	require.Equal(t, map[string]string{"fragment_hourlly": "is not a field of this request"}, e.Fields)
}

// TestErrorsSayWhyInMessage: the original front end shows only message, so every 4xx names its
// reason there (as well as in errors), and a 429 says when to retry.
func TestErrorsSayWhyInMessage(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Config.ResetPerClient = Rate{Burst: 2, Every: 30 * time.Second} })
	h.user("admin@lab.example", "correct horse", true)
	admin, _ := h.login("admin@lab.example", "correct horse")

	res := h.do("POST", "/api/user/send_pw_reset", "", map[string]string{"email": "ann@lab.example", "url": "https://evil.example/reset"})
	require.Equal(t, http.StatusBadRequest, res.status)
	body := res.json(t)
	require.Equal(t, "url: link origin https://evil.example is not allowed (allowed: "+testLinkOrigin+"; set MBA_HTTP_LINK_ORIGINS)", body["message"])
	require.Equal(t, map[string]any{"url": strings.TrimPrefix(body["message"].(string), "url: ")}, body["errors"])

	res = h.do("POST", "/api/user/invite", admin, map[string]any{"email": "not-an-address", "url": "ftp://x"})
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Regexp(t, `^email: must be an e-mail address.*; url: must be an absolute http\(s\) URL`, res.json(t)["message"])

	// The origin is compared as browsers write it: case and the default port do not matter.
	res = h.do("POST", "/api/user/invite", admin, map[string]any{"email": "new@lab.example", "url": "HTTPS://UI.lab.example:443/reset"})
	require.Equal(t, http.StatusNoContent, res.status, "%s", res.body)

	res = h.do("POST", "/api/user/send_pw_reset", "", map[string]string{"email": "ann@lab.example", "url": testLinkOrigin})
	require.Equal(t, http.StatusAccepted, res.status)
	res = h.do("POST", "/api/user/send_pw_reset", "", map[string]string{"email": "ann@lab.example", "url": testLinkOrigin})
	require.Equal(t, http.StatusAccepted, res.status)
	res = h.do("POST", "/api/user/send_pw_reset", "", map[string]string{"email": "ann@lab.example", "url": testLinkOrigin})
	require.Equal(t, http.StatusTooManyRequests, res.status)
	retry := res.header.Get("Retry-After")
	require.NotEmpty(t, retry)
	require.Contains(t, res.json(t)["message"], "(retry in "+retry+" s)")
}

func TestOrigin(t *testing.T) {
	for raw, want := range map[string]string{
		"https://mba.lab.example/":          "https://mba.lab.example",
		"HTTPS://MBA.lab.example:443/ui/x":  "https://mba.lab.example",
		"http://mba.lab.example:80":         "http://mba.lab.example",
		"http://127.0.0.1:8080/reset":       "http://127.0.0.1:8080",
		"https://mba.lab.example:8443/path": "https://mba.lab.example:8443",
		"http://[::1]:80/":                  "http://[::1]",
	} {
		got, ok := Origin(raw)
		require.True(t, ok, raw)
		require.Equal(t, want, got, raw)
	}
	for _, raw := range []string{"", "mba.lab.example", "ftp://mba.lab.example", "https://", "/reset"} {
		_, ok := Origin(raw)
		require.False(t, ok, raw)
	}
}
