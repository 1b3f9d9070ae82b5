package api

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
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
