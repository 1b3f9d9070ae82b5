package store

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/recording"
)

// Templates (issue 16): a named protocol; every edit is a new version and the old ones stay,
// since sessions name the version they were made from.

// Template is a template with its versions, newest first (only the latest in a list).
type Template struct {
	ID            int64
	Name          string
	Archived      bool
	LatestVersion int
	CreatedBy     *string
	CreatedAt     time.Time
	Versions      []TemplateVersion
}

// TemplateVersion is one version of a template, with the sessions made from it (newest
// first, at most maxVersionSessions) in a template's detail.
type TemplateVersion struct {
	Version   int
	Spec      recording.TemplateSpec
	CreatedBy *string
	CreatedAt time.Time
	Sessions  []TemplateSession
}

// TemplateSession is a session made from a template version.
type TemplateSession struct {
	ID        int64                   `db:"id"`
	Name      string                  `db:"name"`
	Status    recording.SessionStatus `db:"status"`
	CreatedAt time.Time               `db:"created_at"`
}

// maxVersionSessions bounds the sessions a template's detail lists per version.
const maxVersionSessions = 100

// CreateTemplate validates and stores a new template as its version 1. A live template of the
// same name (any case) is ErrConflict.
func (s *Store) CreateTemplate(ctx context.Context, spec recording.TemplateSpec, rules recording.Rules, userID int64) (int64, error) {
	spec, err := rules.ValidateTemplate(spec)
	if err != nil {
		return 0, err
	}
	var id int64
	err = s.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO session_templates (name, created_by) VALUES (@name, nullif(@user, 0)) RETURNING id`,
			pgx.NamedArgs{"name": spec.Name, "user": userID}).Scan(&id)
		if isUniqueViolation(err) {
			return ErrConflict
		}
		if err != nil {
			return err
		}
		amendAudit(ctx, func(e *AuditEntry) { e.Subject = templateSubject(id) })
		return insertTemplateVersion(ctx, tx, id, 1, spec, userID)
	})
	return id, failed(err, "CreateTemplate %q", spec.Name)
}

// NewTemplateVersion stores an edit of a live template as its next version and returns its
// number; the name may change too. ErrNotFound for no (or an archived) template.
func (s *Store) NewTemplateVersion(ctx context.Context, id int64, spec recording.TemplateSpec, rules recording.Rules, userID int64) (int, error) {
	spec, err := rules.ValidateTemplate(spec)
	if err != nil {
		return 0, err
	}
	var version int
	err = s.tx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			UPDATE session_templates SET latest_version = latest_version + 1, name = @name
			WHERE id = @id AND NOT archived RETURNING latest_version`,
			pgx.NamedArgs{"id": id, "name": spec.Name}).Scan(&version)
		switch {
		case isUniqueViolation(err):
			return ErrConflict
		case err != nil:
			return notFound(err)
		}
		return insertTemplateVersion(ctx, tx, id, version, spec, userID)
	})
	return version, failed(err, "NewTemplateVersion template %d", id)
}

func insertTemplateVersion(ctx context.Context, tx pgx.Tx, id int64, version int, spec recording.TemplateSpec, userID int64) error {
	ids := spec.DeviceIDs
	if ids == nil {
		ids = []int64{}
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO session_template_versions (template_id, version, duration, fragment_hourly, target_fps, apply_filter,
			device_ids, prefix_pattern, timeouts, notes, created_by)
		VALUES (@id, @version, @duration, @fragment_hourly, @target_fps, @apply_filter, @device_ids, @prefix_pattern,
			@timeouts, @notes, nullif(@user, 0))`,
		pgx.NamedArgs{"id": id, "version": version, "duration": spec.Duration, "fragment_hourly": spec.FragmentHourly,
			"target_fps": spec.TargetFPS, "apply_filter": spec.ApplyFilter, "device_ids": ids,
			"prefix_pattern": spec.PrefixPattern, "timeouts": []byte(spec.Timeouts), "notes": spec.Notes, "user": userID})
	return err
}

// ArchiveTemplate hides a template from the list and from new sessions; its versions stay
// for the sessions made from them.
func (s *Store) ArchiveTemplate(ctx context.Context, id int64) error {
	err := s.execOne(ctx, `UPDATE session_templates SET archived = true WHERE id = @id`, pgx.NamedArgs{"id": id})
	return failed(err, "ArchiveTemplate %d", id)
}

func templateSubject(id int64) string { return "template/" + strconv.FormatInt(id, 10) }

const templateSelect = `
	SELECT t.id, t.name, t.archived, t.latest_version, t.created_at, tu.email AS created_by,
	       v.version, v.duration, v.fragment_hourly, v.target_fps, v.apply_filter, v.device_ids, v.prefix_pattern,
	       v.timeouts, v.notes, v.created_at AS version_created_at, vu.email AS version_created_by
	FROM session_templates t
	JOIN session_template_versions v ON v.template_id = t.id
	LEFT JOIN users tu ON tu.id = t.created_by
	LEFT JOIN users vu ON vu.id = v.created_by`

type templateRow struct {
	ID               int64           `db:"id"`
	Name             string          `db:"name"`
	Archived         bool            `db:"archived"`
	LatestVersion    int             `db:"latest_version"`
	CreatedAt        time.Time       `db:"created_at"`
	CreatedBy        *string         `db:"created_by"`
	Version          int             `db:"version"`
	Duration         int64           `db:"duration"`
	FragmentHourly   bool            `db:"fragment_hourly"`
	TargetFPS        int             `db:"target_fps"`
	ApplyFilter      bool            `db:"apply_filter"`
	DeviceIDs        []int64         `db:"device_ids"`
	PrefixPattern    string          `db:"prefix_pattern"`
	Timeouts         json.RawMessage `db:"timeouts"`
	Notes            string          `db:"notes"`
	VersionCreatedAt time.Time       `db:"version_created_at"`
	VersionCreatedBy *string         `db:"version_created_by"`
}

func (r templateRow) template() Template {
	return Template{ID: r.ID, Name: r.Name, Archived: r.Archived, LatestVersion: r.LatestVersion, CreatedBy: r.CreatedBy,
		CreatedAt: r.CreatedAt, Versions: []TemplateVersion{r.version()}}
}

func (r templateRow) version() TemplateVersion {
	return TemplateVersion{Version: r.Version, CreatedBy: r.VersionCreatedBy, CreatedAt: r.VersionCreatedAt,
		Spec: recording.TemplateSpec{Name: r.Name, Duration: r.Duration, FragmentHourly: r.FragmentHourly, TargetFPS: r.TargetFPS,
			ApplyFilter: r.ApplyFilter, DeviceIDs: r.DeviceIDs, PrefixPattern: r.PrefixPattern, Timeouts: r.Timeouts, Notes: r.Notes}}
}

// ListTemplates returns the live (or the archived) templates by name, each with its latest version.
func (s *Store) ListTemplates(ctx context.Context, archived bool) ([]Template, error) {
	list, err := queryAll(ctx, s.pool, templateSelect+` WHERE t.archived = @archived AND v.version = t.latest_version
		ORDER BY lower(t.name), t.id`, pgx.NamedArgs{"archived": archived}, byName(templateRow.template))
	return list, failed(err, "ListTemplates archived %t", archived)
}

// Template returns a template with every version, newest first, each with the sessions made
// from it: the template's history.
func (s *Store) Template(ctx context.Context, id int64) (Template, error) {
	rows, err := queryAll(ctx, s.pool, templateSelect+` WHERE t.id = @id ORDER BY v.version DESC`,
		pgx.NamedArgs{"id": id}, pgx.RowToStructByName[templateRow])
	if err == nil && len(rows) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return Template{}, failed(err, "Template %d", id)
	}
	t := rows[0].template()
	t.Versions = nil
	for _, r := range rows {
		v := r.version()
		v.Sessions, err = queryAll(ctx, s.pool, `
			SELECT id, name, status, created_at FROM sessions WHERE template_id = @id AND template_version = @version
			ORDER BY created_at DESC, id DESC LIMIT @limit`,
			pgx.NamedArgs{"id": id, "version": r.Version, "limit": maxVersionSessions}, pgx.RowToStructByName[TemplateSession])
		if err != nil {
			return Template{}, failed(err, "Template %d", id)
		}
		t.Versions = append(t.Versions, v)
	}
	return t, nil
}

// TemplateVersion returns one version of a live template (version 0: the latest).
// ErrNotFound when there is none.
func (s *Store) TemplateVersion(ctx context.Context, id int64, version int) (Template, error) {
	t, err := queryOne(ctx, s.pool, templateSelect+` WHERE t.id = @id AND NOT t.archived
		AND v.version = CASE WHEN @version = 0 THEN t.latest_version ELSE @version END`,
		pgx.NamedArgs{"id": id, "version": version}, byName(templateRow.template))
	return t, failed(notFound(err), "TemplateVersion template %d version %d", id, version)
}
