package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/jax-mba/mba/internal/auth"
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
	RevokeRefreshToken(ctx context.Context, jti string) error
	CreateLinkToken(ctx context.Context, userID int64, purpose string, hash []byte, expires time.Time) error
	ResetPassword(ctx context.Context, userID int64, tokenHash []byte, passwordHash string, now time.Time) error
	Audit(ctx context.Context, actorID int64, action, subject, clientIP string) error
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
		throttleCheck{s.loginPerAccount, strings.ToLower(strings.TrimSpace(req.EmailAddress))}); err != nil {
		return err
	}

	u, err := s.users.UserByEmail(r.Context(), req.EmailAddress)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	// Hash even for unknown accounts so timing does not reveal which accounts exist.
	if err := s.hasher.VerifyOrBurn(req.Password, u.PasswordHash); err != nil || u.Disabled {
		s.audit(r, u.ID, "login.failed", req.EmailAddress)
		return errUnauthenticated
	}
	access, err := s.issue(r.Context(), u, true)
	if err != nil {
		return err
	}
	s.audit(r, u.ID, "login", u.Email)
	writeJSON(w, http.StatusOK, access)
	return nil
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
// exists, is enabled, and the token's generation is current.
func (s *Server) userFromToken(r *http.Request, typ string) (store.User, *auth.Claims, error) {
	token := bearer(r)
	if token == "" {
		return store.User{}, nil, errorf(http.StatusUnauthorized, "missing bearer token")
	}
	claims, err := s.tokens.Parse(token, typ)
	if err != nil {
		return store.User{}, nil, errorf(http.StatusUnauthorized, "invalid or expired %s token", typ)
	}
	u, err := s.users.UserByID(r.Context(), claims.Identity.UID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (u.Disabled || u.TokenGeneration != claims.Generation)) {
		return store.User{}, nil, errorf(http.StatusUnauthorized, "%s token is no longer valid", typ)
	}
	return u, claims, err
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) error {
	u, claims, err := s.userFromToken(r, auth.TypeRefresh)
	if err != nil {
		return err
	}
	active, err := s.users.RefreshTokenActive(r.Context(), claims.ID, u.ID)
	if err != nil {
		return err
	}
	if !active {
		return errorf(http.StatusUnauthorized, "refresh token has been revoked")
	}
	pair, err := s.issue(r.Context(), u, false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, pair)
	return nil
}

// logout revokes the refresh token it is called with.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	u, claims, err := s.userFromToken(r, auth.TypeRefresh)
	if err != nil {
		return err
	}
	if err := s.users.RevokeRefreshToken(r.Context(), claims.ID); err != nil {
		return err
	}
	s.audit(r, u.ID, "logout", u.Email)
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

// audit records an action; a failure to audit is logged, never shown to the user.
func (s *Server) audit(r *http.Request, actorID int64, action, subject string) {
	if err := s.users.Audit(r.Context(), actorID, action, subject, s.clientIP(r)); err != nil {
		s.log.ErrorContext(r.Context(), "writing audit log", "action", action, "error", err.Error())
	}
}
