package simulator

import (
	"context"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHeartbeatBody(t *testing.T) {
	srv := newTestServer(t)
	cfg := testConfig(t, srv)
	cfg.Location, cfg.Token, cfg.Relayed, cfg.NamePrefix, cfg.FirstNumber = "room A", "tok", true, "lab-enc-", 7
	sim := startSim(t, cfg)
	e := sim.Enclosure("lab-enc-7")
	require.NotNil(t, e)
	require.Nil(t, sim.Enclosure("NV1"))

	eventually(t, func() bool { return len(srv.snapshot("lab-enc-7").raws) >= 2 })
	d := srv.snapshot("lab-enc-7")
	idle := d.raws[0]
	assert.Equal(t, "room A", idle["location"])
	assert.Equal(t, "IDLE", idle["state"])
	for _, k := range []string{"session_id", "err_msg"} {
		assert.NotContains(t, idle, k)
	}
	cam := idle["sensor_status"].(map[string]any)["camera"].(map[string]any)
	assert.Equal(t, false, cam["recording"])
	assert.Contains(t, cam, "duration", "uninitialised after the client starts, until START or COMPLETE")
	assert.NotContains(t, cam, "fps")
	assert.Equal(t, "Bearer tok", d.auth[0], "behind its relay")

	srv.assign("lab-enc-7", defaultParams(3600))
	eventually(t, func() bool { return e.State().Recording && len(srv.snapshot("lab-enc-7").hbs) > len(d.hbs)+2 })
	d = srv.snapshot("lab-enc-7")
	rec := d.raws[len(d.raws)-1]
	assert.Equal(t, "RECORDING", rec["state"])
	assert.Contains(t, rec, "session_id")
	cam = rec["sensor_status"].(map[string]any)["camera"].(map[string]any)
	assert.Equal(t, true, cam["recording"])
	assert.Contains(t, cam, "duration")
	assert.Contains(t, cam, "fps")
	assert.Empty(t, srv.problemList())

	// Without location and the relay both are absent, like the real client, even with a token.
	srv2 := newTestServer(t)
	cfg2 := testConfig(t, srv2)
	cfg2.Token = "tok"
	sim2 := startSim(t, cfg2)
	sim2.Enclosure("NV1").SetToken("its own")
	eventually(t, func() bool { return len(srv2.snapshot("NV1").raws) >= 2 })
	d2 := srv2.snapshot("NV1")
	assert.NotContains(t, d2.raws[0], "location")
	assert.Equal(t, []string{"", ""}, d2.auth[:2])
	assert.Empty(t, srv2.problemList())
}

func TestStartFinishComplete(t *testing.T) {
	srv := newTestServer(t)
	sim := startSim(t, testConfig(t, srv))
	e := sim.Enclosure("NV1")
	id := srv.assign("NV1", defaultParams(20)) // 20 simulated s = 0.2 s

	eventually(t, func() bool { return srv.snapshot("NV1").result != "" })
	eventually(t, func() bool { return e.State().SessionID == 0 })
	d := srv.snapshot("NV1")
	assert.Equal(t, "finished", d.result)
	assert.Equal(t, int64(20), d.finalDur)

	// The device reported recording=true with the session, then recording=false with the final
	// duration, then forgot the session.
	var sawRecording, sawEnded bool
	for _, hb := range d.hbs {
		if hb.SessionID == id && hb.SensorStatus.Camera.Recording {
			sawRecording = true
		}
		if hb.SessionID == id && !hb.SensorStatus.Camera.Recording {
			sawEnded = true
			assert.Equal(t, int64(20), *hb.SensorStatus.Camera.Duration)
			assert.Nil(t, hb.SensorStatus.Camera.FPS)
		}
	}
	assert.True(t, sawRecording && sawEnded)
	eventually(t, func() bool {
		hbs := srv.snapshot("NV1").hbs
		last := hbs[len(hbs)-1]
		return last.SessionID == 0 && last.SensorStatus.Camera.Duration == nil
	})

	st := e.State()
	assert.Equal(t, 1, st.Recordings)
	assert.Equal(t, 1, st.CompletesReceived)
	assert.False(t, st.Recording)
	stats := sim.Stats()
	assert.Equal(t, int64(1), stats.RecordingsStarted)
	assert.Equal(t, int64(1), stats.RecordingsFinished)
	assert.Zero(t, stats.Violations)
	assert.Zero(t, stats.Anomalies)
	assert.Positive(t, stats.Latency.P50)
	assert.GreaterOrEqual(t, stats.Latency.Max, stats.Latency.P99)
	assert.Empty(t, srv.problemList())
}

func TestFollowUpAfterCommands(t *testing.T) {
	srv := newTestServer(t)
	cfg := testConfig(t, srv)
	cfg.Interval, cfg.FollowUp = 300*time.Millisecond, 10*time.Millisecond
	srv.assign("NV1", defaultParams(100_000))
	sim := startSim(t, cfg)
	// START is answered by a poll after FollowUp, 204 by one after Interval.
	eventually(t, func() bool { return sim.Enclosure("NV1").State().Recording })
	eventually(t, func() bool { return len(srv.snapshot("NV1").hbs) >= 3 })
	d := srv.snapshot("NV1")
	require.Equal(t, []string{ReplyStart, "none"}, d.replies[:2])
	ts := func(i int) time.Time { tm, _ := time.Parse(timestampLayout, d.hbs[i].Timestamp); return tm }
	assert.Less(t, ts(1).Sub(ts(0)), 150*time.Millisecond, "poll after START must follow after FollowUp")
	assert.GreaterOrEqual(t, ts(2).Sub(ts(1)), 250*time.Millisecond, "poll after 204 waits Interval")
}

func TestStopKeepsSessionUntilComplete(t *testing.T) {
	srv := newTestServer(t)
	sim := startSim(t, testConfig(t, srv))
	e := sim.Enclosure("NV1")
	srv.assign("NV1", defaultParams(86_400))
	eventually(t, func() bool { return e.State().Elapsed >= 5 })
	srv.with("NV1", func(d *testDevice) { d.cancel = true })

	eventually(t, func() bool { return srv.snapshot("NV1").result != "" })
	d := srv.snapshot("NV1")
	assert.Equal(t, "canceled", d.result)
	assert.Greater(t, d.finalDur, int64(0))
	assert.Less(t, d.finalDur, int64(86_400))
	eventually(t, func() bool { return e.State().SessionID == 0 })
	st := e.State()
	assert.Equal(t, 1, st.StopsReceived)
	assert.Equal(t, int64(1), sim.Stats().RecordingsStopped)
	assert.Empty(t, srv.problemList())
}

func TestStreamOnlyWhileKeptAliveAndRecording(t *testing.T) {
	srv := newTestServer(t)
	sim := startSim(t, testConfig(t, srv))
	e := sim.Enclosure("NV1")

	// STREAM while not recording does nothing.
	srv.setOverride(func(d *testDevice, hb heartbeat) *rawReply {
		if d.session == 0 {
			return commandReply(ReplyStream, "")
		}
		return nil
	})
	eventually(t, func() bool { return e.State().StreamsReceived >= 2 })
	assert.False(t, e.State().Streaming)

	srv.assign("NV1", defaultParams(86_400))
	srv.with("NV1", func(d *testDevice) { d.viewer = true })
	eventually(t, func() bool { return e.State().Streaming })
	n := e.State().StreamsReceived
	eventually(t, func() bool { return e.State().StreamsReceived >= n+3 && e.State().Streaming })

	srv.with("NV1", func(d *testDevice) { d.viewer = false })
	eventually(t, func() bool { return !e.State().Streaming })
	assert.True(t, e.State().Recording)

	// A network failure also switches streaming off.
	srv.with("NV1", func(d *testDevice) { d.viewer = true })
	eventually(t, func() bool { return e.State().Streaming })
	e.SetDropReplies(1)
	eventually(t, func() bool { return !e.State().Streaming })
	assert.Equal(t, int64(1), sim.Stats().Replies[ReplyDropped])
}

func TestRebootMidRecordingResumes(t *testing.T) {
	srv := newTestServer(t)
	cfg := testConfig(t, srv)
	cfg.VideoDir, cfg.Location, cfg.Zone = t.TempDir(), "rackB", time.UTC
	sim := startSim(t, cfg)
	e := sim.Enclosure("NV1")
	id := srv.assign("NV1", startParams{Duration: 100, FilePrefix: "m", TargetFPS: 30, FragmentHourly: false})
	eventually(t, func() bool { return e.State().Elapsed >= 30 })
	uptime := e.State().Uptime
	first := e.State().CurrentFile
	require.NotEmpty(t, first)

	// Power off (no heartbeats), reboot, and power on again.
	e.GoSilent(time.Hour)
	time.Sleep(30 * time.Millisecond) // let an in-flight heartbeat land
	e.Reboot()
	st := e.State()
	assert.Zero(t, st.SessionID)
	assert.False(t, st.Recording)
	assert.Less(t, st.Uptime, uptime)
	assert.Equal(t, 2, st.Boots)
	assert.False(t, finalised(t, first), "the file being written at the reboot stays unfinalised")
	e.GoSilent(0)

	// The server sees no session and recording=false, and resumes with a second segment.
	eventually(t, func() bool { return srv.snapshot("NV1").result == "finished" })
	d := srv.snapshot("NV1")
	assert.Equal(t, 1, d.reboots)
	var sawLost bool
	for _, hb := range d.hbs {
		if hb.SessionID == 0 && !hb.SensorStatus.Camera.Recording && hb.SystemInfo.Uptime < uptime {
			sawLost = true
			break
		}
	}
	assert.True(t, sawLost)
	eventually(t, func() bool { return e.State().SessionID == 0 })
	assert.Equal(t, 2, e.State().Recordings)
	stats := sim.Stats()
	assert.Equal(t, int64(1), stats.RecordingsLost)
	assert.Equal(t, int64(1), stats.RecordingsFinished)
	_ = id

	// The second segment wrote its own, finalised files.
	second := mustGlob(t, cfg.VideoDir, "*/*/m_seg2_.avi")
	require.Len(t, second, 1)
	assert.True(t, finalised(t, second[0]))
	assert.Contains(t, second[0], "NV1-rackB")
	assert.Empty(t, srv.problemList())
}

func TestFailRecordingReportsErrMsgUntilComplete(t *testing.T) {
	srv := newTestServer(t)
	sim := startSim(t, testConfig(t, srv))
	e := sim.Enclosure("NV1")

	// Hold COMPLETE back for a while to see err_msg repeated.
	srv.setOverride(func(d *testDevice, hb heartbeat) *rawReply {
		if hb.ErrMsg != "" && len(d.hbs) < 40 {
			return commandReply("none", "")
		}
		return nil
	})
	id := srv.assign("NV1", defaultParams(86_400))
	eventually(t, func() bool { return e.State().Recording })
	e.FailRecording("camera disconnected")
	st := e.State()
	assert.False(t, st.Recording)
	assert.Equal(t, id, st.SessionID)
	assert.Equal(t, "camera disconnected", st.ErrMsg)

	eventually(t, func() bool { return srv.snapshot("NV1").result != "" })
	d := srv.snapshot("NV1")
	assert.Equal(t, "failed", d.result)
	assert.Equal(t, "camera disconnected", d.errMsg)
	var withErr int
	for _, hb := range d.hbs {
		if hb.ErrMsg != "" {
			withErr++
			assert.Equal(t, id, hb.SessionID)
			assert.False(t, hb.SensorStatus.Camera.Recording)
		}
	}
	assert.Greater(t, withErr, 2)
	eventually(t, func() bool { st := e.State(); return st.SessionID == 0 && st.ErrMsg == "" })
	hbs := srv.snapshot("NV1").hbs
	eventually(t, func() bool { return len(srv.snapshot("NV1").hbs) > len(hbs) })
	hbs = srv.snapshot("NV1").hbs
	assert.Empty(t, hbs[len(hbs)-1].ErrMsg)
	assert.Equal(t, int64(1), sim.Stats().RecordingsFailed)
}

func TestDroppedCompleteIsSurvived(t *testing.T) {
	srv := newTestServer(t)
	sim := startSim(t, testConfig(t, srv))
	e := sim.Enclosure("NV1")
	var dropped atomic.Bool
	srv.setBeforeReply(func(name, cmd string) {
		// Runs before the reply is written, so the enclosure drops exactly this COMPLETE.
		if cmd == ReplyComplete && dropped.CompareAndSwap(false, true) {
			e.SetDropReplies(1)
		}
	})
	id := srv.assign("NV1", defaultParams(10))
	eventually(t, func() bool { return e.State().SessionID == 0 && e.State().CompletesReceived > 0 })
	d := srv.snapshot("NV1")
	assert.Equal(t, "finished", d.result)
	assert.GreaterOrEqual(t, countOf(d.replies, ReplyComplete), 2, "the server must repeat COMPLETE")
	assert.Equal(t, 1, e.State().CompletesReceived)
	assert.Equal(t, int64(1), sim.Stats().Replies[ReplyDropped])
	// Between the two COMPLETEs the device still sent the finished session.
	var n int
	for _, hb := range d.hbs {
		if hb.SessionID == id && !hb.SensorStatus.Camera.Recording {
			n++
		}
	}
	assert.GreaterOrEqual(t, n, 2)
}

func TestGoSilentKeepsRecording(t *testing.T) {
	srv := newTestServer(t)
	sim := startSim(t, testConfig(t, srv))
	e := sim.Enclosure("NV1")
	id := srv.assign("NV1", defaultParams(86_400))
	eventually(t, func() bool { return e.State().Recording })

	e.GoSilent(400 * time.Millisecond)
	time.Sleep(50 * time.Millisecond) // let an in-flight heartbeat land
	before := len(srv.snapshot("NV1").hbs)
	elapsed := e.State().Elapsed
	assert.True(t, e.State().Silent)
	time.Sleep(250 * time.Millisecond)
	assert.Equal(t, before, len(srv.snapshot("NV1").hbs), "no heartbeats while silent")

	eventually(t, func() bool { return len(srv.snapshot("NV1").hbs) > before })
	d := srv.snapshot("NV1")
	hb := d.hbs[before]
	assert.Equal(t, id, hb.SessionID)
	assert.True(t, hb.SensorStatus.Camera.Recording)
	assert.Greater(t, *hb.SensorStatus.Camera.Duration, elapsed+20, "the recording went on during the outage")
}

func TestStartWhileRecordingAndCompleteWhileRecordingAreIgnored(t *testing.T) {
	srv := newTestServer(t)
	sim := startSim(t, testConfig(t, srv))
	e := sim.Enclosure("NV1")
	id := srv.assign("NV1", defaultParams(86_400))
	eventually(t, func() bool { return e.State().Recording })

	var sent int
	srv.setOverride(func(d *testDevice, hb heartbeat) *rawReply {
		sent++
		switch sent {
		case 1:
			return commandReply(ReplyStart, `{"session_id":999,"duration":5,"fragment_hourly":false,"file_prefix":"x","target_fps":30,"apply_filter":false}`)
		case 2:
			return commandReply(ReplyComplete, "")
		}
		return nil
	})
	eventually(t, func() bool { st := e.State(); return st.StartsReceived >= 2 && st.CompletesReceived >= 1 })
	st := e.State()
	assert.Equal(t, id, st.SessionID)
	assert.True(t, st.Recording)
	assert.Equal(t, 1, st.Recordings)
}

// finalised reports whether an .avi has its RIFF size patched (closed by the writer).
func finalised(t *testing.T, path string) bool {
	t.Helper()
	b := readFile(t, path)
	require.GreaterOrEqual(t, len(b), 8)
	return b[4] != 0 || b[5] != 0 || b[6] != 0 || b[7] != 0
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{BaseURL: "", Count: 1},
		{BaseURL: "ftp://x/api", Count: 1},
		{BaseURL: "http://x/api", Count: 0},
		{BaseURL: "http://x/api", Count: 1, TimeScale: -1},
		{BaseURL: "http://x/api", Count: 2, NamePrefix: "A", FirstNumber: 1},
	} {
		_, err := New(cfg)
		if cfg.Count == 2 {
			assert.NoError(t, err)
			continue
		}
		assert.Error(t, err, "%+v", cfg)
	}
	sim, err := New(Config{BaseURL: "http://x/api/", Count: 3, FirstNumber: 9})
	require.NoError(t, err)
	var names []string
	for _, e := range sim.Enclosures() {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"NV9", "NV10", "NV11"}, names)
	assert.Equal(t, "http://x/api/device/heartbeat", sim.url)
	assert.Equal(t, 10*time.Second, sim.cfg.Interval)
	assert.Equal(t, time.Second, sim.cfg.FollowUp)

	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, sim.Run(ctx))
	require.Error(t, sim.Run(ctx), "Run twice")
}

func TestDiskFullFailsRecording(t *testing.T) {
	srv := newTestServer(t)
	cfg := testConfig(t, srv)
	cfg.FreeDiskMB, cfg.MBPerSecond = 100, 2 // full after 50 simulated seconds
	sim := startSim(t, cfg)
	e := sim.Enclosure("NV1")
	srv.assign("NV1", defaultParams(86_400))
	eventually(t, func() bool { return srv.snapshot("NV1").result != "" })
	d := srv.snapshot("NV1")
	assert.Equal(t, "failed", d.result)
	assert.Equal(t, "No space left on device", d.errMsg)
	assert.Equal(t, int64(50), d.finalDur)
	assert.Zero(t, e.State().FreeDiskMB)
	var frees []int64
	for _, hb := range d.hbs {
		frees = append(frees, hb.SystemInfo.FreeDisk)
	}
	assert.True(t, slices.IsSortedFunc(frees, func(a, b int64) int { return int(b - a) }), "free disk only shrinks: %v", frees)
}

func TestFleetOf300(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of 300 enclosures")
	}
	srv := newTestServer(t)
	cfg := testConfig(t, srv)
	cfg.Count, cfg.Interval, cfg.FollowUp, cfg.TimeScale = 300, 200*time.Millisecond, 20*time.Millisecond, 60
	cfg.Logger = nil
	sim := startSim(t, cfg)
	for i, e := range sim.Enclosures() {
		switch i % 10 {
		case 2: // canceled: long enough that only STOP can end it
			srv.assign(e.Name(), defaultParams(86_400))
			srv.with(e.Name(), func(d *testDevice) { d.cancel = true })
		default:
			srv.assign(e.Name(), defaultParams(int64(60+i%5*30))) // 1 to 3 real seconds
		}
		if i%10 == 1 {
			srv.with(e.Name(), func(d *testDevice) { d.viewer = true })
		}
	}
	// Polls slowly: 300 State calls are not free under -race on two cores.
	require.Eventually(t, func() bool {
		for _, e := range sim.Enclosures() {
			if st := e.State(); st.Recordings == 0 || st.SessionID != 0 {
				return false
			}
		}
		return true
	}, 15*time.Second, 50*time.Millisecond, "every enclosure recorded and was completed")

	st := sim.Stats()
	t.Log(st)
	assert.Zero(t, st.Violations)
	assert.Zero(t, st.Anomalies)
	assert.Zero(t, st.Replies[ReplyError])
	assert.Zero(t, st.Replies[ReplyNetwork])
	assert.Zero(t, st.Crashed)
	assert.Equal(t, int64(300), st.RecordingsStarted)
	assert.Equal(t, int64(270), st.RecordingsFinished)
	assert.Equal(t, int64(30), st.RecordingsStopped)
	assert.Positive(t, st.Replies[ReplyStream])
	assert.GreaterOrEqual(t, st.HeartbeatsSent, int64(300*5))
	assert.LessOrEqual(t, st.Latency.Count, st.HeartbeatsSent) // minus those in flight
	assert.Greater(t, st.Latency.Count, st.HeartbeatsSent-300)
	results := map[string]int{}
	for _, e := range sim.Enclosures() {
		results[srv.snapshot(e.Name()).result]++
	}
	assert.Equal(t, map[string]int{"finished": 270, "canceled": 30}, results)
	assert.Empty(t, srv.problemList())
}

func TestRedirectIsNoCommand(t *testing.T) {
	srv := newTestServer(t)
	srv.setOverride(func(*testDevice, heartbeat) *rawReply {
		return &rawReply{status: http.StatusFound, body: "elsewhere"}
	})
	sim := startSim(t, testConfig(t, srv))
	eventually(t, func() bool { return sim.Stats().Replies[ReplyError] >= 2 })
	assert.False(t, sim.Enclosure("NV1").State().Crashed)
}

func TestNetworkFailureIsNoCommand(t *testing.T) {
	srv := newTestServer(t)
	cfg := testConfig(t, srv)
	srv.srv.Close() // nothing listens any more
	sim := startSim(t, cfg)
	eventually(t, func() bool { return sim.Stats().Replies[ReplyNetwork] >= 3 })
	st := sim.Enclosure("NV1").State()
	assert.False(t, st.Crashed)
	assert.NotEmpty(t, st.LastErr)
	assert.Equal(t, ReplyNetwork, st.LastReply)
	assert.Zero(t, sim.Stats().Latency.Count)
}

// RecordedBySession is what the enclosure holds per session, every segment counted: the bench
// compares it with what the service reports.
func TestRecordedBySessionCountsEverySegment(t *testing.T) {
	srv := newTestServer(t)
	sim := startSim(t, testConfig(t, srv))
	e := sim.Enclosure("NV1")
	id := srv.assign("NV1", startParams{Duration: 100, FilePrefix: "m", TargetFPS: 30})
	eventually(t, func() bool { return e.State().Elapsed >= 30 })
	st := e.State()
	assert.GreaterOrEqual(t, st.RecordedBySession[id], st.Elapsed, "the active segment up to now")

	e.GoSilent(time.Hour)
	time.Sleep(30 * time.Millisecond) // let an in-flight heartbeat land
	e.Reboot()
	lost := e.State().RecordedBySession[id]
	assert.GreaterOrEqual(t, lost, int64(30), "the lost segment stays counted")
	e.GoSilent(0)

	eventually(t, func() bool { return srv.snapshot("NV1").result == "finished" })
	eventually(t, func() bool { return e.State().SessionID == 0 })
	assert.Equal(t, lost+srv.snapshot("NV1").finalDur, e.State().RecordedBySession[id], "both segments")
	assert.Empty(t, srv.problemList())
}
