package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Mail is a message kept in mail_log instead of being sent (no SMTP configured).
type Mail struct {
	ID        int64     `db:"id"`
	Recipient string    `db:"recipient"`
	Subject   string    `db:"subject"`
	Body      string    `db:"body"`
	CreatedAt time.Time `db:"created_at"`
}

// LogMail keeps a message in mail_log.
func (s *Store) LogMail(ctx context.Context, recipient, subject, body string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO mail_log (recipient, subject, body) VALUES (@recipient, @subject, @body)`,
		pgx.NamedArgs{"recipient": recipient, "subject": subject, "body": body})
	return failed(err, "LogMail to %s", recipient)
}

// MailTo returns the logged messages to recipient, oldest first.
func (s *Store) MailTo(ctx context.Context, recipient string) ([]Mail, error) {
	mail, err := queryAll(ctx, s.pool, `
		SELECT id, recipient, subject, body, created_at FROM mail_log
		WHERE lower(recipient) = lower(@recipient) ORDER BY id`, pgx.NamedArgs{"recipient": recipient}, pgx.RowToStructByName[Mail])
	return mail, failed(err, "MailTo %s", recipient)
}
