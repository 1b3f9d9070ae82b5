package protocol

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jax-mba/mba/internal/recording"
)

// Heartbeat is one enclosure heartbeat (PROTOCOL.md section 2), validated.
type Heartbeat struct {
	Name      string    // the enclosure's hostname, trimmed; safe as a file name
	Location  string    // "" if absent
	Timestamp time.Time // the device clock, in UTC
	SessionID int64     // 0: none
	ErrMsg    string    // "" if absent; at most 4096 bytes
	Recording bool
	// Duration is the recorded seconds the enclosure reports, when they mean something
	// (HasDuration): while it records or holds a session. After the client starts, until its
	// first START or COMPLETE, the field is uninitialised memory (any integer, huge or
	// negative; PROTOCOL.md section 2): it is accepted and dropped, never recorded time.
	Duration    int64
	HasDuration bool
	FPS         float64 // 0 if absent
	HasFPS      bool
	Uptime      int64   // seconds
	Load        float64 // 1-minute load average
	TotalRAM    int64   // kB
	FreeRAM     int64   // kB
	TotalDisk   int64   // MB
	FreeDisk    int64   // MB
	Release     string  // at most 4096 bytes
}

const timestampReason = "must be an ISO-8601 UTC time like 2026-01-02T03:04:05Z"

// ParseHeartbeat reads a heartbeat body at least as leniently as PROTOCOL.md section 2 asks:
// unknown fields at any level are ignored, null counts as absent, integers may be written as
// whole floats (86400.0), err_msg and release are cut to 4096 bytes (NUL characters dropped), and
// the timestamp may end in Z, in a UTC offset such as +00:00, or in nothing (UTC). The error is
// always a *FieldErrors naming every invalid field.
func ParseHeartbeat(body []byte) (Heartbeat, error) {
	body = asObject(body)
	if body == nil {
		return Heartbeat{}, &FieldErrors{Errors: map[string]string{"": "body must be a JSON object"}}
	}
	var top struct{ name, location, timestamp, sessionID, errMsg, sensorStatus, systemInfo []byte }
	for k, v := range members(body) {
		switch string(k) {
		case "name":
			top.name = v
		case "location":
			top.location = v
		case "timestamp":
			top.timestamp = v
		case "session_id":
			top.sessionID = v
		case "err_msg":
			top.errMsg = v
		case "sensor_status":
			top.sensorStatus = v
		case "system_info":
			top.systemInfo = v
		}
	}

	var f fields
	var h Heartbeat
	var camDuration []byte // read last: whether it means anything depends on the rest
	if s, ok := f.str("name", top.name, true); ok {
		h.Name = strings.TrimSpace(s)
		if r := recording.SafeName(h.Name, maxName); r != "" {
			f.fail("name", r)
		}
	}
	if s, ok := f.str("location", top.location, false); ok {
		h.Location = s
		if r := recording.BoundedText(s, maxLocation); r != "" {
			f.fail("location", r)
		}
	}
	if s, ok := f.str("timestamp", top.timestamp, true); ok {
		if h.Timestamp, ok = parseTimestamp(s); !ok {
			f.fail("timestamp", timestampReason)
		}
	}
	h.SessionID, _ = f.count("session_id", top.sessionID, false)
	if s, ok := f.str("err_msg", top.errMsg, false); ok {
		h.ErrMsg = freeText(s)
	}

	if sensor, ok := f.object("sensor_status", top.sensorStatus); ok {
		var camera []byte
		for k, v := range members(sensor) {
			if string(k) == "camera" {
				camera = v
			}
		}
		if camera, ok := f.object("sensor_status.camera", camera); ok {
			var recording, duration, fps []byte
			for k, v := range members(camera) {
				switch string(k) {
				case "recording":
					recording = v
				case "duration":
					duration = v
				case "fps":
					fps = v
				}
			}
			h.Recording, _ = f.boolean("sensor_status.camera.recording", recording, true)
			camDuration = duration
			if h.FPS, h.HasFPS = f.number("sensor_status.camera.fps", fps, false); h.FPS < 0 {
				f.fail("sensor_status.camera.fps", "must not be negative")
			}
		}
	}

	if sys, ok := f.object("system_info", top.systemInfo); ok {
		var uptime, load, totalRAM, freeRAM, totalDisk, freeDisk, release []byte
		for k, v := range members(sys) {
			switch string(k) {
			case "uptime":
				uptime = v
			case "load":
				load = v
			case "total_ram":
				totalRAM = v
			case "free_ram":
				freeRAM = v
			case "total_disk":
				totalDisk = v
			case "free_disk":
				freeDisk = v
			case "release":
				release = v
			}
		}
		h.Uptime, _ = f.count("system_info.uptime", uptime, true)
		h.Load, _ = f.number("system_info.load", load, true)
		h.TotalRAM, _ = f.count("system_info.total_ram", totalRAM, true)
		h.FreeRAM, _ = f.count("system_info.free_ram", freeRAM, true)
		h.TotalDisk, _ = f.count("system_info.total_disk", totalDisk, true)
		h.FreeDisk, _ = f.count("system_info.free_disk", freeDisk, true)
		if s, ok := f.str("system_info.release", release, true); ok {
			h.Release = freeText(s)
		}
	}

	if err := f.err(); err != nil {
		return Heartbeat{}, err
	}
	if d, ok := anyInteger(camDuration); ok && d >= 0 && (h.Recording || h.SessionID != 0) {
		h.Duration, h.HasDuration = d, true
	}
	return h, nil
}

// anyInteger reads an integer of any sign (the client's duration may be garbage), or a whole
// number written as a float; anything else, or absent, is not one. It never fails a heartbeat.
func anyInteger(raw []byte) (int64, bool) {
	if raw == nil || !isNumber(raw) {
		return 0, false
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return n, true
	}
	n, reason := wholeNumber(raw)
	return n, reason == ""
}

// The readers below take a member's raw value (nil if absent), treat null as absent, record what
// is wrong under path, and report whether they read a value.

func (f *fields) absent(path string, raw []byte, required bool) bool {
	if raw != nil && !isNull(raw) {
		return false
	}
	if required {
		f.fail(path, "is required")
	}
	return true
}

func (f *fields) str(path string, raw []byte, required bool) (string, bool) {
	if f.absent(path, raw, required) {
		return "", false
	}
	if !isString(raw) {
		f.fail(path, "must be a string")
		return "", false
	}
	return unquote(raw), true
}

func (f *fields) boolean(path string, raw []byte, required bool) (bool, bool) {
	if f.absent(path, raw, required) {
		return false, false
	}
	if !isBool(raw) {
		f.fail(path, "must be a boolean")
		return false, false
	}
	return raw[0] == 't', true
}

// count reads an integer >= 0.
func (f *fields) count(path string, raw []byte, required bool) (int64, bool) {
	if f.absent(path, raw, required) {
		return 0, false
	}
	if !isNumber(raw) {
		f.fail(path, "must be an integer")
		return 0, false
	}
	n, reason := wholeNumber(raw)
	if reason != "" {
		f.fail(path, reason)
		return 0, false
	}
	return n, true
}

// number reads a finite number.
func (f *fields) number(path string, raw []byte, required bool) (float64, bool) {
	if f.absent(path, raw, required) {
		return 0, false
	}
	if !isNumber(raw) {
		f.fail(path, "must be a number")
		return 0, false
	}
	x, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(x, 0) {
		f.fail(path, "is out of range")
		return 0, false
	}
	return x, true
}

// object returns raw if it is an object, nil if it is absent, and false if it is anything else.
func (f *fields) object(path string, raw []byte) ([]byte, bool) {
	if f.absent(path, raw, false) {
		return nil, true
	}
	if raw[0] != '{' {
		f.fail(path, "must be an object")
		return nil, false
	}
	return raw, true
}

// parseTimestamp reads YYYY-MM-DDTHH:MM:SS[.f{1,7}] followed by Z, a ±HH:MM offset, or nothing
// (UTC), and returns the instant in UTC.
func parseTimestamp(s string) (time.Time, bool) {
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest, nsec := s[19:], 0
	if rest != "" && rest[0] == '.' {
		n := 1
		for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
			n++
		}
		if n < 2 || n > 8 { // 1 to 7 digits
			return time.Time{}, false
		}
		nsec, _ = digits(rest[1:n])
		rest = rest[n:]
		for ; n < 10; n++ { // scale n-1 digits to nanoseconds
			nsec *= 10
		}
	}
	var offset int // seconds east of UTC
	switch {
	case rest == "" || rest == "Z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits(rest[1:3])
		om, ok2 := digits(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		if offset = oh*3600 + om*60; rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // February 30 and the like roll over into the next month
		return time.Time{}, false
	}
	return t.Add(-time.Duration(offset) * time.Second), true
}

// digits reads s, which must be all ASCII digits (and short enough not to overflow).
func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}
