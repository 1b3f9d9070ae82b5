package protocol

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// quoted returns s as a JSON string.
func quoted(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// startWith returns a START body whose parameters string holds params.
func startWith(params string) string {
	return `{"command_name":"START","parameters":` + quoted(params) + `}`
}

func TestCheckReply(t *testing.T) {
	const js = "application/json"
	okParams := `{"session_id":12,"duration":86400,"fragment_hourly":true,"file_prefix":"cage7","target_fps":30,"apply_filter":false}`
	for _, tc := range []struct {
		name   string
		status int
		ct     string
		body   string
		want   string // "" means the client takes it; else part of the error
	}{
		{"no command", 204, "", "", ""},
		{"no command, labelled JSON", 204, js, "", ""},
		{"204 with a body", 204, "", "x", "204 must have an empty body"},
		{"204 with a JSON body", 204, js, "{}", "204 must have an empty body"},
		{"example START", 200, js, exampleStart, ""},
		{"START, spaced out, charset", 200, "Application/JSON; charset=utf-8", " {\n\"parameters\" : " + quoted(okParams) + " ,\n\"command_name\"\t:\"START\" }\r\n", ""},
		{"STOP", 200, js, `{"command_name":"STOP","parameters":null}`, ""},
		{"COMPLETE without parameters", 200, js, `{"command_name":"COMPLETE"}`, ""},
		{"STREAM with an extra key", 200, js, `{"command_name":"STREAM","parameters":null,"note":1}`, ""},
		{"START, negative session and fps", 200, js, startWith(strings.NewReplacer(`:12`, `:-1`, `:30`, `:0`).Replace(okParams)), ""},
		{"START, duration 1", 200, js, startWith(strings.Replace(okParams, "86400", "1", 1)), ""},
		{"START, parameters in any order", 200, js, startWith(`{"apply_filter":true,"target_fps":1,"file_prefix":"","fragment_hourly":false,"duration":2,"session_id":3}`), ""},
		{"error with fields", 400, js, `{"message":"bad","errors":{"name":"is required"}}`, ""},
		{"error without fields", 503, js, `{"message":"later"}`, ""},
		{"error with null fields", 404, js, `{"message":"x","errors":null}`, ""},

		{"not JSON but labelled so", 200, js, `{"command_name":"STOP"`, "not valid JSON"},
		{"error not JSON but labelled so", 500, "application/problem+json", `oops`, "not valid JSON"},
		{"200 not labelled JSON", 200, "text/plain", `{"command_name":"STOP","parameters":null}`, "is not application/json"},
		{"200 without a content type", 200, "", `{"command_name":"STOP","parameters":null}`, "is not application/json"},
		{"200 empty", 200, js, ``, "body must be a JSON object"},
		{"200 array", 200, js, `[]`, "body must be a JSON object"},
		{"200 null", 200, js, `null`, "body must be a JSON object"},
		{"no command_name", 200, js, `{"parameters":null}`, "command_name must be a string"},
		{"command_name null", 200, js, `{"command_name":null}`, "command_name must be a string"},
		{"command_name a number", 200, js, `{"command_name":1}`, "command_name must be a string"},
		{"unknown command", 200, js, `{"command_name":"PAUSE","parameters":null}`, `"PAUSE" is not START`},
		{"lower case command", 200, js, `{"command_name":"stop","parameters":null}`, `"stop" is not START`},
		{"repeated command_name", 200, js, `{"command_name":"STOP","command_name":"START"}`, `key "command_name" appears twice`},
		{"STOP with parameters", 200, js, `{"command_name":"STOP","parameters":"{}"}`, "STOP parameters must be null"},
		{"START without parameters", 200, js, `{"command_name":"START"}`, "must be a string holding JSON"},
		{"START with null parameters", 200, js, `{"command_name":"START","parameters":null}`, "must be a string holding JSON"},
		{"START with an object, not a string", 200, js, `{"command_name":"START","parameters":` + okParams + `}`, "must be a string holding JSON"},
		{"START parameters not JSON", 200, js, startWith(`{"session_id":12`), "must encode a JSON object"},
		{"START parameters an array", 200, js, startWith(`[]`), "must encode a JSON object"},
		{"START missing a key", 200, js, startWith(strings.Replace(okParams, `,"apply_filter":false`, "", 1)), "apply_filter is missing"},
		{"START extra key", 200, js, startWith(strings.Replace(okParams, `}`, `,"x":1}`, 1)), `unexpected key "x"`},
		{"START repeated key", 200, js, startWith(strings.Replace(okParams, `}`, `,"duration":5}`, 1)), `key "duration" appears twice`},
		{"START duration 0", 200, js, startWith(strings.Replace(okParams, "86400", "0", 1)), "duration is missing or of the wrong type or value"},
		{"START duration negative", 200, js, startWith(strings.Replace(okParams, "86400", "-5", 1)), "duration is"},
		{"START duration a float", 200, js, startWith(strings.Replace(okParams, "86400", "86400.0", 1)), "duration is"},
		{"START duration an exponent", 200, js, startWith(strings.Replace(okParams, "86400", "1e5", 1)), "duration is"},
		{"START duration a string", 200, js, startWith(strings.Replace(okParams, "86400", `"86400"`, 1)), "duration is"},
		{"START duration beyond int32", 200, js, startWith(strings.Replace(okParams, "86400", "4294967296", 1)), "duration is"},
		{"START session a string", 200, js, startWith(strings.Replace(okParams, "12", `"12"`, 1)), "session_id is"},
		{"START session null", 200, js, startWith(strings.Replace(okParams, "12", `null`, 1)), "session_id is"},
		{"START fps a float", 200, js, startWith(strings.Replace(okParams, "30", `29.97`, 1)), "target_fps is"},
		{"START hourly a number", 200, js, startWith(strings.Replace(okParams, "true", `1`, 1)), "fragment_hourly is"},
		{"START filter a string", 200, js, startWith(strings.Replace(okParams, "false", `"false"`, 1)), "apply_filter is"},
		{"START prefix a number", 200, js, startWith(strings.Replace(okParams, `"cage7"`, `7`, 1)), "file_prefix is"},
		{"error without a body", 404, "", "", "is not application/json"},
		{"error as text", 500, "text/plain", "boom", "is not application/json"},
		{"error without message", 400, js, `{"errors":{}}`, "message must be a string"},
		{"error with a repeated message", 400, js, `{"message":"a","message":"b"}`, `key "message" appears twice`},
		{"error message not a string", 400, js, `{"message":["x"]}`, "message must be a string"},
		{"error errors not an object", 400, js, `{"message":"x","errors":["a"]}`, "errors must be an object"},
		{"error reasons not strings", 400, js, `{"message":"x","errors":{"a":1}}`, `errors["a"] must be a string`},
		{"redirect", 302, "", "", "status 302"},
		{"created", 201, js, `{"command_name":"STOP","parameters":null}`, "status 201"},
		{"no status", 0, "", "", "status 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckReply(tc.status, tc.ct, []byte(tc.body))
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			if assert.Error(t, err) {
				assert.Contains(t, err.Error(), tc.want)
			}
		})
	}
}

func FuzzCheckReply(f *testing.F) {
	f.Add(200, "application/json", []byte(exampleStart))
	f.Add(200, "application/json", []byte(`{"command_name":"STOP","parameters":null}`))
	f.Add(200, "application/json", []byte(startWith(`{"session_id":1,"duration":1,"fragment_hourly":true,"file_prefix":"","target_fps":1,"apply_filter":false}`)))
	f.Add(200, "application/json", []byte(startWith(`{"session_id":1,"session_id":1}`)))
	f.Add(200, "application/json; charset=utf-8", []byte(`{"command_name":"START","parameters":"{\"a\\u0022:1}"}`))
	f.Add(204, "", []byte{})
	f.Add(400, "application/json", []byte(`{"message":"m","errors":{"a":"b"}}`))
	f.Add(500, "text/html", []byte(`<html>`))
	f.Add(200, "application/json", []byte(`{"command_name":"ST\u004fP","parameters":null}`))
	f.Add(-1, "\xff", []byte("\x00"))
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		err := CheckReply(status, contentType, body)
		if err == nil && len(body) > 0 {
			assert.True(t, json.Valid(body), "accepted a body that is not JSON")
		}
	})
}
