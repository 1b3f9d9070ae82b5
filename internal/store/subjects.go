package store

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/recording"
)

// Subjects: who was in each enclosure of a session (issue 16). Kept here only, never in the
// workflow: they are edited while the session runs and after it ended.

// insertSubjects writes the subjects given at creation (enclosures without one get no row).
func insertSubjects(ctx context.Context, tx pgx.Tx, sessionID int64, devices []recording.NewSessionDevice) error {
	for _, d := range devices {
		if d.Subject.IsZero() {
			continue
		}
		if err := upsertSubject(ctx, tx, sessionID, *d.DeviceID, d.Subject); err != nil {
			return err
		}
	}
	return nil
}

func upsertSubject(ctx context.Context, q querier, sessionID, deviceID int64, s recording.Subject) error {
	ids := s.IDs
	if ids == nil {
		ids = []string{}
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = strings.ToLower(id)
	}
	extra := s.Extra
	if extra == nil {
		extra = map[string]string{}
	}
	raw, _ := json.Marshal(extra) // a map of strings always encodes
	_, err := q.Exec(ctx, `
		INSERT INTO session_subjects (session_id, device_id, subject_ids, subject_keys, strain, sex, date_of_birth, cage, extra, notes)
		VALUES (@session_id, @device_id, @ids, @keys, @strain, @sex, @dob, @cage, @extra, @notes)
		ON CONFLICT (session_id, device_id) DO UPDATE SET subject_ids = excluded.subject_ids, subject_keys = excluded.subject_keys,
			strain = excluded.strain, sex = excluded.sex, date_of_birth = excluded.date_of_birth, cage = excluded.cage,
			extra = excluded.extra, notes = excluded.notes, updated_at = now()`,
		pgx.NamedArgs{"session_id": sessionID, "device_id": deviceID, "ids": ids, "keys": keys, "strain": s.Strain,
			"sex": s.Sex, "dob": s.DateOfBirth, "cage": s.Cage, "extra": raw, "notes": s.Notes})
	return err
}

// SetSubject replaces the subject of one enclosure of a session, in any state of the session
// (a mislabelled mouse is found out after the fact as often as during the run). ErrNotFound
// when the enclosure is not in the session. The refusal of an invalid subject is a
// *recording.Refusal with the fields of the PATCH body.
func (s *Store) SetSubject(ctx context.Context, sessionID, deviceID int64, subject recording.Subject, today time.Time) error {
	errs := map[string]string{}
	recording.ValidateSubject(subject, "", today, errs)
	if len(errs) > 0 {
		return recording.Refuse(errs)
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := execOneOn(ctx, tx, `SELECT 1 FROM session_devices WHERE session_id = @sid AND device_id = @did`,
			pgx.NamedArgs{"sid": sessionID, "did": deviceID}); err != nil {
			return err
		}
		if subject.IsZero() {
			_, err := tx.Exec(ctx, `DELETE FROM session_subjects WHERE session_id = @sid AND device_id = @did`,
				pgx.NamedArgs{"sid": sessionID, "did": deviceID})
			return err
		}
		return upsertSubject(ctx, tx, sessionID, deviceID, subject)
	})
	return failed(err, "SetSubject session %d device %d", sessionID, deviceID)
}

type subjectRow struct {
	DeviceID    int64             `db:"device_id"`
	IDs         []string          `db:"subject_ids"`
	Strain      string            `db:"strain"`
	Sex         string            `db:"sex"`
	DateOfBirth *time.Time        `db:"date_of_birth"`
	Cage        string            `db:"cage"`
	Extra       map[string]string `db:"extra"`
	Notes       string            `db:"notes"`
}

// SessionSubjects returns the subjects of a session's enclosures by device id (none for an
// enclosure without one).
func (s *Store) SessionSubjects(ctx context.Context, sessionID int64) (map[int64]recording.Subject, error) {
	rows, err := queryAll(ctx, s.pool, `
		SELECT device_id, subject_ids, strain, sex, date_of_birth, cage, extra, notes
		FROM session_subjects WHERE session_id = @sid`, pgx.NamedArgs{"sid": sessionID}, pgx.RowToStructByName[subjectRow])
	out := make(map[int64]recording.Subject, len(rows))
	for _, r := range rows {
		out[r.DeviceID] = recording.Subject{IDs: r.IDs, Strain: r.Strain, Sex: r.Sex, DateOfBirth: r.DateOfBirth,
			Cage: r.Cage, Extra: r.Extra, Notes: r.Notes}
	}
	return out, failed(err, "SessionSubjects session %d", sessionID)
}

// SessionSearch narrows ListSessions; zero fields match everything.
type SessionSearch struct {
	Subject string // a subject id, any case
	Strain  string // exact, any case
	Name    string // part of the session's name, any case
	// TemplateID: sessions made from any version of this template (0: any session).
	TemplateID int64
	Limit      int // 0: all
}

// where is the search's SQL condition on sessions s, and its arguments.
func (f SessionSearch) where(args pgx.NamedArgs) string {
	var conds []string
	if f.Subject != "" {
		args["subject_key"] = []string{strings.ToLower(f.Subject)}
		conds = append(conds, `EXISTS (SELECT 1 FROM session_subjects ss WHERE ss.session_id = s.id AND ss.subject_keys @> @subject_key)`)
	}
	if f.Strain != "" {
		args["strain"] = strings.ToLower(f.Strain)
		conds = append(conds, `EXISTS (SELECT 1 FROM session_subjects ss WHERE ss.session_id = s.id AND ss.strain <> '' AND lower(ss.strain) = @strain)`)
	}
	if f.Name != "" {
		args["name_like"] = "%" + likeEscaper.Replace(strings.ToLower(f.Name)) + "%"
		conds = append(conds, `lower(s.name) LIKE @name_like`)
	}
	if f.TemplateID != 0 {
		args["template_id"] = f.TemplateID
		conds = append(conds, `s.template_id = @template_id`)
	}
	if len(conds) == 0 {
		return "true"
	}
	return strings.Join(conds, " AND ")
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
