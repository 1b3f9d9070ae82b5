// Package bench is the load and benchmark harness: it runs the real service (the mba binary,
// with its worker) against real PostgreSQL and Temporal, drives simulated enclosures over real
// HTTP, and reports every figure next to a floor measured in the same run.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jax-mba/mba/internal/apiclient"
	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/migrations"
)

// Stack is a running service under test: its own database, its own task queue, and an mba
// serve process.
type Stack struct {
	apiclient.Client // Base http://127.0.0.1:port, signed in as an administrator
	Pool             *pgxpool.Pool
	Store            *store.Store
	Serve            *exec.Cmd
	Queue            string
	Pprof            string // the service's pprof address
	logPath          string
	workDir          string
	binary           string
	env              []string // of every serve process but its addresses
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// StartStack creates a database, starts `bin serve` against it and Temporal, and signs in.
// extraEnv (MBA_...=value) overrides the service's settings for one scenario.
func StartStack(ctx context.Context, cfg Config, workDir string, extraEnv ...string) (*Stack, error) {
	admin, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	name := "mba_bench_" + randomHex(4)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name)
	admin.Close(ctx)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + name
	// The harness's pool (the floor's clients) is as large as the service's.
	poolCfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return nil, err
	}
	poolCfg.MaxConns = int32(cfg.DBConns)
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, err
	}
	if _, err := migrations.Up(ctx, pool, nil); err != nil {
		return nil, err
	}
	// Every scenario has a database of its own but shares the Temporal namespace, where session
	// ids become workflow ids: keep each database's ids apart (within the client's int32).
	var offset [3]byte
	_, _ = rand.Read(offset[:])
	start := int64(offset[0])<<16 | int64(offset[1])<<8 | int64(offset[2])
	if _, err := pool.Exec(ctx, fmt.Sprintf(`ALTER TABLE sessions ALTER COLUMN id RESTART WITH %d`, start*100+1)); err != nil {
		return nil, err
	}
	s := &Stack{Pool: pool, Store: store.New(pool), Queue: "bench-" + randomHex(4), logPath: filepath.Join(workDir, "serve.log")}

	hash, err := auth.Hasher{MemoryKiB: 8192, Time: 1, Threads: 1}.Hash("bench password")
	if err != nil {
		return nil, err
	}
	if _, err := s.Store.CreateUser(ctx, "bench@lab.example", hash, true); err != nil {
		return nil, err
	}

	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s.Base = "http://" + addr
	s.workDir = workDir
	if s.Pprof, err = freeAddr(); err != nil {
		return nil, err
	}
	s.binary = cfg.Binary
	s.env = append([]string{
		"MBA_DB_URL=" + u.String(),
		"MBA_DB_MAX_CONNS=" + fmt.Sprint(cfg.DBConns),
		"MBA_TEMPORAL_ADDRESS=" + cfg.TemporalAddress,
		"MBA_TEMPORAL_TASK_QUEUE=" + s.Queue,
		"MBA_AUTH_JWT_SECRET=" + randomHex(24), // shared: a token from one process works on another
		"MBA_AUTH_HASH_MEMORY=8192",
		"MBA_AUTH_LOGIN_PER_CLIENT=1000/1s",
		"MBA_ENCLOSURES_REGISTER_RATE=100000/1ms", // fleets of thousands register at once
		"MBA_SESSIONS_BYTES_PER_SECOND=1",
		"MBA_SESSIONS_END_GRACE=1m",
		"MBA_SESSIONS_MIN_SEGMENT=1s",
		"MBA_SESSIONS_RELEASE_TIMEOUT=2m",
	}, extraEnv...) // later entries win
	if s.Serve, err = s.startServe(addr, s.Pprof, s.logPath); err != nil {
		return nil, err
	}
	if err := waitReady(ctx, s.Base, s.logPath); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.Login(ctx, "bench@lab.example", "bench password"); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// startServe starts one `mba serve` process on addr, appending its output to logPath.
func (s *Stack) startServe(addr, pprof, logPath string) (*exec.Cmd, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(s.binary, "serve")
	cmd.Env = append(append(os.Environ(), s.env...), "MBA_HTTP_ADDR="+addr, "MBA_HTTP_PPROF_ADDR="+pprof)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting mba serve: %w", err)
	}
	return cmd, nil
}

// Kill ends the serve process with SIGKILL, as a crash or an OOM kill does.
func (s *Stack) Kill() error {
	if err := s.Serve.Process.Kill(); err != nil {
		return fmt.Errorf("Kill: %w", err)
	}
	_, _ = s.Serve.Process.Wait()
	return nil
}

// Restart starts a new serve process on the same addresses after Kill, and waits until it is
// ready.
func (s *Stack) Restart(ctx context.Context) error {
	cmd, err := s.startServe(s.Base[len("http://"):], s.Pprof, s.logPath)
	if err != nil {
		return fmt.Errorf("Restart: %w", err)
	}
	s.Serve = cmd
	if err := waitReady(ctx, s.Base, s.logPath); err != nil {
		return fmt.Errorf("Restart: %w", err)
	}
	return nil
}

// Peer is a second serve process on the same database and task queue, as a second API
// behind a load balancer.
type Peer struct {
	Base string
	Cmd  *exec.Cmd
}

// StartPeer starts another serve process (log: serve-peer.log) and waits until it is ready.
func (s *Stack) StartPeer(ctx context.Context) (*Peer, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	pprof, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(s.workDir, "serve-peer.log")
	cmd, err := s.startServe(addr, pprof, logPath)
	if err != nil {
		return nil, fmt.Errorf("StartPeer: %w", err)
	}
	p := &Peer{Base: "http://" + addr, Cmd: cmd}
	if err := waitReady(ctx, p.Base, logPath); err != nil {
		p.Stop()
		return nil, fmt.Errorf("StartPeer: %w", err)
	}
	return p, nil
}

// Stop ends the peer gracefully.
func (p *Peer) Stop() {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	_, _ = p.Cmd.Process.Wait()
}

func waitReady(ctx context.Context, base, logPath string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("mba serve did not become ready; see %s", logPath)
}

// Stop ends the serve process gracefully and closes the pool.
func (s *Stack) Stop() {
	if s.Serve != nil && s.Serve.Process != nil {
		_ = s.Serve.Process.Signal(syscall.SIGTERM)
		_, _ = s.Serve.Process.Wait()
	}
	s.Pool.Close()
}

// Profile records the service's CPU profile for d into the work directory and returns its path.
func (s *Stack) Profile(name string, d time.Duration) (string, error) {
	res, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.Pprof, int(d.Seconds())))
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	path := filepath.Join(s.workDir, name+".pprof")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = io.Copy(f, res.Body)
	return path, err
}
