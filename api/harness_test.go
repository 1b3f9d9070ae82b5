package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/mail"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/workflows"
)

// clock is a settable time source shared by the server, its tokens and throttles.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// harness is a real server on a database of its own.
type harness struct {
	t         testing.TB
	srv       *Server
	http      *httptest.Server
	store     *store.Store
	clock     *clock
	mailer    *sentMail
	workflows *fakeWorkflows
}

// sentMail keeps, in memory, what the server mailed successfully: the mail_log table keeps
// links redacted, so tests read the working ones here.
type sentMail struct {
	next mail.Sender
	mu   sync.Mutex
	msgs []mail.Message
}

func (m *sentMail) Send(ctx context.Context, msg mail.Message) error {
	if err := m.next.Send(ctx, msg); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, msg)
	return nil
}

// to returns the bodies mailed to email, oldest first.
func (m *sentMail) to(email string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var bodies []string
	for _, msg := range m.msgs {
		if strings.EqualFold(msg.To, email) {
			bodies = append(bodies, msg.Body)
		}
	}
	return bodies
}

// fakeWorkflows stands for the session workflows (the end-to-end tests drive the real ones;
// cancel and removal reach them through the outbox).
type fakeWorkflows struct{}

func (f *fakeWorkflows) Status(context.Context, int64) (workflows.SessionState, error) {
	return workflows.SessionState{}, errors.New("no workflow in this test")
}

var testHasher = auth.Hasher{MemoryKiB: 1024, Time: 1, Threads: 1}

const testLinkOrigin = "https://ui.lab.example"

const testMetricsToken = "metrics-token-for-tests"

// metrics scrapes /metrics as Prometheus does, with the metrics token.
func (h *harness) metrics() string {
	h.t.Helper()
	res := h.do("GET", "/metrics", testMetricsToken, nil)
	require.Equal(h.t, http.StatusOK, res.status, "%s", res.body)
	return string(res.body)
}

type harnessOption func(*Deps)

func newHarness(t testing.TB, opts ...harnessOption) *harness {
	t.Helper()
	pool := testenv.MigratedPool(t)
	st := store.New(pool)
	clk := &clock{now: time.Now()}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := Deps{
		Config: Config{
			MaxBodyBytes: 64 << 10, RequestTimeout: 10 * time.Second,
			LinkOrigins: []string{testLinkOrigin}, LinkTTL: 24 * time.Hour, MetricsToken: testMetricsToken,
			LoginPerAccount: Rate{Burst: 5, Every: time.Minute}, LoginPerClient: Rate{Burst: 50, Every: time.Second},
			ResetPerAccount: Rate{Burst: 3, Every: 10 * time.Minute}, ResetPerClient: Rate{Burst: 50, Every: time.Second},
			Enclosures: EnclosureConfig{AutoRegister: true, DownAfter: time.Minute, StreamKeepAlive: 10 * time.Second,
				TelemetryBucket: 5 * time.Minute, ClockSkewWarning: 30 * time.Second,
				AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}},
			Sessions: SessionConfig{Rules: recording.Rules{MaxEnclosures: 5, MinFPS: 1, MaxFPS: 120, MaxDuration: 90 * 24 * time.Hour,
				BytesPerSecond: 1_000_000}},
		},
		Log:        log,
		Pool:       pool,
		Users:      st,
		Enclosures: st,
		Sessions:   st,
		Workflows:  &fakeWorkflows{},
		Mailer:     mail.Log{Store: st, Logger: log},
		Tokens: auth.Issuer{Secret: []byte("test secret test secret test secret!"), AccessTTL: 15 * time.Minute,
			RefreshTTL: 30 * 24 * time.Hour, Now: clk.Now},
		Hasher:    testHasher,
		Now:       clk.Now,
		Files:     st,
		Alerts:    st,
		Prefs:     st,
		Schedules: st,
		Templates: st,
		Subjects:  st,
	}
	for _, o := range opts {
		o(&d)
	}
	sent := &sentMail{next: d.Mailer}
	d.Mailer = sent
	if d.Enclosures == EnclosureStore(st) {
		batcher := st.NewHeartbeatBatcher(2, 16)
		t.Cleanup(batcher.Close)
		d.Enclosures = store.BatchedStore{Store: st, Batcher: batcher}
	}
	srv := NewServer(d)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	wf, _ := d.Workflows.(*fakeWorkflows)
	return &harness{t: t, srv: srv, http: hs, store: st, clock: clk, mailer: sent, workflows: wf}
}

// response is a decoded reply.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "body: %s", r.body)
	return m
}

// do sends a request; body may be nil, a string (sent raw) or a value (sent as JSON).
func (h *harness) do(method, path, token string, body any) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(h.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, h.http.URL+path, rd)
	require.NoError(h.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return h.roundTrip(req)
}

// roundTrip sends req and reads the whole reply.
func (h *harness) roundTrip(req *http.Request) response {
	h.t.Helper()
	res, err := h.http.Client().Do(req)
	require.NoError(h.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(h.t, err)
	return response{status: res.StatusCode, header: res.Header, body: raw}
}

// user creates an account with a password.
func (h *harness) user(email, password string, admin bool) store.User {
	h.t.Helper()
	hash, err := testHasher.Hash(password)
	require.NoError(h.t, err)
	u, err := h.store.CreateUser(context.Background(), email, hash, admin)
	require.NoError(h.t, err)
	return u
}

// login returns the access and refresh tokens of a user.
func (h *harness) login(email, password string) (access, refresh string) {
	h.t.Helper()
	res := h.do("POST", "/api/auth/login", "", map[string]string{"email_address": email, "password": password})
	require.Equal(h.t, http.StatusOK, res.status, "login: %s", res.body)
	m := res.json(h.t)
	return m["access"].(string), m["refresh"].(string)
}

var linkPattern = regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(testLinkOrigin) + `(?:/\S*)?/(\d+)/([A-Za-z0-9_-]{43})$`)

// lastLink waits for the newest mailed link to email and returns its uid and token.
func (h *harness) lastLink(email string) (uid, token string) {
	h.t.Helper()
	var body string
	require.Eventually(h.t, func() bool {
		bodies := h.mailer.to(email)
		if len(bodies) == 0 {
			return false
		}
		body = bodies[len(bodies)-1]
		return true
	}, 10*time.Second, 20*time.Millisecond, "no mail to %s", email)
	m := linkPattern.FindStringSubmatch(body)
	require.NotNil(h.t, m, "no link in %q", body)
	return m[1], m[2]
}

// newMailpitHarness is newHarness mailing through the real SMTP sender (mail.SMTP, as cmd/mba
// configures it) to the suite's Mailpit, whose HTTP API the test reads the messages from.
func newMailpitHarness(t testing.TB, opts ...harnessOption) (*harness, *testenv.Mailpit) {
	t.Helper()
	mp := testenv.NewMailpit(t)
	return newHarness(t, append(opts, func(d *Deps) { d.Mailer = mp.Sender() })...), mp
}

// mailedLink waits for the one message to email in mp, checks its subject and recipient, and
// returns the uid and token of the link in it.
func mailedLink(t testing.TB, mp *testenv.Mailpit, email, subject string) (uid, token string) {
	t.Helper()
	msgs := mp.WaitForMessages(email, 1)
	require.Len(t, msgs, 1, "one message to %s", email)
	require.Equal(t, subject, msgs[0].Subject)
	require.Len(t, msgs[0].To, 1)
	require.Equal(t, email, msgs[0].To[0].Address)
	m := linkPattern.FindStringSubmatch(strings.ReplaceAll(msgs[0].Text, "\r\n", "\n"))
	require.NotNil(t, m, "no link in %q", msgs[0].Text)
	return m[1], m[2]
}
