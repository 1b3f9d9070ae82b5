package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/recording"
)

// AuditEntry is one row of the audit log: who did what to what, from where.
type AuditEntry struct {
	ActorID  int64 // 0: no signed-in actor
	Action   recording.AuditAction
	Subject  string
	Detail   string // short: what changed
	ClientIP string
}

type auditKey struct{}

// Audited returns ctx carrying e: a store write made with it records e in the write's own
// transaction, so the change and its audit row commit or roll back together (a refused or
// failed change leaves no row). Use it for one write only.
func Audited(ctx context.Context, e AuditEntry) context.Context {
	return context.WithValue(ctx, auditKey{}, &e)
}

func auditOf(ctx context.Context) (*AuditEntry, bool) {
	e, ok := ctx.Value(auditKey{}).(*AuditEntry)
	return e, ok
}

// amendAudit lets a write complete its audit entry with what only it learns (the new row's
// id, which of two outcomes it was) before the entry is written with it.
func amendAudit(ctx context.Context, fn func(*AuditEntry)) {
	if e, ok := auditOf(ctx); ok {
		fn(e)
	}
}

// Audit records an action that changes nothing else (a failed login, a refused upload).
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	return writeAudit(ctx, s.pool, e)
}

func writeAudit(ctx context.Context, q querier, e AuditEntry) error {
	_, err := q.Exec(ctx, `
		INSERT INTO audit_log (actor_id, action, subject, detail, client_ip)
		VALUES (nullif(@actor_id, 0), @action, @subject, @detail, @client_ip)`,
		pgx.NamedArgs{"actor_id": e.ActorID, "action": e.Action, "subject": e.Subject, "detail": e.Detail, "client_ip": e.ClientIP})
	return failed(err, "Audit %s %s", e.Action, e.Subject)
}

// AuditRecord is one audit row as the search shows it.
type AuditRecord struct {
	ID         int64
	At         time.Time
	ActorID    *int64 // nil: no signed-in actor, or the user was deleted
	ActorEmail *string
	Action     recording.AuditAction
	Subject    string
	Detail     string
	ClientIP   string
}

// AuditFilter narrows an audit search; zero fields match everything.
type AuditFilter struct {
	ActorEmail   string
	Action       recording.AuditAction
	Subject      string
	Since, Until time.Time // Since inclusive, Until exclusive
	Limit        int       // 0: 500
}

type auditRow struct {
	ID         int64     `db:"id"`
	At         time.Time `db:"at"`
	ActorID    *int64    `db:"actor_id"`
	ActorEmail *string   `db:"actor_email"`
	Action     string    `db:"action"`
	Subject    string    `db:"subject"`
	Detail     string    `db:"detail"`
	ClientIP   string    `db:"client_ip"`
}

func (r auditRow) record() AuditRecord {
	return AuditRecord{ID: r.ID, At: r.At, ActorID: r.ActorID, ActorEmail: r.ActorEmail, Action: recording.AuditAction(r.Action),
		Subject: r.Subject, Detail: r.Detail, ClientIP: r.ClientIP}
}

// AuditLog searches the audit log, newest first.
func (s *Store) AuditLog(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	if f.Limit <= 0 {
		f.Limit = 500
	}
	list, err := queryAll(ctx, s.pool, `
		SELECT l.id, l.at, l.actor_id, u.email AS actor_email, l.action, l.subject, l.detail, l.client_ip
		FROM audit_log l LEFT JOIN users u ON u.id = l.actor_id
		WHERE (@actor = '' OR lower(u.email) = lower(@actor))
		  AND (@action = '' OR l.action = @action)
		  AND (@subject = '' OR l.subject = @subject)
		  AND (@since::timestamptz IS NULL OR l.at >= @since)
		  AND (@until::timestamptz IS NULL OR l.at < @until)
		ORDER BY l.at DESC, l.id DESC LIMIT @limit`,
		pgx.NamedArgs{"actor": f.ActorEmail, "action": string(f.Action), "subject": f.Subject,
			"since": nullTime(f.Since), "until": nullTime(f.Until), "limit": f.Limit}, byName(auditRow.record))
	return list, failed(err, "AuditLog actor %q action %q subject %q", f.ActorEmail, f.Action, f.Subject)
}

// PurgeAuditLog deletes the audit rows older than cutoff (the retention setting) and returns
// how many it deleted.
func (s *Store) PurgeAuditLog(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM audit_log WHERE at < @cutoff`, pgx.NamedArgs{"cutoff": cutoff})
	return tag.RowsAffected(), failed(err, "PurgeAuditLog before %s", cutoff)
}
