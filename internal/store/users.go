package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// User is an account. PasswordHash is empty until the user sets a password.
type User struct {
	ID              int64
	Email           string
	PasswordHash    string
	Admin           bool
	Disabled        bool
	TokenGeneration int
	CreatedAt       time.Time
}

// ErrLastAdmin refuses to leave the service without an enabled administrator.
var ErrLastAdmin = errors.New("this would leave no enabled administrator")

// ErrLinkToken reports an invite or reset token that is unknown, used or expired.
var ErrLinkToken = errors.New("invalid or expired token")

// ErrTokenReused reports a rotated refresh token presented again: its whole family is revoked.
var ErrTokenReused = errors.New("refresh token reused after rotation")

const userColumns = `id, email, coalesce(password_hash, '') AS password_hash, admin, disabled, token_generation, created_at`

// userRow is a users row as userColumns reads it.
type userRow struct {
	ID              int64     `db:"id"`
	Email           string    `db:"email"`
	PasswordHash    string    `db:"password_hash"`
	Admin           bool      `db:"admin"`
	Disabled        bool      `db:"disabled"`
	TokenGeneration int       `db:"token_generation"`
	CreatedAt       time.Time `db:"created_at"`
}

func (r userRow) user() User { return User(r) }

// queryUser reads the one account sql returns: ErrNotFound when there is none.
func queryUser(ctx context.Context, q querier, sql string, args pgx.NamedArgs) (User, error) {
	u, err := queryOne(ctx, q, sql, args, byName(userRow.user))
	return u, notFound(err)
}

// CreateUser adds an account; passwordHash may be empty (invited, no password yet).
func (s *Store) CreateUser(ctx context.Context, email, passwordHash string, admin bool) (User, error) {
	u, err := queryUser(ctx, s.pool, `
		INSERT INTO users (email, password_hash, admin)
		VALUES (@email, nullif(@password_hash, ''), @admin)
		RETURNING `+userColumns,
		pgx.NamedArgs{"email": strings.TrimSpace(email), "password_hash": passwordHash, "admin": admin})
	if isUniqueViolation(err) {
		err = ErrConflict
	}
	return u, failed(err, "CreateUser %s", email)
}

// UserByEmail finds an account by e-mail, ignoring case.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	u, err := queryUser(ctx, s.pool, `SELECT `+userColumns+` FROM users WHERE lower(email) = lower(@email)`,
		pgx.NamedArgs{"email": strings.TrimSpace(email)})
	return u, failed(err, "UserByEmail %s", email)
}

// UserByID finds an account by id.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := queryUser(ctx, s.pool, `SELECT `+userColumns+` FROM users WHERE id = @id`, pgx.NamedArgs{"id": id})
	return u, failed(err, "UserByID %d", id)
}

// ListUsers returns every account ordered by e-mail.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	users, err := queryAll(ctx, s.pool, `SELECT `+userColumns+` FROM users ORDER BY lower(email)`, nil, byName(userRow.user))
	return users, failed(err, "ListUsers")
}

// SetPassword stores a new password hash (a user changing it) and revokes the user's refresh
// and link tokens; access tokens run out within their short lifetime.
func (s *Store) SetPassword(ctx context.Context, id int64, passwordHash string) error {
	err := s.tx(ctx, func(tx pgx.Tx) error { return setPassword(ctx, tx, id, passwordHash, false) })
	return failed(err, "SetPassword user %d", id)
}

// setPassword stores a password hash and revokes tokens; newGeneration also invalidates every
// access token at once (an account recovered by reset may have been in someone else's hands).
func setPassword(ctx context.Context, tx pgx.Tx, id int64, passwordHash string, newGeneration bool) error {
	tag, err := tx.Exec(ctx, `
		UPDATE users SET password_hash = @password_hash,
			token_generation = token_generation + CASE WHEN @new_generation THEN 1 ELSE 0 END,
			updated_at = now()
		WHERE id = @id`, pgx.NamedArgs{"id": id, "password_hash": passwordHash, "new_generation": newGeneration})
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return revokeUserTokens(ctx, tx, id)
}

// revokeUserTokens ends every refresh token and unused link token of a user.
func revokeUserTokens(ctx context.Context, tx pgx.Tx, id int64) error {
	args := pgx.NamedArgs{"user_id": id}
	if _, err := tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = @user_id AND revoked_at IS NULL`, args); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE user_tokens SET used_at = now() WHERE user_id = @user_id AND used_at IS NULL`, args)
	return err
}

// UserChange is a partial update by an administrator; nil fields stay as they are.
type UserChange struct {
	Admin    *bool
	Disabled *bool
}

// String is the change as the audit log's detail says it, e.g. "admin=true".
func (c UserChange) String() string {
	var parts []string
	if c.Admin != nil {
		parts = append(parts, fmt.Sprintf("admin=%v", *c.Admin))
	}
	if c.Disabled != nil {
		parts = append(parts, fmt.Sprintf("disabled=%v", *c.Disabled))
	}
	return strings.Join(parts, " ")
}

// UpdateUser applies an administrator's change. Disabling revokes the user's tokens and starts
// a new token generation, so enabling the user again does not revive access tokens or
// download links issued before. It refuses
// (ErrLastAdmin) to demote or disable the last enabled administrator.
func (s *Store) UpdateUser(ctx context.Context, id int64, ch UserChange) (User, error) {
	var u User
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// Serialise admin changes so two concurrent demotions cannot both pass the check.
		if _, err := tx.Exec(ctx, `LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE`); err != nil {
			return err
		}
		var err error
		u, err = queryUser(ctx, tx, `
			UPDATE users SET
				admin = coalesce(@admin, admin),
				disabled = coalesce(@disabled, disabled),
				token_generation = token_generation + CASE WHEN @disabled AND NOT disabled THEN 1 ELSE 0 END,
				updated_at = now()
			WHERE id = @id
			RETURNING `+userColumns,
			pgx.NamedArgs{"id": id, "admin": ch.Admin, "disabled": ch.Disabled})
		if err != nil {
			return err
		}
		var admins int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM users WHERE admin AND NOT disabled`).Scan(&admins); err != nil {
			return err
		}
		if admins == 0 {
			return ErrLastAdmin
		}
		if u.Disabled {
			return revokeUserTokens(ctx, tx, id)
		}
		return nil
	})
	return u, failed(err, "UpdateUser %d", id)
}

// SaveRefreshToken records the refresh token of a login (the first of its family) so it can be
// revoked.
func (s *Store) SaveRefreshToken(ctx context.Context, jti string, userID int64, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO refresh_tokens (id, user_id, expires_at, family) VALUES (@id, @user_id, @expires_at, @id)`,
		pgx.NamedArgs{"id": jti, "user_id": userID, "expires_at": expires})
	return failed(err, "SaveRefreshToken user %d", userID)
}

// RotateRefreshToken spends the active refresh token oldJTI of userID and records newJTI in
// its family. ErrNotFound: the token is unknown, expired or revoked. ErrTokenReused: it was
// spent by an earlier rotation, so someone else holds its successor; the whole family is
// revoked (and stays revoked: the revocation commits before the error returns).
func (s *Store) RotateRefreshToken(ctx context.Context, oldJTI string, userID int64, newJTI string, expires time.Time) error {
	var reused bool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		args := pgx.NamedArgs{"old": oldJTI, "user_id": userID, "new": newJTI, "expires_at": expires}
		var family string
		err := tx.QueryRow(ctx, `
			UPDATE refresh_tokens SET revoked_at = now(), rotated_at = now()
			WHERE id = @old AND user_id = @user_id AND revoked_at IS NULL AND expires_at > now()
			RETURNING family`, args).Scan(&family)
		if errors.Is(err, pgx.ErrNoRows) {
			err = tx.QueryRow(ctx, `SELECT family FROM refresh_tokens WHERE id = @old AND user_id = @user_id AND rotated_at IS NOT NULL`,
				args).Scan(&family)
			if err != nil {
				return notFound(err)
			}
			reused = true
			_, err = tx.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = now() WHERE family = @family AND revoked_at IS NULL`,
				pgx.NamedArgs{"family": family})
			return err
		}
		if err != nil {
			return err
		}
		args["family"] = family
		_, err = tx.Exec(ctx, `INSERT INTO refresh_tokens (id, user_id, expires_at, family) VALUES (@new, @user_id, @expires_at, @family)`, args)
		return err
	})
	if err == nil && reused {
		err = ErrTokenReused
	}
	return failed(err, "RotateRefreshToken user %d", userID)
}

// RefreshTokenActive reports whether a refresh token is known, unexpired and not revoked.
func (s *Store) RefreshTokenActive(ctx context.Context, jti string, userID int64) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM refresh_tokens
		               WHERE id = @id AND user_id = @user_id AND revoked_at IS NULL AND expires_at > now())`,
		pgx.NamedArgs{"id": jti, "user_id": userID}).Scan(&ok)
	return ok, failed(err, "RefreshTokenActive user %d", userID)
}

// RevokeRefreshToken ends one refresh token (logout).
func (s *Store) RevokeRefreshToken(ctx context.Context, jti string) error {
	_, err := s.pool.Exec(ctx, `UPDATE refresh_tokens SET revoked_at = now() WHERE id = @id AND revoked_at IS NULL`,
		pgx.NamedArgs{"id": jti})
	return failed(err, "RevokeRefreshToken")
}

// Link token purposes.
const (
	PurposeInvite = "invite"
	PurposeReset  = "reset"
)

// CreateLinkToken stores the hash of an invite or reset token.
func (s *Store) CreateLinkToken(ctx context.Context, userID int64, purpose string, hash []byte, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO user_tokens (user_id, purpose, token_hash, expires_at)
		VALUES (@user_id, @purpose, @token_hash, @expires_at)`,
		pgx.NamedArgs{"user_id": userID, "purpose": purpose, "token_hash": hash, "expires_at": expires})
	return failed(err, "CreateLinkToken user %d %s", userID, purpose)
}

// DropUnsentLink undoes a link whose mail could not be sent (an invitation, a reset): its token
// is spent and, with deleteUser, the account the invitation created is removed (only while it
// has no password, so a user who set one meanwhile is kept).
func (s *Store) DropUnsentLink(ctx context.Context, userID int64, tokenHash []byte, deleteUser bool) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		args := pgx.NamedArgs{"user_id": userID, "token_hash": tokenHash}
		if _, err := tx.Exec(ctx, `UPDATE user_tokens SET used_at = now() WHERE user_id = @user_id AND token_hash = @token_hash AND used_at IS NULL`, args); err != nil {
			return err
		}
		if !deleteUser {
			return nil
		}
		_, err := tx.Exec(ctx, `DELETE FROM users WHERE id = @user_id AND password_hash IS NULL`, args)
		return err
	})
	return failed(err, "DropUnsentLink user %d", userID)
}

// ResetPassword spends a link token of userID and sets the new password, in one transaction:
// ErrNotFound when the user does not exist, ErrLinkToken when the token is not usable.
func (s *Store) ResetPassword(ctx context.Context, userID int64, tokenHash []byte, passwordHash string, now time.Time) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = @id)`, pgx.NamedArgs{"id": userID}).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return ErrNotFound
		}
		tag, err := tx.Exec(ctx, `
			UPDATE user_tokens SET used_at = now()
			WHERE user_id = @user_id AND token_hash = @token_hash AND used_at IS NULL AND expires_at > @now`,
			pgx.NamedArgs{"user_id": userID, "token_hash": tokenHash, "now": now})
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrLinkToken
		}
		return setPassword(ctx, tx, userID, passwordHash, true)
	})
	return failed(err, "ResetPassword user %d", userID)
}

// PurgeExpiredAuth deletes refresh and link tokens that expired before cutoff.
func (s *Store) PurgeExpiredAuth(ctx context.Context, cutoff time.Time) (int64, error) {
	args := pgx.NamedArgs{"cutoff": cutoff}
	a, err := s.pool.Exec(ctx, `DELETE FROM refresh_tokens WHERE expires_at < @cutoff`, args)
	if err != nil {
		return 0, failed(err, "PurgeExpiredAuth refresh tokens before %s", cutoff)
	}
	b, err := s.pool.Exec(ctx, `DELETE FROM user_tokens WHERE expires_at < @cutoff`, args)
	if err != nil {
		return 0, failed(err, "PurgeExpiredAuth link tokens before %s", cutoff)
	}
	return a.RowsAffected() + b.RowsAffected(), nil
}
