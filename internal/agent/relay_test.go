package agent

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/protocol"
)

const relayBeat = `{"name":"nv07","timestamp":"2026-01-02T03:04:05Z","sensor_status":{"camera":{"recording":false,"duration":139627186819480}},"system_info":{"uptime":1,"load":0,"total_ram":2,"free_ram":1,"total_disk":4,"free_disk":3,"release":""}}`

// relayTo serves a relay in front of upstream, as the client would reach it.
func relayTo(t *testing.T, upstream string, timeout time.Duration) string {
	t.Helper()
	h, err := NewRelay(RelayConfig{Addr: "127.0.0.1:0", ServerURL: upstream, Token: "enclosure-token", Timeout: timeout},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/api"
}

type relayed struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

// clientPost is the client's heartbeat: no Authorization, its own 30 s timeout.
func clientPost(t *testing.T, api string) relayed {
	t.Helper()
	start := time.Now()
	c := &http.Client{Timeout: 30 * time.Second}
	res, err := c.Post(api+"/device/heartbeat", "application/json", bytes.NewReader([]byte(relayBeat)))
	require.NoError(t, err, "the client must get an answer before its timeout")
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	r := relayed{status: res.StatusCode, header: res.Header, body: body, took: time.Since(start)}
	require.NoError(t, protocol.CheckReply(r.status, r.header.Get("Content-Type"), r.body), "%d %s would crash the client", r.status, r.body)
	return r
}

func TestRelayForwardsWithTheTokenAndReturnsTheReplyUnchanged(t *testing.T) {
	start := []byte(`{"command_name":"START","parameters":"{\"session_id\":12,\"duration\":86400,\"fragment_hourly\":true,\"file_prefix\":\"cage7\",\"target_fps\":30,\"apply_filter\":false}"}`)
	var gotAuth string
	var gotBody []byte
	replies := []func(w http.ResponseWriter){
		func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Request-Id", "abc")
			_, _ = w.Write(start)
		},
		func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) },
		func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "10")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"message":"the service's database is unavailable"}` + "\n"))
		},
	}
	n := 0
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/api/device/heartbeat", r.URL.Path)
		gotAuth = r.Header.Get("Authorization")
		gotBody, _ = io.ReadAll(r.Body)
		replies[n](w)
		n++
	}))
	defer up.Close()
	api := relayTo(t, up.URL, 5*time.Second)

	r := clientPost(t, api)
	require.Equal(t, "Bearer enclosure-token", gotAuth, "the relay adds the enclosure's token")
	require.Equal(t, relayBeat, string(gotBody), "the heartbeat is forwarded unchanged")
	require.Equal(t, http.StatusOK, r.status)
	require.Equal(t, start, r.body, "byte for byte")
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, "abc", r.header.Get("X-Request-Id"))

	r = clientPost(t, api)
	require.Equal(t, http.StatusNoContent, r.status)
	require.Empty(t, r.body)

	r = clientPost(t, api)
	require.Equal(t, http.StatusServiceUnavailable, r.status)
	require.Equal(t, "10", r.header.Get("Retry-After"))
	require.Equal(t, `{"message":"the service's database is unavailable"}`+"\n", string(r.body))
}

func TestRelayDuringAnOutageAnswersTheClientInTime(t *testing.T) {
	// The service hangs: the client gets a JSON error well before its 30 s timeout.
	hang := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer up.Close()
	defer close(hang)
	r := clientPost(t, relayTo(t, up.URL, 2*time.Second))
	require.Equal(t, http.StatusGatewayTimeout, r.status)
	require.Contains(t, string(r.body), "did not answer within 2s")
	require.Less(t, r.took, 20*time.Second)

	// Nobody listens: a quick 502.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	r = clientPost(t, relayTo(t, dead, 2*time.Second))
	require.Equal(t, http.StatusBadGateway, r.status)
	require.Contains(t, string(r.body), "cannot be reached")

	// A proxy's HTML error page in front of the service: the client gets JSON instead.
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
	}))
	defer html.Close()
	r = clientPost(t, relayTo(t, html.URL, 2*time.Second))
	require.Equal(t, http.StatusBadGateway, r.status)
	require.Contains(t, string(r.body), "answered 502")
}

func TestRelayConfig(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []RelayConfig{
		{Addr: "0.0.0.0:8079", ServerURL: "https://mba.lab", Token: "t"}, // not loopback
		{Addr: "127.0.0.1:8079", ServerURL: "https://mba.lab"},           // no token
		{Addr: "127.0.0.1:8079", ServerURL: "mba.lab", Token: "t"},       // not a URL
		{Addr: "127.0.0.1:8079", ServerURL: "https://mba.lab", Token: "t", Timeout: 30 * time.Second},
	} {
		_, err := NewRelay(c, log)
		require.Error(t, err, "%+v", c)
	}
	_, err := NewRelay(RelayConfig{Addr: "[::1]:8079", ServerURL: "https://mba.lab", Token: "t"}, log)
	require.NoError(t, err)
}
