package main

import (
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/testenv"
)

// TestServeWaitsForPostgresAndTemporal: started while Postgres and Temporal are unreachable,
// serve keeps waiting (saying so) instead of exiting, and serves once they are back.
func TestServeWaitsForPostgresAndTemporal(t *testing.T) {
	bin := binary(t)
	addr := freeAddr(t)
	dbURL, err := url.Parse(testenv.EmptyDatabase(t))
	require.NoError(t, err)
	pg := testenv.NewOutage(t, dbURL.Host)
	dbURL.Host = pg.Addr()
	temporal := testenv.NewOutage(t, testenv.TemporalAddress(t))

	var logs testenv.Buffer
	serve := exec.Command(bin, "serve")
	serve.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"MBA_DB_URL=" + dbURL.String(), "MBA_TEMPORAL_ADDRESS=" + temporal.Addr(),
		"MBA_TEMPORAL_TASK_QUEUE=" + testenv.RandomName("wait-"), "MBA_HTTP_ADDR=" + addr,
		"MBA_AUTH_JWT_SECRET=" + strings.Repeat("k", 40), "MBA_AUTH_HASH_MEMORY=8192"}
	serve.Stdout, serve.Stderr = &logs, &logs
	require.NoError(t, serve.Start())
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	t.Cleanup(func() { _ = serve.Process.Kill() })

	waitLog := func(what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !strings.Contains(logs.String(), what) {
			select {
			case err := <-exited:
				t.Fatalf("serve exited (%v) instead of waiting: %s", err, logs.String())
			case <-time.After(50 * time.Millisecond):
			}
			require.True(t, time.Now().Before(deadline), "no %q in: %s", what, logs.String())
		}
	}
	waitLog("waiting for PostgreSQL")
	pg.End()
	waitLog("waiting for Temporal")
	temporal.End()
	require.Eventually(t, func() bool {
		res, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 90*time.Second, 100*time.Millisecond, "never ready: %s", &logs)
}
