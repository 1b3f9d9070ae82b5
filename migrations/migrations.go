// Package migrations holds the numbered SQL migrations of the schema, embedded in the
// binary, and applies them under a Postgres advisory lock so that several processes
// starting at once cannot race.
//
// A migration is a pair of files NNNN_name.up.sql and NNNN_name.down.sql. Each one runs in
// its own transaction together with its bookkeeping row in schema_migrations.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed *.sql
var files embed.FS

// lockKey is the advisory lock every migrating process takes ("mba-migr" as an int64).
const lockKey = 0x6d62612d6d696772

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string
	Up      string
	Down    string
}

// Status is a migration and, if applied, when.
type Status struct {
	Migration
	AppliedAt *time.Time
}

var fileName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.(up|down)\.sql$`)

// All returns the embedded migrations in version order, checking that each has both halves.
func All() ([]Migration, error) {
	return parse(files)
}

func parse(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q: name must be NNNN_name.up.sql or NNNN_name.down.sql", e.Name())
		}
		version, _ := strconv.Atoi(m[1])
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		mig := byVersion[version]
		if mig == nil {
			mig = &Migration{Version: version, Name: m[2]}
			byVersion[version] = mig
		}
		if mig.Name != m[2] {
			return nil, fmt.Errorf("migration %04d has two names: %q and %q", version, mig.Name, m[2])
		}
		if m[3] == "up" {
			mig.Up = string(body)
		} else {
			mig.Down = string(body)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("migration %04d_%s needs both an up and a down file", m.Version, m.Name)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration versions must run 1, 2, 3, ... without gaps; found %04d at position %d", m.Version, i+1)
		}
	}
	return out, nil
}

// Up applies every pending migration and returns the ones it applied. progress, if not nil,
// is told about each one before it runs.
func Up(ctx context.Context, pool *pgxpool.Pool, progress func(Migration)) ([]Migration, error) {
	var applied []Migration
	err := withState(ctx, pool, func(conn *pgx.Conn, all []Migration, done map[int]time.Time) error {
		for _, m := range all {
			if _, ok := done[m.Version]; ok {
				continue
			}
			if progress != nil {
				progress(m)
			}
			if err := apply(ctx, conn, m.Up, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("migration %04d_%s up: %w", m.Version, m.Name, err)
			}
			applied = append(applied, m)
		}
		return nil
	})
	return applied, err
}

// Down reverts the newest `steps` applied migrations and returns the ones it reverted.
func Down(ctx context.Context, pool *pgxpool.Pool, steps int, progress func(Migration)) ([]Migration, error) {
	var reverted []Migration
	err := withState(ctx, pool, func(conn *pgx.Conn, all []Migration, done map[int]time.Time) error {
		for i := len(all) - 1; i >= 0 && len(reverted) < steps; i-- {
			m := all[i]
			if _, ok := done[m.Version]; !ok {
				continue
			}
			if progress != nil {
				progress(m)
			}
			if err := apply(ctx, conn, m.Down, `DELETE FROM schema_migrations WHERE version = $1 AND name = $2`, m.Version, m.Name); err != nil {
				return fmt.Errorf("migration %04d_%s down: %w", m.Version, m.Name, err)
			}
			reverted = append(reverted, m)
		}
		return nil
	})
	return reverted, err
}

// List reports every known migration and whether it is applied.
func List(ctx context.Context, pool *pgxpool.Pool) ([]Status, error) {
	var out []Status
	err := withState(ctx, pool, func(_ *pgx.Conn, all []Migration, done map[int]time.Time) error {
		for _, m := range all {
			s := Status{Migration: m}
			if at, ok := done[m.Version]; ok {
				s.AppliedAt = &at
			}
			out = append(out, s)
		}
		return nil
	})
	return out, err
}

// Pending reports how many migrations are not applied yet.
func Pending(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	list, err := List(ctx, pool)
	n := 0
	for _, s := range list {
		if s.AppliedAt == nil {
			n++
		}
	}
	return n, err
}

// withState runs fn on one connection holding the migration advisory lock, with every known
// migration and the applied versions.
func withState(ctx context.Context, pool *pgxpool.Pool, fn func(conn *pgx.Conn, all []Migration, done map[int]time.Time) error) error {
	all, err := All()
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connecting to the database: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(lockKey)); err != nil {
		return fmt.Errorf("taking the migration lock: %w", err)
	}
	// Unlock on a fresh context: the caller's may be canceled already.
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(lockKey)) //nolint:errcheck
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	done, err := appliedVersions(ctx, conn.Conn())
	if err != nil {
		return err
	}
	return fn(conn.Conn(), all, done)
}

func appliedVersions(ctx context.Context, conn *pgx.Conn) (map[int]time.Time, error) {
	rows, err := conn.Query(ctx, `SELECT version, applied_at FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	done := map[int]time.Time{}
	var version int
	var at time.Time
	_, err = pgx.ForEachRow(rows, []any{&version, &at}, func() error {
		done[version] = at
		return nil
	})
	return done, err
}

func apply(ctx context.Context, conn *pgx.Conn, script, bookkeeping string, version int, name string) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, script); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, bookkeeping, version, name)
		return err
	})
}
