package api

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
)

// UserStore is the storage the user and auth routes need.
type UserStore interface {
	CreateUser(ctx context.Context, email, passwordHash string, admin bool) (store.User, error)
	UserByEmail(ctx context.Context, email string) (store.User, error)
	UserByID(ctx context.Context, id int64) (store.User, error)
	ListUsers(ctx context.Context) ([]store.User, error)
	SetPassword(ctx context.Context, id int64, passwordHash string) error
	UpdateUser(ctx context.Context, id int64, ch store.UserChange) (store.User, error)
	SaveRefreshToken(ctx context.Context, jti string, userID int64, expires time.Time) error
	RefreshTokenActive(ctx context.Context, jti string, userID int64) (bool, error)
	RotateRefreshToken(ctx context.Context, oldJTI string, userID int64, newJTI string, expires time.Time) error
	RevokeRefreshToken(ctx context.Context, jti string) error
	CreateLinkToken(ctx context.Context, userID int64, purpose string, hash []byte, expires time.Time) error
	DropUnsentLink(ctx context.Context, userID int64, tokenHash []byte, deleteUser bool) error
	ResetPassword(ctx context.Context, userID int64, tokenHash []byte, passwordHash string, now time.Time) error
	Audit(ctx context.Context, e store.AuditEntry) error
	AuditLog(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error)
}

var errUnauthenticated = errorf(http.StatusUnauthorized, "unable to authenticate user")

func identityOf(u store.User) auth.Identity {
	return auth.Identity{UID: u.ID, EmailAddress: u.Email, Admin: u.Admin}
}

type loginRequest struct {
	EmailAddress string `json:"email_address"`
	Password     string `json:"password"`
}

type tokenPair struct {
	Access  string `json:"access"`
	Refresh string `json:"refresh,omitempty"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	fields := map[string]string{}
	if strings.TrimSpace(req.EmailAddress) == "" {
		fields["email_address"] = "is required"
	}
	if req.Password == "" {
		fields["password"] = "is required"
	} else if len(req.Password) > 4*auth.MaxPasswordLen {
		fields["password"] = "is too long"
	}
	if len(fields) > 0 {
		return invalid(fields)
	}
	ip := s.clientIP(r)
	if err := throttled(throttleCheck{s.loginPerClient, ip},
		throttleCheck{s.loginPerAccount, accountClient(req.EmailAddress, ip)}); err != nil {
		return err
	}

	u, err := s.users.UserByEmail(r.Context(), req.EmailAddress)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	// Hash even for unknown accounts so timing does not reveal which accounts exist.
	if err := s.hashing(r.Context(), func() error { return s.hasher.VerifyOrBurn(req.Password, u.PasswordHash) }); err != nil || u.Disabled {
		var apiErr *Error
		if errors.As(err, &apiErr) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err // busy or gone: no attempt was made
		}
		s.audit(r, u.ID, recording.AuditLoginFailed, req.EmailAddress, "")
		return errUnauthenticated
	}
	access, err := s.issue(r.Context(), u, true)
	if err != nil {
		return err
	}
	s.audit(r, u.ID, recording.AuditLogin, u.Email, "")
	writeJSON(w, http.StatusOK, access)
	return nil
}

// hashing runs fn, a password hash or check, when one of the bounded hash slots is free: each
// hash takes the hasher's memory, so a flood of logins queues here (up to HashWait, then a 503
// with Retry-After) instead of taking the service's memory.
func (s *Server) hashing(ctx context.Context, fn func() error) error {
	wait := cmp.Or(s.cfg.HashWait, 2*time.Second)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s.hashSlots <- struct{}{}:
	case <-t.C:
		return &Error{Status: http.StatusServiceUnavailable, Message: "the server is busy checking passwords; try again in a moment",
			RetryAfter: time.Second}
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.hashSlots }()
	return fn()
}

// issue signs an access token and, when withRefresh, a recorded refresh token.
func (s *Server) issue(ctx context.Context, u store.User, withRefresh bool) (tokenPair, error) {
	var pair tokenPair
	var err error
	if pair.Access, _, _, err = s.tokens.Issue(auth.TypeAccess, identityOf(u), u.TokenGeneration); err != nil {
		return pair, err
	}
	if !withRefresh {
		return pair, nil
	}
	token, jti, expires, err := s.tokens.Issue(auth.TypeRefresh, identityOf(u), u.TokenGeneration)
	if err != nil {
		return pair, err
	}
	if err := s.users.SaveRefreshToken(ctx, jti, u.ID, expires); err != nil {
		return pair, err
	}
	pair.Refresh = token
	return pair, nil
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// userFromToken checks a bearer token of the given type against the database: the user
// exists, is enabled, and the token's generation is current. Every way a token fails gets the
// same answer, so a caller learns nothing about tokens it does not hold.
func (s *Server) userFromToken(r *http.Request, typ string) (store.User, *auth.Claims, error) {
	token := bearer(r)
	if token == "" {
		return store.User{}, nil, errorf(http.StatusUnauthorized, "missing bearer token")
	}
	bad := errBadToken(typ)
	claims, err := s.tokens.Parse(token, typ)
	if err != nil {
		return store.User{}, nil, bad
	}
	u, err := s.users.UserByID(r.Context(), claims.Identity.UID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (u.Disabled || u.TokenGeneration != claims.Generation)) {
		return store.User{}, nil, bad
	}
	return u, claims, err
}

// errBadToken is the one answer to a token that does not work, whatever the reason.
func errBadToken(typ string) *Error {
	return errorf(http.StatusUnauthorized, "invalid, expired or revoked %s token", typ)
}

// activeRefresh is the user of a refresh token that is recorded and neither revoked nor expired.
func (s *Server) activeRefresh(r *http.Request) (store.User, *auth.Claims, error) {
	u, claims, err := s.userFromToken(r, auth.TypeRefresh)
	if err != nil {
		return u, claims, err
	}
	active, err := s.users.RefreshTokenActive(r.Context(), claims.ID, u.ID)
	if err == nil && !active {
		err = errBadToken(auth.TypeRefresh)
	}
	return u, claims, err
}

// refresh issues a new access token for a refresh token. The original front end keeps one
// refresh token until it expires; our web UI asks for rotation (?rotate=true): it gets a new
// refresh token too and the old one is spent, and presenting a spent one again (it was stolen,
// or replayed) revokes every token descended from the same login.
func (s *Server) refresh(w http.ResponseWriter, r *http.Request) error {
	rotate, err := boolQuery(r, "rotate")
	if err != nil {
		return err
	}
	if !rotate {
		u, _, err := s.activeRefresh(r)
		if err != nil {
			return err
		}
		pair, err := s.issue(r.Context(), u, false)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, pair)
		return nil
	}
	u, claims, err := s.userFromToken(r, auth.TypeRefresh)
	if err != nil {
		return err
	}
	pair, err := s.issue(r.Context(), u, false)
	if err != nil {
		return err
	}
	token, jti, expires, err := s.tokens.Issue(auth.TypeRefresh, identityOf(u), u.TokenGeneration)
	if err != nil {
		return err
	}
	err = s.users.RotateRefreshToken(r.Context(), claims.ID, u.ID, jti, expires)
	if errors.Is(err, store.ErrTokenReused) {
		s.audit(r, u.ID, recording.AuditRefreshReused, u.Email, "")
	}
	if errors.Is(err, store.ErrTokenReused) || errors.Is(err, store.ErrNotFound) {
		return errBadToken(auth.TypeRefresh)
	}
	if err != nil {
		return err
	}
	pair.Refresh = token
	writeJSON(w, http.StatusOK, pair)
	return nil
}

// logout revokes the refresh token it is called with; a token that is not active (revoked,
// unknown, expired) gets the same 401 as at refresh.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	u, claims, err := s.activeRefresh(r)
	if err != nil {
		return err
	}
	if err := s.users.RevokeRefreshToken(r.Context(), claims.ID); err != nil {
		return err
	}
	s.audit(r, u.ID, recording.AuditLogout, u.Email, "")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

type userKey struct{}

// currentUser is the signed-in user of an authenticated request.
func currentUser(r *http.Request) store.User {
	u, _ := r.Context().Value(userKey{}).(store.User)
	return u
}

// authenticated requires a valid access token; the user is re-read from the database so a
// disabled account or a revoked generation stops working at once.
func (s *Server) authenticated(next http.Handler) http.Handler {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		u, _, err := s.userFromToken(r, auth.TypeAccess)
		if err != nil {
			return err
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
		return nil
	})
}

// adminOnly requires the signed-in user to be an administrator now (not when the token was
// issued).
func (s *Server) adminOnly(next http.Handler) http.Handler {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		if !currentUser(r).Admin {
			return errorf(http.StatusForbidden, "administrator role required")
		}
		next.ServeHTTP(w, r)
		return nil
	})
}

// audit records an action that changes nothing else (a login, a failed one); a failure to audit
// is logged, never shown to the user. It outlives the request: a client that hangs up does not
// take its failed login out of the audit log.
func (s *Server) audit(r *http.Request, actorID int64, action recording.AuditAction, subject, detail string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	e := store.AuditEntry{ActorID: actorID, Action: action, Subject: subject, Detail: detail, ClientIP: s.clientIP(r)}
	if err := s.users.Audit(ctx, e); err != nil {
		s.log.ErrorContext(r.Context(), "writing audit log", "action", action, "error", err.Error())
	}
}

// audited is the request's context carrying its audit entry, for the one store write that makes
// the change (store.Audited): the change and its audit row commit together, or neither.
func (s *Server) audited(r *http.Request, actorID int64, action recording.AuditAction, subject, detail string) context.Context {
	return store.Audited(r.Context(), store.AuditEntry{ActorID: actorID, Action: action, Subject: subject,
		Detail: detail, ClientIP: s.clientIP(r)})
}
