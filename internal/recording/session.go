package recording

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The rules of a new session, pure functions the store runs in the transaction that writes it
// (store.CreateSession), whoever asks: the REST API or a workflow activity. A refusal names its
// fields as the REST API does (device_spec[2].filename_prefix), since that is where a person
// reads it; other callers get the same text.

// Rules are the deployment's limits on new sessions.
type Rules struct {
	MaxEnclosures  int           // per session, well below Temporal's 2 000 pending children
	MinFPS, MaxFPS int           // accepted target frame rates
	MaxDuration    time.Duration // longest session
	BytesPerSecond int64         // video an enclosure writes per second, for the disk projection
	RejectLowDisk  bool          // refuse (instead of warn about) enclosures without the disk space
}

// NewSession is what a researcher (or, later, a schedule) asks for.
type NewSession struct {
	Name           string
	Duration       int64 // seconds
	FragmentHourly bool
	TargetFPS      int
	ApplyFilter    bool
	Devices        []NewSessionDevice
	CreatedBy      int64 // the user who asks; 0 for none
	// IdempotencyKey: the same creator and key is the same session (a retried request or
	// activity, a double click); "" for none.
	IdempotencyKey string
	ScheduleID     int64 // the schedule whose fire asks; 0 for none
	// PrefixPattern, when set, makes the file prefix of every enclosure that names none
	// (ExpandPrefix, once the session has its id).
	PrefixPattern string
	// TemplateID and TemplateVersion name the template version the session is made from (0: none).
	TemplateID      int64
	TemplateVersion int
	Timeouts        Timeouts
}

// Timeouts are a session's own start deadline, silence timeout and end grace; a zero one is
// the server-wide setting.
type Timeouts struct {
	StartDeadline  time.Duration
	SilenceTimeout time.Duration
	EndGrace       time.Duration
}

// Bounds of a session's own timeouts: shorter ones fail healthy enclosures between two
// heartbeats, longer ones hold an enclosure for days.
const (
	MinTimeout = time.Minute
	MaxTimeout = 7 * 24 * time.Hour
	MinGrace   = 10 * time.Second
	MaxGrace   = 24 * time.Hour
)

// validate names each timeout out of its bounds (fields as the REST API names them, seconds).
func (t Timeouts) validate(errs map[string]string) {
	for _, c := range []struct {
		field    string
		v        time.Duration
		min, max time.Duration
	}{{"start_deadline", t.StartDeadline, MinTimeout, MaxTimeout}, {"silence_timeout", t.SilenceTimeout, MinTimeout, MaxTimeout},
		{"end_grace", t.EndGrace, MinGrace, MaxGrace}} {
		if c.v != 0 && (c.v < c.min || c.v > c.max) {
			errs[c.field] = fmt.Sprintf("must be between %d and %d seconds (or left out for the server's setting)",
				int64(c.min/time.Second), int64(c.max/time.Second))
		}
	}
}

// NewSessionDevice is one enclosure of a new session.
type NewSessionDevice struct {
	DeviceID   *int64  // nil: the request names none (refused)
	FilePrefix string  // "": made from the session's PrefixPattern
	Subject    Subject // who is in it (zero: not stated)
}

// MaxPrefix leaves room for the segment suffix a resume adds ("_s12") within the protocol's
// 100-byte limit.
const MaxPrefix = 90

// ErrIdempotencyMismatch: the creator's Idempotency-Key names a session created from another
// request (the store finds it; the API answers 422, the activity does not retry).
var ErrIdempotencyMismatch = errors.New("this Idempotency-Key was used for a different request; use a new key for a new session")

// Refusal is a new session the rules refuse: a message naming every reason, and for each
// field at fault why (the REST API's 400 body: message and errors).
type Refusal struct {
	Message string
	Fields  map[string]string
	// Conflict: the request is well formed but the state refuses it (a busy enclosure, a
	// finished session): the REST API's 409 instead of 400.
	Conflict bool
}

func (r *Refusal) Error() string { return r.Message }

// Refuse reports fields that fail validation. The message names every reason too, in field
// order, since front ends (the lab's original one) show only the message.
func Refuse(fields map[string]string) *Refusal {
	reasons := make([]string, 0, len(fields))
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		reasons = append(reasons, f+": "+fields[f])
	}
	return &Refusal{Message: strings.Join(reasons, "; "), Fields: fields}
}

// Validate checks everything that needs no database, naming each bad field, and returns the
// session as it is stored (its name trimmed). The error is a *Refusal.
func (r Rules) Validate(ns NewSession) (NewSession, error) {
	errs := map[string]string{}
	if n := utf8.RuneCountInString(strings.TrimSpace(ns.Name)); n == 0 || n > 200 {
		errs["name"] = "is required, at most 200 characters"
	}
	if ns.Duration < 1 {
		errs["duration"] = "must be at least 1 second"
	} else if maxSecs := int64(r.MaxDuration / time.Second); ns.Duration > maxSecs { // in seconds: a huge value must not wrap
		errs["duration"] = fmt.Sprintf("must be at most %d seconds (%s)", maxSecs, r.MaxDuration)
	}
	if ns.TargetFPS < r.MinFPS || ns.TargetFPS > r.MaxFPS {
		errs["target_fps"] = fmt.Sprintf("must be between %d and %d", r.MinFPS, r.MaxFPS)
	}
	switch {
	case len(ns.Devices) == 0:
		errs["device_spec"] = "must list at least one enclosure"
	case len(ns.Devices) > r.MaxEnclosures:
		errs["device_spec"] = fmt.Sprintf("at most %d enclosures per session", r.MaxEnclosures)
	}
	ns.Timeouts.validate(errs)
	maps.Copy(errs, ValidDevices(ns.Devices, "device_spec", ns.PrefixPattern))
	if ns.PrefixPattern != "" {
		if reason := ValidPrefixPattern(ns.PrefixPattern); reason != "" {
			errs["prefix_pattern"] = reason
		}
	}
	if len(errs) > 0 {
		return ns, Refuse(errs)
	}
	ns.Name = strings.TrimSpace(ns.Name)
	return ns, nil
}

// ValidDevices checks a list of enclosures (of a new session, or added to a running one),
// naming each bad one under field; pattern is the session's prefix pattern ("" for none), which
// makes the prefix of an enclosure that names none.
func ValidDevices(devices []NewSessionDevice, field, pattern string) map[string]string {
	errs := map[string]string{}
	seen := map[int64]bool{}
	for i, d := range devices {
		field := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case d.DeviceID == nil:
			errs[field+".device_id"] = "is required"
		case seen[*d.DeviceID]:
			errs[field+".device_id"] = fmt.Sprintf("device %d is listed twice", *d.DeviceID)
		default:
			seen[*d.DeviceID] = true
		}
		switch {
		case d.FilePrefix == "" && pattern != "":
			if UsesSubject(pattern) && d.Subject.First() == "" {
				errs[field+".subject.subject_ids"] = "is required: the prefix pattern uses {subject}"
			}
		default:
			if reason := ValidFilePrefix(d.FilePrefix); reason != "" {
				errs[field+".filename_prefix"] = reason
			} else if len(d.FilePrefix) > MaxPrefix {
				errs[field+".filename_prefix"] = fmt.Sprintf("must be at most %d characters (room for a resume suffix)", MaxPrefix)
			}
		}
		ValidateSubject(d.Subject, field+".subject.", time.Now(), errs)
	}
	return errs
}

// ExpandPrefixes fills in, from the pattern, the prefix of every enclosure that names none,
// once the session has its id; names are the enclosures' names by id. An expansion that is no
// valid prefix (too long, "..") is a refusal naming the enclosure's field.
func (ns NewSession) ExpandPrefixes(sessionID int64, names map[int64]string, created time.Time) (NewSession, error) {
	if ns.PrefixPattern == "" {
		return ns, nil
	}
	errs := map[string]string{}
	devices := slices.Clone(ns.Devices)
	for i, d := range devices {
		if d.FilePrefix != "" {
			continue
		}
		p := ExpandPrefix(ns.PrefixPattern, names[*d.DeviceID], d.Subject.First(), sessionID, created)
		if reason := ValidFilePrefix(p); reason != "" {
			errs[fmt.Sprintf("device_spec[%d].filename_prefix", i)] = fmt.Sprintf("the pattern makes %q, which %s", p, reason)
		} else if len(p) > MaxPrefix {
			errs[fmt.Sprintf("device_spec[%d].filename_prefix", i)] = fmt.Sprintf("the pattern makes %q, longer than %d characters", p, MaxPrefix)
		}
		devices[i].FilePrefix = p
	}
	if len(errs) > 0 {
		return ns, Refuse(errs)
	}
	ns.Devices = devices
	return ns, nil
}

// DeviceIDs are the enclosures a validated session lists, in its order.
func (ns NewSession) DeviceIDs() []int64 {
	ids := make([]int64, len(ns.Devices))
	for i, d := range ns.Devices {
		ids[i] = *d.DeviceID
	}
	return ids
}

// Candidate is an enclosure of a new session as admission sees it.
type Candidate struct {
	ID         int64
	Name       string
	State      EnclosureState
	SessionID  *int64 // the session it is busy in
	FreeDiskMB *int64 // as last reported; nil: unknown
	Unusable   string // why it cannot be in any session (retired, ...); "" when it can
}

// Admit judges a validated session's enclosures, found by id: unknown or unusable ones refuse
// the session; busy, silent and short-of-disk ones are warnings, or (low disk, when the rules
// say so) field errors. The error is a *Refusal.
func (r Rules) Admit(ns NewSession, found map[int64]Candidate) (warnings []string, err error) {
	var unknown []string
	for _, d := range ns.Devices {
		if _, ok := found[*d.DeviceID]; !ok {
			unknown = append(unknown, strconv.FormatInt(*d.DeviceID, 10))
		}
	}
	if len(unknown) > 0 {
		return nil, &Refusal{Message: "Invalid device IDs: [" + strings.Join(unknown, ", ") + "]",
			Fields: map[string]string{"device_spec": "unknown device ids: " + strings.Join(unknown, ", ")}}
	}
	bad := map[string]string{}
	for _, c := range found {
		if c.Unusable != "" {
			bad[c.Name] = c.Unusable
		}
	}
	if len(bad) > 0 {
		names := slices.Sorted(maps.Keys(bad))
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = n + " (" + bad[n] + ")"
		}
		msg := "enclosures that cannot record: " + strings.Join(parts, ", ")
		return nil, &Refusal{Message: msg, Fields: map[string]string{"device_spec": msg}}
	}

	errs := map[string]string{}
	needMB := ns.Duration * r.BytesPerSecond / 1_000_000
	for i, spec := range ns.Devices {
		c := found[*spec.DeviceID]
		switch c.State {
		case EnclosureBusy:
			warnings = append(warnings, fmt.Sprintf("%s is busy in session %d: it is listed FAILED", c.Name, *c.SessionID))
		case EnclosureDown:
			warnings = append(warnings, fmt.Sprintf("%s is DOWN: it starts recording when it returns", c.Name))
		}
		free := c.FreeDiskMB
		if free == nil || *free >= needMB {
			continue
		}
		msg := fmt.Sprintf("%s needs about %d MB for %d s of video but reports %d MB free", c.Name, needMB, ns.Duration, *free)
		if r.RejectLowDisk {
			errs[fmt.Sprintf("device_spec[%d].device_id", i)] = msg
		} else {
			warnings = append(warnings, msg)
		}
	}
	if len(errs) > 0 {
		return nil, Refuse(errs)
	}
	return warnings, nil
}
