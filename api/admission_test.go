package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/protocol"
)

// Every heartbeat here is the unmodified client's: no Authorization header (PROTOCOL.md 1, 8),
// unless it says it came through the enclosure's relay.

// beatFrom sends a heartbeat as if from addr (the harness trusts X-Forwarded-For, as behind
// nginx), with the enclosure token when token is not empty, and checks the client survives it.
func (h *harness) beatFrom(addr, token, body string) response {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.http.URL+"/api/device/heartbeat", strings.NewReader(body))
	require.NoError(h.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", addr)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res := h.roundTrip(req)
	require.NoError(h.t, protocol.CheckReply(res.status, res.header.Get("Content-Type"), res.body),
		"reply %d %s would crash the client", res.status, res.body)
	return res
}

func labNetworks(d *Deps) {
	d.Config.TrustProxy = true
	d.Config.Enclosures.AllowedNetworks = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
}

func (h *harness) admin() string {
	h.t.Helper()
	h.user("admin@lab.example", "correct horse", true)
	token, _ := h.login("admin@lab.example", "correct horse")
	return token
}

// metric returns the text of the /metrics lines that start with prefix.
func (h *harness) metric(prefix string) string {
	h.t.Helper()
	var lines []string
	for _, l := range strings.Split(h.metrics(), "\n") {
		if strings.HasPrefix(l, prefix) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func TestTokenlessHeartbeatsOnlyFromAllowedNetworks(t *testing.T) {
	h := newHarness(t, labNetworks)
	admin := h.admin()
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.1.2.3", "", beat("NV1", 0, false, "")).status)
	res := h.beatFrom("203.0.113.9", "", beat("NV1", 0, false, ""))
	require.Equal(t, http.StatusForbidden, res.status)
	require.Contains(t, res.json(t)["message"], "only from the lab's networks")
	require.Contains(t, res.json(t)["message"], "203.0.113.9")
	res = h.beatFrom("203.0.113.9", "", beat("NV-outsider9", 0, false, ""))
	require.Equal(t, http.StatusForbidden, res.status, "nor does an outsider register a name")
	require.Equal(t, http.StatusNotFound, h.do("GET", "/api/device/NV-outsider9", admin, nil).status)
	require.Contains(t, h.metric("mba_heartbeats_refused_total"), `reason="network"} 2`)

	// With its own token (through its relay), an enclosure may speak from anywhere.
	secret := h.do("PUT", "/api/device/NV1/token", admin, nil).json(t)["token"].(string)
	require.Equal(t, http.StatusNoContent, h.beatFrom("203.0.113.9", secret, beat("NV1", 0, false, "")).status)
	require.Equal(t, http.StatusUnauthorized, h.beatFrom("203.0.113.9", "wrong", beat("NV1", 0, false, "")).status)
}

func TestUploadTokenNeverLocksOutTheClientAndRelayedMustAuthenticate(t *testing.T) {
	h := newHarness(t, labNetworks)
	admin := h.admin()
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.7", "", beat("NV7", 0, false, "")).status)
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.8", "", beat("NV8", 0, false, "")).status)

	res := h.do("PATCH", "/api/device/NV7", admin, map[string]any{"relayed": true})
	require.Equal(t, http.StatusBadRequest, res.status, "a relay needs a token to send")
	require.Contains(t, res.json(t)["errors"], "relayed")

	secret := h.do("PUT", "/api/device/NV7/token", admin, nil).json(t)["token"].(string)
	// The upload token alone: the client, sending none, keeps working.
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.7", "", beat("NV7", 0, false, "")).status)

	res = h.do("PATCH", "/api/device/NV7", admin, map[string]any{"relayed": true})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, true, res.json(t)["relayed"])
	require.Equal(t, true, res.json(t)["has_token"])
	res = h.beatFrom("10.0.0.7", "", beat("NV7", 0, false, ""))
	require.Equal(t, http.StatusUnauthorized, res.status, "relayed: a tokenless heartbeat is someone else")
	require.Contains(t, res.json(t)["message"], "relayed")
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.7", secret, beat("NV7", 0, false, "")).status)
	require.Equal(t, http.StatusUnauthorized, h.beatFrom("10.0.0.7", "wrong", beat("NV7", 0, false, "")).status)
	require.Equal(t, http.StatusUnauthorized, h.beatFrom("10.0.0.8", secret, beat("NV8", 0, false, "")).status,
		"one enclosure's token is not another's")
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.8", "", beat("NV8", 0, false, "")).status,
		"every other enclosure keeps working tokenless")
	require.Equal(t, http.StatusForbidden, h.do("PATCH", "/api/device/NV8", h.userToken(), map[string]any{"relayed": true}).status)
}

// userToken is a signed-in researcher who is no administrator.
func (h *harness) userToken() string {
	h.t.Helper()
	h.user("ann@lab.example", "correct horse", false)
	token, _ := h.login("ann@lab.example", "correct horse")
	return token
}

func TestBoundEnclosureRefusesOtherAddresses(t *testing.T) {
	h := newHarness(t, labNetworks, func(d *Deps) { d.Config.Enclosures.BindOnRegister = true })
	admin := h.admin()
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.5", "", beat("NV5", 0, false, "")).status)
	dev := h.do("GET", "/api/device/NV5", admin, nil).json(t)
	require.Equal(t, "10.0.0.5", dev["bound_address"])
	require.Equal(t, "10.0.0.5", dev["registered_from"])

	for i := 0; i < 3; i++ {
		res := h.beatFrom("10.0.0.66", "", beat("NV5", 0, false, `"err_msg": "made up",`))
		require.Equal(t, http.StatusForbidden, res.status)
		require.Contains(t, res.json(t)["message"], `enclosure "NV5" is bound to another address`)
	}
	require.NotContains(t, string(h.do("GET", "/api/device/NV5", admin, nil).body), "made up", "nothing of it was stored")
	var n int
	require.NoError(t, h.store.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM audit_log WHERE action = $1 AND subject = 'NV5' AND client_ip = '10.0.0.66'`, recording.AuditDeviceWrongAddress).Scan(&n))
	require.Equal(t, 1, n, "an alert in the audit log, once a minute, not one row per heartbeat")
	require.Contains(t, h.metric("mba_heartbeats_refused_total"), `reason="address"} 3`)
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.5", "", beat("NV5", 0, false, "")).status)

	// An administrator moves or lifts the binding.
	res := h.do("PATCH", "/api/device/NV5", admin, map[string]any{"bound_address": "10.0.0.66"})
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.66", "", beat("NV5", 0, false, "")).status)
	require.Equal(t, http.StatusForbidden, h.beatFrom("10.0.0.5", "", beat("NV5", 0, false, "")).status)
	require.Equal(t, http.StatusBadRequest, h.do("PATCH", "/api/device/NV5", admin, map[string]any{"bound_address": "10.0.0"}).status)
	require.Equal(t, http.StatusOK, h.do("PATCH", "/api/device/NV5", admin, map[string]any{"bound_address": ""}).status)
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.5", "", beat("NV5", 0, false, "")).status)
	require.Equal(t, http.StatusOK, h.do("PATCH", "/api/device/NV5", admin, map[string]any{"bound_address": "registered"}).status)
	require.Equal(t, http.StatusForbidden, h.beatFrom("10.0.0.66", "", beat("NV5", 0, false, "")).status)
}

func TestNewNamesWaitForApproval(t *testing.T) {
	h := newHarness(t, labNetworks, func(d *Deps) { d.Config.Enclosures.ApproveNew = true })
	admin := h.admin()
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.3", "", beat("NV3", 0, false, "")).status)
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.4", "", beat("NV4", 0, false, "")).status)
	dev := h.do("GET", "/api/device/NV3", admin, nil).json(t)
	require.Equal(t, "pending", dev["admission"], "listed as pending")
	require.NotNil(t, dev["last_update"], "seen, so an administrator can judge it")

	newSession := func(names ...string) response {
		var spec []map[string]any
		for _, n := range names {
			spec = append(spec, map[string]any{"device_id": h.deviceID(n), "filename_prefix": "p" + n})
		}
		return h.do("POST", "/api/recording-session", admin, map[string]any{"name": "s", "duration": 60,
			"fragment_hourly": false, "target_fps": 30, "apply_filter": false, "device_spec": spec})
	}
	res := newSession("NV3", "NV4")
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Equal(t, "enclosures that cannot record: NV3 (waiting for approval), NV4 (waiting for approval)", res.json(t)["message"])

	// Even with a mailbox row (a session from before), a pending enclosure gets no command.
	require.Equal(t, http.StatusOK, h.do("POST", "/api/device/NV4/reject", admin, nil).status)
	res = h.beatFrom("10.0.0.4", "", beat("NV4", 0, false, ""))
	require.Equal(t, http.StatusForbidden, res.status)
	require.Contains(t, res.json(t)["message"], "rejected")

	res = h.do("POST", "/api/device/NV3/approve", admin, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Equal(t, "approved", res.json(t)["admission"])
	res = newSession("NV3")
	require.Equal(t, http.StatusOK, res.status, "%s", res.body)
	require.Equal(t, "START", command(t, h.beatFrom("10.0.0.3", "", beat("NV3", 0, false, ""))))
	require.Equal(t, http.StatusForbidden, h.do("POST", "/api/device/NV4/approve", h.userToken(), nil).status)
}

func TestPendingEnclosureGetsNoCommand(t *testing.T) {
	h := newHarness(t, labNetworks)
	admin := h.admin()
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.3", "", beat("NV3", 0, false, "")).status)
	h.session(h.deviceID("NV3"))
	// An administrator puts it back to pending by hand (or it was pending when a session
	// from an older version assigned it): no START.
	_, err := h.store.Pool().Exec(context.Background(), `UPDATE devices SET admission = 'pending' WHERE name = 'NV3'`)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.3", "", beat("NV3", 0, false, "")).status)
	require.Equal(t, http.StatusOK, h.do("POST", "/api/device/NV3/approve", admin, nil).status)
	require.Equal(t, "START", command(t, h.beatFrom("10.0.0.3", "", beat("NV3", 0, false, ""))))
}

func TestRegistrationOfNewNamesIsRateLimited(t *testing.T) {
	h := newHarness(t, labNetworks, func(d *Deps) { d.Config.Enclosures.RegisterRate = Rate{Burst: 3, Every: time.Hour} })
	admin := h.admin()
	for i := 1; i <= 3; i++ {
		require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.9", "", beat(fmt.Sprintf("NV%d", i), 0, false, "")).status)
	}
	res := h.beatFrom("10.0.0.9", "", beat("NV4", 0, false, ""))
	require.Equal(t, http.StatusTooManyRequests, res.status)
	require.NotEmpty(t, res.header.Get("Retry-After"))
	require.Contains(t, res.json(t)["message"], "too many new enclosure names")
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.9", "", beat("NV2", 0, false, "")).status, "known names are not limited")
	res = h.do("GET", "/api/device", admin, nil)
	require.Equal(t, 3, strings.Count(string(res.body), `"admission"`))
}

func TestRetireEnclosureKeepsSessionHistory(t *testing.T) {
	h := newHarness(t, labNetworks)
	admin := h.admin()
	ctx := context.Background()
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.1", "", beat("NV1", 0, false, "")).status)
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.2", "", beat("NV2", 0, false, "")).status)

	// Never recorded: deleted outright; its name may come back as new.
	id2 := h.deviceID("NV2")
	require.Equal(t, http.StatusNoContent, h.do("DELETE", "/api/device/NV2", admin, nil).status)
	require.Equal(t, http.StatusNotFound, h.do("GET", fmt.Sprintf("/api/device/%d", id2), admin, nil).status)

	// In a session: refused until the session is over.
	dev := h.deviceID("NV1")
	sid := h.session(dev)
	res := h.do("DELETE", "/api/device/NV1", admin, nil)
	require.Equal(t, http.StatusConflict, res.status)
	require.Contains(t, res.json(t)["message"], "in a session that has not ended")
	ended := time.Now()
	require.NoError(t, h.store.UpdateSessionDevice(ctx, store.DeviceUpdate{SessionID: sid, DeviceID: dev, Status: "COMPLETE", EndedAt: &ended}))
	_, err := h.store.Pool().Exec(ctx, `DELETE FROM device_assignments WHERE device_id = $1`, dev)
	require.NoError(t, err)

	require.Equal(t, http.StatusNoContent, h.do("DELETE", "/api/device/NV1", admin, nil).status)
	got := h.do("GET", "/api/device/NV1", admin, nil).json(t)
	require.NotNil(t, got["retired_at"], "kept, as retired")
	require.NotContains(t, string(h.do("GET", "/api/device", admin, nil).body), `"NV1"`, "out of the fleet's list")
	require.Contains(t, string(h.do("GET", "/api/device?retired=true", admin, nil).body), `"NV1"`)
	res = h.do("GET", fmt.Sprintf("/api/recording-session/%d", sid), admin, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Contains(t, string(res.body), `"NV1"`, "the session keeps its enclosure")
	res = h.beatFrom("10.0.0.1", "", beat("NV1", 0, false, ""))
	require.Equal(t, http.StatusForbidden, res.status)
	require.Contains(t, res.json(t)["message"], "retired")
	res = h.do("POST", "/api/recording-session", admin, map[string]any{"name": "s", "duration": 60, "target_fps": 30,
		"device_spec": []map[string]any{{"device_id": dev, "filename_prefix": "p"}}})
	require.Equal(t, http.StatusBadRequest, res.status)
	require.Contains(t, res.json(t)["message"], "NV1 (retired)")

	require.Equal(t, http.StatusOK, h.do("POST", "/api/device/NV1/approve", admin, nil).status, "approval brings it back")
	require.Equal(t, http.StatusNoContent, h.beatFrom("10.0.0.1", "", beat("NV1", 0, false, "")).status)
	require.Equal(t, http.StatusForbidden, h.do("DELETE", "/api/device/NV1", h.userToken(), nil).status)
}

// liveBeat is a heartbeat reporting duration recorded seconds.
func liveBeat(name string, sessionID int64, recording bool, duration string) string {
	return strings.Replace(beat(name, sessionID, recording, ""), `"duration": 120`, `"duration": `+duration, 1)
}

func TestRecordingTimeIsLiveAndNeverGoesBack(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	recorded := func(sid int64) int64 {
		s, err := h.store.Session(ctx, sid, time.Now(), time.Minute)
		require.NoError(t, err)
		return s.DeviceStatuses[0].RecordingTime
	}
	require.Equal(t, "", command(t, h.send(liveBeat("NV7", 0, false, "139627186819480"))), "the client's garbage after start")
	dev := h.deviceID("NV7")
	d, err := h.store.DeviceByID(ctx, dev, time.Now(), time.Minute)
	require.NoError(t, err)
	require.Nil(t, d.SensorStatus.Camera.Duration, "never shown as recorded time")
	sid := h.session(dev)
	require.Equal(t, "START", command(t, h.send(liveBeat("NV7", 0, false, "-9223372036854775808"))))
	require.Zero(t, recorded(sid))

	before := h.outbox()
	for _, secs := range []string{"10", "20", "30"} {
		h.send(liveBeat("NV7", sid, true, secs))
	}
	require.Equal(t, int64(30), recorded(sid), "updated from every heartbeat while it records")
	require.Len(t, h.outbox(), len(before), "no transition, no Temporal work per heartbeat")
	// A resumed segment starts again from 0: its seconds add to the earlier ones'.
	h.send(liveBeat("NV7", sid, true, "5"))
	h.send(liveBeat("NV7", sid, true, "12"))
	require.Equal(t, int64(42), recorded(sid))
	// The workflow's final figure does not take it back.
	final, ended := int64(40), time.Now()
	require.NoError(t, h.store.UpdateSessionDevice(ctx, store.DeviceUpdate{SessionID: sid, DeviceID: dev, Status: "COMPLETE",
		EndedAt: &ended, RecordingTime: &final}))
	require.Equal(t, int64(42), recorded(sid))
	h.send(liveBeat("NV7", sid, true, "99"))
	require.Equal(t, int64(42), recorded(sid), "an ended enclosure's row is the workflow's")
}

// Heartbeats while Postgres is away get 503 with Retry-After and a message the client logs,
// never 500, and the log gets a line now and then, not one per heartbeat.
func TestHeartbeatDuringDatabaseOutage(t *testing.T) {
	dead, err := pgxpool.New(context.Background(), "postgres://mba@127.0.0.1:1/mba?sslmode=disable&connect_timeout=2")
	require.NoError(t, err)
	t.Cleanup(dead.Close)
	var logs bytes.Buffer
	h := newHarness(t, func(d *Deps) {
		d.Enclosures = store.New(dead)
		d.Log = slog.New(slog.NewTextHandler(&logs, nil))
	})
	for i := 0; i < 5; i++ {
		res := h.send(beat("NV1", 0, false, ""))
		require.Equal(t, http.StatusServiceUnavailable, res.status, "%s", res.body)
		require.Equal(t, "10", res.header.Get("Retry-After"))
		require.Equal(t, "application/json", res.header.Get("Content-Type"))
		require.Contains(t, res.json(t)["message"], "database is unavailable")
	}
	require.Equal(t, 1, strings.Count(logs.String(), "heartbeats refused: the database is unavailable"), "%s", logs.String())
	require.NotContains(t, logs.String(), "level=ERROR")
	require.Contains(t, h.metric("mba_heartbeats_refused_total"), `reason="unavailable"} 5`)
	_, _ = io.Copy(io.Discard, &logs)
}

// The same when the service's own database goes away under it: its connections are killed
// and new ones refused. Heartbeats get 503 until it is back, then work again.
func TestHeartbeatWhileTheDatabaseIsCutOff(t *testing.T) {
	h := newHarness(t)
	require.Equal(t, http.StatusNoContent, h.send(beat("NV1", 0, false, "")).status)
	ctx := context.Background()
	var name string
	require.NoError(t, h.store.Pool().QueryRow(ctx, `SELECT current_database()`).Scan(&name))
	admin, err := pgx.Connect(ctx, os.Getenv("MBA_TEST_DATABASE_URL"))
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, `ALTER DATABASE `+name+` ALLOW_CONNECTIONS false`)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, name)
	require.NoError(t, err)

	for i := 0; i < 4; i++ {
		res := h.send(beat("NV1", 0, false, ""))
		require.Equal(t, http.StatusServiceUnavailable, res.status, "%s", res.body)
		require.NotEmpty(t, res.header.Get("Retry-After"))
		require.Contains(t, res.json(t)["message"], "database is unavailable")
	}
	_, err = admin.Exec(ctx, `ALTER DATABASE `+name+` ALLOW_CONNECTIONS true`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return h.send(beat("NV1", 0, false, "")).status == http.StatusNoContent },
		30*time.Second, 100*time.Millisecond, "heartbeats work again once the database is back")
}
