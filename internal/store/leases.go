package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// AcquireLease takes or renews the lease name for holder until ttl from now (the database's
// clock), if it is free, expired or already holder's; it reports whether holder has it.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	var got string
	err := s.pool.QueryRow(ctx, `
		INSERT INTO leases (name, holder, expires_at) VALUES (@name, @holder, now() + @ttl::interval)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at < now()
		RETURNING holder`, pgx.NamedArgs{"name": name, "holder": holder, "ttl": ttl}).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, failed(err, "AcquireLease %s for %s", name, holder)
	}
	return got == holder, nil
}

// ReleaseLease gives up holder's lease at once (a clean shutdown), so another process takes
// over without waiting for it to expire.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE name = @name AND holder = @holder`,
		pgx.NamedArgs{"name": name, "holder": holder}); err != nil {
		return failed(err, "ReleaseLease %s for %s", name, holder)
	}
	return nil
}

// MarkListening records that the API hears enclosures now. Called when it starts listening
// and every few seconds after; when no process renewed it for longer than gap (every API was
// down), listening starts again from now.
func (s *Store) MarkListening(ctx context.Context, gap time.Duration) error {
	if _, err := s.pool.Exec(ctx, `
		INSERT INTO api_listening (name, listen_at, alive_at) VALUES ('api', now(), now())
		ON CONFLICT (name) DO UPDATE SET alive_at = now(),
			listen_at = CASE WHEN api_listening.alive_at < now() - @gap::interval THEN now() ELSE api_listening.listen_at END`,
		pgx.NamedArgs{"gap": gap}); err != nil {
		return failed(err, "MarkListening gap %s", gap)
	}
	return nil
}

// Listening reports for how long the API has been hearing enclosures without a break, on the
// database's clock: 0 when it is not listening now (no renewal within gap); known is false
// when no API ever recorded it (nothing to judge by).
func (s *Store) Listening(ctx context.Context, gap time.Duration) (since time.Duration, known bool, err error) {
	var secs float64
	err = s.pool.QueryRow(ctx, `
		SELECT CASE WHEN alive_at < now() - @gap::interval THEN 0 ELSE extract(epoch FROM now() - listen_at) END::float8
		FROM api_listening WHERE name = 'api'`, pgx.NamedArgs{"gap": gap}).Scan(&secs)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, failed(err, "Listening gap %s", gap)
	}
	return time.Duration(secs * float64(time.Second)), true, nil
}
