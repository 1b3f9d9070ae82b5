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
func StartStack(ctx context.Context, cfg Config, workDir string) (*Stack, error) {
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
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.Serve = exec.Command(cfg.Binary, "serve")
	s.Serve.Env = append(os.Environ(),
		"MBA_DB_URL="+u.String(),
		"MBA_DB_MAX_CONNS="+fmt.Sprint(cfg.DBConns),
		"MBA_TEMPORAL_ADDRESS="+cfg.TemporalAddress,
		"MBA_TEMPORAL_TASK_QUEUE="+s.Queue,
		"MBA_HTTP_ADDR="+addr,
		"MBA_HTTP_PPROF_ADDR="+s.Pprof,
		"MBA_AUTH_JWT_SECRET="+randomHex(24),
		"MBA_AUTH_HASH_MEMORY=8192",
		"MBA_AUTH_LOGIN_PER_CLIENT=1000/1s",
		"MBA_ENCLOSURES_REGISTER_RATE=100000/1ms", // fleets of thousands register at once
		"MBA_SESSIONS_BYTES_PER_SECOND=1",
		"MBA_SESSIONS_END_GRACE=1m",
		"MBA_SESSIONS_MIN_SEGMENT=1s",
		"MBA_SESSIONS_RELEASE_TIMEOUT=2m",
	)
	s.Serve.Stdout, s.Serve.Stderr = logFile, logFile
	if err := s.Serve.Start(); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.Login(ctx, "bench@lab.example", "bench password"); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Stack) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(s.Base + "/readyz")
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
	return fmt.Errorf("mba serve did not become ready; see %s", s.logPath)
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
