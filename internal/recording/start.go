package recording

import (
	"fmt"
	"math"
)

// Plan is what an enclosure of a session is to record: the session's parameters and the
// enclosure's file name prefix. Its Start is the one place START parameters are built.
type Plan struct {
	Duration       int64 // seconds
	FragmentHourly bool
	FilePrefix     string
	TargetFPS      int
	ApplyFilter    bool
}

// Start is the START of the plan's first segment in the session; resumed segments derive from
// it (Start.Resumed).
func (p Plan) Start(sessionID int64) Start {
	return Start{SessionID: sessionID, Duration: p.Duration, FragmentHourly: p.FragmentHourly,
		FilePrefix: p.FilePrefix, TargetFPS: int64(p.TargetFPS), ApplyFilter: p.ApplyFilter}
}

// Start are the parameters of START (protocol.StartParams on the wire). The field order is
// the wire order of PROTOCOL.md.
type Start struct {
	SessionID      int64  `json:"session_id"`
	Duration       int64  `json:"duration"` // seconds
	FragmentHourly bool   `json:"fragment_hourly"`
	FilePrefix     string `json:"file_prefix"`
	TargetFPS      int64  `json:"target_fps"`
	ApplyFilter    bool   `json:"apply_filter"`
}

// Resumed is the START of segment n (2, 3, ...) of a recording whose first START is p, for
// seconds: the same recording, on a prefix of its own so the earlier segments' files are not
// overwritten (PROTOCOL.md 5.6). The workflow and the heartbeat path both build it here.
func (p Start) Resumed(segment int, seconds int64) Start {
	p.FilePrefix = fmt.Sprintf("%s_s%d", p.FilePrefix, segment)
	p.Duration = seconds
	return p
}

// Validate returns a *FieldErrors if p could crash or confuse the client. Integers must fit a
// 32-bit C++ int: a client that narrows a larger duration could see one below 1 and crash.
func (p Start) Validate() error {
	errs := map[string]string{}
	for _, n := range []struct {
		path  string
		value int64
	}{{"session_id", p.SessionID}, {"duration", p.Duration}, {"target_fps", p.TargetFPS}} {
		if n.value < 1 || n.value > math.MaxInt32 {
			errs[n.path] = "must be between 1 and 2147483647"
		}
	}
	if r := ValidFilePrefix(p.FilePrefix); r != "" {
		errs["file_prefix"] = r
	}
	if len(errs) == 0 {
		return nil
	}
	return &FieldErrors{Errors: errs}
}
