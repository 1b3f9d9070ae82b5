package store

import (
	"context"

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
