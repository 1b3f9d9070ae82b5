// Package protocol is the enclosure wire format: heartbeat bodies and command replies; standard
// library only, besides the recording vocabulary (internal/recording, itself standard library
// only), which holds START's parameters, their validation and the safe-name rules.
//
// It follows PROTOCOL.md, sections 2 and 3: ParseHeartbeat reads a heartbeat as
// leniently as the unmodified C++ client may write it, EncodeReply writes the only replies the
// client can take without crashing, and CheckReply tells whether any HTTP reply is one of those.
package protocol

import (
	"strings"
	"unicode/utf8"

	"github.com/jax-mba/mba/internal/recording"
)

// FieldErrors lists every invalid field at once (recording.FieldErrors: START's parameters
// are validated there).
type FieldErrors = recording.FieldErrors

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
	maxName     = 255 // a hostname, also a directory name on our side
	maxLocation = 255
	maxText     = 4096
)

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
