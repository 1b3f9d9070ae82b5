package simulator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testServer is a minimal server side of PROTOCOL.md section 5, only as a test double. It also
// checks every heartbeat body against section 2 and records what it saw and replied.
type testServer struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	devices  map[string]*testDevice
	nextID   int64
	problems []string // heartbeat bodies that break section 2
	// override, when set and returning non-nil, answers instead of the section 5 logic.
	override func(d *testDevice, hb heartbeat) *rawReply
	// beforeReply runs (without the lock) after the decision, before the reply is written.
	beforeReply func(name, cmd string)
}

type rawReply struct {
	status      int
	contentType string
	body        string
}

type testDevice struct {
	name      string
	session   int64 // S, 0 = none assigned
	params    startParams
	remaining int64 // seconds still to record (resume after reboot)
	lastDur   int64 // duration in the last recording heartbeat
	recording bool  // S seen recording
	cancel    bool
	viewer    bool
	segment   int
	reboots   int
	result    string // finished, failed, canceled
	errMsg    string
	finalDur  int64
	done      map[int64]bool // finished session ids: keep replying COMPLETE to them
	hbs       []heartbeat
	raws      []map[string]any
	auth      []string
	replies   []string
}

func newTestServer(t testing.TB) *testServer {
	s := &testServer{t: t, devices: make(map[string]*testDevice)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *testServer) setOverride(f func(d *testDevice, hb heartbeat) *rawReply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.override = f
}

func (s *testServer) setBeforeReply(f func(name, cmd string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beforeReply = f
}

func (s *testServer) baseURL() string { return s.srv.URL + "/api" }

func (s *testServer) deviceLocked(name string) *testDevice {
	d := s.devices[name]
	if d == nil {
		d = &testDevice{name: name, done: make(map[int64]bool)}
		s.devices[name] = d
	}
	return d
}

// assign puts a device into a new session; p.SessionID is set by the server.
func (s *testServer) assign(name string, p startParams) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	d := s.deviceLocked(name)
	p.SessionID = s.nextID
	d.session, d.params, d.remaining, d.segment = p.SessionID, p, p.Duration, 1
	d.recording, d.cancel, d.viewer, d.result, d.errMsg, d.lastDur = false, false, false, "", "", 0
	return p.SessionID
}

// with runs f on the device under the lock.
func (s *testServer) with(name string, f func(d *testDevice)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.deviceLocked(name))
}

// snapshot returns a copy of the device's bookkeeping.
func (s *testServer) snapshot(name string) testDevice {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := *s.deviceLocked(name)
	d.hbs = append([]heartbeat(nil), d.hbs...)
	d.raws = append([]map[string]any(nil), d.raws...)
	d.replies = append([]string(nil), d.replies...)
	d.auth = append([]string(nil), d.auth...)
	return d
}

func (s *testServer) problemList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.problems...)
}

func (s *testServer) handle(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/device/heartbeat" {
		http.NotFound(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var raw map[string]any
	if err := decodeJSON(body, &raw); err != nil {
		s.mu.Lock()
		s.problems = append(s.problems, "heartbeat is not a JSON object: "+err.Error())
		s.mu.Unlock()
		writeJSON(w, 400, `{"message":"invalid JSON","errors":{}}`)
		return
	}
	var hb heartbeat
	_ = json.Unmarshal(body, &hb)

	s.mu.Lock()
	for _, p := range checkHeartbeat(raw) {
		s.problems = append(s.problems, hb.Name+": "+p)
	}
	d := s.deviceLocked(hb.Name)
	d.hbs = append(d.hbs, hb)
	d.raws = append(d.raws, raw)
	d.auth = append(d.auth, r.Header.Get("Authorization"))
	var rep *rawReply
	cmd := "none"
	if s.override != nil {
		rep = s.override(d, hb)
	}
	if rep != nil {
		cmd = "override"
	} else {
		var params string
		cmd, params = s.decideLocked(d, hb)
		rep = commandReply(cmd, params)
	}
	d.replies = append(d.replies, cmd)
	hook := s.beforeReply
	s.mu.Unlock()

	if hook != nil {
		hook(hb.Name, cmd)
	}
	if rep.contentType != "" {
		w.Header().Set("Content-Type", rep.contentType)
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// commandReply encodes a reply as section 3 says; cmd "none" is a 204.
func commandReply(cmd, startParamsJSON string) *rawReply {
	if cmd == "none" {
		return &rawReply{status: 204}
	}
	params := "null"
	if cmd == ReplyStart {
		b, _ := json.Marshal(startParamsJSON) // a JSON string holding the JSON object
		params = string(b)
	}
	return &rawReply{status: 200, contentType: "application/json",
		body: fmt.Sprintf(`{"command_name":%q,"parameters":%s}`, cmd, params)}
}

// decideLocked is section 5, with resume after a reboot (rule 6).
func (s *testServer) decideLocked(d *testDevice, hb heartbeat) (string, string) {
	c, rec := hb.SessionID, hb.SensorStatus.Camera.Recording
	if c != 0 && d.done[c] {
		return ReplyComplete, "" // rule 4: keep replying COMPLETE to a finished session id
	}
	if d.session == 0 {
		switch { // rule 5 with nothing assigned
		case c != 0 && rec:
			return ReplyStop, ""
		case c != 0:
			return ReplyComplete, ""
		}
		return "none", ""
	}
	switch {
	case c == d.session && rec: // rule 2 (and 3)
		d.recording = true
		if hb.SensorStatus.Camera.Duration != nil {
			d.lastDur = *hb.SensorStatus.Camera.Duration
		}
		if d.cancel {
			return ReplyStop, ""
		}
		if d.viewer {
			return ReplyStream, ""
		}
		return "none", ""
	case c == d.session: // rule 4: the recording ended
		switch {
		case hb.ErrMsg != "":
			d.result, d.errMsg = "failed", hb.ErrMsg
		case d.cancel:
			d.result = "canceled"
		default:
			d.result = "finished"
		}
		if hb.SensorStatus.Camera.Duration != nil {
			d.finalDur = *hb.SensorStatus.Camera.Duration
		}
		d.done[d.session] = true
		d.session = 0
		return ReplyComplete, ""
	case c == 0: // rule 1, or rule 6 when it was recording: resume with a new segment
		p := d.params
		if d.recording {
			d.reboots++
			d.recording = false
			d.remaining -= d.lastDur
			d.segment++
		}
		if d.segment > 1 {
			p.FilePrefix = fmt.Sprintf("%s_seg%d", p.FilePrefix, d.segment)
		}
		p.Duration = max(1, d.remaining)
		b, _ := json.Marshal(p)
		return ReplyStart, string(b)
	case rec: // rule 5
		return ReplyStop, ""
	default:
		return ReplyComplete, ""
	}
}

var timestampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`)

// checkHeartbeat lists the ways raw breaks PROTOCOL.md section 2 as the simulator promises it.
func checkHeartbeat(raw map[string]any) []string {
	var p []string
	bad := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	isInt := func(v any) bool {
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := n.Int64()
		return err == nil
	}
	isNum := func(v any) bool { _, ok := v.(json.Number); return ok }
	if n, ok := raw["name"].(string); !ok || n == "" {
		bad("name missing")
	}
	if v, ok := raw["location"]; ok {
		if l, isStr := v.(string); !isStr || l == "" {
			bad("location present but not a non-empty string: %v", v)
		}
	}
	ts, _ := raw["timestamp"].(string)
	if !timestampRE.MatchString(ts) {
		bad("timestamp %q", ts)
	} else if t, err := time.Parse(timestampLayout, ts); err != nil || time.Until(t) > time.Second || time.Since(t) > 30*time.Second {
		// Written when sent: not in the future, and no older than the client's 30 s timeout
		// (a loaded machine may take seconds to deliver it).
		bad("timestamp %q is not now", ts)
	}
	if v, ok := raw["session_id"]; ok {
		if n, isNum := v.(json.Number); !isNum || n.String() == "0" || !isInt(v) {
			bad("session_id present but not a positive integer: %v", v)
		}
	}
	if v, ok := raw["err_msg"]; ok {
		if m, isStr := v.(string); !isStr || m == "" {
			bad("err_msg present but empty: %v", v)
		}
	}
	if _, ok := raw["state"].(string); !ok {
		bad("the client's extra field state is missing")
	}
	ss, _ := raw["sensor_status"].(map[string]any)
	cam, _ := ss["camera"].(map[string]any)
	rec, ok := cam["recording"].(bool)
	if !ok {
		bad("sensor_status.camera.recording missing")
	}
	if v, ok := cam["duration"]; ok && !isInt(v) {
		bad("duration not an integer: %v", v)
	}
	if _, ok := cam["duration"]; rec && !ok {
		bad("recording without duration")
	}
	if v, ok := cam["fps"]; ok && (!rec || !isNum(v)) {
		bad("fps %v while recording=%v", v, rec)
	}
	si, _ := raw["system_info"].(map[string]any)
	for _, k := range []string{"uptime", "total_ram", "free_ram", "total_disk", "free_disk"} {
		if !isInt(si[k]) {
			bad("system_info.%s not an integer: %v", k, si[k])
		}
	}
	if !isNum(si["load"]) {
		bad("system_info.load not a number")
	}
	if _, ok := si["release"].(string); !ok {
		bad("system_info.release missing")
	}
	return p
}

// testConfig is a fast configuration against s: 20 ms interval, 100x simulated time.
func testConfig(t testing.TB, s *testServer) Config {
	return Config{
		BaseURL:   s.baseURL(),
		Count:     1,
		Interval:  20 * time.Millisecond,
		FollowUp:  5 * time.Millisecond,
		TimeScale: 100,
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// startSim runs a simulator until the test ends.
func startSim(t testing.TB, cfg Config) *Simulator {
	t.Helper()
	sim, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return sim
}

// eventually waits for cond, polling every few milliseconds.
func eventually(t testing.TB, cond func() bool, msgAndArgs ...any) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond, msgAndArgs...)
}

func defaultParams(duration int64) startParams {
	return startParams{Duration: duration, FilePrefix: "cage", TargetFPS: 30}
}
