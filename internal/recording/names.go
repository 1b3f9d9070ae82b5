package recording

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

// maxFilePrefix, in bytes, leaves room on the enclosure for the suffixes the client appends.
const maxFilePrefix = 100

// ValidFilePrefix returns why p cannot be a START file_prefix, or "" if it can. The client puts p
// at the start of file names on the enclosure, so it must be one plain file name component.
func ValidFilePrefix(p string) string {
	return SafeName(p, maxFilePrefix)
}

// SafeName returns why s is not safe as a single file or directory name, or "": ASCII letters,
// digits, '_', '-' and '.', not starting with '.' (hidden, "..") or '-' (read as an option).
// Enclosure names are directory names on our side, file prefixes file names on theirs.
func SafeName(s string, max int) string {
	if s == "" {
		return "must not be empty"
	}
	if r := BoundedText(s, max); r != "" {
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

// BoundedText returns why s is not a short single-line text of at most max bytes, or "".
func BoundedText(s string, max int) string {
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
