package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
)

// realBody is what a recording enclosure sends, with the client's "state" and fields a simulator
// or a newer client might add at every level.
const realBody = `{
  "name": "jetson07",
  "location": "room 2.14 rack B",
  "timestamp": "2026-03-04T05:06:07.1234567Z",
  "session_id": 12,
  "state": "RECORDING",
  "sensor_status": {
    "camera": {"recording": true, "duration": 3600, "fps": 29.97, "exposure": {"auto": true}},
    "microphone": {"level": -40.5}
  },
  "system_info": {
    "uptime": 86400,
    "load": 1.25,
    "total_ram": 8039400,
    "free_ram": 5120000,
    "total_disk": 234000,
    "free_disk": 180000,
    "release": "R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t186ref, EABI: aarch64",
    "cpu_temp": 51.5,
    "mounts": ["/", "/data"]
  },
  "simulator": {"version": "0.3", "tags": [1, "a", null, {"x": [true]}]}
}`

var realHeartbeat = Heartbeat{
	Name:        "jetson07",
	Location:    "room 2.14 rack B",
	Timestamp:   time.Date(2026, 3, 4, 5, 6, 7, 123456700, time.UTC),
	SessionID:   12,
	Recording:   true,
	Duration:    3600,
	HasDuration: true,
	FPS:         29.97,
	HasFPS:      true,
	Uptime:      86400,
	Load:        1.25,
	TotalRAM:    8039400,
	FreeRAM:     5120000,
	TotalDisk:   234000,
	FreeDisk:    180000,
	Release:     "R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t186ref, EABI: aarch64",
}

// minimalBody holds only the required fields.
const minimalBody = `{"name":"enc1","timestamp":"2026-01-02T03:04:05Z","sensor_status":{"camera":{"recording":false}},
"system_info":{"uptime":1,"load":0,"total_ram":2,"free_ram":1,"total_disk":4,"free_disk":3,"release":""}}`

// requiredPaths are the fields PROTOCOL.md section 2 requires.
var requiredPaths = []string{
	"name", "timestamp", "sensor_status.camera.recording",
	"system_info.uptime", "system_info.load", "system_info.total_ram", "system_info.free_ram",
	"system_info.total_disk", "system_info.free_disk", "system_info.release",
}

// edited returns minimalBody with each path set to the raw JSON value, or removed if the value is "".
func edited(t testing.TB, edits map[string]string) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(minimalBody), &m))
	for path, raw := range edits {
		obj := m
		parts := strings.Split(path, ".")
		for _, p := range parts[:len(parts)-1] {
			next, ok := obj[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				obj[p] = next
			}
			obj = next
		}
		if raw == "" {
			delete(obj, parts[len(parts)-1])
		} else {
			obj[parts[len(parts)-1]] = json.RawMessage(raw)
		}
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// fieldErrors asserts that err is a *FieldErrors and returns its map.
func fieldErrors(t testing.TB, err error) map[string]string {
	t.Helper()
	var fe *FieldErrors
	require.True(t, errors.As(err, &fe), "want *FieldErrors, got %T %v", err, err)
	return fe.Errors
}

func TestParseHeartbeatRealistic(t *testing.T) {
	h, err := ParseHeartbeat([]byte(realBody))
	require.NoError(t, err)
	assert.Equal(t, realHeartbeat, h)
	assert.Equal(t, time.UTC, h.Timestamp.Location())
}

func TestParseHeartbeatMinimal(t *testing.T) {
	h, err := ParseHeartbeat([]byte(minimalBody))
	require.NoError(t, err)
	assert.Equal(t, Heartbeat{Name: "enc1", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Uptime: 1, TotalRAM: 2, FreeRAM: 1, TotalDisk: 4, FreeDisk: 3}, h)
}

func TestParseHeartbeatRequired(t *testing.T) {
	for _, path := range requiredPaths {
		for _, value := range []string{"", "null"} {
			_, err := ParseHeartbeat(edited(t, map[string]string{path: value}))
			assert.Equal(t, map[string]string{path: "is required"}, fieldErrors(t, err), "%s=%q", path, value)
		}
	}
	// A missing object is an empty one: each required field inside is reported.
	_, err := ParseHeartbeat(edited(t, map[string]string{"system_info": "", "sensor_status": "null"}))
	errs := fieldErrors(t, err)
	assert.Len(t, errs, 8)
	assert.Equal(t, "is required", errs["system_info.release"])
	assert.Equal(t, "is required", errs["sensor_status.camera.recording"])
	_, err = ParseHeartbeat([]byte(`{}`))
	assert.Len(t, fieldErrors(t, err), len(requiredPaths))
}

func TestParseHeartbeatInvalid(t *testing.T) {
	const (
		str     = "must be a string"
		integer = "must be an integer"
		number  = "must be a number"
		object  = "must be an object"
	)
	for _, tc := range []struct{ path, value, reason string }{
		{"name", `7`, str},
		{"name", `["enc1"]`, str},
		{"name", `"  "`, "must not be empty"},
		{"name", `"enc 1"`, "may contain only ASCII letters, digits, '_', '-' and '.'"},
		{"name", `"a/b"`, `must not contain '/' or '\'`},
		{"name", `".."`, `must not contain ".."`},
		{"name", `".enc"`, "must not start with '.' or '-'"},
		{"name", `"-enc"`, "must not start with '.' or '-'"},
		{"name", `"käfig"`, "may contain only ASCII letters, digits, '_', '-' and '.'"},
		{"name", `"e\u0000"`, "must not contain control characters"},
		{"name", `"` + strings.Repeat("a", 256) + `"`, "must be at most 255 bytes"},
		{"location", `null`, ""}, // optional: null is absent
		{"location", `3`, str},
		{"location", `"rack\n2"`, "must not contain control characters"},
		{"location", `"` + strings.Repeat("é", 128) + `"`, "must be at most 255 bytes"},
		{"timestamp", `1767323045`, str},
		{"timestamp", `"2026-01-02 03:04:05Z"`, timestampReason},
		{"session_id", `"12"`, integer},
		{"session_id", `-1`, "must not be negative"},
		{"session_id", `1.5`, integer},
		{"session_id", `true`, integer},
		{"session_id", `9223372036854775808`, "is out of range"},
		{"err_msg", `{}`, str},
		{"sensor_status", `[]`, object},
		{"sensor_status", `"ok"`, object},
		{"sensor_status.camera", `true`, object},
		{"sensor_status.camera.recording", `"true"`, "must be a boolean"},
		{"sensor_status.camera.recording", `1`, "must be a boolean"},
		{"sensor_status.camera.fps", `"30"`, number},
		{"sensor_status.camera.fps", `-0.5`, "must not be negative"},
		{"sensor_status.camera.fps", `1e400`, "is out of range"},
		{"system_info", `5`, object},
		{"system_info.uptime", `-1`, "must not be negative"},
		{"system_info.uptime", `1e19`, "is out of range"},
		{"system_info.load", `"0.5"`, number},
		{"system_info.load", `-1e999`, "is out of range"},
		{"system_info.total_ram", `false`, integer},
		{"system_info.free_ram", `1024.5`, integer},
		{"system_info.total_disk", `{}`, integer},
		{"system_info.free_disk", `-5`, "must not be negative"},
		{"system_info.release", `32`, str},
	} {
		_, err := ParseHeartbeat(edited(t, map[string]string{tc.path: tc.value}))
		if tc.reason == "" {
			assert.NoError(t, err, "%s=%s", tc.path, tc.value)
			continue
		}
		assert.Equal(t, map[string]string{tc.path: tc.reason}, fieldErrors(t, err), "%s=%s", tc.path, tc.value)
	}
}

func TestParseHeartbeatLenient(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edits map[string]string
		check func(t *testing.T, h Heartbeat)
	}{
		{"whole floats and exponents for integers", map[string]string{
			"system_info.uptime": `86400.0`, "system_info.total_ram": `8.0394e6`, "system_info.free_ram": `5120000.000`,
			"system_info.total_disk": `234E3`, "system_info.free_disk": `1800000e-1`, "sensor_status.camera.duration": `-0.0`,
		}, func(t *testing.T, h Heartbeat) {
			assert.Equal(t, []int64{86400, 8039400, 5120000, 234000, 180000, 0},
				[]int64{h.Uptime, h.TotalRAM, h.FreeRAM, h.TotalDisk, h.FreeDisk, h.Duration})
		}},
		{"session_id 0 is none", map[string]string{"session_id": `0`}, func(t *testing.T, h Heartbeat) {
			assert.Zero(t, h.SessionID)
		}},
		{"null optionals are absent", map[string]string{"session_id": `null`, "location": `null`, "err_msg": `null`,
			"sensor_status.camera.duration": `null`, "sensor_status.camera.fps": `null`}, func(t *testing.T, h Heartbeat) {
			assert.Zero(t, h.SessionID)
			assert.False(t, h.HasFPS)
		}},
		{"fps 0 while recording", map[string]string{"sensor_status.camera.fps": `0`}, func(t *testing.T, h Heartbeat) {
			assert.True(t, h.HasFPS)
			assert.Zero(t, h.FPS)
		}},
		{"free above total is reported as is", map[string]string{"system_info.free_disk": `99`, "system_info.free_ram": `99`},
			func(t *testing.T, h Heartbeat) { assert.Equal(t, []int64{99, 99}, []int64{h.FreeDisk, h.FreeRAM}) }},
		{"negative load", map[string]string{"system_info.load": `-0.5`}, func(t *testing.T, h Heartbeat) {
			assert.Equal(t, -0.5, h.Load)
		}},
		{"name is trimmed", map[string]string{"name": `" enc-1_b.lab\n"`}, func(t *testing.T, h Heartbeat) {
			assert.Equal(t, "enc-1_b.lab", h.Name)
		}},
		{"keys match exactly: Name and LOAD are unknown fields", map[string]string{"Name": `7`, "system_info.LOAD": `"x"`},
			func(t *testing.T, h Heartbeat) { assert.Equal(t, "enc1", h.Name) }},
		{"long free text is cut at a character boundary", map[string]string{
			"err_msg":             `"` + strings.Repeat("a", 4095) + `é tail"`,
			"system_info.release": `"` + strings.Repeat("b", 5000) + `"`,
		}, func(t *testing.T, h Heartbeat) {
			assert.Equal(t, strings.Repeat("a", 4095), h.ErrMsg)
			assert.Equal(t, strings.Repeat("b", 4096), h.Release)
		}},
		{"NUL and invalid UTF-8 in free text", map[string]string{"err_msg": `"disk\u0000 full\ud800"`},
			func(t *testing.T, h Heartbeat) { assert.Equal(t, "disk full\ufffd", h.ErrMsg) }},
		{"location with spaces and unicode", map[string]string{"location": `"Raum 2.14 / Käfig"`},
			func(t *testing.T, h Heartbeat) { assert.Equal(t, "Raum 2.14 / Käfig", h.Location) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHeartbeat(edited(t, tc.edits))
			require.NoError(t, err)
			tc.check(t, h)
		})
	}
}

// After the client starts, its duration is uninitialised memory until its first START or
// COMPLETE (PROTOCOL.md section 2): every such heartbeat is accepted and the value dropped.
func TestParseHeartbeatGarbageDuration(t *testing.T) {
	for _, raw := range []string{`139627186819480`, `-1`, `-139627186819480`, `9223372036854775807`,
		`-9223372036854775808`, `0`, `99999999999999999999999`, `1.5`, `"x"`, `{}`} {
		h, err := ParseHeartbeat(edited(t, map[string]string{"sensor_status.camera.duration": raw}))
		require.NoError(t, err, raw)
		assert.False(t, h.HasDuration, raw)
		assert.Zero(t, h.Duration, raw)
	}
	// While it records or holds a session, a duration is recorded time; a negative one is not.
	for _, tc := range []struct {
		edits map[string]string
		want  int64
		has   bool
	}{
		{map[string]string{"sensor_status.camera.recording": `true`, "sensor_status.camera.duration": `42`}, 42, true},
		{map[string]string{"session_id": `7`, "sensor_status.camera.duration": `600`}, 600, true}, // after STOP
		{map[string]string{"session_id": `7`, "sensor_status.camera.duration": `-5`}, 0, false},
		{map[string]string{"sensor_status.camera.recording": `true`, "sensor_status.camera.duration": `-9223372036854775808`}, 0, false},
	} {
		h, err := ParseHeartbeat(edited(t, tc.edits))
		require.NoError(t, err, tc.edits)
		assert.Equal(t, tc.has, h.HasDuration, tc.edits)
		assert.Equal(t, tc.want, h.Duration, tc.edits)
	}
}

func TestParseHeartbeatRawSyntax(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"escaped keys", `{"na\u006de":"enc2","timestamp":"2026-01-02T03:04:05Z","sensor_status":{"camera":{"recording":true}},` +
			`"system_info":{"uptime":1,"load":0,"total_ram":2,"free_ram":1,"total_disk":4,"free_disk":3,"release":"r"}}`, "enc2"},
		{"repeated key: the last wins", `{"name":7,"name":"enc3","timestamp":"2026-01-02T03:04:05Z","sensor_status":{"camera":{"recording":true}},` +
			`"system_info":{"uptime":1,"load":0,"total_ram":2,"free_ram":1,"total_disk":4,"free_disk":3,"release":"r"}}`, "enc3"},
		{"whitespace everywhere", " \r\n\t{ \"name\" :\n\"enc4\" , \"timestamp\":\"2026-01-02T03:04:05Z\",\"sensor_status\":{ } ,\"x\":[ ] }\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHeartbeat([]byte(tc.body))
			if tc.want == "" {
				errs := fieldErrors(t, err)
				assert.NotContains(t, errs, "name")
				assert.Equal(t, "is required", errs["sensor_status.camera.recording"])
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, h.Name)
		})
	}
}

func TestParseHeartbeatNotAnObject(t *testing.T) {
	for _, body := range []string{``, ` `, `null`, `[]`, `"x"`, `7`, `{`, `{"name":"a"`, `{} {}`, `{"a":1,}`, "\xff", `{"name":"a"}x`} {
		_, err := ParseHeartbeat([]byte(body))
		assert.Equal(t, map[string]string{"": "body must be a JSON object"}, fieldErrors(t, err), "%q", body)
		assert.Equal(t, "body must be a JSON object", err.Error())
	}
}

func TestParseTimestamp(t *testing.T) {
	at := func(nsec int) time.Time { return time.Date(2026, 1, 2, 3, 4, 5, nsec, time.UTC) }
	for _, tc := range []struct {
		in   string
		want time.Time // zero: rejected
	}{
		{"2026-01-02T03:04:05Z", at(0)},
		{"2026-01-02T03:04:05", at(0)},
		{"2026-01-02T03:04:05+00:00", at(0)},
		{"2026-01-02T03:04:05-00:00", at(0)},
		{"2026-01-02T03:04:05.1Z", at(100000000)},
		{"2026-01-02T03:04:05.12Z", at(120000000)},
		{"2026-01-02T03:04:05.123", at(123000000)},
		{"2026-01-02T03:04:05.1234Z", at(123400000)},
		{"2026-01-02T03:04:05.12345Z", at(123450000)},
		{"2026-01-02T03:04:05.123456", at(123456000)},
		{"2026-01-02T03:04:05.1234567Z", at(123456700)},
		{"2026-01-02T03:04:05.0000001+00:00", at(100)},
		{"2026-01-02T05:04:05.5+02:00", at(500000000)},
		{"2026-01-01T22:34:05-04:30", at(0)},
		{"2024-02-29T23:59:59Z", time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC)},
		{"0000-01-01T00:00:00Z", time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-01-02T03:04:05.12345678Z", time.Time{}}, // 8 digits
		{"2026-01-02T03:04:05.123456789", time.Time{}},
		{"2026-01-02T03:04:05.Z", time.Time{}},
		{"2026-01-02T03:04:05.", time.Time{}},
		{"2026-01-02T03:04:05ZZ", time.Time{}},
		{"2026-01-02T03:04:05z", time.Time{}},
		{"2026-01-02t03:04:05Z", time.Time{}},
		{"2026-01-02 03:04:05", time.Time{}},
		{"2026-01-02T03:04Z", time.Time{}},
		{"2026-1-02T03:04:05Z", time.Time{}},
		{"2026-01-02T3:04:05Z", time.Time{}},
		{"+026-01-02T03:04:05Z", time.Time{}},
		{"2026-13-02T03:04:05Z", time.Time{}},
		{"2026-00-02T03:04:05Z", time.Time{}},
		{"2026-01-00T03:04:05Z", time.Time{}},
		{"2026-02-29T03:04:05Z", time.Time{}},
		{"2026-04-31T03:04:05Z", time.Time{}},
		{"2026-01-02T24:00:00Z", time.Time{}},
		{"2026-01-02T03:60:05Z", time.Time{}},
		{"2026-01-02T03:04:60Z", time.Time{}},
		{"2026-01-02T03:04:05+0000", time.Time{}},
		{"2026-01-02T03:04:05+24:00", time.Time{}},
		{"2026-01-02T03:04:05+01:60", time.Time{}},
		{"2026-01-02T03:04:05 Z", time.Time{}},
		{"", time.Time{}},
	} {
		got, ok := parseTimestamp(tc.in)
		assert.Equal(t, !tc.want.IsZero(), ok, tc.in)
		if ok {
			assert.True(t, tc.want.Equal(got), "%s: got %v", tc.in, got)
			assert.Equal(t, time.UTC, got.Location(), tc.in)
		}
	}
	// Through the body, with the field path in the error.
	h, err := ParseHeartbeat(edited(t, map[string]string{"timestamp": `"2026-01-02T03:04:05.1234567"`}))
	require.NoError(t, err)
	assert.Equal(t, at(123456700), h.Timestamp)
	_, err = ParseHeartbeat(edited(t, map[string]string{"timestamp": `"2026-01-02T03:04:05.12345678Z"`}))
	assert.Equal(t, map[string]string{"timestamp": timestampReason}, fieldErrors(t, err))
}

func TestWholeNumber(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   int64
		reason string
	}{
		{"0", 0, ""},
		{"-0", 0, ""},
		{"-0.0e5", 0, ""},
		{"86400", 86400, ""},
		{"86400.0", 86400, ""},
		{"86400.000", 86400, ""},
		{"8.64e4", 86400, ""},
		{"8.64E+4", 86400, ""},
		{"864000e-1", 86400, ""},
		{"0.0000864e9", 86400, ""},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"9223372036854775807.0", 1<<63 - 1, ""},
		{"9.223372036854775807e18", 1<<63 - 1, ""},
		{"9223372036854775808", 0, "is out of range"},
		{"9.223372036854775808e18", 0, "is out of range"},
		{"1e19", 0, "is out of range"},
		{"1e999999999999999999999", 0, "is out of range"},
		{"0e999999999999999999999", 0, ""},
		{"0.5", 0, "must be an integer"},
		{"86400.5", 0, "must be an integer"},
		{"8.64e-4", 0, "must be an integer"},
		{"1e-999999999999999999999", 0, "must be an integer"},
		{"9007199254740993.0", 9007199254740993, ""}, // exact beyond float64 precision
		{"-1", 0, "must not be negative"},
		{"-1e30", 0, "must not be negative"},
		{"-0.5", 0, "must not be negative"},
	} {
		n, reason := wholeNumber([]byte(tc.in))
		assert.Equal(t, tc.reason, reason, tc.in)
		assert.Equal(t, tc.want, n, tc.in)
	}
}

func TestFieldErrorsError(t *testing.T) {
	err := &FieldErrors{Errors: map[string]string{"timestamp": "is required", "name": "must be a string", "": "bad"}}
	assert.Equal(t, "bad; name: must be a string; timestamp: is required", err.Error())
}

// encodeHeartbeat writes h the way a client would, for round trips.
func encodeHeartbeat(h Heartbeat) []byte {
	camera := map[string]any{"recording": h.Recording}
	if h.HasDuration {
		camera["duration"] = h.Duration
	}
	if h.HasFPS {
		camera["fps"] = h.FPS
	}
	b, err := json.Marshal(map[string]any{
		"name": h.Name, "location": h.Location, "timestamp": h.Timestamp.Format("2006-01-02T15:04:05.0000000Z"),
		"session_id": h.SessionID, "err_msg": h.ErrMsg, "sensor_status": map[string]any{"camera": camera},
		"system_info": map[string]any{"uptime": h.Uptime, "load": h.Load, "total_ram": h.TotalRAM, "free_ram": h.FreeRAM,
			"total_disk": h.TotalDisk, "free_disk": h.FreeDisk, "release": h.Release},
	})
	if err != nil {
		panic(err)
	}
	return b
}

func FuzzParseHeartbeat(f *testing.F) {
	for _, s := range []string{
		realBody, minimalBody, ``, `{}`, `null`, `[]`, `{"name":`, "\xff", `{"sensor_status":"x","system_info":[]}`,
		`{"name":"a","timestamp":"2026-01-02T03:04:05.1234567+01:30","sensor_status":{"camera":{"recording":true,"fps":1e308}},` +
			`"system_info":{"uptime":1e3,"load":-0,"total_ram":2.0,"free_ram":0e9,"total_disk":4,"free_disk":3,"release":"\u0000\ud800"}}`,
		`{"na\u006de":"x","name":"y\n","session_id":-0.0e-7,"err_msg":"é","location":"\u2028"}`,
		`{"a":{"b":[{"c":"}\"{["}]},"name":{"x":"]"}}`,
	} {
		f.Add([]byte(s))
	}
	// The client's uninitialised duration after start (PROTOCOL.md section 2).
	for _, garbage := range []string{`139627186819480`, `-139627186819480`, `9223372036854775807`, `-9223372036854775808`, `-1`} {
		s := strings.Replace(minimalBody, `"recording":false`, `"recording":false,"duration":`+garbage, 1)
		f.Add([]byte(s))
		f.Add([]byte(strings.Replace(s, `"name":"enc1"`, `"name":"enc1","session_id":4`, 1)))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		h, err := ParseHeartbeat(body)
		if err != nil {
			require.NotEmpty(t, fieldErrors(t, err))
			require.Equal(t, Heartbeat{}, h)
			return
		}
		require.Empty(t, recording.SafeName(h.Name, maxName))
		require.Empty(t, recording.BoundedText(h.Location, maxLocation))
		require.Equal(t, time.UTC, h.Timestamp.Location())
		for _, n := range []int64{h.SessionID, h.Duration, h.Uptime, h.TotalRAM, h.FreeRAM, h.TotalDisk, h.FreeDisk} {
			require.GreaterOrEqual(t, n, int64(0))
		}
		require.True(t, h.FPS >= 0 && (h.HasFPS || h.FPS == 0), "fps %v", h.FPS)
		require.True(t, h.HasDuration || h.Duration == 0, "duration %d without meaning", h.Duration)
		require.True(t, !h.HasDuration || h.Recording || h.SessionID != 0, "duration kept outside a recording")
		for _, s := range []string{h.ErrMsg, h.Release} {
			require.LessOrEqual(t, len(s), maxText)
			require.True(t, utf8.ValidString(s))
			require.NotContains(t, s, "\x00")
		}
		// What we read, written back the way a client would, reads the same.
		again, err := ParseHeartbeat(encodeHeartbeat(h))
		require.NoError(t, err)
		require.Equal(t, h, again)
	})
}

func BenchmarkParseHeartbeat(b *testing.B) {
	body := []byte(realBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeartbeat(body); err != nil {
			b.Fatal(err)
		}
	}
}
