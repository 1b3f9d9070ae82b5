package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/apiclient"
	"github.com/jax-mba/mba/internal/testenv"
)

// binary builds mba once per test run.
func binary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mba")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// mba runs the binary with env added to a clean environment and returns its combined output.
func mba(t *testing.T, bin string, env []string, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestConfigInit(t *testing.T) {
	bin := binary(t)
	file := filepath.Join(t.TempDir(), "mba.yaml")
	out, err := mba(t, bin, nil, "", "config", "init", "--file", file)
	require.NoError(t, err, out)
	info, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	first, err := os.ReadFile(file)
	require.NoError(t, err)
	require.Regexp(t, `jwt_secret: [A-Za-z0-9_-]{64}\n`, string(first))

	out, err = mba(t, bin, nil, "", "config", "init", "--file", file)
	require.Error(t, err)
	require.Contains(t, out, "exists; use --force")

	require.NoError(t, os.Chmod(file, 0o644))
	out, err = mba(t, bin, nil, "", "config", "init", "--file", file, "--force")
	require.NoError(t, err, out)
	second, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NotEqual(t, first, second, "fresh secrets")
	info, err = os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	require.Contains(t, string(second), `allowed_networks: [127.0.0.0/8, "::1/128", 10.0.0.0/8`, "make run's simulated enclosures are on loopback")
	prodFile := filepath.Join(t.TempDir(), "prod.yaml")
	out, err = mba(t, bin, nil, "", "config", "init", "--file", prodFile, "--production")
	require.NoError(t, err, out)
	prod, err := os.ReadFile(prodFile)
	require.NoError(t, err)
	require.Contains(t, string(prod), "allowed_networks: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]", "no loopback behind nginx")

	// The file written is a valid configuration: production mode with its secret passes validation
	// and fails only on the unreachable database.
	out, err = mba(t, bin, []string{"MBA_CONFIG_FILE=" + file, "MBA_MODE=production", "MBA_DB_URL=postgres://x@127.0.0.1:1/x"}, "", "migrate", "status")
	require.Error(t, err)
	require.Contains(t, out, "connecting to PostgreSQL")
}

func TestConfigFailsFastAndClearly(t *testing.T) {
	bin := binary(t)
	for name, tc := range map[string]struct {
		env  []string
		want string
	}{
		"production without secret": {[]string{"MBA_MODE=production"}, "jwt-secret is required in production"},
		"short secret":              {[]string{"MBA_AUTH_JWT_SECRET=short"}, "at least 32 bytes"},
		"weak hash in production":   {[]string{"MBA_MODE=production", "MBA_AUTH_JWT_SECRET=" + strings.Repeat("s", 40), "MBA_AUTH_HASH_MEMORY=1024"}, "too weak for production"},
		"bad mode":                  {[]string{"MBA_MODE=staging"}, `mode "staging"`},
		"production without enclosure networks": {[]string{"MBA_MODE=production", "MBA_AUTH_JWT_SECRET=" + strings.Repeat("s", 40)},
			"enclosures allowed-networks is required in production"},
		"bad enclosure network": {[]string{"MBA_ENCLOSURES_ALLOWED_NETWORKS=10.0.0.0/33"}, `"10.0.0.0/33" is not a CIDR`},
		"bad duration":          {[]string{"MBA_HTTP_REQUEST_TIMEOUT=soon"}, "RequestTimeout"},
		"bad storage kind":      {[]string{"MBA_STORAGE_KIND=nfs"}, `storage: kind "nfs" is not dir or s3`},
		"s3 without a bucket":   {[]string{"MBA_STORAGE_KIND=s3", "MBA_STORAGE_S3_ENDPOINT=127.0.0.1:1"}, "s3_bucket is empty"},
		"negative reuploads":    {[]string{"MBA_STORAGE_REUPLOADS=-1"}, "storage reuploads must not be negative"},
		"bad lab time zone":     {[]string{"MBA_SCHEDULES_TIME_ZONE=Mars/Olympus"}, `schedules time-zone "Mars/Olympus" is not an IANA time zone`},
		"unknown command":       {nil, `unknown command "serv"`},
	} {
		t.Run(name, func(t *testing.T) {
			args := []string{"serve"}
			if name == "unknown command" {
				args = []string{"serv"}
			}
			out, err := mba(t, bin, tc.env, "", args...)
			require.Error(t, err)
			require.Contains(t, out, tc.want)
			require.Equal(t, 1, strings.Count(strings.TrimSpace(out), "\n")+1, "one clear line: %q", out)
		})
	}
}

func TestHelpListsEverySettingWithDefaults(t *testing.T) {
	out, err := mba(t, binary(t), nil, "", "--help")
	require.NoError(t, err, out)
	for _, want := range []string{"--db-url", "MBA_DB_URL", "--auth-jwt-secret", "--http-addr", "127.0.0.1:8080",
		"--temporal-address", "--mail-host", "MBA_MAIL_TLS", "5/1m", "migrate up|down"} {
		require.Contains(t, out, want)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeEndToEnd runs the real binary: migrations, the first admin from stdin, the API with
// the worker against the dev server, a login over HTTP, and a graceful stop on SIGTERM.
func TestServeEndToEnd(t *testing.T) {
	bin := binary(t)
	addr := freeAddr(t)
	metricsAddr := freeAddr(t)
	env := []string{
		"MBA_DB_URL=" + testenv.EmptyDatabase(t),
		"MBA_TEMPORAL_ADDRESS=" + testenv.TemporalAddress(t),
		"MBA_TEMPORAL_TASK_QUEUE=" + testenv.RandomName("e2e-"),
		"MBA_HTTP_ADDR=" + addr,
		"MBA_AUTH_JWT_SECRET=" + strings.Repeat("k", 40),
		"MBA_AUTH_HASH_MEMORY=8192",
		"MBA_HTTP_METRICS_ADDR=" + metricsAddr,
	}

	out, err := mba(t, bin, env, "", "migrate", "up")
	require.NoError(t, err, out)
	require.Contains(t, out, "applying 0001_users")
	out, err = mba(t, bin, env, "", "migrate", "status")
	require.NoError(t, err, out)
	require.NotContains(t, out, "pending")

	out, err = mba(t, bin, env, "", "user", "add", "--email", "admin@lab.example", "--admin")
	require.Error(t, err, "no terminal and no --password-stdin")
	require.Contains(t, out, "--password-stdin")
	out, err = mba(t, bin, env, "short\n", "user", "add", "--email", "admin@lab.example", "--admin", "--password-stdin")
	require.Error(t, err)
	require.Contains(t, out, "at least 8 characters")
	out, err = mba(t, bin, env, "correct horse\n", "user", "add", "--email", "admin@lab.example", "--admin", "--password-stdin")
	require.NoError(t, err, out)
	require.Contains(t, out, "created user")
	out, err = mba(t, bin, env, "other password\n", "user", "add", "--email", "admin@lab.example", "--password-stdin", "--if-absent")
	require.NoError(t, err, out)
	require.Equal(t, "exists\n", out)
	out, err = mba(t, bin, env, "", "user", "list")
	require.NoError(t, err, out)
	require.Regexp(t, `1\s+admin@lab.example\s+true\s+false`, out)
	out, err = mba(t, bin, env, "", "user", "set-admin", "--email", "admin@lab.example", "--admin=false")
	require.Error(t, err, "the last administrator stays")
	require.Contains(t, out, "no enabled administrator")

	var logs bytes.Buffer
	serve := exec.Command(bin, "serve")
	serve.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	serve.Stdout, serve.Stderr = &logs, &logs
	require.NoError(t, serve.Start())
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	t.Cleanup(func() { _ = serve.Process.Kill() })

	base := "http://" + addr
	require.Eventually(t, func() bool {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "never ready: %s", &logs)

	res, err := http.Post(base+"/api/auth/login", "application/json",
		strings.NewReader(`{"email_address":"admin@lab.example","password":"correct horse"}`))
	require.NoError(t, err)
	var tokens map[string]string
	require.NoError(t, json.NewDecoder(res.Body).Decode(&tokens))
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.NotEmpty(t, tokens["access"])

	// One /metrics for the service's series and the in-process worker's Temporal SDK metrics.
	waitForMetrics(t, metricsAddr, &logs, `mba_enclosures{state="IDLE"} 0`, "temporal_worker_task_slots_available{")

	// The fleet's admission from the command line, against the unmodified client's heartbeats.
	beat := func(token string) int {
		req, err := http.NewRequest("POST", base+"/api/device/heartbeat", strings.NewReader(`{"name":"nv07","timestamp":"2026-01-02T03:04:05Z",
			"sensor_status":{"camera":{"recording":false,"duration":-139627186819480}},
			"system_info":{"uptime":1,"load":0,"total_ram":2,"free_ram":1,"total_disk":4,"free_disk":3,"release":""}}`))
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, http.StatusNoContent, beat(""), "a garbage duration after the client starts is accepted")
	out, err = mba(t, bin, env, "", "enclosure", "list")
	require.NoError(t, err, out)
	require.Regexp(t, `nv07\s+IDLE\s+approved\s+false\s+false`, out)
	out, err = mba(t, bin, env, "", "enclosure", "set", "nv07", "--relayed=true")
	require.Error(t, err)
	require.Contains(t, out, "has no token")
	out, err = mba(t, bin, env, "", "enclosure", "token", "nv07")
	require.NoError(t, err, out)
	enclosureToken := strings.TrimSpace(out)
	require.Equal(t, http.StatusNoContent, beat(""), "a token alone never locks the client out")
	out, err = mba(t, bin, env, "", "enclosure", "set", "nv07", "--relayed=true")
	require.NoError(t, err, out)
	require.Contains(t, out, "relayed=true")
	require.Equal(t, http.StatusUnauthorized, beat(""))
	require.Equal(t, http.StatusNoContent, beat(enclosureToken))
	out, err = mba(t, bin, env, "", "enclosure", "reject", "nv07")
	require.NoError(t, err, out)
	require.Equal(t, http.StatusForbidden, beat(enclosureToken))
	out, err = mba(t, bin, env, "", "enclosure", "retire", "nv07")
	require.NoError(t, err, out)
	require.Contains(t, out, "deleted (it never recorded)")

	require.NoError(t, serve.Process.Signal(syscall.SIGTERM))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "graceful stop exits 0: %s", &logs)
	case <-ctx.Done():
		t.Fatalf("serve did not stop on SIGTERM: %s", &logs)
	}
	require.Contains(t, logs.String(), "shutting down")
	require.NotContains(t, logs.String(), strings.Repeat("k", 40), "secrets never reach the log")
	require.NotContains(t, logs.String(), "correct horse")
}

func TestSimulateAgentsNeedFilesAndAnAdmin(t *testing.T) {
	bin := binary(t)
	out, err := mba(t, bin, nil, "", "simulate", "--agents", "--count", "1")
	require.Error(t, err)
	require.Contains(t, out, "--agents needs --video-dir and MBA_SIMULATE_ADMIN_PASSWORD")
}

// TestEveryCommandHasHelp: --help of each command prints its usage and exits 0 without touching
// the database or Temporal (both point at a closed port, and nothing may be logged as starting).
func TestEveryCommandHasHelp(t *testing.T) {
	bin := binary(t)
	env := []string{"MBA_DB_URL=postgres://x@127.0.0.1:1/x", "MBA_TEMPORAL_ADDRESS=127.0.0.1:1"}
	for _, args := range [][]string{{"serve", "--help"}, {"worker", "-h"}, {"migrate", "--help"}, {"migrate", "up", "--help"},
		{"user", "--help"}, {"user", "add", "--help"}, {"user", "list", "-help"}, {"config", "--help"}, {"config", "init", "--help"},
		{"simulate", "--help"}, {"bench", "--help"}, {"agent", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out, err := mba(t, bin, env, "", args...)
			require.NoError(t, err, out)
			require.True(t, strings.HasPrefix(out, "Usage: mba [settings] "+args[0]), out)
			require.NotContains(t, out, "starting")
			require.NotContains(t, out, "connecting")
		})
	}
	out, err := mba(t, bin, env, "", "simulate", "--help")
	require.NoError(t, err)
	require.Contains(t, out, "-time-scale", "a command's own flags are listed")
}

func TestUnknownArgumentsAreRefused(t *testing.T) {
	bin := binary(t)
	env := []string{"MBA_DB_URL=postgres://x@127.0.0.1:1/x", "MBA_TEMPORAL_ADDRESS=127.0.0.1:1"}
	for args, want := range map[string]string{
		"serve now":          `serve: unexpected arguments ["now"]`,
		"worker --fast":      "worker: flag provided but not defined: -fast",
		"migrate sideways":   `migrate needs up, down [N] or status, not "sideways"`,
		"migrate status all": `migrate status: unexpected arguments ["all"]`,
		"user remove":        `user: unexpected arguments ["remove"]`,
		"user list extra":    `user: unexpected arguments ["extra"]`,
		"config show":        `config: unexpected arguments ["show"]`,
		"simulate --cuont 3": "simulate: flag provided but not defined: -cuont",
		"agent now":          `agent: unexpected arguments ["now"]`,
		"--http-adr=x serve": "unrecognized flag: --http-adr",
	} {
		t.Run(args, func(t *testing.T) {
			out, err := mba(t, bin, env, "", strings.Fields(args)...)
			require.Error(t, err, out)
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit)
			require.NotZero(t, exit.ExitCode())
			require.Contains(t, out, want)
			require.NotContains(t, out, "connecting", "refused before anything connects")
			require.Equal(t, 1, strings.Count(strings.TrimSpace(out), "\n")+1, "one clear line: %q", out)
		})
	}
}

// TestListSettingsTakeCommas: list-valued settings accept the comma syntax mba --help shows
// ("<string>,[string...]") as well as conf's ";", and origins are written as browsers send them.
func TestListSettingsTakeCommas(t *testing.T) {
	bin := binary(t)
	out, err := mba(t, bin, nil, "", "--help")
	require.NoError(t, err)
	require.Regexp(t, `MBA_HTTP_LINK_ORIGINS\s+<string>,\[string...\]`, out)
	for value, want := range map[string]string{
		"https://a.lab.example, https://B.lab.example:443/": "[https://a.lab.example https://b.lab.example]",
		"https://a.lab.example;https://b.lab.example":       "[https://a.lab.example https://b.lab.example]",
		"https://a.lab.example":                             "[https://a.lab.example]",
		"http://127.0.0.1:8080,https://ui.lab.example,":     "[http://127.0.0.1:8080 https://ui.lab.example]",
	} {
		out := serveUntilWaiting(t, bin, []string{"MBA_HTTP_LINK_ORIGINS=" + value, "MBA_HTTP_CORS_ORIGINS=" + value})
		require.Contains(t, out, `--http-link-origins=`+want, value)
		require.Contains(t, out, `--http-cors-origins=`+want, value)
	}
	// A YAML list works too.
	file := filepath.Join(t.TempDir(), "mba.yaml")
	require.NoError(t, os.WriteFile(file, []byte("http:\n  link_origins: [https://a.lab.example, \"https://B.lab.example/\"]\n"), 0o600))
	out = serveUntilWaiting(t, bin, []string{"MBA_CONFIG_FILE=" + file})
	require.Contains(t, out, `--http-link-origins=[https://a.lab.example https://b.lab.example]`)

	// Without link origins, links may point at the public URL's origin, whatever its path.
	out = serveUntilWaiting(t, bin, []string{"MBA_HTTP_PUBLIC_URL=https://MBA.lab.example/mba/"})
	require.Contains(t, out, `--http-link-origins=[https://mba.lab.example]`)

	out, err = mba(t, bin, []string{"MBA_HTTP_LINK_ORIGINS=mba.lab.example"}, "", "serve")
	require.Error(t, err)
	require.Contains(t, out, `http link-origins: "mba.lab.example" is not an http(s) origin`)
}

// TestRunScriptSimulatesOnAnotherAddress: make run with MBA_SIMULATE and MBA_HTTP_ADDR off the
// default serves there and points the simulated enclosures there (it used to wait on 8080).
func TestRunScriptSimulatesOnAnotherAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL and Temporal")
	}
	addr := freeAddr(t)
	logFile := filepath.Join(t.TempDir(), "run.log")
	logs, err := os.Create(logFile)
	require.NoError(t, err)
	defer logs.Close()
	output := func() string { b, _ := os.ReadFile(logFile); return string(b) }
	cmd := exec.Command("bash", "../../scripts/run.sh")
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.Env = append(os.Environ(), "MBA_DB_URL="+testenv.EmptyDatabase(t), "MBA_TEMPORAL_ADDRESS="+testenv.TemporalAddress(t),
		"MBA_TEMPORAL_TASK_QUEUE="+testenv.RandomName("run-"), "MBA_DATA_DIR="+t.TempDir(), "MBA_HTTP_ADDR="+addr,
		"MBA_SIMULATE=2", "MBA_DEV_ADMIN_PASSWORD=correct horse", "MBA_AUTH_HASH_MEMORY=8192")
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // run.sh stops what it started
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()

	c := &apiclient.Client{Base: "http://" + addr}
	ctx := context.Background()
	idle := 0
	for deadline := time.Now().Add(4 * time.Minute); idle < 2; time.Sleep(500 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("run.sh ended: %v\n%s", err, output())
		default:
		}
		require.True(t, time.Now().Before(deadline), "the simulated enclosures never reached the service on %s:\n%s", addr, output())
		if c.Token == "" && c.Login(ctx, "admin@example.com", "correct horse") != nil {
			continue
		}
		var devices []struct {
			Name  string `json:"name"`
			State string `json:"state"`
		}
		if err := c.Call(ctx, "GET", "/api/device", nil, &devices); err != nil {
			continue
		}
		idle = 0
		for _, d := range devices {
			if strings.HasPrefix(d.Name, "SIM") && d.State == "IDLE" {
				idle++
			}
		}
	}
	require.Contains(t, output(), "Web UI:       http://"+addr+"/")
	require.Contains(t, output(), "Mail inbox:   http://127.0.0.1:", "mail goes to the Mailpit run.sh started")
}

// serveUntilWaiting starts mba serve against a database that is not there and returns what it
// printed once it waits for PostgreSQL (serve waits for its dependencies rather than exiting).
func serveUntilWaiting(t *testing.T, bin string, env []string) string {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "MBA_DB_URL=postgres://x@127.0.0.1:1/x"}, env...)
	var out testenv.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "waiting for PostgreSQL") },
		time.Minute, 50*time.Millisecond, "serve did not wait for PostgreSQL")
	return out.String()
}

// TestWorkerServesSDKMetrics: a separate `mba worker` serves its Temporal SDK metrics (and the
// Go runtime's) on its own metrics address, and stops on SIGTERM.
func TestWorkerServesSDKMetrics(t *testing.T) {
	bin := binary(t)
	metricsAddr := freeAddr(t)
	env := []string{
		"MBA_DB_URL=" + testenv.EmptyDatabase(t),
		"MBA_TEMPORAL_ADDRESS=" + testenv.TemporalAddress(t),
		"MBA_TEMPORAL_TASK_QUEUE=" + testenv.RandomName("worker-"),
		"MBA_HTTP_METRICS_ADDR=" + metricsAddr,
	}
	var logs testenv.Buffer
	worker := exec.Command(bin, "worker")
	worker.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	worker.Stdout, worker.Stderr = &logs, &logs
	require.NoError(t, worker.Start())
	done := make(chan error, 1)
	go func() { done <- worker.Wait() }()
	t.Cleanup(func() { _ = worker.Process.Kill() })

	waitForMetrics(t, metricsAddr, &logs, "temporal_worker_task_slots_available{", "go_goroutines ")

	require.NoError(t, worker.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-done:
		require.NoError(t, err, "graceful stop exits 0: %s", &logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("worker did not stop on SIGTERM: %s", &logs)
	}
}

// waitForMetrics waits until /metrics on addr carries every one of wants; logs is the
// process's output, shown when it never does.
func waitForMetrics(t *testing.T, addr string, logs fmt.Stringer, wants ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		res, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		for _, w := range wants {
			if !strings.Contains(string(body), w) {
				return false
			}
		}
		return true
	}, time.Minute, 100*time.Millisecond, "/metrics on %s lacks some of %q: %s", addr, wants, logs)
}
