package apiclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoginThenCallWithTheToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/auth/login":
			var body map[string]string
			_ = json.NewDecoder(r.Body).Decode(&body)
			if body["password"] != "right" {
				http.Error(w, `{"message":"unable to authenticate user"}`, http.StatusUnauthorized)
				return
			}
			_, _ = w.Write([]byte(`{"access":"tok"}`))
		case "/api/device":
			require.Equal(t, "Bearer tok", r.Header.Get("Authorization"))
			_, _ = w.Write([]byte(`[{"name":"NV1"}]`))
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	c := Client{Base: srv.URL}
	err := c.Login(ctx, "ann@lab.example", "wrong")
	require.ErrorContains(t, err, "401")
	require.ErrorContains(t, err, "unable to authenticate user")
	require.Empty(t, c.Token)

	require.NoError(t, c.Login(ctx, "ann@lab.example", "right"))
	var devices []map[string]string
	require.NoError(t, c.Call(ctx, http.MethodGet, "/api/device", nil, &devices))
	require.Equal(t, "NV1", devices[0]["name"])
}
