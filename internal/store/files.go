package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/protocol"
)

// Upload refusals.
var (
	// ErrAlreadyVerified: the same content is verified already.
	ErrAlreadyVerified = errors.New("already verified with this checksum")
	// ErrVerifiedOtherContent: a verified file is immutable; other content under its name is
	// refused.
	ErrVerifiedOtherContent = errors.New("already verified with another checksum; a verified file is never replaced")
	// ErrNotRecordingFile: the name is not one the client writes for this enclosure's prefixes.
	ErrNotRecordingFile = errors.New("not a file of this enclosure's recording")
)

// SessionFile is one file of an enclosure's recording (the activities see activities.KnownFile,
// the API sends api.FileView).
type SessionFile struct {
	SessionID  int64
	DeviceID   int64
	Name       string
	State      recording.FileState
	Reason     string
	Expected   bool
	Size       *int64
	SHA256     *string
	UploadID   *string
	Uploads    int
	Reupload   bool
	UploadedAt *time.Time
	VerifiedAt *time.Time
	UpdatedAt  time.Time
}

// FilesSummary counts an enclosure's files by state.
type FilesSummary struct {
	Expected int // files the recording is known to have produced so far
	Verified int
	Missing  int
	Corrupt  int
	Pending  int // expected or received, not verified yet
}

// Summarize counts files by state.
func Summarize(files []SessionFile) FilesSummary {
	var n FilesSummary
	for _, f := range files {
		if f.Expected || f.Uploads > 0 { // a file received is one of the recording's
			n.Expected++
		}
		switch f.State {
		case recording.FileVerified:
			n.Verified++
		case recording.FileMissing:
			n.Missing++
		case recording.FileCorrupt:
			n.Corrupt++
		default:
			n.Pending++
		}
	}
	return n
}

const fileColumns = `session_id, device_id, name, state, reason, expected, size, sha256, upload_id, uploads,
	reupload, uploaded_at, verified_at, updated_at`

// fileRow is a session_files row as fileColumns reads it.
type fileRow struct {
	SessionID  int64               `db:"session_id"`
	DeviceID   int64               `db:"device_id"`
	Name       string              `db:"name"`
	State      recording.FileState `db:"state"`
	Reason     string              `db:"reason"`
	Expected   bool                `db:"expected"`
	Size       *int64              `db:"size"`
	SHA256     *string             `db:"sha256"`
	UploadID   *string             `db:"upload_id"`
	Uploads    int                 `db:"uploads"`
	Reupload   bool                `db:"reupload"`
	UploadedAt *time.Time          `db:"uploaded_at"`
	VerifiedAt *time.Time          `db:"verified_at"`
	UpdatedAt  time.Time           `db:"updated_at"`
}

func (r fileRow) file() SessionFile {
	return SessionFile{SessionID: r.SessionID, DeviceID: r.DeviceID, Name: r.Name, State: r.State, Reason: r.Reason,
		Expected: r.Expected, Size: r.Size, SHA256: r.SHA256, UploadID: r.UploadID, Uploads: r.Uploads,
		Reupload: r.Reupload, UploadedAt: r.UploadedAt, VerifiedAt: r.VerifiedAt, UpdatedAt: r.UpdatedAt}
}

var readFile = byName(fileRow.file)

// queryFile reads the one file sql returns: ErrNotFound when there is none.
func queryFile(ctx context.Context, q querier, sql string, args pgx.NamedArgs) (SessionFile, error) {
	f, err := queryOne(ctx, q, sql, args, readFile)
	return f, notFound(err)
}

// SessionFiles lists a session's files, by enclosure and name.
func (s *Store) SessionFiles(ctx context.Context, sessionID int64) ([]SessionFile, error) {
	files, err := queryAll(ctx, s.pool, `SELECT `+fileColumns+` FROM session_files WHERE session_id = @session_id
		ORDER BY device_id, name`, pgx.NamedArgs{"session_id": sessionID}, readFile)
	return files, failed(err, "SessionFiles session %d", sessionID)
}

// DeviceFiles lists the files of one enclosure in a session.
func (s *Store) DeviceFiles(ctx context.Context, sessionID, deviceID int64) ([]SessionFile, error) {
	files, err := queryAll(ctx, s.pool, `SELECT `+fileColumns+` FROM session_files
		WHERE session_id = @session_id AND device_id = @device_id ORDER BY name`,
		pgx.NamedArgs{"session_id": sessionID, "device_id": deviceID}, readFile)
	return files, failed(err, "DeviceFiles session %d device %d", sessionID, deviceID)
}

// SessionFile returns one file.
func (s *Store) SessionFile(ctx context.Context, sessionID, deviceID int64, name string) (SessionFile, error) {
	f, err := queryFile(ctx, s.pool, `SELECT `+fileColumns+` FROM session_files
		WHERE session_id = @session_id AND device_id = @device_id AND name = @name`,
		pgx.NamedArgs{"session_id": sessionID, "device_id": deviceID, "name": name})
	return f, failed(err, "SessionFile session %d device %d %s", sessionID, deviceID, name)
}

// UploadFile returns the file a tus upload is for.
func (s *Store) UploadFile(ctx context.Context, uploadID string) (SessionFile, error) {
	f, err := queryFile(ctx, s.pool, `SELECT `+fileColumns+` FROM session_files WHERE upload_id = @upload_id`,
		pgx.NamedArgs{"upload_id": uploadID})
	return f, failed(err, "UploadFile %s", uploadID)
}

// NewUpload is an upload the agent begins.
type NewUpload struct {
	SessionID, DeviceID int64
	Name                string
	Size                int64
	SHA256              string
	UploadID            string
}

// BeginUpload records an upload about to be created: ErrNotFound if the enclosure is not in the
// session or the name is not one of its recording's files, ErrAlreadyVerified if the same
// content is already verified, ErrVerifiedOtherContent if other content is: a VERIFIED file's
// bytes never change.
func (s *Store) BeginUpload(ctx context.Context, u NewUpload) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var prefix string
		var segments int
		err := tx.QueryRow(ctx, `SELECT file_prefix, segments FROM session_devices
			WHERE session_id = @session_id AND device_id = @device_id`,
			pgx.NamedArgs{"session_id": u.SessionID, "device_id": u.DeviceID}).Scan(&prefix, &segments)
		if err != nil {
			return notFound(err)
		}
		if !fileOfRecording(prefix, segments, u.Name) {
			return fmt.Errorf("%w: %q (prefix %q)", ErrNotRecordingFile, u.Name, protocol.FileNamePrefix(prefix))
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO session_files (session_id, device_id, name, state, size, sha256, upload_id)
			VALUES (@session_id, @device_id, @name, 'UPLOADING', @size, @sha256, @upload_id)
			ON CONFLICT (session_id, device_id, name) DO UPDATE SET
				state = 'UPLOADING', reason = '', size = excluded.size, sha256 = excluded.sha256,
				upload_id = excluded.upload_id, reupload = false, updated_at = now()
			WHERE session_files.state <> 'VERIFIED'`,
			pgx.NamedArgs{"session_id": u.SessionID, "device_id": u.DeviceID, "name": u.Name, "size": u.Size,
				"sha256": u.SHA256, "upload_id": u.UploadID})
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var sum string
			if err := tx.QueryRow(ctx, `SELECT coalesce(sha256, '') FROM session_files
				WHERE session_id = @session_id AND device_id = @device_id AND name = @name`,
				pgx.NamedArgs{"session_id": u.SessionID, "device_id": u.DeviceID, "name": u.Name}).Scan(&sum); err != nil {
				return err
			}
			if sum == u.SHA256 {
				return ErrAlreadyVerified
			}
			return ErrVerifiedOtherContent
		}
		return nil
	})
	if errors.Is(err, ErrNotRecordingFile) {
		return err // its text is the client's message (the API's 400)
	}
	return failed(err, "BeginUpload session %d device %d %s", u.SessionID, u.DeviceID, u.Name)
}

// fileOfRecording reports whether name is a file the client writes for one of the prefixes of
// the enclosure's segments (one more than recorded so far: a resume may be starting).
func fileOfRecording(prefix string, segments int, name string) bool {
	for _, p := range protocol.SegmentFileNamePrefixes(prefix, segments+1) {
		if _, ok := protocol.MatchFile(p, name); ok {
			return true
		}
	}
	return false
}

// FinishUpload marks the file of a completed upload UPLOADED and queues a file-uploaded event
// for workflowID (the enclosure's recording workflow), in one transaction. Finishing twice is
// harmless.
func (s *Store) FinishUpload(ctx context.Context, uploadID, workflowID string, now time.Time) (SessionFile, error) {
	var f SessionFile
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		f, err = queryOne(ctx, tx, `
			UPDATE session_files SET state = 'UPLOADED', reason = '', uploads = uploads + 1,
				uploaded_at = @now, updated_at = @now
			WHERE upload_id = @upload_id AND state = 'UPLOADING'
			RETURNING `+fileColumns, pgx.NamedArgs{"upload_id": uploadID, "now": now}, readFile)
		if errors.Is(err, pgx.ErrNoRows) {
			f, err = queryFile(ctx, tx, `SELECT `+fileColumns+` FROM session_files WHERE upload_id = @upload_id`,
				pgx.NamedArgs{"upload_id": uploadID})
			return err // finished before
		}
		if err != nil {
			return err
		}
		ev := recording.Event{Kind: recording.EventFileUploaded, At: now, SessionID: f.SessionID, File: f.Name, Upload: f.Uploads}
		return enqueueOutbox(ctx, tx, eventEntry(workflowID, "", ev))
	})
	return f, failed(err, "FinishUpload %s", uploadID)
}

// ExpectFiles records the files a recording must produce (PENDING unless already known).
func (s *Store) ExpectFiles(ctx context.Context, sessionID, deviceID int64, names []string) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO session_files (session_id, device_id, name, expected)
		SELECT @session_id, @device_id, name, true FROM unnest(@names::text[]) AS name
		ON CONFLICT (session_id, device_id, name) DO UPDATE SET expected = true`,
		pgx.NamedArgs{"session_id": sessionID, "device_id": deviceID, "names": names})
	return failed(err, "ExpectFiles session %d device %d", sessionID, deviceID)
}

// FileResult is what verification found for a file.
type FileResult struct {
	SessionID, DeviceID int64
	Name                string
	State               recording.FileState // VERIFIED, CORRUPT or MISSING
	Reason              string
	// Reupload asks the agent to send the file again (a corrupt or vanished copy).
	Reupload bool
	// Event, when set, goes on the session's timeline with Reason.
	Event string
	At    time.Time
}

// RecordFileResult writes a verification result, and its timeline event.
func (s *Store) RecordFileResult(ctx context.Context, r FileResult) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			INSERT INTO session_files (session_id, device_id, name, state, reason, reupload, verified_at, updated_at)
			VALUES (@session_id, @device_id, @name, @state, @reason, @reupload,
				CASE WHEN @state = 'VERIFIED' THEN @at::timestamptz END, @at)
			ON CONFLICT (session_id, device_id, name) DO UPDATE SET
				state = excluded.state, reason = excluded.reason, reupload = excluded.reupload,
				verified_at = coalesce(excluded.verified_at, session_files.verified_at), updated_at = excluded.updated_at`,
			pgx.NamedArgs{"session_id": r.SessionID, "device_id": r.DeviceID, "name": r.Name, "state": r.State,
				"reason": r.Reason, "reupload": r.Reupload, "at": r.At})
		if err != nil || r.Event == "" {
			return err
		}
		return addEvent(ctx, tx, r.SessionID, r.DeviceID, r.Event, r.Name+": "+r.Reason, r.At)
	})
	return failed(err, "RecordFileResult session %d device %d %s", r.SessionID, r.DeviceID, r.Name)
}

// AgentSession is a session whose files an enclosure's agent is to upload.
type AgentSession struct {
	SessionID      int64
	StartedAt      *time.Time
	EndedAt        *time.Time
	Recording      bool
	FragmentHourly bool
	Prefixes       []string
	Files          []SessionFile
}

// AgentSessions lists an enclosure's sessions still recording, or ended since since: their
// file name prefixes (one per segment) and the files known so far.
func (s *Store) AgentSessions(ctx context.Context, deviceID int64, since time.Time) ([]AgentSession, error) {
	out, err := queryAll(ctx, s.pool, `
		SELECT sd.session_id, sd.started_at, sd.ended_at, sd.status IN ('PENDING', 'RECORDING') AS recording,
			s.fragment_hourly, sd.file_prefix, sd.segments
		FROM session_devices sd JOIN sessions s ON s.id = sd.session_id
		WHERE sd.device_id = @device_id AND (sd.ended_at IS NULL OR sd.ended_at >= @since)
		ORDER BY sd.session_id`, pgx.NamedArgs{"device_id": deviceID, "since": since}, byName(agentSessionRow.agentSession))
	if err != nil || len(out) == 0 {
		return out, failed(err, "AgentSessions device %d", deviceID)
	}
	ids := make([]int64, len(out))
	index := map[int64]int{}
	for i, a := range out {
		ids[i], index[a.SessionID] = a.SessionID, i
	}
	files, err := queryAll(ctx, s.pool, `SELECT `+fileColumns+` FROM session_files
		WHERE device_id = @device_id AND session_id = ANY(@ids) ORDER BY session_id, name`,
		pgx.NamedArgs{"device_id": deviceID, "ids": ids}, readFile)
	for _, f := range files {
		a := &out[index[f.SessionID]]
		a.Files = append(a.Files, f)
	}
	return out, failed(err, "AgentSessions device %d", deviceID)
}

// agentSessionRow is an enclosure's part in a session as AgentSessions reads it.
type agentSessionRow struct {
	SessionID      int64      `db:"session_id"`
	StartedAt      *time.Time `db:"started_at"`
	EndedAt        *time.Time `db:"ended_at"`
	Recording      bool       `db:"recording"`
	FragmentHourly bool       `db:"fragment_hourly"`
	FilePrefix     string     `db:"file_prefix"`
	Segments       int        `db:"segments"`
}

func (r agentSessionRow) agentSession() AgentSession {
	return AgentSession{SessionID: r.SessionID, StartedAt: r.StartedAt, EndedAt: r.EndedAt, Recording: r.Recording,
		FragmentHourly: r.FragmentHourly, Prefixes: protocol.SegmentFileNamePrefixes(r.FilePrefix, r.Segments),
		Files: []SessionFile{}}
}
