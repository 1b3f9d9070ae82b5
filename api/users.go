package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/jax-mba/mba/internal/auth"
	imail "github.com/jax-mba/mba/internal/mail"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

// uidParam reads the {uid} path parameter.
func uidParam(r *http.Request) (int64, error) {
	raw := chi.URLParam(r, "uid")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return 0, errorf(http.StatusNotFound, "User %s Not Found", raw)
	}
	return id, nil
}

// userByID loads a user or a 404 naming it.
func (s *Server) userByID(ctx context.Context, id int64) (store.User, error) {
	u, err := s.users.UserByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return u, errorf(http.StatusNotFound, "User %d Not Found", id)
	}
	return u, err
}

// validEmail checks an address a user typed.
func validEmail(field, email string) map[string]string {
	if reason := auth.ValidateEmail(email); reason != "" {
		return map[string]string{field: reason}
	}
	return nil
}

// validLink checks the base URL a front end asks us to mail: absolute http(s) on an allowed origin.
func (s *Server) validLink(field, raw string) map[string]string {
	u, err := url.Parse(raw)
	origin, ok := Origin(raw)
	if err != nil || !ok || u.User != nil || u.RawQuery != "" || u.Fragment != "" || len(raw) > 2000 {
		return map[string]string{field: "must be an absolute http(s) URL without query or fragment"}
	}
	if !slices.Contains(s.cfg.LinkOrigins, origin) {
		return map[string]string{field: fmt.Sprintf("link origin %s is not allowed (allowed: %s; set MBA_HTTP_LINK_ORIGINS)",
			origin, strings.Join(s.cfg.LinkOrigins, ", "))}
	}
	return nil
}

// Origin is the origin of an absolute http(s) URL as a browser writes it (scheme and host in
// lower case, no default port), so a public URL with a path or ":443" still matches its links.
func Origin(raw string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false
	}
	host := strings.ToLower(u.Host)
	host = strings.TrimSuffix(host, map[string]string{"http": ":80", "https": ":443"}[u.Scheme])
	return u.Scheme + "://" + host, true
}

func mergeFields(sets ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

var errWrongOldPassword = &Error{Status: http.StatusBadRequest, Message: "old password is incorrect",
	Fields: map[string]string{"old_password": "does not match"}}

type changePasswordRequest struct {
	OldPassword string `json:"old_password"`
	NewPassword string `json:"new_password"`
}

func (s *Server) changePassword(w http.ResponseWriter, r *http.Request) error {
	uid, err := uidParam(r)
	if err != nil {
		return err
	}
	me := currentUser(r)
	if uid != me.ID {
		return errorf(http.StatusForbidden, "you can only change your own password")
	}
	var req changePasswordRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if reason := auth.ValidatePassword(req.NewPassword, me.Email); reason != "" {
		return invalid(map[string]string{"new_password": reason})
	}
	// Checking the old password is a login attempt: the same throttles.
	ip := s.clientIP(r)
	if err := throttled(throttleCheck{s.loginPerClient, ip}, throttleCheck{s.loginPerAccount, accountClient(me.Email, ip)}); err != nil {
		return err
	}
	var hash string
	err = s.hashing(r.Context(), func() error {
		if len(req.OldPassword) > 4*auth.MaxPasswordLen || auth.Verify(req.OldPassword, me.PasswordHash) != nil {
			return errWrongOldPassword
		}
		var err error
		hash, err = s.hasher.Hash(req.NewPassword)
		return err
	})
	if errors.Is(err, errWrongOldPassword) {
		s.audit(r, me.ID, recording.AuditPasswordChangeFailed, me.Email, "")
	}
	if err != nil {
		return err
	}
	if err := s.users.SetPassword(s.audited(r, me.ID, recording.AuditPasswordChange, me.Email, ""), me.ID, hash); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// emailLinkRequest is the body of invite and send_pw_reset: whom to mail, and the front end's
// base URL for the link.
type emailLinkRequest struct {
	Email string `json:"email"`
	URL   string `json:"url"`
	Admin bool   `json:"admin"` // invite only
}

// readEmailLink decodes and validates an emailLinkRequest; admin is a field of invites only.
func (s *Server) readEmailLink(r *http.Request, withAdmin bool) (emailLinkRequest, error) {
	var req emailLinkRequest
	var err error
	if withAdmin {
		err = decodeJSON(r, &req)
	} else {
		var reset struct {
			Email string `json:"email"`
			URL   string `json:"url"`
		}
		err = decodeJSON(r, &reset)
		req.Email, req.URL = reset.Email, reset.URL
	}
	if err != nil {
		return req, err
	}
	req.Email = strings.TrimSpace(req.Email)
	if fields := mergeFields(validEmail("email", req.Email), s.validLink("url", req.URL)); len(fields) > 0 {
		return req, invalid(fields)
	}
	return req, nil
}

// invite creates an account without a password (or re-issues the link of an existing one) and
// mails a single-use link to set the password.
func (s *Server) invite(w http.ResponseWriter, r *http.Request) error {
	req, err := s.readEmailLink(r, true)
	if err != nil {
		return err
	}
	u, err := s.users.CreateUser(r.Context(), req.Email, "", req.Admin)
	created := err == nil
	if errors.Is(err, store.ErrConflict) {
		u, err = s.users.UserByEmail(r.Context(), req.Email)
	}
	if err != nil {
		return err
	}
	link, hash, err := s.newLink(r.Context(), u, store.PurposeInvite, req.URL)
	if err != nil {
		return err
	}
	msg := imail.Message{To: u.Email, Subject: "You are invited to the Mouse Behavior Analysis service",
		Body: fmt.Sprintf("%s invited you to the Mouse Behavior Analysis control service.\n\n"+
			"Choose your password here (the link works once, for %s):\n\n%s\n", currentUser(r).Email, s.cfg.LinkTTL, link)}
	if err := s.mailer.Send(r.Context(), msg); err != nil {
		s.log.ErrorContext(r.Context(), "sending invitation", "to", u.Email, "error", err.Error())
		// Nobody got the link: leave neither it nor a new account behind.
		if err := s.users.DropUnsentLink(context.WithoutCancel(r.Context()), u.ID, hash, created); err != nil {
			s.log.ErrorContext(r.Context(), "undoing an invitation that was not mailed", "to", u.Email, "error", err.Error())
		}
		return errorf(http.StatusBadGateway, "the invitation could not be e-mailed; try again later")
	}
	s.audit(r, currentUser(r).ID, recording.AuditUserInvite, u.Email, fmt.Sprintf("admin=%v", req.Admin))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// newLink stores a fresh link token for u and returns the link <base>/<uid>/<token> and the
// token's stored hash.
func (s *Server) newLink(ctx context.Context, u store.User, purpose, base string) (string, []byte, error) {
	token, hash := auth.NewLinkToken()
	if err := s.users.CreateLinkToken(ctx, u.ID, purpose, hash, s.now().Add(s.cfg.LinkTTL)); err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("%s/%d/%s", strings.TrimRight(base, "/"), u.ID, token), hash, nil
}

// sendPasswordReset always answers 202, whether or not the account exists; the mail goes out
// after the response so the timing does not tell either.
func (s *Server) sendPasswordReset(w http.ResponseWriter, r *http.Request) error {
	req, err := s.readEmailLink(r, false)
	if err != nil {
		return err
	}
	if err := throttled(throttleCheck{s.resetPerClient, s.clientIP(r)},
		throttleCheck{s.resetPerAccount, strings.ToLower(req.Email)}); err != nil {
		return err
	}
	ip := s.clientIP(r)
	s.goBackground(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.mailReset(ctx, req.Email, req.URL, ip); err != nil {
			s.log.ErrorContext(ctx, "password reset mail", "error", err.Error())
		}
	})
	writeJSON(w, http.StatusAccepted, map[string]string{"message": "if the account exists, a reset link is on its way"})
	return nil
}

func (s *Server) mailReset(ctx context.Context, email, base, ip string) error {
	u, err := s.users.UserByEmail(ctx, email)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Disabled) {
		return nil
	}
	if err != nil {
		return err
	}
	link, hash, err := s.newLink(ctx, u, store.PurposeReset, base)
	if err != nil {
		return err
	}
	if err := s.users.Audit(ctx, store.AuditEntry{Action: recording.AuditPasswordResetAsked, Subject: u.Email, ClientIP: ip}); err != nil {
		return err
	}
	err = s.mailer.Send(ctx, imail.Message{To: u.Email, Subject: "Reset your Mouse Behavior Analysis password",
		Body: fmt.Sprintf("Somebody (hopefully you) asked to reset your password.\n\n"+
			"Choose a new one here (the link works once, for %s):\n\n%s\n\n"+
			"If you did not ask for this, ignore this message; your password stays as it is.\n", s.cfg.LinkTTL, link)})
	if err != nil {
		// Nobody got the link: it must not stay live.
		return errors.Join(err, s.users.DropUnsentLink(context.WithoutCancel(ctx), u.ID, hash, false))
	}
	return nil
}

type resetPasswordRequest struct {
	Password string `json:"password"`
}

func (s *Server) resetPassword(w http.ResponseWriter, r *http.Request) error {
	uid, err := uidParam(r)
	if err != nil {
		return err
	}
	if err := throttled(throttleCheck{s.resetPerClient, s.clientIP(r)}); err != nil {
		return err
	}
	var req resetPasswordRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	// An unknown uid is answered like a bad token, so the route does not tell which ids exist.
	u, err := s.users.UserByID(r.Context(), uid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if reason := auth.ValidatePassword(req.Password, u.Email); reason != "" {
		return invalid(map[string]string{"password": reason})
	}
	var hash string
	if err := s.hashing(r.Context(), func() (err error) { hash, err = s.hasher.Hash(req.Password); return err }); err != nil {
		return err
	}
	err = s.users.ResetPassword(s.audited(r, uid, recording.AuditPasswordReset, strconv.FormatInt(uid, 10), ""), uid, auth.HashLinkToken(chi.URLParam(r, "token")), hash, s.now())
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrLinkToken):
		return errorf(http.StatusUnauthorized, "the link is invalid, used or expired; ask for a new one")
	case err != nil:
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	users, err := s.users.ListUsers(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, views(users, userView))
	return nil
}

// getUser shows a user to itself or to an administrator.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request) error {
	uid, err := uidParam(r)
	if err != nil {
		return err
	}
	if me := currentUser(r); uid != me.ID && !me.Admin {
		return errorf(http.StatusForbidden, "administrator role required")
	}
	u, err := s.userByID(r.Context(), uid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, userView(u))
	return nil
}

// updateUser promotes, demotes, disables or enables a user.
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) error {
	uid, err := uidParam(r)
	if err != nil {
		return err
	}
	var req struct {
		Admin    *bool `json:"admin"`
		Disabled *bool `json:"disabled"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	ch := store.UserChange{Admin: req.Admin, Disabled: req.Disabled}
	if ch.Admin == nil && ch.Disabled == nil {
		return invalid(map[string]string{"admin": "give admin and/or disabled", "disabled": "give admin and/or disabled"})
	}
	was, err := s.userByID(r.Context(), uid)
	if err != nil {
		return err
	}
	u, err := s.users.UpdateUser(s.audited(r, currentUser(r).ID, recording.AuditUserUpdate, was.Email, ch.String()), uid, ch)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, userView(u))
	return nil
}
