// Package auth holds the credentials logic shared by the API and the command line: password
// hashing, single-use link tokens and JWTs. It has no storage of its own.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password length limits, in characters. The maximum bounds the work one request can cause.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 256
)

// ErrPasswordMismatch reports a wrong password.
var ErrPasswordMismatch = errors.New("password does not match")

// commonPasswords are refused as new passwords (NIST SP 800-63B 3.1.1.2: passwords from
// breach corpuses), compared ignoring case.
//
//go:embed common_passwords.txt
var commonPasswordsText string

var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	m := make(map[string]struct{}, 20_000)
	for _, line := range strings.Split(commonPasswordsText, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			m[strings.ToLower(line)] = struct{}{}
		}
	}
	return m
})

// CommonPasswords is the number of passwords on the shipped list of common ones.
func CommonPasswords() int { return len(commonPasswords()) }

// ValidatePassword returns a reason a new password is not acceptable, or "". Following NIST SP
// 800-63B it asks for length, not composition, and refuses what an attacker tries first: a
// common password, the account's own e-mail address (or its name part), and one character or
// a short pattern repeated ("        ", "abcabcabc").
func ValidatePassword(pw, email string) string {
	n := utf8.RuneCountInString(pw)
	lower := strings.ToLower(pw)
	name, _, _ := strings.Cut(strings.ToLower(email), "@")
	switch {
	case !utf8.ValidString(pw):
		return "must be valid UTF-8"
	case n < MinPasswordLen:
		return fmt.Sprintf("must be at least %d characters", MinPasswordLen)
	case n > MaxPasswordLen:
		return fmt.Sprintf("must be at most %d characters", MaxPasswordLen)
	case email != "" && (lower == strings.ToLower(email) || (len(name) >= 3 && strings.Contains(lower, name) && n-utf8.RuneCountInString(name) < 4)):
		return "must not be your e-mail address or its name"
	case repeated(pw):
		return "must not be one character or a short pattern repeated"
	}
	if _, common := commonPasswords()[lower]; common {
		return "is one of the most common passwords; choose another"
	}
	return ""
}

// repeated reports a password that is a pattern of at most three characters repeated.
func repeated(pw string) bool {
	r := []rune(pw)
	for p := 1; p <= 3 && p < len(r); p++ {
		same := true
		for i := p; i < len(r) && same; i++ {
			same = r[i] == r[i-p]
		}
		if same {
			return true
		}
	}
	return false
}

// ValidateEmail returns a reason an e-mail address is not acceptable for an account, or "".
func ValidateEmail(email string) string {
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > 254 {
		return "must be an e-mail address like name@example.org"
	}
	return ""
}

// Hasher hashes passwords with argon2id. Its parameters go into every hash, so they can be
// raised later without invalidating stored passwords.
type Hasher struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultHasher follows OWASP's argon2id recommendation (46 MiB, 1 pass, 1 lane).
var DefaultHasher = Hasher{MemoryKiB: 46 * 1024, Time: 1, Threads: 1}

const saltLen, keyLen = 16, 32

// Hash returns the PHC-format string of pw: $argon2id$v=19$m=..,t=..,p=..$salt$key.
func (h Hasher) Hash(pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, h.Time, h.MemoryKiB, h.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.MemoryKiB, h.Time, h.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify checks pw against a hash made by Hash, in constant time.
func Verify(pw, encoded string) error {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return errors.New("unsupported password hash format")
	}
	var version int
	var h Hasher
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return errors.New("unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.MemoryKiB, &h.Time, &h.Threads); err != nil {
		return fmt.Errorf("bad argon2 parameters: %w", err)
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return fmt.Errorf("bad salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil {
		return fmt.Errorf("bad key: %w", err)
	}
	// The parameters come from storage: refuse what argon2 cannot run or what would exhaust memory.
	if len(want) < 16 || len(want) > 64 || len(salt) < 8 || h.Time < 1 || h.Time > 16 || h.Threads < 1 ||
		h.MemoryKiB < 8*uint32(h.Threads) || h.MemoryKiB > 1<<20 {
		return errors.New("argon2 parameters out of range")
	}
	got := argon2.IDKey([]byte(pw), salt, h.Time, h.MemoryKiB, h.Threads, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrPasswordMismatch
	}
	return nil
}

// VerifyOrBurn checks pw against encoded or, when there is no hash (unknown account, or one
// that never set a password), spends the same effort and reports a mismatch, so that a
// login's timing does not reveal which accounts exist.
func (h Hasher) VerifyOrBurn(pw, encoded string) error {
	if encoded == "" {
		_, _ = h.Hash(pw)
		return ErrPasswordMismatch
	}
	return Verify(pw, encoded)
}
