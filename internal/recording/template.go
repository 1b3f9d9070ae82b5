package recording

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Templates and subjects (issue 16): pure rules, run by the store in the transactions that
// write them, with refusals named as the REST API's fields.

// TemplateSpec is one version of a template: a session's settings without its name.
type TemplateSpec struct {
	Name           string
	Duration       int64
	FragmentHourly bool
	TargetFPS      int
	ApplyFilter    bool
	DeviceIDs      []int64
	PrefixPattern  string
	// Timeouts are the per-session timeouts as the session-change rules define them: a JSON
	// object kept as given (at most MaxTimeoutsBytes).
	Timeouts json.RawMessage
	Notes    string
}

// Bounds of templates and subjects.
const (
	MaxTimeoutsBytes = 4096
	MaxNotesBytes    = 4000
	MaxSubjectIDs    = 16
	MaxSubjectID     = 64
	MaxSubjectText   = 100
	MaxSubjectExtra  = 32
	MaxExtraValue    = 500
)

// The placeholders of a prefix pattern (README: Templates).
const (
	PlaceholderEnclosure = "{enclosure}" // the enclosure's name
	PlaceholderSubject   = "{subject}"   // its first subject id
	PlaceholderDate      = "{date}"      // the session's creation date, YYYYMMDD, UTC
	PlaceholderSession   = "{session}"   // the session's id
)

var placeholders = []string{PlaceholderEnclosure, PlaceholderSubject, PlaceholderDate, PlaceholderSession}

// ValidPrefixPattern returns why p cannot make file prefixes, or "": its placeholders must be
// known, the text around them what a file prefix may hold, and an expansion with typical
// values must be a valid prefix. Each real expansion is checked again when a session is made.
func ValidPrefixPattern(p string) string {
	if p == "" {
		return "must not be empty"
	}
	rest := p
	for _, ph := range placeholders {
		rest = strings.ReplaceAll(rest, ph, "")
	}
	if strings.ContainsAny(rest, "{}") {
		return "knows only the placeholders " + strings.Join(placeholders, " ")
	}
	sample := strings.NewReplacer(PlaceholderEnclosure, "NV1", PlaceholderSubject, "M1",
		PlaceholderDate, "20260101", PlaceholderSession, "1").Replace(p)
	if reason := ValidFilePrefix(sample); reason != "" {
		return "expands to " + strconv.Quote(sample) + ", which " + reason
	}
	if len(sample) > MaxPrefix {
		return fmt.Sprintf("expands to more than %d characters", MaxPrefix)
	}
	return ""
}

// UsesSubject says whether the pattern needs each enclosure's subject.
func UsesSubject(pattern string) bool { return strings.Contains(pattern, PlaceholderSubject) }

// ExpandPrefix fills the pattern in for one enclosure of session id, created at created.
func ExpandPrefix(pattern, enclosure, subject string, sessionID int64, created time.Time) string {
	return strings.NewReplacer(PlaceholderEnclosure, enclosure, PlaceholderSubject, subject,
		PlaceholderDate, created.UTC().Format("20060102"), PlaceholderSession, strconv.FormatInt(sessionID, 10)).Replace(pattern)
}

// ValidateTemplate checks a template version as Validate checks a new session (fields named as
// the REST body's) and returns it as stored.
func (r Rules) ValidateTemplate(t TemplateSpec) (TemplateSpec, error) {
	errs := map[string]string{}
	if n := utf8.RuneCountInString(strings.TrimSpace(t.Name)); n == 0 || n > 200 {
		errs["name"] = "is required, at most 200 characters"
	}
	if t.Duration < 1 {
		errs["duration"] = "must be at least 1 second"
	} else if maxSecs := int64(r.MaxDuration / time.Second); t.Duration > maxSecs {
		errs["duration"] = fmt.Sprintf("must be at most %d seconds (%s)", maxSecs, r.MaxDuration)
	}
	if t.TargetFPS < r.MinFPS || t.TargetFPS > r.MaxFPS {
		errs["target_fps"] = fmt.Sprintf("must be between %d and %d", r.MinFPS, r.MaxFPS)
	}
	if len(t.DeviceIDs) > r.MaxEnclosures {
		errs["device_ids"] = fmt.Sprintf("at most %d enclosures", r.MaxEnclosures)
	}
	seen := map[int64]bool{}
	for _, id := range t.DeviceIDs {
		if id <= 0 || seen[id] {
			errs["device_ids"] = "must be distinct enclosure ids"
		}
		seen[id] = true
	}
	if reason := ValidPrefixPattern(t.PrefixPattern); reason != "" {
		errs["prefix_pattern"] = reason
	}
	if len(t.Timeouts) == 0 || string(t.Timeouts) == "null" {
		t.Timeouts = json.RawMessage(`{}`)
	}
	var obj map[string]any
	if len(t.Timeouts) > MaxTimeoutsBytes {
		errs["timeouts"] = fmt.Sprintf("must be at most %d bytes", MaxTimeoutsBytes)
	} else if err := json.Unmarshal(t.Timeouts, &obj); err != nil || obj == nil {
		errs["timeouts"] = "must be a JSON object"
	}
	if reason := boundedNotes(t.Notes); reason != "" {
		errs["notes"] = reason
	}
	if len(errs) > 0 {
		return t, Refuse(errs)
	}
	t.Name = strings.TrimSpace(t.Name)
	return t, nil
}

// boundedNotes: free text of several lines, at most MaxNotesBytes.
func boundedNotes(s string) string {
	switch {
	case len(s) > MaxNotesBytes:
		return fmt.Sprintf("must be at most %d bytes", MaxNotesBytes)
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' && r != '\r' || r == 0x7f }):
		return "must not contain control characters other than line breaks and tabs"
	}
	return ""
}

// Sexes a subject may be recorded with ("" for not stated).
var Sexes = []string{"", "female", "male", "unknown"}

// Subject is who was in an enclosure during a session.
type Subject struct {
	IDs         []string // subject ids, e.g. ear tags; the first one fills {subject}
	Strain      string
	Sex         string
	DateOfBirth *time.Time // a date (UTC midnight)
	Cage        string
	Extra       map[string]string // free-form key-values
	Notes       string
}

// IsZero says the subject says nothing (an enclosure without one).
func (s Subject) IsZero() bool {
	return len(s.IDs) == 0 && s.Strain == "" && s.Sex == "" && s.DateOfBirth == nil && s.Cage == "" &&
		len(s.Extra) == 0 && s.Notes == ""
}

// First is the subject id {subject} stands for ("" for none).
func (s Subject) First() string {
	if len(s.IDs) == 0 {
		return ""
	}
	return s.IDs[0]
}

// ValidateSubject checks a subject, naming bad fields under prefix (e.g.
// "device_spec[2].subject."), against today's date (a date of birth is never in the future).
func ValidateSubject(s Subject, prefix string, today time.Time, errs map[string]string) {
	if len(s.IDs) > MaxSubjectIDs {
		errs[prefix+"subject_ids"] = fmt.Sprintf("at most %d subject ids", MaxSubjectIDs)
	}
	seen := map[string]bool{}
	for i, id := range s.IDs {
		// Subject ids go into file prefixes ({subject}): one plain file name component.
		if reason := SafeName(id, MaxSubjectID); reason != "" {
			errs[fmt.Sprintf("%ssubject_ids[%d]", prefix, i)] = reason
		} else if seen[strings.ToLower(id)] {
			errs[fmt.Sprintf("%ssubject_ids[%d]", prefix, i)] = "is listed twice"
		}
		seen[strings.ToLower(id)] = true
	}
	for name, v := range map[string]string{"strain": s.Strain, "cage": s.Cage} {
		if reason := BoundedText(v, MaxSubjectText); reason != "" {
			errs[prefix+name] = reason
		}
	}
	if !slices.Contains(Sexes, s.Sex) {
		errs[prefix+"sex"] = "must be female, male, unknown or empty"
	}
	if s.DateOfBirth != nil && s.DateOfBirth.After(today) {
		errs[prefix+"date_of_birth"] = "must not be in the future"
	}
	if len(s.Extra) > MaxSubjectExtra {
		errs[prefix+"extra"] = fmt.Sprintf("at most %d keys", MaxSubjectExtra)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Extra)) {
		if k == "" || BoundedText(k, MaxSubjectID) != "" {
			errs[prefix+"extra"] = fmt.Sprintf("keys must be 1 to %d bytes of single-line text", MaxSubjectID)
		} else if reason := BoundedText(s.Extra[k], MaxExtraValue); reason != "" {
			errs[prefix+"extra."+k] = reason
		}
	}
	if reason := boundedNotes(s.Notes); reason != "" {
		errs[prefix+"notes"] = reason
	}
}
