// Package simulator runs many fake recording enclosures from one process. Each behaves like the
// unmodified C++ client (mba-client) described in /work/shared/PROTOCOL.md sections 1 to 4 and 6:
// it polls POST {api}/device/heartbeat, obeys START, STOP, COMPLETE and STREAM exactly as that
// client does, and optionally writes the same video file layout with tiny fake content.
//
// It serves end-to-end tests, benchmarks and demos. Faults can be injected per enclosure
// (Reboot, FailRecording, GoSilent, SetDropReplies), and every reply on which the real client
// would crash is detected, counted as a protocol violation and stops that enclosure, as it would
// stop the real one. A test that ends with Stats().Violations == 0 has shown that the server
// never produced such a reply.
//
// Time: request scheduling (Interval, FollowUp, GoSilent) is in real time. Recordings run on a
// simulated clock that starts at Config.SimStart and advances TimeScale times faster than real
// time; it drives recording lengths, the reported duration and uptime, and file names. The
// heartbeat timestamp is the real UTC clock, so servers see no artificial clock skew.
//
// Files (Config.VideoDir): the layout and names are those of section 6. The content is fake and
// small: an .avi is a 12-byte RIFF header plus FileBytesPerSecond bytes per simulated second;
// like a real AVI writer, the RIFF size field is patched (and an idx1 trailer appended) only when
// the file is finalised, so a fragment left behind by a reboot or crash has size field 0.
// Ptimestamps.txt has one line per frame ("%.6f" seconds since the first frame) when the
// recording has at most 10 000 frames, else one line per simulated second.
// Pstart_timestamp.txt holds the local start time in RFC 3339 with microseconds.
package simulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Config configures a Simulator. Zero values get the defaults noted.
type Config struct {
	BaseURL     string // e.g. http://127.0.0.1:8080/api; heartbeats go to BaseURL+"/device/heartbeat"
	Count       int    // number of enclosures, at least 1
	NamePrefix  string // hostname prefix (default "NV"): NamePrefix+number, e.g. NV1, NV2
	FirstNumber int    // number of the first enclosure (default 1)
	Location    string // sent as "location" unless empty (then the field is absent)

	Interval  time.Duration  // update_interval (default 10 s)
	FollowUp  time.Duration  // poll delay after START, STOP or COMPLETE (default 1 s, like the client)
	TimeScale float64        // simulated seconds per real second (default 1)
	SimStart  time.Time      // simulated clock reading when New returns (default: now)
	Zone      *time.Location // local time zone of the enclosures, for file names (default time.Local)

	// Relayed: the enclosures sit behind their relay (mba agent), so their heartbeats carry a
	// token: their own (Enclosure.SetToken), else Token. Without it no heartbeat has an
	// Authorization header, like the unmodified client, whatever tokens are set.
	Relayed bool
	Token   string

	HTTPClient *http.Client // default: 30 s timeout like the client, shared keep-alive transport

	VideoDir           string // if set, write the files of PROTOCOL.md section 6 under it
	FileBytesPerSecond int    // fake .avi content per simulated second (default 4)

	FPS         float64 // reported fps while recording (default: the START's target_fps, else 30), with jitter
	FreeDiskMB  int64   // free disk at start (default 200 000 MB)
	MBPerSecond float64 // free disk consumed per simulated recording second (default 0: none)

	Logger *slog.Logger // default: discard
}

// Simulator runs Config.Count enclosures.
type Simulator struct {
	cfg       Config
	url       string
	client    *http.Client
	transport *http.Transport // ours to close, nil if the caller supplied the client
	log       *slog.Logger
	stats     *counters

	realStart time.Time // monotonic anchor of the simulated clock
	simStart  time.Time

	enclosures []*Enclosure
	byName     map[string]*Enclosure

	mu      sync.Mutex
	running bool
}

// New validates cfg, applies defaults and creates the enclosures; Run starts them.
func New(cfg Config) (*Simulator, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("simulator: BaseURL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.Count < 1 {
		return nil, fmt.Errorf("simulator: Count must be at least 1, got %d", cfg.Count)
	}
	if cfg.Interval < 0 || cfg.FollowUp < 0 || cfg.TimeScale < 0 || cfg.FPS < 0 ||
		cfg.FreeDiskMB < 0 || cfg.MBPerSecond < 0 || cfg.FileBytesPerSecond < 0 {
		return nil, errors.New("simulator: durations, TimeScale, FPS and disk settings must not be negative")
	}
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = "NV"
	}
	if cfg.FirstNumber == 0 {
		cfg.FirstNumber = 1
	}
	if cfg.Interval == 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.FollowUp == 0 {
		cfg.FollowUp = time.Second
	}
	if cfg.TimeScale == 0 {
		cfg.TimeScale = 1
	}
	if cfg.Zone == nil {
		cfg.Zone = time.Local
	}
	if cfg.FileBytesPerSecond == 0 {
		cfg.FileBytesPerSecond = 4
	}
	if cfg.FreeDiskMB == 0 {
		cfg.FreeDiskMB = 200_000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Simulator{
		cfg:       cfg,
		url:       strings.TrimSuffix(cfg.BaseURL, "/") + "/device/heartbeat",
		client:    cfg.HTTPClient,
		log:       cfg.Logger,
		stats:     newCounters(),
		realStart: time.Now(),
		byName:    make(map[string]*Enclosure, cfg.Count),
	}
	s.simStart = cfg.SimStart
	if s.simStart.IsZero() {
		s.simStart = s.realStart
	}
	if s.client == nil {
		// One transport for all enclosures, keeping one idle connection per enclosure.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = cfg.Count + 16
		t.MaxIdleConnsPerHost = cfg.Count + 16
		s.transport = t
		s.client = &http.Client{
			Timeout:   30 * time.Second,
			Transport: t,
			// A redirect is a reply like any other non-200/204 status: no command.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	for i := range cfg.Count {
		name := fmt.Sprintf("%s%d", cfg.NamePrefix, cfg.FirstNumber+i)
		if s.byName[name] != nil {
			return nil, fmt.Errorf("simulator: duplicate hostname %s", name)
		}
		e := newEnclosure(s, name)
		s.enclosures = append(s.enclosures, e)
		s.byName[name] = e
	}
	return s, nil
}

// Run runs all enclosures until ctx is done, then returns nil. It may be called only once.
func (s *Simulator) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("simulator: Run called twice")
	}
	s.running = true
	s.mu.Unlock()

	s.log.Info("simulator starting", "enclosures", len(s.enclosures), "url", s.url,
		"interval", s.cfg.Interval, "time_scale", s.cfg.TimeScale)
	var wg sync.WaitGroup
	for _, e := range s.enclosures {
		wg.Go(func() { e.run(ctx) })
	}
	wg.Wait()
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	s.log.Info("simulator stopped", "stats", s.Stats().String())
	return nil
}

// Enclosure returns the enclosure with that hostname, or nil.
func (s *Simulator) Enclosure(name string) *Enclosure { return s.byName[name] }

// Enclosures returns all enclosures in hostname-number order.
func (s *Simulator) Enclosures() []*Enclosure {
	return append([]*Enclosure(nil), s.enclosures...)
}

// SimNow returns the simulated clock.
func (s *Simulator) SimNow() time.Time {
	return s.simStart.Add(time.Duration(float64(time.Since(s.realStart)) * s.cfg.TimeScale))
}

// Stats returns totals over all enclosures.
func (s *Simulator) Stats() Stats {
	c := s.stats
	st := Stats{
		Enclosures:         len(s.enclosures),
		HeartbeatsSent:     c.heartbeats.Load(),
		Replies:            make(map[string]int64, len(c.replies)),
		Latency:            c.latency.snapshot(),
		RecordingsStarted:  c.started.Load(),
		RecordingsFinished: c.finished.Load(),
		RecordingsStopped:  c.stopped.Load(),
		RecordingsFailed:   c.failed.Load(),
		RecordingsLost:     c.lost.Load(),
		Violations:         c.violations.Load(),
		Anomalies:          c.anomalies.Load(),
	}
	for k, v := range c.replies {
		st.Replies[k] = v.Load()
	}
	for _, e := range s.enclosures {
		es := e.State()
		st.Recording += b2i(es.Recording)
		st.Streaming += b2i(es.Streaming)
		st.Silent += b2i(es.Silent)
		st.Crashed += b2i(es.Crashed)
	}
	return st
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
