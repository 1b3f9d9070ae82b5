package protocol

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exampleStart is the example reply of PROTOCOL.md section 3, byte for byte.
const exampleStart = `{"command_name":"START","parameters":"{\"session_id\":12,\"duration\":86400,\"fragment_hourly\":true,\"file_prefix\":\"cage7\",\"target_fps\":30,\"apply_filter\":false}"}`

var exampleParams = StartParams{SessionID: 12, Duration: 86400, FragmentHourly: true, FilePrefix: "cage7", TargetFPS: 30}

// decodeStart reads the parameters of a START body the way the client does: a string holding JSON.
func decodeStart(t testing.TB, body []byte) StartParams {
	t.Helper()
	var outer struct {
		Command    string `json:"command_name"`
		Parameters string `json:"parameters"`
	}
	require.NoError(t, json.Unmarshal(body, &outer))
	require.Equal(t, "START", outer.Command)
	var p StartParams
	require.NoError(t, json.Unmarshal([]byte(outer.Parameters), &p))
	return p
}

func TestEncodeReplyExample(t *testing.T) {
	p := decodeStart(t, []byte(exampleStart))
	assert.Equal(t, exampleParams, p)
	body, err := EncodeReply(Reply{Command: Start, Start: &p})
	require.NoError(t, err)
	assert.Equal(t, exampleStart, string(body))
	assert.NoError(t, CheckReply(200, "application/json", body))
}

func TestEncodeReplyWithoutParameters(t *testing.T) {
	for _, c := range []Command{Stop, Complete, Stream} {
		body, err := EncodeReply(Reply{Command: c})
		require.NoError(t, err)
		assert.Equal(t, `{"command_name":"`+string(c)+`","parameters":null}`, string(body))
		assert.NoError(t, CheckReply(200, "application/json", body))
	}
}

func TestEncodeReplyRefuses(t *testing.T) {
	bad := exampleParams
	bad.Duration = 0
	for _, tc := range []struct {
		name  string
		reply Reply
		want  string
	}{
		{"no command", Reply{}, "reply 204"},
		{"unknown command", Reply{Command: "PAUSE"}, `unknown command "PAUSE"`},
		{"lower case", Reply{Command: "stop"}, `unknown command "stop"`},
		{"START without parameters", Reply{Command: Start}, "START needs parameters"},
		{"START with invalid parameters", Reply{Command: Start, Start: &bad}, "duration: must be between 1 and 2147483647"},
		{"STOP with parameters", Reply{Command: Stop, Start: &exampleParams}, "STOP takes no parameters"},
		{"STREAM with parameters", Reply{Command: Stream, Start: &StartParams{}}, "STREAM takes no parameters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := EncodeReply(tc.reply)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Nil(t, body)
		})
	}
}

func TestStartParamsValidate(t *testing.T) {
	assert.NoError(t, exampleParams.Validate())
	maxInt := StartParams{SessionID: math.MaxInt32, Duration: math.MaxInt32, TargetFPS: math.MaxInt32, FilePrefix: "p"}
	assert.NoError(t, maxInt.Validate())

	const between = "must be between 1 and 2147483647"
	for _, tc := range []struct {
		name string
		edit func(p *StartParams)
		want map[string]string
	}{
		{"zero session", func(p *StartParams) { p.SessionID = 0 }, map[string]string{"session_id": between}},
		{"negative duration", func(p *StartParams) { p.Duration = -1 }, map[string]string{"duration": between}},
		{"duration beyond int32", func(p *StartParams) { p.Duration = 1 << 32 }, map[string]string{"duration": between}},
		{"zero fps", func(p *StartParams) { p.TargetFPS = 0 }, map[string]string{"target_fps": between}},
		{"empty prefix", func(p *StartParams) { p.FilePrefix = "" }, map[string]string{"file_prefix": "must not be empty"}},
		{"everything", func(p *StartParams) { *p = StartParams{FilePrefix: "../x"} }, map[string]string{
			"session_id": between, "duration": between, "target_fps": between, "file_prefix": `must not contain '/' or '\'`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := exampleParams
			tc.edit(&p)
			assert.Equal(t, tc.want, fieldErrors(t, p.Validate()))
		})
	}
}

func TestErrorBody(t *testing.T) {
	assert.Equal(t, `{"message":"no such device"}`, string(ErrorBody("no such device", nil)))
	assert.Equal(t, `{"message":"m"}`, string(ErrorBody("m", map[string]string{})))
	body := ErrorBody("Input payload validation failed", map[string]string{"timestamp": "is required", "name": "must be a string"})
	assert.Equal(t, `{"message":"Input payload validation failed","errors":{"name":"must be a string","timestamp":"is required"}}`, string(body))
	assert.NoError(t, CheckReply(400, "application/json", body))
	assert.NoError(t, CheckReply(500, "application/json", ErrorBody("\xff<&>\"", map[string]string{"\x00": "\u2028"})))
}

func FuzzEncodeReply(f *testing.F) {
	f.Add("START", true, int64(12), int64(86400), true, "cage7", int64(30), false)
	f.Add("START", true, int64(1), int64(1), false, "a", int64(1), true)
	f.Add("START", true, int64(math.MaxInt32), int64(math.MaxInt32+1), false, "x.y", int64(-1), true)
	f.Add("START", false, int64(0), int64(0), false, "", int64(0), false)
	f.Add("START", true, int64(5), int64(5), false, `a"b\`, int64(5), false)
	f.Add("STOP", false, int64(0), int64(0), false, "", int64(0), false)
	f.Add("COMPLETE", true, int64(1), int64(1), false, "p", int64(1), false)
	f.Add("STREAM", false, int64(0), int64(0), false, "", int64(0), false)
	f.Add("", false, int64(0), int64(0), false, "", int64(0), false)
	f.Add("start\x00", false, int64(0), int64(0), false, "", int64(0), false)
	f.Fuzz(func(t *testing.T, cmd string, hasParams bool, session, duration int64, hourly bool, prefix string, fps int64, filter bool) {
		r := Reply{Command: Command(cmd)}
		p := StartParams{SessionID: session, Duration: duration, FragmentHourly: hourly, FilePrefix: prefix, TargetFPS: fps, ApplyFilter: filter}
		if hasParams {
			r.Start = &p
		}
		body, err := EncodeReply(r)
		if err != nil {
			return
		}
		// The server can never produce a reply that crashes the client.
		require.NoError(t, CheckReply(200, "application/json", body), "%s", body)
		if r.Command == Start {
			require.Equal(t, p, decodeStart(t, body))
		}
	})
}
