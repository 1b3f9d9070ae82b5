package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"strconv"
	"strings"
)

// The simulator keeps its own copy of the wire format instead of importing the service's
// protocol package: it is meant to be an independent second reading of PROTOCOL.md.

// timestampLayout is what the client sends: UTC with microseconds.
const timestampLayout = "2006-01-02T15:04:05.000000Z"

type heartbeat struct {
	Name      string `json:"name"`
	Location  string `json:"location,omitempty"`
	Timestamp string `json:"timestamp"`
	SessionID int64  `json:"session_id,omitempty"`
	ErrMsg    string `json:"err_msg,omitempty"`
	// State is not in the protocol table; the real client sends it and servers must ignore it.
	State        string       `json:"state"`
	SensorStatus sensorStatus `json:"sensor_status"`
	SystemInfo   systemInfo   `json:"system_info"`
}

type sensorStatus struct {
	Camera camera `json:"camera"`
}

type camera struct {
	Recording bool     `json:"recording"`
	Duration  *int64   `json:"duration,omitempty"`
	FPS       *float64 `json:"fps,omitempty"`
}

type systemInfo struct {
	Uptime    int64   `json:"uptime"`
	Load      float64 `json:"load"`
	TotalRAM  int64   `json:"total_ram"`
	FreeRAM   int64   `json:"free_ram"`
	TotalDisk int64   `json:"total_disk"`
	FreeDisk  int64   `json:"free_disk"`
	Release   string  `json:"release"`
}

// startParams is the decoded START parameter string.
type startParams struct {
	SessionID      int64  `json:"session_id"`
	Duration       int64  `json:"duration"`
	FragmentHourly bool   `json:"fragment_hourly"`
	FilePrefix     string `json:"file_prefix"`
	TargetFPS      int64  `json:"target_fps"`
	ApplyFilter    bool   `json:"apply_filter"`
}

// Reply kinds, also the keys of Stats.Replies.
const (
	ReplyStart     = "START"
	ReplyStop      = "STOP"
	ReplyComplete  = "COMPLETE"
	ReplyStream    = "STREAM"
	ReplyNone      = "none"      // 204
	ReplyError     = "error"     // any status other than 200 and 204 (4xx/5xx, also 1xx/3xx/other 2xx)
	ReplyNetwork   = "network"   // transport failure or timeout: no reply at all
	ReplyDropped   = "dropped"   // a reply discarded by SetDropReplies
	ReplyUnknown   = "unknown"   // 200 with a string command_name that is not one of the four
	ReplyViolation = "violation" // a reply the real client crashes on
)

// reply is a parsed server reply as the client understands it.
type reply struct {
	kind      string
	start     startParams // when kind == ReplyStart
	errDetail string      // message/errors of an error reply, for the log
	anomalies []string    // legal for the client but not what PROTOCOL.md section 3 allows
}

// violationError is a reply on which the real client crashes.
type violationError struct{ reason string }

func (v *violationError) Error() string { return "protocol violation: " + v.reason }

func violation(format string, args ...any) error {
	return &violationError{reason: fmt.Sprintf(format, args...)}
}

// parseReply interprets a reply the way the C++ client does, and returns a violation for every
// reply on which that client crashes (PROTOCOL.md section 3).
func parseReply(status int, contentType string, body []byte) (reply, error) {
	labelledJSON := isJSONMediaType(contentType)
	switch status {
	case 204:
		// The client acts on the status alone; a 204 has no body to parse.
		return reply{kind: ReplyNone}, nil
	case 200:
		return parseCommand(labelledJSON, body)
	}
	r := reply{kind: ReplyError}
	if labelledJSON {
		var e struct {
			Message any `json:"message"`
			Errors  any `json:"errors"`
		}
		if err := json.Unmarshal(body, &e); err != nil {
			return reply{}, violation("%d reply labelled JSON is not valid JSON: %v", status, err)
		}
		r.errDetail = fmt.Sprintf("message=%v errors=%v", e.Message, e.Errors)
	} else {
		r.errDetail = truncate(string(body), 200)
	}
	return r, nil
}

func parseCommand(labelledJSON bool, body []byte) (reply, error) {
	var r reply
	if !labelledJSON {
		r.anomalies = append(r.anomalies, "200 reply not labelled application/json")
	}
	var top any
	if err := decodeJSON(body, &top); err != nil {
		if labelledJSON {
			return r, violation("200 reply labelled JSON is not valid JSON: %v", err)
		}
		return r, violation("200 reply without a string command_name (body is not JSON: %v)", err)
	}
	obj, ok := top.(map[string]any)
	if !ok {
		return r, violation("200 reply without a string command_name (body is %s)", jsonKind(top))
	}
	cmd, ok := obj["command_name"].(string)
	if !ok {
		if v, present := obj["command_name"]; present {
			return r, violation("200 reply with command_name of type %s, not a string", jsonKind(v))
		}
		return r, violation("200 reply without command_name")
	}
	params, hasParams := obj["parameters"]
	switch cmd {
	case ReplyStart:
		if !hasParams || params == nil {
			return r, violation("START without parameters")
		}
		s, ok := params.(string)
		if !ok {
			return r, violation("START parameters are a JSON %s, not a JSON-encoded string", jsonKind(params))
		}
		p, extra, err := parseStartParams(s)
		if err != nil {
			return r, err
		}
		r.kind, r.start = ReplyStart, p
		r.anomalies = append(r.anomalies, extra...)
	case ReplyStop, ReplyComplete, ReplyStream:
		r.kind = cmd
		if params != nil {
			r.anomalies = append(r.anomalies, fmt.Sprintf("%s with non-null parameters", cmd))
		}
	default:
		r.kind = ReplyUnknown
		r.anomalies = append(r.anomalies, fmt.Sprintf("unknown command_name %q", cmd))
	}
	return r, nil
}

// parseStartParams checks the six START fields and their types. It is stricter than
// nlohmann::json in one respect: integer fields must be integer literals that fit a C++ int
// (12.0 or 1e3 are rejected), since our server has no reason to send anything else.
func parseStartParams(s string) (startParams, []string, error) {
	var p startParams
	var obj map[string]any
	if err := decodeJSON([]byte(s), &obj); err != nil {
		return p, nil, violation("START parameters string is not a JSON object: %v", err)
	}
	intField := func(name string) (int64, error) {
		v, ok := obj[name]
		if !ok {
			return 0, violation("START parameters miss %s", name)
		}
		n, ok := v.(json.Number)
		if !ok {
			return 0, violation("START parameter %s is a %s, not an integer", name, jsonKind(v))
		}
		i, err := strconv.ParseInt(n.String(), 10, 32)
		if err != nil {
			return 0, violation("START parameter %s=%s is not a 32-bit integer", name, n)
		}
		return i, nil
	}
	boolField := func(name string) (bool, error) {
		v, ok := obj[name]
		if !ok {
			return false, violation("START parameters miss %s", name)
		}
		b, ok := v.(bool)
		if !ok {
			return false, violation("START parameter %s is a %s, not a bool", name, jsonKind(v))
		}
		return b, nil
	}
	var err error
	if p.SessionID, err = intField("session_id"); err != nil {
		return p, nil, err
	}
	if p.Duration, err = intField("duration"); err != nil {
		return p, nil, err
	}
	if p.FragmentHourly, err = boolField("fragment_hourly"); err != nil {
		return p, nil, err
	}
	v, ok := obj["file_prefix"]
	if !ok {
		return p, nil, violation("START parameters miss file_prefix")
	}
	if p.FilePrefix, ok = v.(string); !ok {
		return p, nil, violation("START parameter file_prefix is a %s, not a string", jsonKind(v))
	}
	if p.TargetFPS, err = intField("target_fps"); err != nil {
		return p, nil, err
	}
	if p.ApplyFilter, err = boolField("apply_filter"); err != nil {
		return p, nil, err
	}
	if p.Duration < 1 {
		return p, nil, violation("START duration %d < 1", p.Duration)
	}
	var anomalies []string
	for k := range obj {
		switch k {
		case "session_id", "duration", "fragment_hourly", "file_prefix", "target_fps", "apply_filter":
		default:
			anomalies = append(anomalies, fmt.Sprintf("START parameters carry extra key %q", k))
		}
	}
	if p.SessionID < 1 {
		anomalies = append(anomalies, fmt.Sprintf("START session_id %d < 1: the device will report no session", p.SessionID))
	}
	if p.TargetFPS < 1 {
		anomalies = append(anomalies, fmt.Sprintf("START target_fps %d < 1", p.TargetFPS))
	}
	return p, anomalies, nil
}

// decodeJSON decodes exactly one JSON value (trailing data is an error, as for the client's
// parser), keeping numbers as json.Number.
func decodeJSON(data []byte, v any) error {
	if !json.Valid(data) {
		// Unmarshal explains what is wrong; Valid alone also catches trailing data.
		if err := json.Unmarshal(data, new(any)); err != nil {
			return err
		}
		return fmt.Errorf("invalid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}

func isJSONMediaType(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
