package api

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/testenv"
)

// TestBadInput: every way a body can be wrong is a 400 naming the problem, never a 500 and
// never silently accepted.
func TestBadInput(t *testing.T) {
	h := newHarness(t)
	admin := h.user("admin@lab.example", "correct horse", true)
	token, _ := h.login("admin@lab.example", "correct horse")
	h.send(beat("NV1", 0, false, ""))
	dev := h.deviceID("NV1")
	session := func(extra string) string {
		return fmt.Sprintf(`{"name":"exp","duration":3600,"target_fps":30,"fragment_hourly":true,"apply_filter":false,`+
			`"device_spec":[{"device_id":%d,"filename_prefix":"cage"}]%s}`, dev, extra)
	}
	for _, c := range []struct {
		name, method, path, body, want string
	}{
		{"NUL in the login e-mail", "POST", "/api/auth/login", `{"email_address":"a\u0000@lab.example","password":"correct horse"}`, "email_address"},
		{"NUL in the password", "POST", "/api/auth/login", `{"email_address":"admin@lab.example","password":"correct\u0000horse"}`, "password"},
		{"NUL in a session name", "POST", "/api/recording-session", strings.Replace(session(""), `"exp"`, `"e\u0000xp"`, 1), "name"},
		{"NUL in a prefix", "POST", "/api/recording-session", strings.Replace(session(""), `"cage"`, `"ca\u0000ge"`, 1), "device_spec[0].filename_prefix"},
		{"invalid UTF-8", "POST", "/api/auth/login", "{\"email_address\":\"admin@lab.example\",\"password\":\"correct \xff horse\"}", "UTF-8"},
		{"invalid UTF-8 in a name", "POST", "/api/recording-session", strings.Replace(session(""), `"exp"`, "\"e\xc3xp\"", 1), "UTF-8"},
		{"a typo in a field we own", "POST", "/api/recording-session", strings.Replace(session(""), "fragment_hourly", "fragment_hourlly", 1), "fragment_hourlly"},
		{"an unknown field of the original front end's login", "POST", "/api/auth/login", `{"email_address":"admin@lab.example","password":"correct horse","remember":true}`, "remember"},
		{"an unknown field in a device spec", "POST", "/api/recording-session", strings.Replace(session(""), `"filename_prefix"`, `"prefix":"x","filename_prefix"`, 1), "prefix"},
		{"admin is not a field of a reset request", "POST", "/api/user/send_pw_reset", `{"email":"a@lab.example","url":"` + testLinkOrigin + `","admin":true}`, "admin"},
		{"an unknown field of a user change", "PATCH", fmt.Sprintf("/api/user/%d", admin.ID), `{"admin":true,"role":"root"}`, "role"},
		{"a duration that overflows nanoseconds", "POST", "/api/recording-session", strings.Replace(session(""), "3600", "18446744074", 1), "duration"},
		{"the largest duration", "POST", "/api/recording-session", strings.Replace(session(""), "3600", fmt.Sprint(int64(math.MaxInt64)), 1), "duration"},
		{"a duration past int64", "POST", "/api/recording-session", strings.Replace(session(""), "3600", "9223372036854775808", 1), "duration"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := h.do(c.method, c.path, token, c.body)
			require.Equal(t, http.StatusBadRequest, res.status, "%s", res.body)
			m := res.json(t)
			text := fmt.Sprint(m["message"], m["errors"])
			require.Contains(t, text, c.want, "the answer names the problem")
		})
	}
	// The original front end's requests, exactly as it sends them, still work.
	res := h.do("POST", "/api/recording-session", token, session(""))
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
}

func TestCacheControlAndRequestID(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	res := h.do("POST", "/api/auth/login", "", map[string]string{"email_address": "ann@lab.example", "password": "correct horse"})
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, "no-store", res.header.Get("Cache-Control"), "tokens are never cached")
	access := res.json(t)["access"].(string)
	require.Equal(t, "no-store", h.do("GET", "/api/user/1", access, nil).header.Get("Cache-Control"))
	require.Equal(t, "no-store", h.do("GET", "/api/recording-session", access, nil).header.Get("Cache-Control"))
	require.Equal(t, "no-store", h.do("GET", "/api/no/such", "", nil).header.Get("Cache-Control"))

	withID := func(id string) string {
		req, err := http.NewRequest("GET", h.http.URL+"/healthz", nil)
		require.NoError(t, err)
		req.Header.Set("X-Request-Id", id)
		return h.roundTrip(req).header.Get("X-Request-Id")
	}
	require.Equal(t, "proxy-7f3a9c01", withID("proxy-7f3a9c01"), "a well-formed id from the proxy is kept")
	for _, bad := range []string{strings.Repeat("a", 65), `"},"admin":true`, "a b c d e f g", "short"} {
		got := withID(bad)
		require.NotEqual(t, bad, got)
		require.Regexp(t, `^[0-9a-f]{32}$`, got, "a fresh id replaces %q", bad)
	}
}

// TestSessionOwnership: only a session's creator or an administrator may cancel it, remove its
// enclosures or archive it, unless the lab opens that to everyone.
func TestSessionOwnership(t *testing.T) {
	for _, anyone := range []bool{false, true} {
		t.Run(fmt.Sprint("anyone=", anyone), func(t *testing.T) {
			h := newHarness(t, func(d *Deps) { d.Config.Sessions.AnyoneMayStop = anyone })
			ann := h.user("ann@lab.example", "correct horse", false)
			h.user("bob@lab.example", "correct horse", false)
			bob, _ := h.login("bob@lab.example", "correct horse")
			h.send(beat("NV1", 0, false, ""))
			dev := h.deviceID("NV1")
			sid := h.sessionBy(ann.ID, dev)
			path := fmt.Sprintf("/api/recording-session/%d", sid)

			want := http.StatusForbidden
			if anyone {
				want = http.StatusNoContent
			}
			res := h.do("DELETE", fmt.Sprintf("%s/device-status/%d", path, dev), bob, nil)
			require.Equal(t, want, res.status, "%s", res.body)
			require.Equal(t, want, h.do("DELETE", path+"?archive=true", bob, nil).status)
			require.Equal(t, want, h.do("POST", path+"/unarchive", bob, nil).status)
			if !anyone {
				require.Contains(t, string(res.body), "creator or an administrator")
				got := h.do("GET", path, bob, nil)
				require.NotContains(t, string(got.body), "CANCELED", "nothing was canceled or removed")
				annToken, _ := h.login("ann@lab.example", "correct horse")
				require.Equal(t, http.StatusNoContent, h.do("DELETE", path, annToken, nil).status, "the creator may")
			}
			require.Equal(t, http.StatusOK, h.do("GET", path, bob, nil).status, "everyone signed in may look")
		})
	}
}

// loginFrom sends a login from client address ip (the harness trusts X-Forwarded-For).
func (h *harness) loginFrom(ip, email, password string) response {
	h.t.Helper()
	body := fmt.Sprintf(`{"email_address":%q,"password":%q}`, email, password)
	req, err := http.NewRequest("POST", h.http.URL+"/api/auth/login", strings.NewReader(body))
	require.NoError(h.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", ip)
	return h.roundTrip(req)
}

// TestStrangerCannotLockOutTheOwner: failures from one client throttle that client's attempts
// at the account, not the owner on their own client.
func TestStrangerCannotLockOutTheOwner(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Config.TrustProxy = true })
	h.user("admin@lab.example", "correct horse", true)
	for i := 0; i < 5; i++ {
		require.Equal(t, http.StatusUnauthorized, h.loginFrom("203.0.113.9", "admin@lab.example", "guess").status)
	}
	require.Equal(t, http.StatusTooManyRequests, h.loginFrom("203.0.113.9", "admin@lab.example", "guess").status)
	require.Equal(t, http.StatusOK, h.loginFrom("192.0.2.10", "admin@lab.example", "correct horse").status,
		"the only admin, on their own client, gets in")
	// One wrong guess a minute from the stranger keeps only the stranger out.
	for i := 0; i < 3; i++ {
		h.clock.Advance(time.Minute)
		require.Equal(t, http.StatusUnauthorized, h.loginFrom("203.0.113.9", "admin@lab.example", "guess").status)
		require.Equal(t, http.StatusOK, h.loginFrom("192.0.2.10", "admin@lab.example", "correct horse").status)
	}
}

func TestChangePasswordThrottled(t *testing.T) {
	h := newHarness(t)
	ann := h.user("ann@lab.example", "correct horse", false)
	access, _ := h.login("ann@lab.example", "correct horse")
	path := fmt.Sprintf("/api/user/%d/change_password", ann.ID)
	guess := map[string]string{"old_password": "guess", "new_password": "a brand new password"}
	var statuses []int
	for i := 0; i < 5; i++ {
		statuses = append(statuses, h.do("PUT", path, access, guess).status)
	}
	require.Equal(t, []int{400, 400, 400, 400, 429}, statuses, "the login counted too: five attempts per account and client")
	res := h.do("PUT", path, access, map[string]string{"old_password": "correct horse", "new_password": "a brand new password"})
	require.Equal(t, http.StatusTooManyRequests, res.status)
	require.NotEmpty(t, res.header.Get("Retry-After"))
	res = h.do("PUT", path, access, map[string]string{"old_password": "correct horse", "new_password": "12345678"})
	require.Equal(t, http.StatusBadRequest, res.status, "a common password is refused before any throttle")
	require.Contains(t, res.json(t)["errors"], "new_password")
}

// TestPasswordHashingIsBounded: when every hash slot is taken a login waits, then gets a 503
// with Retry-After (never a hang or a dropped request), and counts no failed attempt.
func TestPasswordHashingIsBounded(t *testing.T) {
	h := newHarness(t, func(d *Deps) {
		d.Config.HashMemoryKiB = uint64(testHasher.MemoryKiB)
		d.Config.HashWait = 50 * time.Millisecond
	})
	require.Equal(t, 1, cap(h.srv.hashSlots), "one hash fits the budget")
	h.user("ann@lab.example", "correct horse", false)
	h.srv.hashSlots <- struct{}{} // a hash is running
	res := h.do("POST", "/api/auth/login", "", map[string]string{"email_address": "ann@lab.example", "password": "correct horse"})
	require.Equal(t, http.StatusServiceUnavailable, res.status, "%s", res.body)
	require.Equal(t, "1", res.header.Get("Retry-After"))
	require.Contains(t, res.json(t)["message"], "busy")
	<-h.srv.hashSlots
	h.login("ann@lab.example", "correct horse")

	require.Equal(t, 2, hashSlots(0, auth.Hasher{MemoryKiB: 46 << 10}), "the default budget holds two default hashes")
	require.Equal(t, 5, hashSlots(256<<10, auth.Hasher{MemoryKiB: 46 << 10}))
	require.Equal(t, 1, hashSlots(1, auth.Hasher{MemoryKiB: 46 << 10}), "at least one")
}

// TestRefusedFloodLogsBounded: a flood of 429s writes one line for the first and one summary,
// not a line per request.
func TestRefusedFloodLogsBounded(t *testing.T) {
	var logs testenv.Buffer
	h := newHarness(t, func(d *Deps) {
		d.Log = slog.New(slog.NewTextHandler(&logs, nil))
		d.Config.LoginPerClient = Rate{Burst: 1, Every: time.Hour}
		d.Config.RefusalLogEvery = time.Hour // the interval ends when the test says
	})
	body := map[string]string{"email_address": "x@lab.example", "password": "whatever1"}
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/login", "", body).status)
	for i := 0; i < 300; i++ {
		require.Equal(t, http.StatusTooManyRequests, h.do("POST", "/api/auth/login", "", body).status)
	}
	h.srv.refusals.flush()
	require.Equal(t, 1, strings.Count(logs.String(), "status=429"), "the first refusal only:\n%s", logs.String())
	require.Contains(t, logs.String(), "refused requests not logged one by one")
	require.Contains(t, logs.String(), "count=299")
}

// TestInviteMailFailureLeavesNothing: an invitation that could not be mailed leaves no account
// and no live link; a re-invitation of an existing account leaves its account but not the
// link; a reset link that could not be mailed is spent.
func TestInviteMailFailureLeavesNothing(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Mailer = failingMailer{} })
	h.user("admin@lab.example", "correct horse", true)
	adminToken, _ := h.login("admin@lab.example", "correct horse")
	res := h.do("POST", "/api/user/invite", adminToken, map[string]any{"email": "new@lab.example", "url": testLinkOrigin})
	require.Equal(t, http.StatusBadGateway, res.status)
	_, err := h.store.UserByEmail(context.Background(), "new@lab.example")
	require.Error(t, err, "no account left behind")

	h.user("old@lab.example", "", false)
	res = h.do("POST", "/api/user/invite", adminToken, map[string]any{"email": "old@lab.example", "url": testLinkOrigin})
	require.Equal(t, http.StatusBadGateway, res.status)
	_, err = h.store.UserByEmail(context.Background(), "old@lab.example")
	require.NoError(t, err, "an account that existed before stays")
	var live int
	require.NoError(t, h.srv.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM user_tokens WHERE used_at IS NULL AND expires_at > now()`).Scan(&live))
	require.Zero(t, live, "no live link")

	// Likewise a reset link whose mail failed (sent after the 202).
	require.Equal(t, http.StatusAccepted, h.do("POST", "/api/user/send_pw_reset", "",
		map[string]string{"email": "old@lab.example", "url": testLinkOrigin}).status)
	h.srv.Wait(context.Background())
	var made int
	require.NoError(t, h.srv.pool.QueryRow(context.Background(),
		`SELECT count(*) FILTER (WHERE purpose = 'reset'), count(*) FILTER (WHERE used_at IS NULL) FROM user_tokens`).Scan(&made, &live))
	require.Equal(t, 1, made, "the reset link was made")
	require.Zero(t, live, "and spent when its mail failed")
}

// TestMailLogKeepsNoWorkingLink: the mail_log table (no SMTP configured) redacts link tokens.
func TestMailLogKeepsNoWorkingLink(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	require.Equal(t, http.StatusAccepted, h.do("POST", "/api/user/send_pw_reset", "",
		map[string]string{"email": "ann@lab.example", "url": testLinkOrigin}).status)
	_, token := h.lastLink("ann@lab.example")
	msgs, err := h.store.MailTo(context.Background(), "ann@lab.example")
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.NotContains(t, msgs[0].Body, token)
	require.Contains(t, msgs[0].Body, "/[redacted]")
}
