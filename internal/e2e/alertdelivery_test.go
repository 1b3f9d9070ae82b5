package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/apiclient"
	"github.com/jax-mba/mba/internal/notify"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/simulator"
	"github.com/jax-mba/mba/internal/testenv"
	"github.com/jax-mba/mba/workflows"
)

// The alert settings of TestAlertDeliveryAcrossAWorkerKill, as an operator would write them.
const (
	alertDownAfter     = 5 * time.Second
	alertScanEvery     = time.Second
	alertEscalateAfter = 30 * time.Second
	alertDamping       = 5 * time.Second
	// slack is how late a mail may be on a loaded machine (SMTP, the outbox, a workflow task).
	alertSlack = 30 * time.Second
)

// TestAlertDeliveryAcrossAWorkerKill is the held-out check of issue 15 rehearsed with real
// processes: `mba serve` (API and dispatcher) and `mba worker`, real SMTP (Mailpit) and a
// webhook receiver of the test's own. A session records on two simulated enclosures; one stops
// heartbeating: its creator is mailed within the DOWN threshold and the scan; the worker is
// killed (SIGKILL) and restarted before the escalation is due, and the escalation still reaches
// the next tier on time; a person acknowledges with a note and the tier after that is never
// told; the enclosure heartbeats again and everyone told gets the recovery notice. The webhook
// receiver gets the same notices, signed (notify.Verify), and the Slack-compatible one {"text"}.
// GET /api/alerts shows the lifecycle: who acknowledged, when, the note.
func TestAlertDeliveryAcrossAWorkerKill(t *testing.T) {
	mailpit := testenv.NewMailpit(t)
	hooks := newHookReceiver(t)
	secret := "e2e webhook secret, 16+ bytes"
	ann, oncall, boss := "ann@lab.example", "oncall@lab.example", "boss@lab.example"
	p := newProcesses(t, map[string]string{
		"MBA_MAIL_HOST": mailpit.Sender().Host, "MBA_MAIL_PORT": fmt.Sprint(mailpit.Sender().Port), "MBA_MAIL_TLS": "none",
		"MBA_MAIL_FROM":                mailpit.Sender().From,
		"MBA_ENCLOSURES_DOWN_AFTER":    alertDownAfter.String(),
		"MBA_ENCLOSURES_SCAN_EVERY":    alertScanEvery.String(),
		"MBA_SESSIONS_SILENCE_TIMEOUT": "30m", // DOWN, not lost, while the test runs
		"MBA_ALERTS_ESCALATE_AFTER":    alertEscalateAfter.String(),
		"MBA_ALERTS_DAMPING":           alertDamping.String(),
		// The simulated enclosures report a few hundred kB free: low_disk would notify the
		// same people and webhooks, and this test counts enclosure_down's notices.
		"MBA_ALERTS_LOW_DISK_FLOOR":  "0",
		"MBA_ALERTS_LOW_DISK_MARGIN": "0",
		// Tier 1: on-call and both webhooks; tier 2: the boss, who must never be told.
		"MBA_ALERTS_ESCALATION":     oncall + " hook chat;" + boss,
		"MBA_ALERTS_WEBHOOKS":       "hook=" + hooks.url + "/hook",
		"MBA_ALERTS_SLACK_WEBHOOKS": "chat=" + hooks.url + "/slack",
		"MBA_ALERTS_WEBHOOK_SECRET": secret,
	})
	p.addAdmin(ann, "correct horse")
	p.start("serve")
	p.waitReady()
	p.start("worker")

	ctx := context.Background()
	c := &apiclient.Client{Base: p.base}
	require.NoError(t, c.Login(ctx, ann, "correct horse"))
	sim, ids := p.enclosures(c, 2, "ALE")
	var session api.SessionView
	require.NoError(t, c.Call(ctx, "POST", "/api/recording-session", map[string]any{"name": "alerts e2e", "duration": 3600,
		"target_fps": 30, "fragment_hourly": true, "device_spec": []map[string]any{
			{"device_id": ids[0], "filename_prefix": "cage0"}, {"device_id": ids[1], "filename_prefix": "cage1"}}}, &session))
	t.Cleanup(func() {
		_ = p.temporal.TerminateWorkflow(context.Background(), workflows.SessionWorkflowID(session.ID), "", "test done")
	})
	// Recording as the service sees it (phase recording), not only as the enclosures do: a
	// silence before the START's answer reached the service is a failed start, not a DOWN.
	require.Eventually(t, func() bool {
		var x api.SessionView
		if c.Call(ctx, "GET", fmt.Sprintf("/api/recording-session/%d", session.ID), nil, &x) != nil {
			return false
		}
		return len(x.DeviceStatuses) == 2 && !slices.ContainsFunc(x.DeviceStatuses, func(d api.SessionDeviceView) bool {
			return d.Status != recording.DeviceRecording
		})
	}, 2*time.Minute, 100*time.Millisecond, "never recorded")

	// One enclosure goes silent (a network outage: it keeps recording).
	down := sim.Enclosures()[0]
	silentAt := time.Now()
	down.GoSilent(time.Hour)
	opened := p.waitMail(mailpit, ann, "[MBA ALERT] enclosure_down: "+down.Name()+" is DOWN", alertDownAfter+alertScanEvery+alertSlack)
	t.Logf("DOWN mail %s after the last heartbeat (threshold %s, scan %s)", opened.Created.Sub(silentAt).Round(time.Millisecond),
		alertDownAfter, alertScanEvery)
	for _, want := range []string{"Enclosure:  " + down.Name() + fmt.Sprintf(" (id %d)", ids[0]),
		fmt.Sprintf("Session:    alerts e2e (id %d)", session.ID), "What:       " + down.Name() + " is DOWN in session",
		"Opened:     ", fmt.Sprintf("Alerts page: %s/#/alerts?device=%d&kind=enclosure_down&session=%d", p.base, ids[0], session.ID)} {
		require.Contains(t, opened.Text, want)
	}
	alert := p.onlyAlert(c, session.ID)
	// The webhooks took the first notice too (else its retry could overtake the escalation).
	require.Eventually(t, func() bool { return len(hooks.got("/hook")) == 1 && len(hooks.got("/slack")) == 1 }, alertSlack,
		100*time.Millisecond, "the webhooks never got the first notice")
	notifiedAt := eventAt(t, p.alertDetail(c, alert.ID), recording.AlertNotified)

	// Mid-escalation, the worker dies without a chance to clean up, and comes back.
	p.kill("worker")
	require.Less(t, time.Since(notifiedAt), alertEscalateAfter-5*time.Second, "the machine is too slow: the kill came after the escalation was due")
	time.Sleep(5 * time.Second) // an outage, not a synchronization: the timer runs in Temporal meanwhile
	p.start("worker")

	escalated := p.waitMail(mailpit, oncall, "[MBA ESCALATED] enclosure_down: "+down.Name(), time.Until(notifiedAt.Add(alertEscalateAfter+alertSlack)))
	late := escalated.Created.Sub(notifiedAt)
	t.Logf("escalation mail %s after the first notice (escalate-after %s), across a worker kill", late.Round(time.Millisecond), alertEscalateAfter)
	require.GreaterOrEqual(t, late, alertEscalateAfter-time.Second, "escalated before it was due")
	require.Contains(t, escalated.Text, "Escalation: tier 1")

	// A person takes it, with a note: the next tier is never told.
	const note = "on my way to room 3"
	require.NoError(t, c.Call(ctx, "POST", fmt.Sprintf("/api/alerts/%d/acknowledge", alert.ID), map[string]string{"note": note}, nil))
	escalatedAt := eventAt(t, p.alertDetail(c, alert.ID), recording.AlertEscalated)
	require.True(t, time.Now().Before(escalatedAt.Add(alertEscalateAfter)), "the machine is too slow: acknowledged after tier 2 was due")
	waitUntil(t, escalatedAt.Add(alertEscalateAfter+10*time.Second))
	require.Empty(t, mailpit.Messages(boss), "acknowledged: tier 2 is never told")

	// The enclosure heartbeats again: everyone told gets the recovery notice.
	backAt := time.Now()
	down.GoSilent(0)
	within := alertDamping + alertScanEvery + alertSlack
	for _, to := range []string{ann, oncall} {
		m := p.waitMail(mailpit, to, "[MBA RESOLVED] enclosure_down: "+down.Name(), within)
		require.Contains(t, m.Text, "Resolved:   ")
		t.Logf("recovery mail to %s %s after the enclosure returned (damping %s)", to, m.Created.Sub(backAt).Round(time.Millisecond), alertDamping)
	}
	for _, to := range []string{ann, oncall} {
		var subjects []string
		for _, m := range mailpit.Messages(to) {
			subjects = append(subjects, m.Subject[:strings.Index(m.Subject, "]")+1])
		}
		want := map[string][]string{ann: {"[MBA ALERT]", "[MBA RESOLVED]"}, oncall: {"[MBA ESCALATED]", "[MBA RESOLVED]"}}[to]
		require.Equal(t, want, subjects, "the mail to %s", to)
	}

	// The webhooks: the same notices, the generic one signed, the Slack one {"text": ...}.
	require.Eventually(t, func() bool { return len(hooks.got("/hook")) >= 3 && len(hooks.got("/slack")) >= 3 }, within, 100*time.Millisecond,
		"webhooks: %d generic, %d Slack requests", len(hooks.got("/hook")), len(hooks.got("/slack")))
	var notices []string
	for _, r := range hooks.got("/hook") {
		require.NoError(t, notify.Verify([]byte(secret), r.header, r.body, r.at, 5*time.Minute), "the signature of %s", r.body)
		var n notify.Notice
		require.NoError(t, json.Unmarshal(r.body, &n))
		require.Equal(t, string(recording.AlertEnclosureDown), n.Kind)
		require.Equal(t, session.ID, n.SessionID)
		require.Equal(t, ids[0], n.DeviceID)
		require.Equal(t, down.Name(), n.DeviceName)
		require.Equal(t, alert.Key, n.AlertKey)
		notices = append(notices, n.Notice)
	}
	require.Equal(t, []string{notify.NoticeOpened, notify.NoticeEscalated, notify.NoticeRecovered}, notices)
	var texts []string
	for _, r := range hooks.got("/slack") {
		var body map[string]string
		require.NoError(t, json.Unmarshal(r.body, &body), "%s", r.body)
		require.Len(t, body, 1, "a Slack incoming webhook takes {\"text\": ...}: %s", r.body)
		texts = append(texts, body["text"][:strings.Index(body["text"], "]")+1])
	}
	require.Equal(t, []string{"[MBA ALERT]", "[MBA ESCALATED]", "[MBA RESOLVED]"}, texts)

	// The record: who acknowledged, when, the note; the lifecycle in its events.
	got := p.alertDetail(c, alert.ID)
	require.Equal(t, recording.AlertResolved, got.State)
	require.Equal(t, 1, got.Tier)
	require.Equal(t, ann, *got.AckedBy)
	require.Equal(t, note, *got.AckNote)
	require.WithinDuration(t, time.Now(), *got.AckedAt, 2*time.Minute)
	var states []recording.AlertState
	for _, e := range got.Events {
		if len(states) == 0 || states[len(states)-1] != e.State {
			states = append(states, e.State)
		}
		if e.State == recording.AlertAcknowledged && e.Actor != "" {
			require.Equal(t, ann, e.Actor)
			require.Equal(t, note, e.Note)
			require.Equal(t, got.AckedAt.UTC(), e.At.UTC())
		}
	}
	require.Equal(t, []recording.AlertState{recording.AlertOpen, recording.AlertNotified, recording.AlertEscalated,
		recording.AlertAcknowledged, recording.AlertResolved}, states)
}

// processes are the service as operators run it: mba serve and mba worker, each a process of
// its own that the test may kill, against the suite's PostgreSQL and Temporal.
type processes struct {
	t        *testing.T
	bin, dir string
	env      []string
	base     string
	temporal client.Client
	queue    string
	mu       sync.Mutex
	running  map[string]*exec.Cmd
	logs     map[string]*testenv.Buffer
}

func newProcesses(t *testing.T, settings map[string]string) *processes {
	t.Helper()
	db := testenv.EmptyDatabase(t)
	addr := "127.0.0.1:" + freePort(t)
	p := &processes{t: t, dir: t.TempDir(), base: "http://" + addr, queue: testenv.RandomName("alerts-"),
		running: map[string]*exec.Cmd{}, logs: map[string]*testenv.Buffer{}}
	p.bin = filepath.Join(p.dir, "mba")
	out, err := exec.Command("go", "build", "-o", p.bin, "../../cmd/mba").CombinedOutput()
	require.NoError(t, err, "%s", out)
	p.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.dir,
		"MBA_DB_URL=" + db, "MBA_TEMPORAL_ADDRESS=" + testenv.TemporalAddress(t), "MBA_TEMPORAL_TASK_QUEUE=" + p.queue,
		"MBA_TEMPORAL_RUN_WORKER=false", "MBA_HTTP_ADDR=" + addr, "MBA_HTTP_PUBLIC_URL=" + p.base,
		"MBA_AUTH_JWT_SECRET=" + strings.Repeat("k", 40), "MBA_AUTH_HASH_MEMORY=8192",
		"MBA_STORAGE_DIR=" + filepath.Join(p.dir, "files"), "MBA_STORAGE_STAGING_DIR=" + filepath.Join(p.dir, "uploads"),
		"MBA_STORAGE_VERIFY=false"} // no upload agents: no MISSING files
	for k, v := range settings {
		p.env = append(p.env, k+"="+v)
	}
	p.temporal, err = client.Dial(client.Options{HostPort: testenv.TemporalAddress(t), Logger: quietTemporal()})
	require.NoError(t, err)
	t.Cleanup(p.temporal.Close)
	t.Cleanup(func() {
		for _, name := range []string{"serve", "worker"} {
			p.stop(name)
		}
		for _, id := range []string{workflows.FleetMonitorWorkflowID(p.queue), workflows.HousekeepingWorkflowID(p.queue)} {
			_ = p.temporal.TerminateWorkflow(context.Background(), id, "", "test done")
		}
		if t.Failed() {
			for name, logs := range p.logs {
				t.Logf("mba %s:\n%s", name, tail(logs.String(), 8000))
			}
			p.dumpTables(db)
		}
	})

	p.run("migrate", "up")
	// Session ids become workflow ids in a namespace the whole suite shares: start this
	// database's ids somewhere no other test's are.
	conn, err := pgx.Connect(context.Background(), db)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), fmt.Sprintf(`ALTER TABLE sessions ALTER COLUMN id RESTART WITH %d`, rand.Int64N(1<<30)+1000))
	require.NoError(t, err)
	return p
}

// dumpTables logs what the outbox and the enclosures' rows say, to tell a lost transition from
// a lost notice.
func (p *processes) dumpTables(db string) {
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		p.t.Logf("no database: %v", err)
		return
	}
	defer conn.Close(context.Background())
	for _, q := range []string{
		`SELECT id, workflow_id, kind, payload::text, created_at, dispatched_at, attempts, last_error FROM outbox ORDER BY id`,
		`SELECT id, name, last_seen_at, down_since FROM devices ORDER BY id`,
		`SELECT device_id, session_id, phase, workflow_id, updated_at FROM device_assignments`,
		`SELECT alert_key, channel, target, notice, attempt, outcome, error FROM notification_deliveries ORDER BY id`,
		`SELECT id, kind, state, tier, summary FROM alerts ORDER BY id`,
	} {
		rows, err := conn.Query(context.Background(), q)
		if err != nil {
			p.t.Logf("%s: %v", q, err)
			continue
		}
		for rows.Next() {
			v, _ := rows.Values()
			p.t.Logf("%v", v)
		}
		rows.Close()
	}
}

// run runs an mba command to its end.
func (p *processes) run(args ...string) {
	p.t.Helper()
	cmd := exec.Command(p.bin, args...)
	cmd.Env, cmd.Dir = p.env, p.dir
	out, err := cmd.CombinedOutput()
	require.NoError(p.t, err, "mba %s: %s", strings.Join(args, " "), out)
}

func (p *processes) addAdmin(email, password string) {
	p.t.Helper()
	cmd := exec.Command(p.bin, "user", "add", "--email", email, "--admin", "--password-stdin")
	cmd.Env, cmd.Dir, cmd.Stdin = p.env, p.dir, strings.NewReader(password+"\n")
	out, err := cmd.CombinedOutput()
	require.NoError(p.t, err, "%s", out)
}

// start starts mba serve or mba worker in the background.
func (p *processes) start(name string) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin, name)
	cmd.Env, cmd.Dir = p.env, p.dir
	if p.logs[name] == nil {
		p.logs[name] = &testenv.Buffer{}
	}
	cmd.Stdout, cmd.Stderr = p.logs[name], p.logs[name]
	require.NoError(p.t, cmd.Start())
	p.running[name] = cmd
}

// kill ends a process with SIGKILL (no graceful stop: a crash, an OOM kill) and waits for it.
func (p *processes) kill(name string) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := p.running[name]
	require.NotNil(p.t, cmd, "%s is not running", name)
	require.NoError(p.t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	delete(p.running, name)
}

// stop ends a process gracefully (SIGTERM), killing it if it does not stop.
func (p *processes) stop(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := p.running[name]
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	delete(p.running, name)
}

func (p *processes) waitReady() {
	p.t.Helper()
	require.Eventually(p.t, func() bool {
		res, err := http.Get(p.base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 2*time.Minute, 100*time.Millisecond, "serve never ready: %s", p.logs["serve"])
}

// enclosures runs n simulated enclosures (the real client's protocol) against serve and
// returns their ids once registered.
func (p *processes) enclosures(c *apiclient.Client, n int, prefix string) (*simulator.Simulator, []int64) {
	p.t.Helper()
	sim, err := simulator.New(simulator.Config{BaseURL: p.base + "/api", Count: n, NamePrefix: prefix,
		Interval: 500 * time.Millisecond, FollowUp: 100 * time.Millisecond})
	require.NoError(p.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sim.Run(ctx) }()
	p.t.Cleanup(func() { cancel(); <-done })
	var ids []int64
	require.Eventually(p.t, func() bool {
		var devices []api.DeviceView
		if c.Call(ctx, "GET", "/api/device", nil, &devices) != nil {
			return false
		}
		ids = ids[:0]
		for _, e := range sim.Enclosures() {
			i := slices.IndexFunc(devices, func(d api.DeviceView) bool { return d.Name == e.Name() })
			if i < 0 {
				return false
			}
			ids = append(ids, devices[i].ID)
		}
		return true
	}, time.Minute, 100*time.Millisecond, "the enclosures never registered")
	return sim, ids
}

// onlyAlert waits for the session's one enclosure_down alert.
func (p *processes) onlyAlert(c *apiclient.Client, sessionID int64) api.AlertView {
	p.t.Helper()
	var list []api.AlertView
	require.Eventually(p.t, func() bool {
		return c.Call(context.Background(), "GET", fmt.Sprintf("/api/alerts?kind=enclosure_down&session=%d", sessionID), nil, &list) == nil &&
			len(list) == 1
	}, time.Minute, 100*time.Millisecond, "alerts of session %d: %v", sessionID, list)
	return list[0]
}

func (p *processes) alertDetail(c *apiclient.Client, id int64) api.AlertDetailView {
	p.t.Helper()
	var d api.AlertDetailView
	require.NoError(p.t, c.Call(context.Background(), "GET", fmt.Sprintf("/api/alerts/%d", id), nil, &d))
	return d
}

// eventAt is when the alert first entered state.
func eventAt(t *testing.T, d api.AlertDetailView, state recording.AlertState) time.Time {
	t.Helper()
	i := slices.IndexFunc(d.Events, func(e api.AlertEventView) bool { return e.State == state })
	require.GreaterOrEqual(t, i, 0, "alert %d never was %s: %+v", d.ID, state, d.Events)
	return d.Events[i].At
}

// waitMail waits up to within for a mail to recipient whose subject starts with subject.
func (p *processes) waitMail(m *testenv.Mailpit, recipient, subject string, within time.Duration) testenv.Message {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, s := range m.Messages(recipient) {
			if strings.HasPrefix(s.Subject, subject) {
				msg := m.Message(s.ID)
				msg.Created = s.Created // only the listing has it
				return msg
			}
		}
		if time.Now().After(deadline) {
			var subjects []string
			for _, s := range m.Messages("") {
				subjects = append(subjects, fmt.Sprintf("%v: %s", s.To, s.Subject))
			}
			p.t.Fatalf("no mail %q to %s within %s; mail so far: %q", subject, recipient, within, subjects)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitUntil returns at t (to see that nothing happens before then).
func waitUntil(t *testing.T, at time.Time) {
	t.Helper()
	time.Sleep(time.Until(at))
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// hookReceiver is a lab's webhook receiver: it keeps every request as it arrived.
type hookReceiver struct {
	url  string
	mu   sync.Mutex
	reqs []hookRequest
}

type hookRequest struct {
	path   string
	header http.Header
	body   []byte
	at     time.Time
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.reqs = append(h.reqs, hookRequest{path: r.URL.Path, header: r.Header.Clone(), body: body, at: time.Now()})
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// got is what reached path, in order.
func (h *hookReceiver) got(path string) []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hookRequest
	for _, r := range h.reqs {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}
