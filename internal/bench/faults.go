package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/apiclient"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/simulator"
	"github.com/jax-mba/mba/workflows"
)

// faults: one stack, simulated enclosures heartbeating every 2 s, and faults injected one
// after another while sessions run (issue 13). Each fault gets three fresh groups of enclosures:
// a session whose planned end falls inside the fault, a session canceled in (or right after)
// it, and a session created in (or right after) it. What every enclosure really recorded is
// counted against what the API reports once the sessions end.

// faultsEnv: a short end grace, so an outage of tens of seconds spans a planned end plus its
// grace (the case where complete recordings were once marked FAILED).
var faultsEnv = []string{"MBA_SESSIONS_END_GRACE=10s"}

const (
	faultsInterval = 2 * time.Second
	faultsGroup    = 3 // enclosures per session
	faultsLead     = 8 * time.Second
	faultsZLength  = 15 // seconds recorded by the session created in the fault

	// Limits of the targets; the machine is loaded, so they are generous.
	heartbeatsBackLimit = 15.0 // s: fault end → every enclosure answered 2xx again
	commandsAfterLimit  = 60.0 // s: fault end → every pending command delivered (the dispatcher's backoff tops at 1 min)
	takeoverLimit       = 30.0 // s: leader frozen → the other process dispatching (lease 10 s)
)

// FaultsFigures are the fault scenario's results.
type FaultsFigures struct {
	Enclosures int          `json:"enclosures"`
	IntervalS  float64      `json:"interval_s"`
	Phases     []FaultPhase `json:"phases"`
	Lost       int          `json:"lost_commands"`
	Duplicated int          `json:"duplicated_commands"`
	Mismatched int          `json:"status_mismatches"`
	Errors     int          `json:"heartbeat_errors"`
	Timeline   string       `json:"timeline_svg,omitempty"`
}

// FaultPhase is one fault: when, what the heartbeats got, and what each enclosure recorded
// against what the API says.
type FaultPhase struct {
	Fault   string  `json:"fault"`
	HoldS   float64 `json:"hold_s"`
	Skipped string  `json:"skipped,omitempty"`
	// Seconds since the scenario started, for the timeline.
	InjectAtS float64 `json:"inject_at_s"`
	HealAtS   float64 `json:"heal_at_s"`

	Beats beatTally `json:"heartbeats"`
	// Fault end → every enclosure of the fleet answered 2xx again (0: answered throughout).
	HeartbeatsBackS float64 `json:"heartbeats_answered_again_s"`
	// The longest wait of a command (START, STOP) counted from the later of its request and the
	// fault's end; -1 when one never arrived.
	CommandsAfterS float64 `json:"commands_delivered_after_fault_s"`
	// Leader frozen: the lease changed hands, and the other process dispatched its first outbox
	// row (seconds after the freeze; -1: none during it). Commands need no dispatch: START and
	// STOP go out from the mailbox the API writes.
	TakeoverS    float64 `json:"lease_taken_over_s,omitempty"`
	DispatchingS float64 `json:"other_process_dispatching_s,omitempty"`

	Lost       int                `json:"lost_commands"`
	Duplicated int                `json:"duplicated_commands"`
	Mismatched int                `json:"status_mismatches"`
	Sessions   []SessionOutcome   `json:"sessions"`
	Enclosures []EnclosureOutcome `json:"enclosures"`
	Notes      []string           `json:"notes,omitempty"`
}

// SessionOutcome is one session of a phase: its part in the fault and its status.
type SessionOutcome struct {
	Role   string `json:"role"`
	ID     int64  `json:"id"`
	Status string `json:"status"`
	Want   string `json:"want"`
}

// EnclosureOutcome compares one enclosure's truth (the simulator) with the API.
type EnclosureOutcome struct {
	Enclosure  string `json:"enclosure"`
	Role       string `json:"role"`
	Recorded   int64  `json:"recorded_s"` // what the enclosure recorded for the session
	Recordings int    `json:"recordings"` // STARTs that started a recording
	Reported   int64  `json:"reported_s"` // recording_time in the API
	Status     string `json:"status"`
	Want       string `json:"want"`
	Lost       string `json:"lost,omitempty"` // the commands that never arrived
}

// beatEvent is one heartbeat's outcome as the enclosure saw it.
type beatEvent struct {
	sent    time.Time
	at      time.Time
	name    string
	status  int    // 0: no reply (refused, reset, timed out)
	command string // command_name of a 200
}

// beatRecorder sits under the simulator's HTTP client: it sends each heartbeat to the API a
// load balancer would pick now (front) and keeps its outcome.
type beatRecorder struct {
	next  http.RoundTripper
	front atomic.Pointer[url.URL]

	mu     sync.Mutex
	events []beatEvent
}

func (b *beatRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, err
	}
	var hb struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(body, &hb)
	front := b.front.Load()
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host, out.Host = front.Scheme, front.Host, front.Host
	out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	ev := beatEvent{name: hb.Name, sent: time.Now()}
	res, err := b.next.RoundTrip(out)
	if err == nil {
		ev.status = res.StatusCode
		if res.StatusCode == http.StatusOK {
			raw, rerr := io.ReadAll(res.Body)
			res.Body.Close()
			if rerr != nil {
				err, res = rerr, nil
				ev.status = 0
			} else {
				res.Body = io.NopCloser(bytes.NewReader(raw))
				var c struct {
					Command any `json:"command_name"`
				}
				_ = json.Unmarshal(raw, &c)
				ev.command, _ = c.Command.(string)
			}
		}
	}
	ev.at = time.Now()
	b.mu.Lock()
	b.events = append(b.events, ev)
	b.mu.Unlock()
	return res, err
}

func (b *beatRecorder) snapshot() []beatEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]beatEvent(nil), b.events...)
}

func (b *beatRecorder) setFront(base string) {
	u, err := url.Parse(base)
	if err != nil {
		panic(err) // our own http://host:port
	}
	b.front.Store(u)
}

// firstCommand is when name first got command after t (zero: never).
func firstCommand(events []beatEvent, name, command string, after time.Time) time.Time {
	for _, e := range events {
		if e.name == name && e.command == command && !e.at.Before(after) {
			return e.at
		}
	}
	return time.Time{}
}

// beatTally classifies the heartbeats of a phase.
type beatTally struct {
	Sent       int `json:"sent"`
	OK         int `json:"answered_2xx"`
	Outage503  int `json:"answered_503_in_outage"`
	Unanswered int `json:"unanswered_while_serve_down"`
	Errors     int `json:"errors"` // every other outcome: a reply or a silence the fault does not excuse
	// The longest a heartbeat waited for its outcome (a paused database holds requests until
	// the server's bound answers 503).
	MaxWaitS float64 `json:"max_wait_s"`
}

// outage is a phase's fault window and what it excuses: 503s from inject to heal plus grace
// (the service says honestly it cannot serve), and no reply at all only while serve is down.
type outage struct {
	from          time.Time
	serveDown     bool
	excuseUntil   time.Time
	phaseFrom, at time.Time // the events of the phase: [phaseFrom, at)
}

func tally(events []beatEvent, o outage) beatTally {
	var t beatTally
	for _, e := range events {
		if e.at.Before(o.phaseFrom) || !e.at.Before(o.at) {
			continue
		}
		t.Sent++
		if !e.sent.IsZero() {
			t.MaxWaitS = max(t.MaxWaitS, round2(e.at.Sub(e.sent).Seconds()))
		}
		inOutage := !e.at.Before(o.from) && e.at.Before(o.excuseUntil)
		switch {
		case e.status >= 200 && e.status < 300:
			t.OK++
		case e.status == http.StatusServiceUnavailable && inOutage:
			t.Outage503++
		case e.status == 0 && inOutage && o.serveDown:
			t.Unanswered++
		default:
			t.Errors++
		}
	}
	return t
}

// answeredAgain is how long after heal every enclosure in names had a 2xx again, 0 if none
// failed during the fault, -1 if one never did.
func answeredAgain(events []beatEvent, names []string, from, heal time.Time) float64 {
	failed := false
	for _, e := range events {
		if !e.at.Before(from) && e.at.Before(heal) && (e.status < 200 || e.status >= 300) {
			failed = true
			break
		}
	}
	if !failed {
		return 0
	}
	var worst time.Duration
	for _, n := range names {
		at := time.Time{}
		for _, e := range events {
			if e.name == n && !e.at.Before(heal) && e.status >= 200 && e.status < 300 {
				at = e.at
				break
			}
		}
		if at.IsZero() {
			return -1
		}
		worst = max(worst, at.Sub(heal))
	}
	return round2(worst.Seconds())
}

// fault is one kind of fault the scenario injects.
type fault struct {
	name      string
	hold      time.Duration
	apiUp     bool          // the API takes requests during it: the cancel and the create go in it
	during    time.Duration // when in the fault they go
	serveDown bool
	prepare   func(ctx context.Context, p *FaultPhase) error // before the sessions; may skip
	inject    func(ctx context.Context) error
	heal      func(ctx context.Context) error
	cleanup   func()
}

// faultRun is the scenario's state.
type faultRun struct {
	r     *runner
	sim   *simulator.Simulator
	rec   *beatRecorder
	api   apiclient.Client // through the front
	ids   []int64
	names []string
	t0    time.Time
	peer  *Peer
	// frozen is the pid of the leader the leader fault freezes.
	frozen int
}

func faults(ctx context.Context, r *runner) (any, []TargetOutcome, error) {
	phases := 4
	n := phases * 3 * faultsGroup
	rec := &beatRecorder{next: http.DefaultTransport.(*http.Transport).Clone()}
	rec.setFront(r.stack.Base)
	client := &http.Client{Timeout: 30 * time.Second, Transport: rec, // the real client's timeout
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// The base URL is rewritten to the front by the recorder.
	sim, stop, err := startSim(simulator.Config{BaseURL: r.stack.Base + "/api", Count: n, NamePrefix: "FAULT",
		Interval: faultsInterval, HTTPClient: client})
	if err != nil {
		return nil, nil, err
	}
	defer stop()
	ids, err := registered(ctx, r.stack, sim, 60*time.Second)
	if err != nil {
		return nil, nil, err
	}
	fr := &faultRun{r: r, sim: sim, rec: rec, api: r.stack.Client, ids: ids, t0: time.Now()}
	for _, e := range sim.Enclosures() {
		fr.names = append(fr.names, e.Name())
	}
	f := FaultsFigures{Enclosures: n, IntervalS: faultsInterval.Seconds()}
	only := os.Getenv("MBA_BENCH_FAULTS") // e.g. "serve,dispatch": the faults whose names start so
	for i, flt := range fr.faultList() {
		if only != "" && !slices.ContainsFunc(strings.Split(only, ","), func(w string) bool { return strings.HasPrefix(flt.name, w) }) {
			continue
		}
		p := fr.phase(ctx, i, flt)
		f.Phases = append(f.Phases, p)
		f.Lost += p.Lost
		f.Duplicated += p.Duplicated
		f.Mismatched += p.Mismatched
		f.Errors += p.Beats.Errors
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
	}
	svg := filepath.Join(r.stack.workDir, "faults-timeline.svg")
	if r.cfg.Report != "" {
		svg = filepath.Join(filepath.Dir(r.cfg.Report), "faults-timeline.svg") // next to the report
	}
	if err := os.WriteFile(svg, timelineSVG(rec.snapshot(), fr.t0, f.Phases), 0o644); err != nil {
		return nil, nil, err
	}
	f.Timeline = svg
	printFaults(r, f)

	targets := []TargetOutcome{
		atMost("faults: lost commands (START/STOP/COMPLETE never delivered)", float64(f.Lost), 0, ""),
		atMost("faults: duplicated commands (a segment recorded twice)", float64(f.Duplicated), 0, ""),
		atMost("faults: statuses or seconds unlike what the enclosures recorded", float64(f.Mismatched), 0, ""),
		atMost("faults: heartbeat errors (beyond an outage's 503s)", float64(f.Errors), 0, ""),
	}
	for _, p := range f.Phases {
		if p.Skipped != "" {
			continue
		}
		targets = append(targets,
			atMost(p.Fault+": heartbeats 2xx again after the fault (s)", orWorst(p.HeartbeatsBackS), heartbeatsBackLimit, ""),
			atMost(p.Fault+": pending commands delivered after the fault (s)", orWorst(p.CommandsAfterS), commandsAfterLimit, ""))
		if p.DispatchingS != 0 {
			targets = append(targets, atMost(p.Fault+": other process dispatching after the freeze (s)", orWorst(p.DispatchingS), takeoverLimit,
				fmt.Sprintf("lease changed hands after %.1f s", p.TakeoverS)))
		}
	}
	return f, targets, nil
}

// orWorst maps "never" (-1) to a value no limit accepts.
func orWorst(v float64) float64 {
	if v < 0 {
		return 1e9
	}
	return v
}

// faultList is the faults in the order they are injected.
func (fr *faultRun) faultList() []fault {
	r := fr.r
	// signal signals every pid, past one that fails (a backend that just exited), so that a
	// SIGCONT never leaves the others stopped.
	signal := func(pids func() []int, sig syscall.Signal) func(context.Context) error {
		return func(context.Context) error {
			var errs []error
			for _, pid := range pids() {
				if err := syscall.Kill(pid, sig); err != nil {
					errs = append(errs, fmt.Errorf("signal %v to %d: %w", sig, pid, err))
				}
			}
			return errors.Join(errs...)
		}
	}
	var pgPIDs []int // the postmaster and its backends at the pause, resumed in the same set
	return []fault{
		{name: "serve kill -9", hold: 25 * time.Second, serveDown: true,
			inject: func(context.Context) error { return r.stack.Kill() },
			heal:   r.stack.Restart},
		{name: "temporal stopped", hold: 40 * time.Second, apiUp: true, during: 12 * time.Second,
			prepare: func(_ context.Context, p *FaultPhase) error {
				if r.cfg.TemporalPID == 0 {
					p.Skipped = "MBA_BENCH_TEMPORAL_PID not set"
				}
				return nil
			},
			inject: signal(func() []int { return []int{r.cfg.TemporalPID} }, syscall.SIGSTOP),
			heal:   signal(func() []int { return []int{r.cfg.TemporalPID} }, syscall.SIGCONT)},
		{name: "postgres paused", hold: 25 * time.Second,
			prepare: func(_ context.Context, p *FaultPhase) error {
				if r.cfg.PostgresPID == 0 {
					p.Skipped = "MBA_BENCH_POSTGRES_PID not set"
				}
				return nil
			},
			inject: func(ctx context.Context) error {
				pgPIDs = ChildrenOf(r.cfg.PostgresPID) // the postmaster first: it forks no new backend
				return signal(func() []int { return pgPIDs }, syscall.SIGSTOP)(ctx)
			},
			heal: signal(func() []int { return pgPIDs }, syscall.SIGCONT)},
		{name: "dispatch leader frozen", hold: 30 * time.Second, apiUp: true, during: time.Second,
			prepare: func(ctx context.Context, p *FaultPhase) error {
				peer, err := r.stack.StartPeer(ctx)
				if err != nil {
					return err
				}
				fr.peer = peer
				holder, err := fr.leaseHolder(ctx, 30*time.Second)
				if err != nil {
					return err
				}
				// The enclosures and the API calls go to the process that does not lead, as a load
				// balancer that takes the frozen one out would send them.
				fr.frozen = holder
				switch holder {
				case r.stack.Serve.Process.Pid:
					fr.setFront(peer.Base)
				case peer.Cmd.Process.Pid:
					fr.setFront(r.stack.Base)
				default:
					return fmt.Errorf("the dispatcher lease is held by pid %d, neither serve process", holder)
				}
				p.Notes = append(p.Notes, fmt.Sprintf("leader pid %d frozen; the other serves the enclosures", holder))
				return nil
			},
			inject: signal(func() []int { return []int{fr.frozen} }, syscall.SIGSTOP),
			heal:   signal(func() []int { return []int{fr.frozen} }, syscall.SIGCONT),
			cleanup: func() {
				fr.frozen = 0
				fr.setFront(r.stack.Base)
				if fr.peer != nil {
					fr.peer.Stop()
				}
			}},
	}
}

func (fr *faultRun) setFront(base string) {
	fr.rec.setFront(base)
	fr.api.Base = base
}

// leaseHolder is the pid of the serve process that leads the outbox dispatcher (holder
// host/pid/random), waiting up to wait for one to hold it.
func (fr *faultRun) leaseHolder(ctx context.Context, wait time.Duration) (int, error) {
	deadline := time.Now().Add(wait)
	for {
		var holder string
		err := fr.r.stack.Pool.QueryRow(ctx, `SELECT holder FROM leases WHERE name = 'outbox-dispatcher' AND expires_at > now()`).Scan(&holder)
		if err == nil {
			parts := strings.Split(holder, "/")
			if len(parts) == 3 {
				return strconv.Atoi(parts[1])
			}
			return 0, fmt.Errorf("lease holder %q is not host/pid/id", holder)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no process holds the dispatcher lease: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// session roles within a phase.
const (
	roleEnds     = "planned end in the fault"
	roleCanceled = "canceled in the fault"
	roleCreated  = "created in the fault"
)

type phaseSession struct {
	role      string
	ids       []int64
	names     []string
	id        int64
	duration  int64
	requested time.Time // create (or, for roleCanceled, cancel) request sent
	want      string    // the session status expected
}

// phase runs one fault and counts it.
func (fr *faultRun) phase(ctx context.Context, i int, flt fault) FaultPhase {
	p := FaultPhase{Fault: flt.name, HoldS: flt.hold.Seconds()}
	fr.r.printf("-- %s (%s)\n", flt.name, flt.hold)
	if flt.cleanup != nil {
		defer flt.cleanup()
	}
	note := func(format string, args ...any) {
		p.Notes = append(p.Notes, fmt.Sprintf(format, args...))
		fr.r.printf("   "+format+"\n", args...)
	}
	if flt.prepare != nil {
		if err := flt.prepare(ctx, &p); err != nil {
			note("preparing: %v", err)
			p.Skipped = err.Error()
		}
	}
	if p.Skipped != "" {
		fr.r.printf("   skipped: %s\n", p.Skipped)
		return p
	}
	group := func(g int) ([]int64, []string) {
		from := (i*3 + g) * faultsGroup
		return fr.ids[from : from+faultsGroup], fr.names[from : from+faultsGroup]
	}
	sessions := make([]*phaseSession, 3)
	for g, role := range []string{roleEnds, roleCanceled, roleCreated} {
		ids, names := group(g)
		sessions[g] = &phaseSession{role: role, ids: ids, names: names}
	}
	ends, canceled, created := sessions[0], sessions[1], sessions[2]
	ends.duration, ends.want = int64((faultsLead + flt.hold/2).Seconds()), string(recording.SessionComplete)
	canceled.duration, canceled.want = 3600, string(recording.SessionCanceled)
	created.duration, created.want = faultsZLength, string(recording.SessionComplete)

	phaseFrom := time.Now()
	for _, s := range []*phaseSession{ends, canceled} {
		if err := fr.create(ctx, s, i, 20*time.Second); err != nil {
			note("creating the %q session: %v", s.role, err)
			p.Skipped = "could not create its sessions"
			return p
		}
	}
	startedBy := time.Now().Add(60 * time.Second)
	for _, s := range []*phaseSession{ends, canceled} {
		for _, name := range s.names {
			e := fr.sim.Enclosure(name)
			for !hasStart(e.State(), s.id) && time.Now().Before(startedBy) {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	if wait := time.Until(phaseFrom.Add(faultsLead)); wait > 0 {
		time.Sleep(wait)
	} else {
		note("the STARTs took %s, past the %s lead: the planned end may fall later in the fault", time.Since(phaseFrom).Round(time.Second), faultsLead)
	}

	injected := time.Now()
	healed := false
	if err := flt.inject(ctx); err != nil {
		note("injecting: %v", err)
	}
	heal := func() time.Time {
		healedAt := time.Now()
		if err := flt.heal(ctx); err != nil {
			note("healing: %v", err)
		}
		healed = true
		return healedAt
	}
	defer func() {
		if !healed { // never leave Postgres or Temporal stopped
			_ = flt.heal(context.Background())
		}
	}()
	holdUntil := injected.Add(flt.hold)
	var takeover time.Time
	if flt.apiUp {
		time.Sleep(time.Until(injected.Add(flt.during)))
		fr.cancel(ctx, canceled, note)
		if err := fr.create(ctx, created, i, 30*time.Second); err != nil {
			note("creating a session during the fault: %v", err)
		}
	}
	for time.Now().Before(holdUntil) {
		if takeover.IsZero() && fr.frozen != 0 {
			if pid, err := fr.leaseHolder(ctx, 0); err == nil && pid != fr.frozen {
				takeover = time.Now()
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	healAt := heal()
	if !flt.apiUp {
		fr.cancel(ctx, canceled, note)
		if err := fr.create(ctx, created, i, 60*time.Second); err != nil {
			note("creating a session after the fault: %v", err)
		}
	}
	p.InjectAtS, p.HealAtS = round2(injected.Sub(fr.t0).Seconds()), round2(healAt.Sub(fr.t0).Seconds())

	// The sessions end: the created one records faultsZLength s, then COMPLETE goes out.
	fr.waitEnded(ctx, sessions, 3*time.Minute)
	fr.waitReleased(sessions, 30*time.Second)
	events := fr.rec.snapshot()
	end := time.Now()
	p.Beats = tally(events, outage{from: injected, serveDown: flt.serveDown,
		excuseUntil: healAt.Add(time.Duration(heartbeatsBackLimit * float64(time.Second))), phaseFrom: phaseFrom, at: end})
	p.HeartbeatsBackS = answeredAgain(events, fr.names, injected, healAt)

	// Command delays: each from the later of its request and the fault's end.
	for _, s := range []*phaseSession{canceled, created} {
		command := "START"
		if s.role == roleCanceled {
			command = "STOP"
		}
		if s.requested.IsZero() {
			p.CommandsAfterS = -1
			continue
		}
		from := s.requested
		if healAt.After(from) {
			from = healAt
		}
		for _, name := range s.names {
			at := firstCommand(events, name, command, s.requested)
			switch {
			case at.IsZero():
				p.CommandsAfterS = -1
			case p.CommandsAfterS >= 0:
				p.CommandsAfterS = max(p.CommandsAfterS, round2(max(0, at.Sub(from).Seconds())))
			}
		}
	}
	if fr.frozen != 0 {
		p.TakeoverS, p.DispatchingS = -1, -1
		if !takeover.IsZero() {
			p.TakeoverS = round2(takeover.Sub(injected).Seconds())
		}
		var first *time.Time
		if err := fr.r.stack.Pool.QueryRow(ctx, `SELECT min(dispatched_at) FROM outbox WHERE dispatched_at >= @from AND dispatched_at < @to`,
			pgx.NamedArgs{"from": injected, "to": healAt}).Scan(&first); err != nil {
			note("reading the outbox: %v", err)
		} else if first != nil {
			p.DispatchingS = round2(first.Sub(injected).Seconds())
		}
	}
	fr.compare(ctx, &p, sessions, events)
	return p
}

func hasStart(st simulator.EnclosureState, session int64) bool {
	for _, s := range st.Starts {
		if s.SessionID == session {
			return true
		}
	}
	return false
}

// create creates s over its enclosures, retrying (the API may still be recovering) for up to
// within.
func (fr *faultRun) create(ctx context.Context, s *phaseSession, phase int, within time.Duration) error {
	var spec []map[string]any
	for k, id := range s.ids {
		spec = append(spec, map[string]any{"device_id": id, "filename_prefix": fmt.Sprintf("fault%d_%s_%d", phase, strings.Fields(s.role)[0], k)})
	}
	body := map[string]any{"name": fmt.Sprintf("fault %d: %s", phase, s.role), "duration": s.duration, "target_fps": 30, "device_spec": spec}
	return fr.retry(ctx, within, func(cctx context.Context) error {
		var x api.SessionView
		s.requested = time.Now()
		if err := fr.api.Call(cctx, http.MethodPost, "/api/recording-session", body, &x); err != nil {
			s.requested = time.Time{}
			return err
		}
		s.id = x.ID
		return nil
	})
}

// cancel cancels s (DELETE), retrying for up to 60 s.
func (fr *faultRun) cancel(ctx context.Context, s *phaseSession, note func(string, ...any)) {
	sent := time.Now()
	err := fr.retry(ctx, 60*time.Second, func(cctx context.Context) error {
		return fr.api.Call(cctx, http.MethodDelete, fmt.Sprintf("/api/recording-session/%d", s.id), nil, nil)
	})
	if err != nil {
		note("canceling session %d: %v", s.id, err)
		return
	}
	s.requested = sent
	if d := time.Since(sent); d > 5*time.Second {
		note("DELETE of session %d took %s", s.id, d.Round(100*time.Millisecond))
	}
}

func (fr *faultRun) retry(ctx context.Context, within time.Duration, call func(context.Context) error) error {
	deadline := time.Now().Add(within)
	for {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := call(cctx)
		cancel()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Second)
	}
}

func terminal(status recording.SessionStatus) bool {
	switch status {
	case recording.SessionComplete, recording.SessionCanceled, recording.SessionPartial, recording.SessionFailed:
		return true
	}
	return false
}

// waitEnded waits until every session of the phase has ended in the API.
func (fr *faultRun) waitEnded(ctx context.Context, sessions []*phaseSession, within time.Duration) {
	deadline := time.Now().Add(within)
	for _, s := range sessions {
		for s.id != 0 && time.Now().Before(deadline) {
			var x api.SessionView
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := fr.api.Call(cctx, http.MethodGet, fmt.Sprintf("/api/recording-session/%d", s.id), nil, &x)
			cancel()
			if err == nil && terminal(x.Status) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// waitReleased waits until every enclosure of the phase has left its session (COMPLETE).
func (fr *faultRun) waitReleased(sessions []*phaseSession, within time.Duration) {
	deadline := time.Now().Add(within)
	for _, s := range sessions {
		for _, name := range s.names {
			for fr.sim.Enclosure(name).State().SessionID != 0 && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
}

// compare counts, per enclosure, what it recorded against what the API reports, and the
// commands that were lost or doubled.
func (fr *faultRun) compare(ctx context.Context, p *FaultPhase, sessions []*phaseSession, events []beatEvent) {
	for _, s := range sessions {
		so := SessionOutcome{Role: s.role, ID: s.id, Want: s.want}
		var x api.SessionView
		if s.id != 0 {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := fr.api.Call(cctx, http.MethodGet, fmt.Sprintf("/api/recording-session/%d", s.id), nil, &x); err != nil {
				so.Status = "unknown: " + err.Error()
			} else {
				so.Status = string(x.Status)
			}
			cancel()
		}
		if so.Status != so.Want {
			p.Mismatched++
		}
		p.Sessions = append(p.Sessions, so)
		reported := map[string]api.SessionDeviceView{}
		for _, d := range x.DeviceStatuses {
			reported[d.Device.Name] = d
		}
		wantDevice := recording.DeviceComplete
		if s.role == roleCanceled {
			wantDevice = recording.DeviceCanceled
		}
		for k, name := range s.names {
			st := fr.sim.Enclosure(name).State()
			d := reported[name]
			eo := EnclosureOutcome{Enclosure: name, Role: s.role, Recorded: st.RecordedBySession[s.id],
				Reported: d.RecordingTime, Status: string(d.Status), Want: string(wantDevice)}
			for _, st := range st.Starts {
				if st.SessionID == s.id && st.Started {
					eo.Recordings++
				}
			}
			var lost []string
			if s.id == 0 || !hasStart(st, s.id) {
				lost = append(lost, "START")
			}
			if s.role == roleCanceled && !s.requested.IsZero() && firstCommand(events, name, "STOP", s.requested).IsZero() && eo.Recordings > 0 {
				lost = append(lost, "STOP")
			}
			if s.id != 0 && st.SessionID == s.id {
				lost = append(lost, "COMPLETE")
			}
			eo.Lost = strings.Join(lost, ",")
			p.Lost += len(lost)
			p.Duplicated += max(0, eo.Recordings-1)
			// A second of slack: the last report may precede the STOP by less than one.
			if eo.Status != eo.Want || abs64(eo.Reported-eo.Recorded) > 1 {
				p.Mismatched++
				fr.dump(ctx, s.id, s.ids[k], name)
			}
			if s.role == roleEnds && eo.Recorded != s.duration {
				fr.r.printf("   note: %s recorded %d s of a %d s session\n", name, eo.Recorded, s.duration)
			}
			p.Enclosures = append(p.Enclosures, eo)
		}
	}
}

// dump writes what the service knows of an enclosure that does not match (the session's
// timeline and its workflow's history) into the work directory, for the post-mortem.
func (fr *faultRun) dump(ctx context.Context, session, device int64, name string) {
	var out bytes.Buffer
	var events json.RawMessage
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := fr.api.Call(cctx, http.MethodGet, fmt.Sprintf("/api/recording-session/%d/events", session), nil, &events); err == nil {
		_ = json.Indent(&out, events, "", "  ")
	}
	out.WriteString("\n")
	tc, err := client.Dial(client.Options{HostPort: fr.r.cfg.TemporalAddress, Logger: quietLogger()})
	if err == nil {
		defer tc.Close()
		it := tc.GetWorkflowHistory(cctx, workflows.DeviceWorkflowID(session, device), "", false, 0)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				break
			}
			raw, _ := protojson.Marshal(ev)
			out.Write(raw)
			out.WriteString("\n")
		}
	}
	path := filepath.Join(fr.r.stack.workDir, fmt.Sprintf("faults-%d-%s.txt", session, name))
	if os.WriteFile(path, out.Bytes(), 0o644) == nil {
		fr.r.printf("   %s: timeline and workflow history in %s\n", name, path)
	}
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func printFaults(r *runner, f FaultsFigures) {
	r.printf("\n%-24s %5s %6s %5s %6s %6s %7s %5s %5s %6s %8s %9s %9s\n", "fault", "hold", "beats", "503", "unansw", "errors",
		"max wait", "lost", "dup", "mism", "hb back", "cmds after", "takeover")
	for _, p := range f.Phases {
		if p.Skipped != "" {
			r.printf("%-24s skipped: %s\n", p.Fault, p.Skipped)
			continue
		}
		take := "-"
		if p.DispatchingS != 0 {
			take = fmt.Sprintf("%.1f s", p.DispatchingS)
		}
		r.printf("%-24s %4.0fs %6d %5d %6d %6d %6.1fs %5d %5d %6d %6.1f s %7.1f s %9s\n", p.Fault, p.HoldS, p.Beats.Sent, p.Beats.Outage503,
			p.Beats.Unanswered, p.Beats.Errors, p.Beats.MaxWaitS, p.Lost, p.Duplicated, p.Mismatched, p.HeartbeatsBackS, p.CommandsAfterS, take)
		for _, e := range p.Enclosures {
			if e.Lost != "" || e.Recordings > 1 || e.Status != e.Want || abs64(e.Reported-e.Recorded) > 1 {
				r.printf("    %s (%s): recorded %d s in %d recording(s); API %s %d s (want %s); lost %q\n",
					e.Enclosure, e.Role, e.Recorded, e.Recordings, e.Status, e.Reported, e.Want, e.Lost)
			}
		}
		for _, s := range p.Sessions {
			if s.Status != s.Want {
				r.printf("    session %d (%s): %s, want %s\n", s.ID, s.Role, s.Status, s.Want)
			}
		}
	}
	r.printf("timeline: %s\n", f.Timeline)
}
