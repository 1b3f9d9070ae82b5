package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/dispatch"
	"github.com/jax-mba/mba/internal/mail"
	"github.com/jax-mba/mba/internal/manifest"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/storage"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/worker"
	"github.com/jax-mba/mba/workflows"
)

// settings are short deadlines for sessions of seconds.
var settings = workflows.Settings{StartDeadline: time.Minute, EndGrace: 20 * time.Second, SilenceTimeout: 20 * time.Second,
	Resume: true, MinSegment: time.Second, ReleaseTimeout: 30 * time.Second, UploadDeadline: 15 * time.Second, Reuploads: 2}

// stack is the whole service: API, dispatcher and worker, each of which a test may restart.
type stack struct {
	t        *testing.T
	pool     *pgxpool.Pool
	store    *store.Store
	temporal client.Client
	queue    string
	api      *httptest.Server
	handler  atomic.Pointer[http.Handler] // swapped by restartAPI; the address stays
	token    string

	settings       workflows.Settings
	files          storage.Storage // nil: no uploads (withStorage sets one)
	staging        string
	patchBytes     atomic.Int64 // upload bytes received by the API
	worker         sdkworker.Worker
	workerLater    bool           // the test starts the worker itself (a slow or late Temporal side)
	timeZone       *time.Location // the lab's, for the API (schedules, the audit page's filter); nil: UTC
	stopDispatcher func()
}

func newStack(t *testing.T, opts ...func(*stack)) *stack {
	t.Helper()
	return newStackOn(t, testenv.TemporalAddress(t), opts...)
}

// newStackOn runs the stack against the Temporal frontend at address.
func newStackOn(t *testing.T, address string, opts ...func(*stack)) *stack {
	t.Helper()
	pool := testenv.MigratedPool(t)
	// Session ids become workflow ids in a namespace the whole suite shares: start this
	// database's ids somewhere no other test's are.
	_, err := pool.Exec(context.Background(), fmt.Sprintf(`ALTER TABLE sessions ALTER COLUMN id RESTART WITH %d`, rand.Int64N(1<<30)+1000))
	require.NoError(t, err)
	c, err := client.Dial(client.Options{HostPort: address, Logger: quietTemporal()})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	s := &stack{t: t, pool: pool, store: store.New(pool), temporal: c, queue: testenv.RandomName("e2e-"), settings: settings}
	for _, o := range opts {
		o(s)
	}
	if !s.workerLater {
		s.startWorker()
	}
	s.startDispatcher()
	s.startAPI()
	t.Cleanup(func() { s.stopWorker(); s.stopDispatcher() })

	hash, err := auth.Hasher{MemoryKiB: 1024, Time: 1, Threads: 1}.Hash("correct horse")
	require.NoError(t, err)
	_, err = s.store.CreateUser(context.Background(), "ann@lab.example", hash, true)
	require.NoError(t, err)
	var tokens map[string]string
	s.call("POST", "/api/auth/login", map[string]string{"email_address": "ann@lab.example", "password": "correct horse"}, &tokens)
	s.token = tokens["access"]
	return s
}

func quietTemporal() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (s *stack) sessions() dispatch.Sessions {
	return dispatch.Sessions{Temporal: s.temporal, TaskQueue: s.queue, Settings: s.settings}
}

// alerts raises, clears and takes alerts on the stack's worker, with the worker's policy.
func (s *stack) alerts() dispatch.Alerts {
	return dispatch.Alerts{Temporal: s.temporal, TaskQueue: s.queue, Policy: workflows.DefaultAlertPolicy}
}

// sessionRules are the rules of new sessions of the stack's API and worker.
var sessionRules = recording.Rules{MaxEnclosures: 100, MinFPS: 1, MaxFPS: 120, MaxDuration: 31 * 24 * time.Hour, BytesPerSecond: 1}

// linkOrigin is where the links of the stack's invitation and reset e-mails may point.
const linkOrigin = "https://mba.lab.example"

// downAfter is the silence after which the stack's API counts an enclosure DOWN.
const downAfter = 5 * time.Second

func (s *stack) startWorker() {
	deps := worker.StoreDeps(s.store)
	deps.Sessions = worker.StoreSessions(s.store, sessionRules, downAfter)
	deps.Schedules = worker.StoreSchedules(s.store, downAfter)
	deps.Changes = worker.StoreSessionChanges(s.store, sessionRules, downAfter)
	if s.files != nil {
		deps.Storage = s.files
		deps.Manifests = manifest.Writer{Source: s.store, Storage: s.files}
	}
	s.worker = worker.New(s.temporal, s.queue, deps)
	require.NoError(s.t, s.worker.Start())
}

func (s *stack) stopWorker() {
	if s.worker != nil {
		s.worker.Stop()
		s.worker = nil
	}
}

func (s *stack) startDispatcher() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d := &dispatch.Dispatcher{Pool: s.pool, Outbox: s.store, Temporal: s.temporal, Namespace: "default",
		Sessions: s.sessions(), Log: quietTemporal(), Poll: 100 * time.Millisecond,
		Backoff: 100 * time.Millisecond, MaxBackoff: time.Second, Lease: 3 * time.Second, Holder: testenv.RandomName("e2e-")}
	go func() { defer close(done); _ = d.Run(ctx) }()
	s.stopDispatcher = func() { cancel(); <-done; s.stopDispatcher = func() {} }
}

func (s *stack) startAPI() {
	s.setAPI()
	s.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			r.Body = countingBody{r.Body, &s.patchBytes}
		}
		(*s.handler.Load()).ServeHTTP(w, r)
	}))
	s.t.Cleanup(s.api.Close)
}

// restartAPI replaces the API and its dispatcher with fresh ones, as a redeploy does.
func (s *stack) restartAPI() {
	s.stopDispatcher()
	s.setAPI()
	s.startDispatcher()
}

func (s *stack) setAPI() {
	batcher := s.store.NewHeartbeatBatcher(2, 32)
	s.t.Cleanup(batcher.Close)
	deps := api.Deps{
		Config: api.Config{MaxBodyBytes: 1 << 20, RequestTimeout: 10 * time.Second, LinkTTL: time.Hour, LinkOrigins: []string{linkOrigin},
			LoginPerAccount: api.Rate{Burst: 100, Every: time.Second}, LoginPerClient: api.Rate{Burst: 100, Every: time.Second},
			ResetPerAccount: api.Rate{Burst: 1, Every: time.Hour}, ResetPerClient: api.Rate{Burst: 1, Every: time.Hour},
			Enclosures: api.EnclosureConfig{AutoRegister: true, DownAfter: downAfter, StreamKeepAlive: 10 * time.Second,
				TelemetryBucket: time.Minute, ClockSkewWarning: 30 * time.Second,
				AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}},
			Sessions: api.SessionConfig{Rules: sessionRules}, Schedules: api.ScheduleConfig{TimeZone: s.timeZone},
			Info: api.InfoConfig{TemporalUIURL: "http://127.0.0.1:8233", TemporalNamespace: "default", Version: "e2e",
				AuditRetention: 30 * 24 * time.Hour},
			Alerts: api.AlertConfig{ChannelFailures: 3}},
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})), Pool: s.pool, Users: s.store, Enclosures: store.BatchedStore{Store: s.store, Batcher: batcher}, Sessions: s.store, Workflows: s.sessions(), Changes: s.sessions(),
		Mailer: mail.Log{Store: s.store, Logger: quietTemporal()},
		Tokens: auth.Issuer{Secret: []byte("e2e secret e2e secret e2e secret!!"), AccessTTL: time.Hour, RefreshTTL: time.Hour},
		Hasher: auth.Hasher{MemoryKiB: 1024, Time: 1, Threads: 1},
		Files:  s.store,
		Alerts: s.store, AlertWorkflows: s.alerts(), Prefs: s.store,
		Schedules: s.store, ScheduleTemporal: dispatch.Schedules{Temporal: s.temporal, TaskQueue: s.queue},
		Templates: s.store, Subjects: s.store,
	}
	if s.files != nil {
		deps.Storage = s.files
		deps.Config.Uploads = api.UploadConfig{StagingDir: s.staging, MaxFileBytes: 1 << 40, ManifestSince: time.Hour, DownloadTTL: time.Minute}
	}
	srv := api.NewServer(deps)
	h := srv.Handler()
	s.handler.Store(&h)
}

// call sends an API request and decodes the JSON reply into out (if not nil).
func (s *stack) call(method, path string, body, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(s.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.api.URL+path, rd)
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "application/json")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(s.t, err)
	if out != nil && len(raw) > 0 {
		require.NoError(s.t, json.Unmarshal(raw, out), "%s", raw)
	}
	return res.StatusCode
}

// session reads a session through the API.
func (s *stack) session(id int64) api.SessionView {
	s.t.Helper()
	var x api.SessionView
	require.Equal(s.t, http.StatusOK, s.call("GET", fmt.Sprintf("/api/recording-session/%d", id), nil, &x))
	return x
}

// waitSession waits until the session has status.
func (s *stack) waitSession(id int64, status recording.SessionStatus, within time.Duration) api.SessionView {
	s.t.Helper()
	var x api.SessionView
	require.Eventually(s.t, func() bool {
		x = s.session(id)
		return x.Status == status
	}, within, 100*time.Millisecond, "session %d never reached %s", id, status)
	return x
}

// countingBody counts the bytes a request body delivers.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
