package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Mail is a message kept in mail_log instead of being sent (no SMTP configured).
type Mail struct {
	ID        int64
	Recipient string
	Subject   string
	Body      string
	CreatedAt time.Time
}

// LogMail keeps a message in mail_log.
func (s *Store) LogMail(ctx context.Context, recipient, subject, body string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO mail_log (recipient, subject, body) VALUES (@recipient, @subject, @body)`,
		pgx.NamedArgs{"recipient": recipient, "subject": subject, "body": body})
	return err
}

// MailTo returns the logged messages to recipient, oldest first.
func (s *Store) MailTo(ctx context.Context, recipient string) ([]Mail, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, recipient, subject, body, created_at FROM mail_log
		WHERE lower(recipient) = lower(@recipient) ORDER BY id`, pgx.NamedArgs{"recipient": recipient})
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Mail])
}
