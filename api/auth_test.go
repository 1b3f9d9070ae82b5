package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/mail"
)

func TestLogin(t *testing.T) {
	h := newHarness(t)
	u := h.user("Ann@Lab.example", "correct horse", true)

	access, refresh := h.login("ann@lab.EXAMPLE", "correct horse") // e-mail is case-insensitive
	require.NotEmpty(t, refresh)

	// The front end decodes the identity claim itself.
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(access, ".")[1])
	require.NoError(t, err)
	var claims struct {
		Identity map[string]any `json:"identity"`
	}
	require.NoError(t, json.Unmarshal(payload, &claims))
	require.Equal(t, map[string]any{"uid": float64(u.ID), "email_address": "Ann@Lab.example", "admin": true}, claims.Identity)

	for name, tc := range map[string]struct {
		body   any
		status int
		msg    string
	}{
		"wrong password":  {map[string]string{"email_address": "ann@lab.example", "password": "wrong horse"}, 401, "unable to authenticate user"},
		"unknown account": {map[string]string{"email_address": "bob@lab.example", "password": "correct horse"}, 401, "unable to authenticate user"},
		"malformed JSON":  {`{"email_address": "ann@lab.example", "password": `, 400, "malformed JSON in request body"},
		"not an object":   {`["ann"]`, 400, "request body must be a JSON object"},
		"wrong type":      {`{"email_address": 7, "password": "x"}`, 400, "email_address: must be a string"},
		"missing fields":  {map[string]string{}, 400, "email_address: is required; password: is required"},
		"empty body":      {"", 400, "request body is required"},
		"oversize body":   {`{"password": "` + strings.Repeat("a", 70<<10) + `"}`, 413, "request body is larger than 65536 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			res := h.do("POST", "/api/auth/login", "", tc.body)
			require.Equal(t, tc.status, res.status, "%s", res.body)
			require.Equal(t, tc.msg, res.json(t)["message"])
		})
	}
	res := h.do("POST", "/api/auth/login", "", `{"email_address": 7, "password": "x"}`)
	require.Equal(t, map[string]any{"email_address": "must be a string"}, res.json(t)["errors"])
}

func TestLoginWrongContentType(t *testing.T) {
	h := newHarness(t)
	req, err := http.NewRequest("POST", h.http.URL+"/api/auth/login", strings.NewReader("email_address=a"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusUnsupportedMediaType, res.StatusCode)
}

func TestRefreshAndLogout(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	access, refresh := h.login("ann@lab.example", "correct horse")

	res := h.do("POST", "/api/auth/refresh", refresh, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	newAccess := res.json(t)["access"].(string)
	require.Equal(t, http.StatusOK, h.do("GET", "/api/user/1", newAccess, nil).status)

	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/refresh", access, nil).status, "an access token cannot refresh")
	require.Equal(t, http.StatusUnauthorized, h.do("GET", "/api/user/1", refresh, nil).status, "a refresh token cannot access")
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/refresh", "", nil).status)
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/refresh", "garbage.token.here", nil).status)

	require.Equal(t, http.StatusNoContent, h.do("POST", "/api/auth/logout", refresh, nil).status)
	res = h.do("POST", "/api/auth/refresh", refresh, nil)
	require.Equal(t, http.StatusUnauthorized, res.status)
	require.Equal(t, "invalid, expired or revoked refresh token", res.json(t)["message"])
	require.Equal(t, `Bearer realm="mba"`, res.header.Get("WWW-Authenticate"))

	// Logout answers alike for a revoked, an unknown (well signed, never recorded), an expired
	// and a garbage token: nothing tells them apart.
	u, err := h.store.UserByEmail(context.Background(), "ann@lab.example")
	require.NoError(t, err)
	unknown, _, _, err := h.srv.tokens.Issue(auth.TypeRefresh, identityOf(u), u.TokenGeneration)
	require.NoError(t, err)
	_, live := h.login("ann@lab.example", "correct horse")
	h.clock.Advance(31 * 24 * time.Hour)
	var answers []string
	for _, tok := range []string{refresh, unknown, live, "garbage.token.here"} {
		res := h.do("POST", "/api/auth/logout", tok, nil)
		answers = append(answers, fmt.Sprint(res.status, " ", string(res.body)))
	}
	require.Equal(t, []string{answers[0], answers[0], answers[0], answers[0]}, answers)
	require.True(t, strings.HasPrefix(answers[0], "401 "), answers[0])
}

// TestRefreshRotation: the web UI's refresh (?rotate=true) spends the token and returns the
// next; presenting a spent one again revokes every token of that sign-in. The original front
// end's refresh (no rotation) keeps working with the same token.
func TestRefreshRotation(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	_, first := h.login("ann@lab.example", "correct horse")

	res := h.do("POST", "/api/auth/refresh?rotate=true", first, nil)
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	second := res.json(t)["refresh"].(string)
	require.NotEqual(t, first, second)
	require.NotEmpty(t, res.json(t)["access"])
	res = h.do("POST", "/api/auth/refresh?rotate=true", second, nil)
	require.Equal(t, http.StatusOK, res.status)
	third := res.json(t)["refresh"].(string)

	// A thief replays the spent first token: refused, and the family ends.
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/refresh?rotate=true", first, nil).status)
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/refresh", third, nil).status, "the whole family is revoked")
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/refresh?rotate=true", third, nil).status)

	// The original front end: one refresh token, used again and again.
	_, legacy := h.login("ann@lab.example", "correct horse")
	for range 3 {
		res := h.do("POST", "/api/auth/refresh", legacy, nil)
		require.Equal(t, http.StatusOK, res.status)
		require.Nil(t, res.json(t)["refresh"], "no rotation unless asked")
	}
	require.Equal(t, http.StatusBadRequest, h.do("POST", "/api/auth/refresh?rotate=maybe", legacy, nil).status)
}

func TestTokensExpire(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	access, refresh := h.login("ann@lab.example", "correct horse")
	h.clock.Advance(16 * time.Minute)
	require.Equal(t, http.StatusUnauthorized, h.do("GET", "/api/user/1", access, nil).status)
	require.Equal(t, http.StatusOK, h.do("POST", "/api/auth/refresh", refresh, nil).status)
	h.clock.Advance(31 * 24 * time.Hour)
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/refresh", refresh, nil).status)
}

func TestLoginThrottledPerAccount(t *testing.T) {
	h := newHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	bad := map[string]string{"email_address": "ann@lab.example", "password": "wrong horse"}
	for i := 0; i < 5; i++ {
		require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/login", "", bad).status)
	}
	res := h.do("POST", "/api/auth/login", "", map[string]string{"email_address": "ANN@lab.example", "password": "correct horse"})
	require.Equal(t, http.StatusTooManyRequests, res.status, "even the right password waits once the account is throttled")
	retry, err := strconv.Atoi(res.header.Get("Retry-After"))
	require.NoError(t, err)
	require.InDelta(t, 60, retry, 1)

	// Another account from the same client is not affected.
	h.user("bob@lab.example", "correct horse", false)
	h.login("bob@lab.example", "correct horse")

	h.clock.Advance(time.Minute)
	h.login("ann@lab.example", "correct horse")
}

func TestLoginThrottledPerClient(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Config.LoginPerClient = Rate{Burst: 3, Every: 10 * time.Second} })
	for i := 0; i < 3; i++ {
		body := map[string]string{"email_address": fmt.Sprintf("u%d@lab.example", i), "password": "whatever1"}
		require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/login", "", body).status)
	}
	res := h.do("POST", "/api/auth/login", "", map[string]string{"email_address": "new@lab.example", "password": "whatever1"})
	require.Equal(t, http.StatusTooManyRequests, res.status)
	require.Equal(t, "10", res.header.Get("Retry-After"))
}

func TestChangePassword(t *testing.T) {
	h := newHarness(t)
	ann := h.user("ann@lab.example", "correct horse", false)
	bob := h.user("bob@lab.example", "battery staple", false)
	access, refresh := h.login("ann@lab.example", "correct horse")
	path := fmt.Sprintf("/api/user/%d/change_password", ann.ID)

	res := h.do("PUT", fmt.Sprintf("/api/user/%d/change_password", bob.ID), access,
		map[string]string{"old_password": "battery staple", "new_password": "new password"})
	require.Equal(t, http.StatusForbidden, res.status)

	res = h.do("PUT", path, access, map[string]string{"old_password": "wrong", "new_password": "new password"})
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, map[string]any{"old_password": "does not match"}, res.json(t)["errors"])

	res = h.do("PUT", path, access, map[string]string{"old_password": "correct horse", "new_password": "short"})
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, map[string]any{"new_password": "must be at least 8 characters"}, res.json(t)["errors"])

	res = h.do("PUT", path, access, map[string]string{"old_password": "correct horse", "new_password": strings.Repeat("x", 257)})
	require.Equal(t, http.StatusBadRequest, res.status)

	require.Equal(t, http.StatusNoContent, h.do("PUT", path, access,
		map[string]string{"old_password": "correct horse", "new_password": "new password"}).status)
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/login", "",
		map[string]string{"email_address": "ann@lab.example", "password": "correct horse"}).status)
	h.login("ann@lab.example", "new password")
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/refresh", refresh, nil).status,
		"changing the password revokes refresh tokens")
}

// TestInviteAndSetPassword: the invitation goes out over SMTP (to Mailpit) and its link sets
// the password once.
func TestInviteAndSetPassword(t *testing.T) {
	h, mp := newMailpitHarness(t)
	h.user("admin@lab.example", "correct horse", true)
	h.user("ann@lab.example", "correct horse", false)
	adminToken, _ := h.login("admin@lab.example", "correct horse")
	userToken, _ := h.login("ann@lab.example", "correct horse")
	body := map[string]any{"email": "new@lab.example", "admin": false, "url": testLinkOrigin + "/reset"}

	require.Equal(t, http.StatusForbidden, h.do("POST", "/api/user/invite", userToken, body).status, "non-admins may not invite")

	res := h.do("POST", "/api/user/invite", adminToken, map[string]any{"email": "not-an-address", "url": "https://evil.example/x"})
	require.Equal(t, http.StatusBadRequest, res.status)
	errs := res.json(t)["errors"].(map[string]any)
	require.Contains(t, errs["email"], "must be an e-mail address")
	require.Contains(t, errs["url"], "origin https://evil.example is not allowed")

	require.Equal(t, http.StatusNoContent, h.do("POST", "/api/user/invite", adminToken, body).status)
	uid, token := mailedLink(t, mp, "new@lab.example", "You are invited to the Mouse Behavior Analysis service")

	// The invited user cannot log in before choosing a password.
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/login", "",
		map[string]string{"email_address": "new@lab.example", "password": "anything at all"}).status)

	resetPath := "/api/user/" + uid + "/reset_password/" + token
	res = h.do("POST", resetPath, "", map[string]string{"password": "short"})
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, http.StatusNoContent, h.do("POST", resetPath, "", map[string]string{"password": "my new password"}).status)
	h.login("new@lab.example", "my new password")

	res = h.do("POST", resetPath, "", map[string]string{"password": "another password"})
	require.Equal(t, http.StatusUnauthorized, res.status, "links are single-use")
	// An unknown user id answers like a bad token: the route does not tell which ids exist.
	unknownUID := h.do("POST", "/api/user/9999/reset_password/"+token, "", map[string]string{"password": "another password"})
	badToken := h.do("POST", "/api/user/"+uid+"/reset_password/"+token, "", map[string]string{"password": "another password"})
	require.Equal(t, http.StatusUnauthorized, unknownUID.status)
	require.Equal(t, string(badToken.body), string(unknownUID.body))
	require.Equal(t, http.StatusNotFound, h.do("POST", "/api/user/abc/reset_password/"+token, "",
		map[string]string{"password": "another password"}).status)
}

func TestInviteLinkExpires(t *testing.T) {
	h := newHarness(t)
	h.user("admin@lab.example", "correct horse", true)
	adminToken, _ := h.login("admin@lab.example", "correct horse")
	require.Equal(t, http.StatusNoContent, h.do("POST", "/api/user/invite", adminToken,
		map[string]any{"email": "new@lab.example", "url": testLinkOrigin}).status)
	uid, token := h.lastLink("new@lab.example")
	h.clock.Advance(24*time.Hour + time.Second)
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/user/"+uid+"/reset_password/"+token, "",
		map[string]string{"password": "my new password"}).status)
}

type failingMailer struct{}

func (failingMailer) Send(context.Context, mail.Message) error {
	return errors.New("smtp: 451 try later")
}

func TestInviteMailFailureIs502(t *testing.T) {
	h := newHarness(t, func(d *Deps) { d.Mailer = failingMailer{} })
	h.user("admin@lab.example", "correct horse", true)
	adminToken, _ := h.login("admin@lab.example", "correct horse")
	res := h.do("POST", "/api/user/invite", adminToken, map[string]any{"email": "new@lab.example", "url": testLinkOrigin})
	require.Equal(t, http.StatusBadGateway, res.status)
	require.NotContains(t, string(res.body), "451", "internal error text stays on the server")
}

// TestPasswordReset: the reset link goes out over SMTP (to Mailpit), only to an account that
// exists, and signs the account out everywhere.
func TestPasswordReset(t *testing.T) {
	h, mp := newMailpitHarness(t)
	h.user("ann@lab.example", "correct horse", false)
	access, refresh := h.login("ann@lab.example", "correct horse")

	res := h.do("POST", "/api/user/send_pw_reset", "", map[string]string{"email": "nobody@lab.example", "url": testLinkOrigin})
	require.Equal(t, http.StatusAccepted, res.status, "same answer whether or not the account exists")
	res = h.do("POST", "/api/user/send_pw_reset", "", map[string]string{"email": "ann@lab.example", "url": testLinkOrigin})
	require.Equal(t, http.StatusAccepted, res.status)
	uid, token := mailedLink(t, mp, "ann@lab.example", "Reset your Mouse Behavior Analysis password")
	h.srv.Wait(context.Background())
	require.Empty(t, mp.Messages("nobody@lab.example"))

	require.Equal(t, http.StatusNoContent, h.do("POST", "/api/user/"+uid+"/reset_password/"+token, "",
		map[string]string{"password": "brand new password"}).status)
	h.login("ann@lab.example", "brand new password")
	require.Equal(t, http.StatusUnauthorized, h.do("GET", "/api/user/"+uid, access, nil).status,
		"a reset signs the account out everywhere, access tokens included")
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/refresh", refresh, nil).status)
}

func TestPasswordResetThrottled(t *testing.T) {
	h := newHarness(t)
	body := map[string]string{"email": "ann@lab.example", "url": testLinkOrigin}
	for i := 0; i < 3; i++ {
		require.Equal(t, http.StatusAccepted, h.do("POST", "/api/user/send_pw_reset", "", body).status)
	}
	res := h.do("POST", "/api/user/send_pw_reset", "", body)
	require.Equal(t, http.StatusTooManyRequests, res.status)
	require.NotEmpty(t, res.header.Get("Retry-After"))
}

func TestAdminManagesUsers(t *testing.T) {
	h := newHarness(t)
	admin := h.user("admin@lab.example", "correct horse", true)
	ann := h.user("ann@lab.example", "correct horse", false)
	adminToken, _ := h.login("admin@lab.example", "correct horse")
	annAccess, annRefresh := h.login("ann@lab.example", "correct horse")

	res := h.do("GET", "/api/user", adminToken, nil)
	require.Equal(t, http.StatusOK, res.status)
	var users []map[string]any
	require.NoError(t, json.Unmarshal(res.body, &users))
	require.Len(t, users, 2)
	require.NotContains(t, string(res.body), "argon2", "hashes never leave the server")

	annPath := fmt.Sprintf("/api/user/%d", ann.ID)
	require.Equal(t, http.StatusForbidden, h.do("PATCH", annPath, annAccess, map[string]bool{"admin": true}).status)
	require.Equal(t, http.StatusForbidden, h.do("GET", fmt.Sprintf("/api/user/%d", admin.ID), annAccess, nil).status)
	require.Equal(t, http.StatusBadRequest, h.do("PATCH", annPath, adminToken, map[string]any{}).status)
	require.Equal(t, http.StatusNotFound, h.do("PATCH", "/api/user/999", adminToken, map[string]bool{"admin": true}).status)

	res = h.do("PATCH", annPath, adminToken, map[string]bool{"admin": true})
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, true, res.json(t)["admin"])
	// Ann's token still says admin=false, but the role is re-read from the database.
	require.Equal(t, http.StatusOK, h.do("GET", "/api/user", annAccess, nil).status)

	res = h.do("PATCH", annPath, adminToken, map[string]bool{"disabled": true, "admin": false})
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, http.StatusUnauthorized, h.do("GET", annPath, annAccess, nil).status, "disabled at once")
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/refresh", annRefresh, nil).status)
	require.Equal(t, http.StatusUnauthorized, h.do("POST", "/api/auth/login", "",
		map[string]string{"email_address": "ann@lab.example", "password": "correct horse"}).status)

	res = h.do("PATCH", fmt.Sprintf("/api/user/%d", admin.ID), adminToken, map[string]bool{"admin": false})
	require.Equal(t, http.StatusConflict, res.status, "the last administrator stays")

	require.Equal(t, http.StatusOK, h.do("PATCH", annPath, adminToken, map[string]bool{"disabled": false}).status)
	h.login("ann@lab.example", "correct horse")
}
