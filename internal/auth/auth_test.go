package auth

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

var fastHasher = Hasher{MemoryKiB: 1024, Time: 1, Threads: 1}

func TestHashVerify(t *testing.T) {
	h, err := fastHasher.Hash("correct horse")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$"))
	require.NoError(t, Verify("correct horse", h))
	require.ErrorIs(t, Verify("correct hors", h), ErrPasswordMismatch)

	h2, err := fastHasher.Hash("correct horse")
	require.NoError(t, err)
	require.NotEqual(t, h, h2, "salted")

	require.Error(t, Verify("x", "$2a$10$bcrypt"))
	require.Error(t, Verify("x", "$argon2id$v=19$m=x$a$b"))
	require.ErrorIs(t, fastHasher.VerifyOrBurn("anything", ""), ErrPasswordMismatch)
}

func TestValidatePassword(t *testing.T) {
	const email = "ann.smith@lab.example"
	for pw, want := range map[string]string{
		"short":                               "at least 8",
		"ééééééé€":                            "",
		"plain but long enough":               "",
		strings.Repeat("a", MaxPasswordLen+1): "at most",
		"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8":    "UTF-8",
		// NIST SP 800-63B: what an attacker tries first.
		"12345678":              "common",
		"password1":             "common",
		"PassWord1":             "common", // the list is compared ignoring case
		"baseball":              "common",
		"        ":              "repeated",
		"aaaaaaaaaa":            "repeated",
		"abababababab":          "repeated",
		"xyzxyzxyz":             "repeated",
		email:                   "e-mail",
		"ANN.SMITH@lab.example": "e-mail",
		"ann.smith1":            "e-mail",
	} {
		got := ValidatePassword(pw, email)
		if want == "" {
			require.Empty(t, got, "%q", pw)
		} else {
			require.Contains(t, got, want, "%q", pw)
		}
	}
	require.Empty(t, ValidatePassword("ann.smith1", ""), "without an e-mail only the other rules apply")
	require.GreaterOrEqual(t, CommonPasswords(), 10_000, "NIST asks for a real breach list")
}

func FuzzValidatePassword(f *testing.F) {
	for _, s := range []string{"", "12345678", "        ", "a@b.c", "\xff\xfe", "abcabcabc"} {
		f.Add(s, "a@b.c")
	}
	f.Fuzz(func(t *testing.T, pw, email string) {
		reason := ValidatePassword(pw, email)
		if reason == "" {
			require.True(t, utf8.ValidString(pw))
			require.GreaterOrEqual(t, utf8.RuneCountInString(pw), MinPasswordLen)
			require.False(t, repeated(pw))
		}
	})
}

func TestIssueParse(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	is := Issuer{Secret: []byte("0123456789abcdef0123456789abcdef"), AccessTTL: 15 * time.Minute, RefreshTTL: 24 * time.Hour,
		Now: func() time.Time { return now }}
	id := Identity{UID: 7, EmailAddress: "a@b.c", Admin: true}

	access, _, exp, err := is.Issue(TypeAccess, id, 3)
	require.NoError(t, err)
	require.Equal(t, now.Add(15*time.Minute), exp)
	c, err := is.Parse(access, TypeAccess)
	require.NoError(t, err)
	require.Equal(t, id, c.Identity)
	require.Equal(t, 3, c.Generation)

	_, err = is.Parse(access, TypeRefresh)
	require.ErrorIs(t, err, ErrInvalidToken, "an access token is not a refresh token")

	other := is
	other.Secret = []byte("another secret, also long enough!!")
	_, err = other.Parse(access, TypeAccess)
	require.ErrorIs(t, err, ErrInvalidToken, "wrong key")

	later := is
	later.Now = func() time.Time { return now.Add(16 * time.Minute) }
	_, err = later.Parse(access, TypeAccess)
	require.ErrorIs(t, err, ErrInvalidToken, "expired")

	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, Claims{Identity: id, Type: TypeAccess,
		RegisteredClaims: jwt.RegisteredClaims{Issuer: issuerName, ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)
	_, err = is.Parse(none, TypeAccess)
	require.ErrorIs(t, err, ErrInvalidToken, "alg none is refused")
}

func TestLinkToken(t *testing.T) {
	tok, hash := NewLinkToken()
	require.Len(t, tok, 43)
	require.Equal(t, hash, HashLinkToken(tok))
	tok2, _ := NewLinkToken()
	require.NotEqual(t, tok, tok2)
}

func FuzzVerify(f *testing.F) {
	good, _ := fastHasher.Hash("pw")
	for _, s := range []string{good, "", "$argon2id$", "$argon2id$v=19$m=1,t=1,p=1$$", "$argon2id$v=19$m=1024,t=1,p=0$AAAA$AAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, encoded string) {
		// Parameters come from the stored hash: absurd ones must be refused, not run.
		if err := Verify("pw", encoded); err == nil {
			require.ErrorIs(t, Verify("pw2", encoded), ErrPasswordMismatch, "a hash that accepts pw accepts nothing else")
		}
	})
}
