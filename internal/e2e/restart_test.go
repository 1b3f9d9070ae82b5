package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/workflows"
)

// devServer is a Temporal dev server of the test's own, so the test can restart it.
type devServer struct {
	t       *testing.T
	bin, db string
	port    int
	cmd     *exec.Cmd
}

func newDevServer(t *testing.T) *devServer {
	bin := os.Getenv("TEMPORAL_BIN")
	if testing.Short() {
		t.Skip("needs the Temporal CLI")
	}
	require.NotEmpty(t, bin, "TEMPORAL_BIN is not set: run the suite with `make test`")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	d := &devServer{t: t, bin: bin, db: filepath.Join(t.TempDir(), "temporal.db"), port: port}
	d.start()
	t.Cleanup(d.stop)
	return d
}

func (d *devServer) address() string { return fmt.Sprintf("127.0.0.1:%d", d.port) }

func (d *devServer) start() {
	args := []string{"server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", fmt.Sprint(d.port),
		"--http-port", "0", "--metrics-port", "0", "--db-filename", d.db, "--log-level", "error"}
	for _, sa := range workflows.SearchAttributes() {
		args = append(args, "--search-attribute", sa)
	}
	d.cmd = exec.Command(d.bin, args...)
	require.NoError(d.t, d.cmd.Start())
	require.Eventually(d.t, func() bool {
		c, err := client.Dial(client.Options{HostPort: d.address(), Logger: quietTemporal()})
		if err != nil {
			return false
		}
		defer c.Close()
		_, err = c.CheckHealth(context.Background(), &client.CheckHealthRequest{})
		return err == nil
	}, 60*time.Second, 200*time.Millisecond, "dev server did not start")
}

func (d *devServer) stop() {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	_, _ = d.cmd.Process.Wait()
	d.cmd = nil
}

// TestRestartsMidSession restarts the worker, the API (with its dispatcher) and the Temporal
// server while enclosures record: the session still ends COMPLETE, each enclosure recorded
// once (no duplicate START) and every one forgot the session (no lost COMPLETE).
func TestRestartsMidSession(t *testing.T) {
	temporal := newDevServer(t)
	s := newStackOn(t, temporal.address())
	sim, ids := s.enclosures(5, "E2ER")
	sid := s.createSession(ids, 12)
	require.Eventually(t, func() bool { return sim.Stats().Recording == 5 }, 30*time.Second, 50*time.Millisecond)

	s.stopWorker()
	time.Sleep(2 * time.Second)
	s.startWorker()

	s.restartAPI()

	temporal.stop()
	time.Sleep(2 * time.Second)
	temporal.start()

	x := s.waitSession(sid, recording.SessionComplete, 90*time.Second)
	for _, d := range x.DeviceStatuses {
		require.Equal(t, recording.DeviceComplete, d.Status, "%s: %s", d.Device.Name, d.Message)
	}
	require.Eventually(t, func() bool {
		for _, e := range sim.Enclosures() {
			if e.State().SessionID != 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "every enclosure takes COMPLETE")
	for _, e := range sim.Enclosures() {
		st := e.State()
		require.Equal(t, 1, st.Recordings, "%s started twice", st.Name)
		require.Zero(t, st.Violations, st.LastErr)
	}
}
