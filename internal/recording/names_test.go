package recording

import (
	"strings"
	"testing"
)

// The package is standard-library only, its tests too.

func TestValidFilePrefix(t *testing.T) {
	for _, tc := range []struct{ prefix, reason string }{
		{"cage7", ""},
		{"cage_7-b.1_", ""},
		{"A", ""},
		{strings.Repeat("p", 100), ""},
		{"", "must not be empty"},
		{strings.Repeat("p", 101), "must be at most 100 bytes"},
		{"cage\xff", "must be valid UTF-8"},
		{"cage\n7", "must not contain control characters"},
		{"cage\x7f", "must not contain control characters"},
		{"cage\u00857", "must not contain control characters"},
		{"a/b", `must not contain '/' or '\'`},
		{`a\b`, `must not contain '/' or '\'`},
		{"..", `must not contain ".."`},
		{"a..b", `must not contain ".."`},
		{".hidden", "must not start with '.' or '-'"},
		{"-rf", "must not start with '.' or '-'"},
		{"cage 7", "may contain only ASCII letters, digits, '_', '-' and '.'"},
		{"käfig", "may contain only ASCII letters, digits, '_', '-' and '.'"},
		{"a:b", "may contain only ASCII letters, digits, '_', '-' and '.'"},
		{"a*", "may contain only ASCII letters, digits, '_', '-' and '.'"},
		{`a"b`, "may contain only ASCII letters, digits, '_', '-' and '.'"},
	} {
		if got := ValidFilePrefix(tc.prefix); got != tc.reason {
			t.Errorf("%q: got %q, want %q", tc.prefix, got, tc.reason)
		}
	}
}
