package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// CheckReply returns nil if the C++ client takes this HTTP reply without crashing, else what is
// wrong (PROTOCOL.md section 3). It holds replies to the documented shapes: 204 with an empty body;
// 200 with a JSON object whose command_name is START, STOP, COMPLETE or STREAM, whose parameters
// are null (or absent) except for START, where they are a JSON string encoding an object with
// exactly session_id, duration >= 1 and target_fps (integer literals that fit a 32-bit int),
// fragment_hourly and apply_filter (booleans) and file_prefix (a string); 4xx/5xx with a JSON
// object holding a string message and, optionally, an object of strings named errors. Any body
// labelled JSON must be valid JSON, and keys the client reads must not repeat (JSON parsers
// disagree on which one wins).
func CheckReply(status int, contentType string, body []byte) error {
	if isJSONType(contentType) && len(body) > 0 && !json.Valid(body) {
		return errors.New("body labelled JSON is not valid JSON")
	}
	switch {
	case status == 204:
		if len(body) > 0 {
			return errors.New("204 must have an empty body")
		}
		return nil
	case status == 200:
		obj, err := jsonObjectBody(contentType, body)
		if err != nil {
			return err
		}
		return checkCommand(obj)
	case 400 <= status && status <= 599:
		obj, err := jsonObjectBody(contentType, body)
		if err != nil {
			return err
		}
		return checkError(obj)
	}
	return fmt.Errorf("status %d: the client expects 200, 204, 4xx or 5xx", status)
}

func checkCommand(obj []byte) error {
	m, err := pick(obj, false, "command_name", "parameters")
	if err != nil {
		return err
	}
	name := m["command_name"]
	if name == nil || !isString(name) {
		return errors.New("command_name must be a string")
	}
	c := Command(unquote(name))
	if !c.known() {
		return fmt.Errorf("command_name %q is not START, STOP, COMPLETE or STREAM", c)
	}
	p := m["parameters"]
	if c != Start {
		if p != nil && !isNull(p) {
			return fmt.Errorf("%s parameters must be null", c)
		}
		return nil
	}
	if p == nil || !isString(p) {
		return errors.New("START parameters must be a string holding JSON")
	}
	params := asObject([]byte(unquote(p)))
	if params == nil {
		return errors.New("START parameters must encode a JSON object")
	}
	keys := []string{"session_id", "duration", "fragment_hourly", "file_prefix", "target_fps", "apply_filter"}
	if m, err = pick(params, true, keys...); err != nil {
		return fmt.Errorf("START parameters: %w", err)
	}
	for _, k := range keys {
		v := m[k]
		var ok bool
		switch k {
		case "session_id", "target_fps":
			_, ok = int32Literal(v)
		case "duration":
			n, isInt := int32Literal(v)
			ok = isInt && n >= 1
		case "file_prefix":
			ok = v != nil && isString(v)
		default:
			ok = v != nil && isBool(v)
		}
		if !ok {
			return fmt.Errorf("START parameter %s is missing or of the wrong type or value", k)
		}
	}
	return nil
}

func checkError(obj []byte) error {
	m, err := pick(obj, false, "message", "errors")
	if err != nil {
		return err
	}
	if msg := m["message"]; msg == nil || !isString(msg) {
		return errors.New("message must be a string")
	}
	if e := m["errors"]; e != nil && !isNull(e) {
		if e[0] != '{' {
			return errors.New("errors must be an object")
		}
		for k, v := range members(e) {
			if !isString(v) {
				return fmt.Errorf("errors[%q] must be a string", k)
			}
		}
	}
	return nil
}

// jsonObjectBody returns body as a JSON object, which must also be labelled JSON.
func jsonObjectBody(contentType string, body []byte) ([]byte, error) {
	if !isJSONType(contentType) {
		return nil, fmt.Errorf("content type %q is not application/json", contentType)
	}
	obj := asObject(body)
	if obj == nil {
		return nil, errors.New("body must be a JSON object")
	}
	return obj, nil
}

// pick returns the raw values of obj's members named keys, refusing repeated keys and, if
// exact, any other key.
func pick(obj []byte, exact bool, keys ...string) (map[string][]byte, error) {
	m := make(map[string][]byte, len(keys))
	for k, v := range members(obj) {
		switch _, seen := m[string(k)]; {
		case seen:
			return nil, fmt.Errorf("key %q appears twice", k)
		case slices.Contains(keys, string(k)):
			m[string(k)] = v
		case exact:
			return nil, fmt.Errorf("unexpected key %q", k)
		}
	}
	return m, nil
}

// int32Literal reads raw as a JSON integer written without fraction or exponent that fits a
// 32-bit int, the strictest "int" a C++ client may parse.
func int32Literal(raw []byte) (int64, bool) {
	if raw == nil || !isNumber(raw) {
		return 0, false
	}
	n, err := strconv.ParseInt(string(raw), 10, 32)
	return n, err == nil
}

// isJSONType reports whether the Content-Type contentType labels a JSON body.
func isJSONType(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	mediaType = strings.ToLower(strings.TrimSpace(mediaType))
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}
