package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzDecodeJSON: whatever a client sends, decoding succeeds or fails with a 4xx, never a 500.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"email_address":"a@b.c","password":"x"}`, ``, `{`, `[]`, `{"password":7}`, `{} {}`, `null`, "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 1<<10)
		var req loginRequest
		if err := decodeJSON(r, &req); err != nil {
			e := statusOf(err)
			require.GreaterOrEqual(t, e.Status, 400, "%v", err)
			require.Less(t, e.Status, 500, "%v", err)
		}
	})
}
