package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// SubjectNames are the names of what an alert is about, for its notices.
type SubjectNames struct {
	Session string // '' when none (or deleted)
	Device  string
}

// AlertSubjectNames names an alert's session and enclosure (ids of 0 name nothing).
func (s *Store) AlertSubjectNames(ctx context.Context, sessionID, deviceID int64) (SubjectNames, error) {
	var n SubjectNames
	err := s.pool.QueryRow(ctx, `
		SELECT coalesce((SELECT name FROM sessions WHERE id = @session), ''),
		       coalesce((SELECT name FROM devices WHERE id = @device), '')`,
		pgx.NamedArgs{"session": sessionID, "device": deviceID}).Scan(&n.Session, &n.Device)
	return n, failed(err, "AlertSubjectNames session %d device %d", sessionID, deviceID)
}
