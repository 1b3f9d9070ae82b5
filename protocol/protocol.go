// Package protocol is the enclosure wire format: heartbeat bodies and command replies; standard
// library only.
//
// It follows PROTOCOL.md, sections 2 and 3: ParseHeartbeat reads a heartbeat as
// leniently as the unmodified C++ client may write it, EncodeReply writes the only replies the
// client can take without crashing, and CheckReply tells whether any HTTP reply is one of those.
package protocol

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// FieldErrors lists every invalid field at once, so an API can answer 400 with
// ErrorBody(message, e.Errors). Keys are dotted field paths ("system_info.free_disk"); the key ""
// stands for the body as a whole.
type FieldErrors struct {
	Errors map[string]string // field path -> reason, e.g. "is required"
}

func (e *FieldErrors) Error() string {
	var b strings.Builder
	for i, path := range slices.Sorted(maps.Keys(e.Errors)) {
		if i > 0 {
			b.WriteString("; ")
		}
		if path != "" {
			b.WriteString(path + ": ")
		}
		b.WriteString(e.Errors[path])
	}
	return b.String()
}

// fields collects FieldErrors; the map is only allocated once something fails.
type fields struct{ errs *FieldErrors }

// fail records the first reason for path.
func (f *fields) fail(path, reason string) {
	if f.errs == nil {
		f.errs = &FieldErrors{Errors: map[string]string{}}
	}
	if _, seen := f.errs.Errors[path]; !seen {
		f.errs.Errors[path] = reason
	}
}

// err returns the collected errors, or a nil error (not a nil *FieldErrors) if there are none.
func (f *fields) err() error {
	if f.errs == nil {
		return nil
	}
	return f.errs
}

// Limits, in bytes.
const (
	maxName       = 255 // a hostname, also a directory name on our side
	maxLocation   = 255
	maxFilePrefix = 100 // leaves room on the enclosure for the suffixes the client appends
	maxText       = 4096
)

// ValidFilePrefix returns why p cannot be a START file_prefix, or "" if it can. The client puts p
// at the start of file names on the enclosure, so it must be one plain file name component.
func ValidFilePrefix(p string) string {
	return safeName(p, maxFilePrefix)
}

// safeName returns why s is not safe as a single file or directory name, or "": ASCII letters,
// digits, '_', '-' and '.', not starting with '.' (hidden, "..") or '-' (read as an option).
func safeName(s string, max int) string {
	if s == "" {
		return "must not be empty"
	}
	if r := boundedText(s, max); r != "" {
		return r
	}
	switch {
	case strings.ContainsAny(s, `/\`):
		return `must not contain '/' or '\'`
	case strings.Contains(s, ".."):
		return `must not contain ".."`
	case s[0] == '.' || s[0] == '-':
		return "must not start with '.' or '-'"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return "may contain only ASCII letters, digits, '_', '-' and '.'"
		}
	}
	return ""
}

// boundedText returns why s is not a short single-line text of at most max bytes, or "".
func boundedText(s string, max int) string {
	switch {
	case len(s) > max:
		return fmt.Sprintf("must be at most %d bytes", max)
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "must not contain control characters"
	}
	return ""
}

// freeText makes s storable as free text: NUL characters, which PostgreSQL text cannot hold, are
// dropped, and s is cut to maxText bytes at a character boundary. s is valid UTF-8 (decoded JSON).
func freeText(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if len(s) <= maxText {
		return s
	}
	i := maxText
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
