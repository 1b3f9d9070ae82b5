// Package store is the service's Postgres access: hand-written SQL with named arguments, next
// to the Go that uses it. Consumers declare the narrow interfaces they need; this package
// satisfies them.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors the API maps to statuses.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
)

// Store wraps the connection pool.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Pool exposes the pool, for health checks and metrics.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Open connects a pool to url and checks it answers.
func Open(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may contain the password; say only what is wrong with the setting.
		return nil, errors.New("database URL is not a valid PostgreSQL connection string")
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	// TCP keepalives within seconds, so an idle connection to a server that vanished (network
	// cut, host frozen) fails in about 25 s instead of when TCP gives up (hours).
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 3}}
	cfg.ConnConfig.DialFunc = dialer.DialContext
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL at %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

// isUniqueViolation reports a unique-constraint error.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// failed says what failed: err wrapped with the store method and its key argument (format and
// args), so a log line or an activity failure names it; nil stays nil. Callers still match the
// sentinel errors (ErrNotFound, ...) through it with errors.Is.
func failed(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("store."+format+": %w", append(args, err)...)
}

// notFound turns pgx.ErrNoRows into ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// querier is what a pool and a transaction share.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// byName reads a row by column name into the row type R (its db tags) and converts it with to:
// each row type has one conversion to what the store returns.
func byName[R, T any](to func(R) T) pgx.RowToFunc[T] {
	return byNameChecked(func(r R) (T, error) { return to(r), nil })
}

// byNameChecked is byName for a conversion that can fail (a JSON column, an address).
func byNameChecked[R, T any](to func(R) (T, error)) pgx.RowToFunc[T] {
	return func(row pgx.CollectableRow) (T, error) {
		r, err := pgx.RowToStructByName[R](row)
		if err != nil {
			var zero T
			return zero, err
		}
		return to(r)
	}
}

// queryOne runs a query of exactly one row, read by read (pgx.ErrNoRows when there is none).
func queryOne[T any](ctx context.Context, q querier, sql string, args pgx.NamedArgs, read pgx.RowToFunc[T]) (T, error) {
	rows, err := q.Query(ctx, sql, args)
	if err != nil {
		var zero T
		return zero, err
	}
	return pgx.CollectExactlyOneRow(rows, read)
}

// queryAll runs a query and reads its every row by read.
func queryAll[T any](ctx context.Context, q querier, sql string, args pgx.NamedArgs, read pgx.RowToFunc[T]) ([]T, error) {
	rows, err := q.Query(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, read)
}

// tx runs fn in a transaction, with the audit entry ctx carries (Audited), if any.
func (s *Store) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if e, ok := auditOf(ctx); ok {
			return writeAudit(ctx, tx, *e)
		}
		return nil
	})
}

// execOne runs a statement that must touch a row: ErrNotFound when it touched none.
func (s *Store) execOne(ctx context.Context, sql string, args pgx.NamedArgs) error {
	if _, ok := auditOf(ctx); ok {
		return s.tx(ctx, func(tx pgx.Tx) error { return execOneOn(ctx, tx, sql, args) })
	}
	return execOneOn(ctx, s.pool, sql, args)
}

func execOneOn(ctx context.Context, q querier, sql string, args pgx.NamedArgs) error {
	tag, err := q.Exec(ctx, sql, args)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return err
}

// Unavailable reports an error that means the database cannot be reached or is going away
// (connection refused or lost, shutting down, not accepting connections), rather than a fault
// of the request: the caller should try again later.
func Unavailable(err error) bool {
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return false
	case errors.As(err, &connectErr), errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown, cannot connect now.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	return false
}
