package simulator

import (
	"encoding/json"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var goodStart = map[string]any{
	"session_id": 12, "duration": 86400, "fragment_hourly": true,
	"file_prefix": "cage7", "target_fps": 30, "apply_filter": false,
}

// startWith returns a START reply whose parameter string is goodStart changed by edit.
func startWith(edit func(m map[string]any)) string {
	m := maps.Clone(goodStart)
	edit(m)
	inner, _ := json.Marshal(m)
	outer, _ := json.Marshal(string(inner))
	return fmt.Sprintf(`{"command_name":"START","parameters":%s}`, outer)
}

func without(k string) func(map[string]any) {
	return func(m map[string]any) { delete(m, k) }
}

func set(k string, v any) func(map[string]any) {
	return func(m map[string]any) { m[k] = v }
}

// Every reply on which the real client crashes (PROTOCOL.md section 3) stops the enclosure for
// good and is counted; a reboot restarts it.
func TestCrashOnEachViolation(t *testing.T) {
	const js = "application/json"
	cases := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        string
	}{
		{"200 empty object", 200, js, `{}`, "without command_name"},
		{"200 command_name number", 200, js, `{"command_name":5,"parameters":null}`, "type number"},
		{"200 command_name null", 200, js, `{"command_name":null,"parameters":null}`, "type null"},
		{"200 JSON array", 200, js, `["START"]`, "without a string command_name"},
		{"200 JSON string", 200, js, `"STOP"`, "without a string command_name"},
		{"200 empty body", 200, js, ``, "not valid JSON"},
		{"200 invalid JSON", 200, js, `{"command_name":"STOP"`, "not valid JSON"},
		{"200 trailing garbage", 200, js, `{"command_name":"STOP","parameters":null}}`, "not valid JSON"},
		{"200 unlabelled non-JSON", 200, "text/plain", `STOP`, "without a string command_name"},
		{"500 labelled JSON not JSON", 500, js, `Internal Server Error`, "500 reply labelled JSON is not valid JSON"},
		{"400 labelled JSON empty", 400, "application/json; charset=utf-8", ``, "400 reply labelled JSON"},
		{"START without parameters", 200, js, `{"command_name":"START"}`, "START without parameters"},
		{"START null parameters", 200, js, `{"command_name":"START","parameters":null}`, "START without parameters"},
		{"START object parameters", 200, js, `{"command_name":"START","parameters":{"session_id":12,"duration":60,"fragment_hourly":true,"file_prefix":"c","target_fps":30,"apply_filter":false}}`, "not a JSON-encoded string"},
		{"START string not JSON", 200, js, `{"command_name":"START","parameters":"session_id=12"}`, "not a JSON object"},
		{"START string holds array", 200, js, `{"command_name":"START","parameters":"[12]"}`, "not a JSON object"},
		{"START no session_id", 200, js, startWith(without("session_id")), "miss session_id"},
		{"START no duration", 200, js, startWith(without("duration")), "miss duration"},
		{"START no fragment_hourly", 200, js, startWith(without("fragment_hourly")), "miss fragment_hourly"},
		{"START no file_prefix", 200, js, startWith(without("file_prefix")), "miss file_prefix"},
		{"START no target_fps", 200, js, startWith(without("target_fps")), "miss target_fps"},
		{"START no apply_filter", 200, js, startWith(without("apply_filter")), "miss apply_filter"},
		{"START session_id string", 200, js, startWith(set("session_id", "12")), "session_id is a string"},
		{"START session_id too big", 200, js, startWith(set("session_id", 3_000_000_000)), "not a 32-bit integer"},
		{"START duration float", 200, js, startWith(set("duration", 1.5)), "duration=1.5 is not"},
		{"START duration null", 200, js, startWith(set("duration", nil)), "duration is a null"},
		{"START duration zero", 200, js, startWith(set("duration", 0)), "duration 0 < 1"},
		{"START duration negative", 200, js, startWith(set("duration", -60)), "duration -60 < 1"},
		{"START fragment_hourly string", 200, js, startWith(set("fragment_hourly", "true")), "fragment_hourly is a string"},
		{"START file_prefix number", 200, js, startWith(set("file_prefix", 7)), "file_prefix is a number"},
		{"START file_prefix null", 200, js, startWith(set("file_prefix", nil)), "file_prefix is a null"},
		{"START target_fps bool", 200, js, startWith(set("target_fps", true)), "target_fps is a bool"},
		{"START apply_filter number", 200, js, startWith(set("apply_filter", 1)), "apply_filter is a number"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := newTestServer(t)
			bad := true
			srv.setOverride(func(*testDevice, heartbeat) *rawReply {
				if bad {
					return &rawReply{status: c.status, contentType: c.contentType, body: c.body}
				}
				return nil
			})
			sim := startSim(t, testConfig(t, srv))
			e := sim.Enclosure("NV1")

			eventually(t, func() bool { return e.State().Crashed })
			st := e.State()
			assert.Equal(t, 1, st.Violations)
			assert.Contains(t, st.LastErr, "protocol violation")
			assert.Contains(t, st.LastErr, c.want)
			assert.False(t, st.Recording)
			stats := sim.Stats()
			assert.Equal(t, int64(1), stats.Violations)
			assert.Equal(t, int64(1), stats.Replies[ReplyViolation])
			assert.Equal(t, 1, stats.Crashed)

			// Stopped for good: no more heartbeats.
			n := len(srv.snapshot("NV1").hbs)
			time.Sleep(150 * time.Millisecond)
			assert.Equal(t, n, len(srv.snapshot("NV1").hbs))

			// A reboot restarts the client.
			srv.mu.Lock()
			bad = false
			srv.mu.Unlock()
			e.Reboot()
			eventually(t, func() bool { return len(srv.snapshot("NV1").hbs) > n+2 })
			assert.False(t, e.State().Crashed)
			assert.Equal(t, int64(1), sim.Stats().Violations)
		})
	}
}

// Replies that section 3 does not produce but the client survives: no crash, and anomalies
// counted where the reply is 200 but not quite right.
func TestRepliesTheClientSurvives(t *testing.T) {
	const js = "application/json"
	cases := []struct {
		name          string
		status        int
		contentType   string
		body          string
		kind          string
		wantAnomalies bool
	}{
		{"204 labelled JSON", 204, js, ``, ReplyNone, false},
		{"500 plain text", 500, "text/plain; charset=utf-8", "boom\n", ReplyError, false},
		{"404 JSON error", 404, js, `{"message":"not found","errors":{"name":"unknown"}}`, ReplyError, false},
		{"503 no content type", 503, "", ``, ReplyError, false},
		// The service's and the relay's refusals (PROTOCOL.md 8): errors the client logs.
		{"403 not an allowed network", 403, js, `{"message":"heartbeats without an enclosure token are accepted only from the lab's networks"}` + "\n", ReplyError, false},
		{"429 too many new names", 429, js, `{"message":"enclosure \"NV1\" is not registered: too many new enclosure names lately"}` + "\n", ReplyError, false},
		{"503 database unavailable", 503, js, `{"message":"the service's database is unavailable"}` + "\n", ReplyError, false},
		{"504 from the relay", 504, js, `{"message":"relay: the MBA service did not answer within 10s"}`, ReplyError, false},
		{"unknown command", 200, js, `{"command_name":"REBOOT","parameters":null}`, ReplyUnknown, true},
		{"lowercase command", 200, js, `{"command_name":"stop","parameters":null}`, ReplyUnknown, true},
		{"STOP with parameters", 200, js, `{"command_name":"STOP","parameters":"{}"}`, ReplyStop, true},
		{"COMPLETE unlabelled", 200, "text/plain", `{"command_name":"COMPLETE","parameters":null}`, ReplyComplete, true},
		{"START extra key", 200, js, startWith(set("camera", "left")), ReplyStart, true},
		{"START session_id 0", 200, js, startWith(set("session_id", 0)), ReplyStart, true},
		{"good START", 200, js, startWith(func(map[string]any) {}), ReplyStart, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := newTestServer(t)
			srv.setOverride(func(*testDevice, heartbeat) *rawReply {
				return &rawReply{status: c.status, contentType: c.contentType, body: c.body}
			})
			sim := startSim(t, testConfig(t, srv))
			e := sim.Enclosure("NV1")
			eventually(t, func() bool { return len(srv.snapshot("NV1").hbs) >= 4 })
			st := e.State()
			assert.False(t, st.Crashed)
			assert.Zero(t, st.Violations)
			stats := sim.Stats()
			assert.Zero(t, stats.Violations)
			assert.Positive(t, stats.Replies[c.kind])
			assert.Equal(t, c.wantAnomalies, stats.Anomalies > 0, "anomalies=%d", stats.Anomalies)
			if c.kind == ReplyStart {
				require.True(t, st.Recording)
				assert.Equal(t, 1, st.Recordings, "START while recording is ignored")
			}
		})
	}
}
