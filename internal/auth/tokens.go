package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// NewLinkToken returns a random token for an invite or reset link and the hash to store.
func NewLinkToken() (token string, hash []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashLinkToken(token)
}

// HashLinkToken is the stored form of a link token. Lookups compare hashes by equality in the
// database, which leaks nothing useful: the attacker cannot choose the hash.
func HashLinkToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// RandomID returns 128 random bits as hex, for token ids.
func RandomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Identity is what the existing front end decodes from the `identity` claim.
type Identity struct {
	UID          int64  `json:"uid"`
	EmailAddress string `json:"email_address"`
	Admin        bool   `json:"admin"`
}

// Token types, in the `type` claim, so a refresh token is never accepted as an access token.
const (
	TypeAccess  = "access"
	TypeRefresh = "refresh"
)

// Claims are the JWT claims of both token types.
type Claims struct {
	Identity   Identity `json:"identity"`
	Type       string   `json:"type"`
	Generation int      `json:"gen"` // the user's token generation when issued
	jwt.RegisteredClaims
}

// Issuer signs and checks tokens with one HMAC secret.
type Issuer struct {
	Secret     []byte
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	Now        func() time.Time // for tests; time.Now when nil
}

const issuerName = "mba"

func (is Issuer) now() time.Time {
	if is.Now != nil {
		return is.Now()
	}
	return time.Now()
}

// Issue returns a signed token of the given type, its id and its expiry.
func (is Issuer) Issue(typ string, id Identity, generation int) (token, jti string, expires time.Time, err error) {
	ttl := is.AccessTTL
	if typ == TypeRefresh {
		ttl = is.RefreshTTL
	}
	now := is.now()
	expires = now.Add(ttl)
	jti = RandomID()
	claims := Claims{
		Identity:   id,
		Type:       typ,
		Generation: generation,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuerName,
			Subject:   strconv.FormatInt(id.UID, 10),
			ID:        jti,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(expires),
		},
	}
	token, err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(is.Secret)
	return token, jti, expires, err
}

// ErrInvalidToken covers every reason a token is refused; the reason stays in the wrapped error
// for logs and never reaches the client.
var ErrInvalidToken = errors.New("invalid token")

// Parse checks a token's signature, expiry and type and returns its claims.
func (is Issuer) Parse(token, wantType string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return is.Secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuerName),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(is.now),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.Type != wantType {
		return nil, fmt.Errorf("%w: a %s token where a %s token is needed", ErrInvalidToken, c.Type, wantType)
	}
	return &c, nil
}

// TypeDownload is a short-lived link to one stored file, for a browser that cannot send the
// Authorization header with a plain link.
const TypeDownload = "download"

// IssueDownload signs a link token for file (its storage key) on behalf of user uid in token
// generation gen (so that disabling the user ends the link).
func (is Issuer) IssueDownload(uid int64, gen int, file string, ttl time.Duration) (string, error) {
	now := is.now()
	claims := Claims{Identity: Identity{UID: uid}, Type: TypeDownload, Generation: gen, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: issuerName, Subject: file, IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(is.Secret)
}

// ParseDownload checks a download token and that it is for file; it returns the claims, whose
// user and generation the caller checks are still current.
func (is Issuer) ParseDownload(token, file string) (*Claims, error) {
	c, err := is.Parse(token, TypeDownload)
	if err != nil {
		return nil, err
	}
	if c.Subject != file {
		return nil, fmt.Errorf("%w: a link to another file", ErrInvalidToken)
	}
	return c, nil
}
