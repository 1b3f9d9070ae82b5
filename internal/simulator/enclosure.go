package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Fixed hardware of a simulated enclosure (a Jetson with 8 GB).
const (
	totalRAMkB  = 7_765_420
	release     = "R32 (release), REVISION: 7.1"
	maxReplyLen = 1 << 20
	maxStartLog = 256
)

// EnclosureState is a snapshot of one enclosure.
type EnclosureState struct {
	Name       string
	Boots      int   // 1 + reboots
	Uptime     int64 // simulated seconds since boot
	SessionID  int64 // session the device believes it is in; 0 = none
	Recording  bool
	Elapsed    int64 // simulated seconds of the current or last recording while its session is held
	Streaming  bool
	ErrMsg     string // err_msg being reported
	FreeDiskMB int64
	// CurrentFile is the .avi being written, "" when not recording or VideoDir is unset.
	CurrentFile string

	Recordings int // recordings started (one per accepted START, so resume segments count)
	// RecordedBySession is the simulated seconds recorded per session id, every segment
	// (the active one up to now): what the enclosure really holds, whatever the server says.
	RecordedBySession map[int64]int64
	StartsReceived    int
	StopsReceived     int
	CompletesReceived int
	StreamsReceived   int
	Heartbeats        int64 // requests sent
	LastReply         string
	// Starts is every START received, with the heartbeat it answered: which comes after a
	// reboot, and whether it started a recording.
	Starts []StartSeen

	Silent     bool   // inside a GoSilent window
	Crashed    bool   // stopped after a protocol violation (Reboot revives it)
	Violations int    // protocol violations seen
	LastErr    string // last violation, HTTP error or network error
}

// StartSeen is a START the enclosure received.
type StartSeen struct {
	Boot       int   // 1 + reboots before it
	Heartbeat  int64 // the heartbeat of that boot it answered: 1 is the first after the boot
	SessionID  int64
	FilePrefix string
	Duration   int64
	Started    bool // false: ignored, already recording
}

// Enclosure is one simulated device. Its methods are safe for concurrent use.
type Enclosure struct {
	sim   *Simulator
	name  string
	log   *slog.Logger
	nudge chan struct{} // wakes the loop after GoSilent or a Reboot that revives it

	mu         sync.Mutex
	boots      int
	bootSim    time.Time // simulated time of the last boot
	uptimeBase int64     // uptime at bootSim (enclosures were up for a while before the simulator)
	sessionID  int64
	rec        *recording // current or last recording; nil once COMPLETE clears the session
	errMsg     string
	streaming  bool
	token      string // its own token (SetToken); else Config.Token; sent only when Config.Relayed
	// garbage is the duration the client reports after it starts, until its first START or
	// COMPLETE: uninitialised memory (PROTOCOL.md section 2). initialised ends it.
	garbage     int64
	initialised bool
	crashed     bool
	silentUntil time.Time // real time
	dropReplies int
	recordedSec float64 // simulated seconds recorded by finished recordings, for free disk
	lastReply   string
	lastErr     string
	violations  int
	heartbeats  int64
	bootBeats   int64 // heartbeats sent since the last boot
	startLog    []StartSeen
	starts      int
	stops       int
	completes   int
	streams     int
	recordings  int
	recordedBy  map[int64]int64 // whole seconds of ended segments per session id
}

type recording struct {
	p         startParams
	start     time.Time // simulated
	end       time.Time // planned end
	active    bool
	stoppedAt time.Time
	fps       float64
	files     *videoFiles // nil without VideoDir or after a file error
}

// elapsed is the recording's length in whole simulated seconds at now (or at its end).
func (r *recording) elapsed(now time.Time) int64 {
	t := now
	if !r.active {
		t = r.stoppedAt
	}
	if t.After(r.end) {
		t = r.end
	}
	return int64(t.Sub(r.start) / time.Second)
}

func newEnclosure(s *Simulator, name string) *Enclosure {
	return &Enclosure{
		sim:        s,
		name:       name,
		log:        s.log.With("enclosure", name),
		nudge:      make(chan struct{}, 1),
		boots:      1,
		bootSim:    s.SimNow(),
		uptimeBase: int64(time.Hour/time.Second) + rand.Int64N(7*24*3600),
		garbage:    garbageDuration(),
	}
}

// garbageDuration is what an uninitialised duration was seen to hold, or could.
func garbageDuration() int64 {
	seen := []int64{139627186819480, 0, -1 - rand.Int64N(1<<40), rand.Int64(), math.MinInt64, math.MaxInt64}
	return seen[rand.N(len(seen))]
}

// Name returns the hostname.
func (e *Enclosure) Name() string { return e.name }

// State returns a snapshot.
func (e *Enclosure) State() EnclosureState {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.sim.SimNow()
	e.advanceLocked(now)
	st := EnclosureState{
		Name:              e.name,
		Boots:             e.boots,
		Uptime:            e.uptimeLocked(now),
		SessionID:         e.sessionID,
		Streaming:         e.streaming,
		ErrMsg:            e.errMsg,
		FreeDiskMB:        e.freeDiskLocked(now),
		Recordings:        e.recordings,
		StartsReceived:    e.starts,
		StopsReceived:     e.stops,
		CompletesReceived: e.completes,
		StreamsReceived:   e.streams,
		Heartbeats:        e.heartbeats,
		LastReply:         e.lastReply,
		Starts:            slices.Clone(e.startLog),
		RecordedBySession: maps.Clone(e.recordedBy),
		Silent:            time.Now().Before(e.silentUntil),
		Crashed:           e.crashed,
		Violations:        e.violations,
		LastErr:           e.lastErr,
	}
	if r := e.rec; r != nil {
		st.Recording = r.active
		st.Elapsed = r.elapsed(now)
		if r.active {
			if st.RecordedBySession == nil {
				st.RecordedBySession = map[int64]int64{}
			}
			st.RecordedBySession[r.p.SessionID] += st.Elapsed
		}
		if r.active && r.files != nil {
			st.CurrentFile = r.files.cur
		}
	}
	return st
}

// SetToken gives the enclosure a token of its own (one an admin set for it), sent from its next
// heartbeat on when it sits behind its relay (Config.Relayed). The real client sends none; its
// upload agent and relay use the same token.
func (e *Enclosure) SetToken(token string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.token = token
}

// Reboot loses the session and the recording at once, as a power cycle or client restart does:
// the next heartbeat has no session_id and recording=false, uptime starts again from zero, and
// the file being written is left unfinalised. It also revives an enclosure that crashed on a
// protocol violation (the restarted client runs again). Heartbeats keep their schedule (a
// revived enclosure sends one at once); combine with GoSilent to model a long boot.
func (e *Enclosure) Reboot() {
	e.mu.Lock()
	wasCrashed := e.crashed
	now := e.sim.SimNow()
	e.advanceLocked(now)
	if e.rec != nil && e.rec.active {
		e.endRecordingLocked(now, endLost, "")
	}
	e.boots++
	e.bootBeats = 0
	e.bootSim, e.uptimeBase = now, 0
	e.sessionID, e.rec, e.errMsg, e.streaming, e.crashed = 0, nil, "", false, false
	e.garbage, e.initialised = garbageDuration(), false // a new client process
	e.mu.Unlock()
	e.log.Info("rebooted")
	if wasCrashed {
		e.wake()
	}
}

// FailRecording ends the current recording now with err_msg=msg: the next heartbeats say
// recording=false with the session id and err_msg until COMPLETE. The file is finalised, since
// the client's recording thread closes it. No-op when not recording.
func (e *Enclosure) FailRecording(msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.sim.SimNow()
	e.advanceLocked(now)
	if msg == "" {
		msg = "recording failed" // an empty err_msg would be omitted and read as success
	}
	if e.rec != nil && e.rec.active {
		e.endRecordingLocked(now, endFailed, msg)
	}
}

// GoSilent stops heartbeats for d of real time (a network outage, not a reboot): the session
// and the recording go on. The first heartbeat after the outage goes out at once.
// GoSilent(0) ends an outage early.
func (e *Enclosure) GoSilent(d time.Duration) {
	e.mu.Lock()
	e.silentUntil = time.Now().Add(d)
	e.mu.Unlock()
	e.wake()
}

// SetDropReplies discards the next n replies after the server has processed the request, as a
// network losing them would; the device acts as on a network failure.
func (e *Enclosure) SetDropReplies(n int) {
	e.mu.Lock()
	e.dropReplies = n
	e.mu.Unlock()
}

func (e *Enclosure) wake() {
	select {
	case e.nudge <- struct{}{}:
	default:
	}
}

// run is the client's main loop.
func (e *Enclosure) run(ctx context.Context) {
	// Stagger first heartbeats over one interval so a fleet does not fire at once.
	if !e.sleep(ctx, rand.N(e.sim.cfg.Interval)) {
		return
	}
	for {
		e.mu.Lock()
		crashed, silence := e.crashed, time.Until(e.silentUntil)
		e.mu.Unlock()
		switch {
		case crashed:
			select {
			case <-ctx.Done():
				return
			case <-e.nudge:
			}
			continue
		case silence > 0:
			if !e.sleep(ctx, silence) {
				return
			}
			continue
		}
		next := e.heartbeat(ctx)
		if !e.sleep(ctx, next) {
			return
		}
	}
}

// sleep waits d, or less if nudged; false when ctx is done.
func (e *Enclosure) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-e.nudge:
	}
	return true
}

// heartbeat sends one heartbeat, applies the reply and returns the delay to the next one.
func (e *Enclosure) heartbeat(ctx context.Context) time.Duration {
	cfg := &e.sim.cfg
	stats := e.sim.stats

	e.mu.Lock()
	now := e.sim.SimNow()
	e.advanceLocked(now)
	body, err := json.Marshal(e.bodyLocked(now))
	boot := e.boots
	e.heartbeats++
	e.bootBeats++
	beat := e.bootBeats
	token := e.token
	e.mu.Unlock()
	if token == "" {
		token = cfg.Token
	}
	if !cfg.Relayed {
		token = "" // the unmodified client cannot send one
	}
	if err != nil {
		panic(err) // plain structs always marshal
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.sim.url, bytes.NewReader(body))
	if err != nil {
		panic(err) // the URL was validated in New
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	stats.heartbeats.Add(1)
	t0 := time.Now()
	resp, err := e.sim.client.Do(req)
	var raw []byte
	if err == nil {
		raw, err = io.ReadAll(io.LimitReader(resp.Body, maxReplyLen))
		resp.Body.Close()
	}
	if ctx.Err() != nil {
		return 0 // shutting down; not a network failure
	}
	if err == nil {
		stats.latency.observe(time.Since(t0)) // failures (e.g. 30 s timeouts) are no round trip
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.boots != boot || e.crashed {
		return cfg.Interval // the process that sent the request is gone
	}
	e.advanceLocked(e.sim.SimNow())
	if err != nil {
		e.noCommandLocked(ReplyNetwork, err.Error())
		return cfg.Interval
	}
	if e.dropReplies > 0 {
		e.dropReplies--
		e.noCommandLocked(ReplyDropped, "")
		return cfg.Interval
	}
	rep, err := parseReply(resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	if err != nil {
		e.crashLocked(err, resp.StatusCode, raw)
		return cfg.Interval
	}
	for _, a := range rep.anomalies {
		stats.anomalies.Add(1)
		e.log.Warn("reply not allowed by PROTOCOL.md section 3 (the client survives it)", "anomaly", a)
	}
	if rep.kind == ReplyStart {
		if len(e.startLog) == maxStartLog {
			e.startLog = slices.Delete(e.startLog, 0, 1) // long benchmarks keep the latest
		}
		e.startLog = append(e.startLog, StartSeen{Boot: boot, Heartbeat: beat, SessionID: rep.start.SessionID,
			FilePrefix: rep.start.FilePrefix, Duration: rep.start.Duration, Started: e.rec == nil || !e.rec.active})
	}
	return e.applyLocked(rep, resp.StatusCode)
}

// bodyLocked builds the heartbeat of PROTOCOL.md section 2.
func (e *Enclosure) bodyLocked(now time.Time) heartbeat {
	cfg := &e.sim.cfg
	hb := heartbeat{
		Name:      e.name,
		Location:  cfg.Location,
		Timestamp: time.Now().UTC().Format(timestampLayout),
		SessionID: e.sessionID,
		ErrMsg:    e.errMsg,
		State:     "IDLE",
		SystemInfo: systemInfo{
			Uptime:    e.uptimeLocked(now),
			Load:      round2(0.2 + 0.2*rand.Float64()),
			TotalRAM:  totalRAMkB,
			FreeRAM:   5_800_000 + rand.Int64N(200_000),
			TotalDisk: max(cfg.FreeDiskMB+20_000, 238_000),
			FreeDisk:  e.freeDiskLocked(now),
			Release:   release,
		},
	}
	if !e.initialised {
		d := e.garbage
		hb.SensorStatus.Camera.Duration = &d
	}
	if r := e.rec; r != nil {
		d := r.elapsed(now)
		hb.SensorStatus.Camera.Duration = &d
		if r.active {
			hb.State = "RECORDING"
			hb.SensorStatus.Camera.Recording = true
			fps := round2(r.fps + (rand.Float64()-0.5)*0.6)
			hb.SensorStatus.Camera.FPS = &fps
			hb.SystemInfo.Load = round2(1.2 + 0.6*rand.Float64())
			hb.SystemInfo.FreeRAM = 3_100_000 + rand.Int64N(300_000)
		}
	}
	return hb
}

// applyLocked does what the client does with a reply (PROTOCOL.md section 4).
func (e *Enclosure) applyLocked(rep reply, status int) time.Duration {
	cfg := &e.sim.cfg
	e.sim.stats.replies[rep.kind].Add(1)
	e.lastReply = rep.kind
	recording := e.rec != nil && e.rec.active
	// Any reply but STREAM switches streaming off.
	if rep.kind != ReplyStream {
		e.streaming = false
	}
	if rep.kind == ReplyStart || rep.kind == ReplyComplete {
		e.initialised = true
	}
	switch rep.kind {
	case ReplyStart:
		e.starts++
		if recording {
			e.log.Debug("START ignored: already recording", "session_id", rep.start.SessionID)
		} else {
			e.startRecordingLocked(rep.start)
		}
		return cfg.FollowUp
	case ReplyStop:
		e.stops++
		if recording {
			e.endRecordingLocked(e.sim.SimNow(), endStopped, "")
		}
		return cfg.FollowUp
	case ReplyComplete:
		e.completes++
		if !recording && e.sessionID != 0 {
			e.log.Info("session completed", "session_id", e.sessionID)
		}
		if !recording {
			e.sessionID, e.rec, e.errMsg = 0, nil, ""
		}
		return cfg.FollowUp
	case ReplyStream:
		e.streams++
		e.streaming = recording
	case ReplyError:
		e.noteErrLocked(fmt.Sprintf("HTTP %d: %s", status, rep.errDetail))
	}
	return cfg.Interval
}

// noCommandLocked handles a heartbeat that got no reply the client could see.
func (e *Enclosure) noCommandLocked(kind, errMsg string) {
	e.sim.stats.replies[kind].Add(1)
	e.lastReply = kind
	e.streaming = false
	if errMsg != "" {
		e.noteErrLocked(errMsg)
	}
}

// noteErrLocked records an error and logs it when it differs from the previous one, so an
// unreachable server does not flood the log.
func (e *Enclosure) noteErrLocked(msg string) {
	if msg != e.lastErr {
		e.log.Warn("heartbeat failed", "err", msg)
	}
	e.lastErr = msg
}

// crashLocked stops the enclosure for good, like the real client on such a reply. The client
// process is gone, so its recording is lost too.
func (e *Enclosure) crashLocked(err error, status int, body []byte) {
	var v *violationError
	if !errors.As(err, &v) {
		panic(err)
	}
	e.sim.stats.violations.Add(1)
	e.sim.stats.replies[ReplyViolation].Add(1)
	e.lastReply = ReplyViolation
	e.violations++
	e.lastErr = err.Error()
	e.crashed = true
	e.streaming = false
	if e.rec != nil && e.rec.active {
		e.endRecordingLocked(e.sim.SimNow(), endLost, "")
	}
	e.log.Error("client crashed on a reply the real client cannot survive", "violation", v.reason,
		"status", status, "body", truncate(string(body), 500))
}

func (e *Enclosure) startRecordingLocked(p startParams) {
	cfg := &e.sim.cfg
	now := e.sim.SimNow()
	fps := cfg.FPS
	if fps == 0 {
		fps = float64(p.TargetFPS)
		if fps <= 0 {
			fps = 30
		}
	}
	r := &recording{p: p, start: now, end: now.Add(time.Duration(p.Duration) * time.Second), active: true, fps: fps}
	if cfg.VideoDir != "" {
		f, err := newVideoFiles(cfg.VideoDir, e.name, cfg.Location, cfg.Zone, p, now, fps, cfg.FileBytesPerSecond)
		if err != nil {
			e.fileErrLocked(err)
		} else {
			r.files = f
		}
	}
	e.sessionID, e.rec, e.errMsg = p.SessionID, r, ""
	e.recordings++
	e.sim.stats.started.Add(1)
	e.log.Info("recording started", "session_id", p.SessionID, "duration", p.Duration,
		"file_prefix", p.FilePrefix, "fragment_hourly", p.FragmentHourly)
}

type endHow int

const (
	endFinished endHow = iota // duration reached
	endStopped                // STOP
	endFailed                 // error, err_msg reported
	endLost                   // reboot or crash: file left unfinalised
)

func (e *Enclosure) endRecordingLocked(at time.Time, how endHow, errMsg string) {
	r := e.rec
	r.active, r.stoppedAt = false, at
	e.streaming = false
	e.recordedSec += at.Sub(r.start).Seconds()
	if e.recordedBy == nil {
		e.recordedBy = map[int64]int64{}
	}
	e.recordedBy[r.p.SessionID] += r.elapsed(at)
	if r.files != nil {
		var err error
		if how == endLost {
			err = r.files.writeUntil(at)
		} else {
			err = r.files.finish(at)
		}
		if err != nil {
			e.fileErrLocked(err)
		}
		r.files = nil
	}
	c := e.sim.stats
	switch how {
	case endFinished:
		c.finished.Add(1)
	case endStopped:
		c.stopped.Add(1)
	case endFailed:
		c.failed.Add(1)
		e.errMsg = errMsg
	case endLost:
		c.lost.Add(1)
	}
	e.log.Info("recording ended", "session_id", e.sessionID, "how", [...]string{"finished", "stopped", "failed", "lost"}[how],
		"elapsed", r.elapsed(at), "err_msg", errMsg)
}

// advanceLocked brings the recording up to simulated time now: writes files, and ends it when its
// duration is reached or the disk has filled.
func (e *Enclosure) advanceLocked(now time.Time) {
	r := e.rec
	if r == nil || !r.active {
		return
	}
	end, how, msg := r.end, endFinished, ""
	if full, ok := e.diskFullAtLocked(); ok && full.Before(end) {
		end, how, msg = full, endFailed, "No space left on device"
	}
	if now.Before(end) {
		if r.files != nil {
			if err := r.files.writeUntil(now); err != nil {
				e.fileErrLocked(err)
				r.files = nil
			}
		}
		return
	}
	e.endRecordingLocked(end, how, msg)
}

// fileErrLocked gives up writing files for this recording; the simulated device keeps recording.
func (e *Enclosure) fileErrLocked(err error) {
	e.lastErr = "video files: " + err.Error()
	e.log.Error("writing video files failed; not writing more for this recording", "err", err)
}

func (e *Enclosure) uptimeLocked(now time.Time) int64 {
	return e.uptimeBase + int64(now.Sub(e.bootSim)/time.Second)
}

func (e *Enclosure) freeDiskLocked(now time.Time) int64 {
	used := e.recordedSec
	if r := e.rec; r != nil && r.active {
		used += now.Sub(r.start).Seconds()
	}
	return max(0, int64(float64(e.sim.cfg.FreeDiskMB)-used*e.sim.cfg.MBPerSecond))
}

// diskFullAtLocked returns when the active recording fills the disk, if it consumes any.
func (e *Enclosure) diskFullAtLocked() (time.Time, bool) {
	mbps := e.sim.cfg.MBPerSecond
	if mbps <= 0 {
		return time.Time{}, false
	}
	free := float64(e.sim.cfg.FreeDiskMB) - e.recordedSec*mbps
	secs := max(0, free/mbps)
	if secs > 1e9 { // beyond any recording (and time.Duration)
		return time.Time{}, false
	}
	return e.rec.start.Add(time.Duration(secs * float64(time.Second))), true
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }
