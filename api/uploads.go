package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/tus/tusd/v2/pkg/filelocker"
	"github.com/tus/tusd/v2/pkg/filestore"
	tus "github.com/tus/tusd/v2/pkg/handler"
	expslog "golang.org/x/exp/slog"

	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/storage"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/workflows"
)

// Uploads: the upload agent on each enclosure sends the recording's files with tus 1.0
// (https://tus.io/protocols/resumable-upload), served by tusd's handler. Incoming bytes go to a
// staging directory; when the last byte arrives the file moves into storage and is recorded
// UPLOADED before the final PATCH is answered, and the enclosure's workflow verifies it.

// FileStore is the part of the store the upload and file routes use.
type FileStore interface {
	AuthenticateEnclosure(ctx context.Context, name, token string) (int64, error)
	AgentSessions(ctx context.Context, deviceID int64, since time.Time) ([]store.AgentSession, error)
	BeginUpload(ctx context.Context, u store.NewUpload) error
	UploadFile(ctx context.Context, uploadID string) (store.SessionFile, error)
	FinishUpload(ctx context.Context, uploadID, workflowID string, now time.Time) (store.SessionFile, error)
	SessionFiles(ctx context.Context, sessionID int64) ([]store.SessionFile, error)
}

// UploadConfig are the settings of uploads and downloads.
type UploadConfig struct {
	StagingDir   string
	MaxFileBytes int64
	// ManifestSince: sessions that ended longer ago drop out of an agent's manifest.
	ManifestSince time.Duration
	// DownloadTTL is the lifetime of a signed download link.
	DownloadTTL time.Duration
}

const (
	agentHeader   = "X-Mba-Enclosure"
	manifestRoute = "/api/agent/manifest"
	uploadsRoute  = "/api/agent/uploads/"
	filesRoute    = "/api/files/"
)

type enclosureKey struct{}

// agentEnclosure is the enclosure an agent request authenticated as.
type agentEnclosure struct {
	ID   int64
	Name string
}

func enclosureOf(ctx context.Context) agentEnclosure {
	e, _ := ctx.Value(enclosureKey{}).(agentEnclosure)
	return e
}

// newTus builds the tus handler over a file store in the staging directory.
func (s *Server) newTus() (*tus.UnroutedHandler, error) {
	if err := os.MkdirAll(s.cfg.Uploads.StagingDir, 0o750); err != nil {
		return nil, fmt.Errorf("upload staging directory: %w", err)
	}
	composer := tus.NewStoreComposer()
	s.staging = stagingStore{files: filestore.New(s.cfg.Uploads.StagingDir), fail: s.tusError,
		locker: stagingLocker{FileLocker: filelocker.New(s.cfg.Uploads.StagingDir), fail: s.tusError}}
	composer.UseCore(s.staging)
	s.staging.locker.UseIn(composer)
	return tus.NewUnroutedHandler(tus.Config{
		StoreComposer:           composer,
		BasePath:                uploadsRoute,
		MaxSize:                 s.cfg.Uploads.MaxFileBytes,
		DisableDownload:         true,
		DisableTermination:      true,
		DisableConcatenation:    true,
		Cors:                    &tus.CorsConfig{Disable: true},
		RespectForwardedHeaders: s.cfg.TrustProxy,
		// tusd logs through x/exp/slog, not log/slog: its warnings go to stderr as JSON; our
		// own hooks log what matters (uploads finished, failures) through s.log.
		Logger:                    expslog.New(expslog.NewJSONHandler(os.Stderr, &expslog.HandlerOptions{Level: expslog.LevelWarn})),
		PreUploadCreateCallback:   s.beginUpload,
		PreFinishResponseCallback: s.finishUpload,
	})
}

// fileTransferRoutes mounts tus and the downloads, in the /api router. They are outside the
// API's body-size and time limits: tusd bounds an upload's size and keeps its connection alive
// itself, and a download of tens of GB takes as long as it takes.
func (s *Server) fileTransferRoutes(r chi.Router) {
	r.Group(func(r chi.Router) {
		r.Use(s.authenticateEnclosure, s.requireUploads)
		r.Post("/agent/uploads", s.handle(s.tusCreate))
		r.Post("/agent/uploads/", s.handle(s.tusCreate))
		r.Head("/agent/uploads/{upload}", s.handle(s.tusUpload))
		r.Patch("/agent/uploads/{upload}", s.handle(s.tusUpload))
	})
	r.Get(strings.TrimPrefix(filesRoute, "/api")+"{sid}/{device}/{name}", s.handle(s.downloadFile))
}

func (s *Server) requireUploads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.tus == nil || s.storage == nil {
			writeError(w, r, s.log, errorf(http.StatusServiceUnavailable, "file uploads are not configured on this server"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authenticateEnclosure admits an agent that names its enclosure and presents that
// enclosure's own token.
func (s *Server) authenticateEnclosure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.Header.Get(agentHeader)
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if name == "" || !ok || token == "" {
			writeError(w, r, s.log, errorf(http.StatusUnauthorized, "an agent names its enclosure (%s) and sends its token (Authorization: Bearer)", agentHeader))
			return
		}
		id, err := s.files.AuthenticateEnclosure(r.Context(), name, token)
		switch {
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrDeviceToken):
			err = errorf(http.StatusUnauthorized, "unknown enclosure or wrong token")
		case errors.Is(err, store.ErrNoDeviceToken):
			err = errorf(http.StatusForbidden, "enclosure %q has no token yet; an admin sets one with PUT /api/device/%s/token", name, name)
		}
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		ctx := context.WithValue(r.Context(), enclosureKey{}, agentEnclosure{ID: id, Name: name})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// agentFile is a file in the agent's manifest.
type agentFile struct {
	Name      string              `json:"name"`
	State     recording.FileState `json:"state"`
	Size      *int64              `json:"size"`
	SHA256    *string             `json:"sha256"`
	UploadURL string              `json:"upload_url,omitempty"`
	Reupload  bool                `json:"reupload"`
}

// agentSession is a session whose files the agent is to upload.
type agentSession struct {
	SessionID      int64       `json:"session_id"`
	StartedAt      *time.Time  `json:"started_at"`
	EndedAt        *time.Time  `json:"ended_at"`
	Recording      bool        `json:"recording"`
	FragmentHourly bool        `json:"fragment_hourly"`
	Prefixes       []string    `json:"prefixes"`
	Files          []agentFile `json:"files"`
}

// agentManifest tells the agent which sessions' files to send and what the server has.
func (s *Server) agentManifest(w http.ResponseWriter, r *http.Request) error {
	e := enclosureOf(r.Context())
	sessions, err := s.files.AgentSessions(r.Context(), e.ID, s.now().Add(-s.cfg.Uploads.ManifestSince))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"enclosure": e.Name, "sessions": agentSessions(sessions)})
	return nil
}

// agentSessions are the manifest's sessions ([] when none), each file with where to resume
// its upload.
func agentSessions(list []store.AgentSession) []agentSession {
	out := make([]agentSession, len(list))
	for i, a := range list {
		out[i] = agentSession{SessionID: a.SessionID, StartedAt: a.StartedAt, EndedAt: a.EndedAt, Recording: a.Recording,
			FragmentHourly: a.FragmentHourly, Prefixes: a.Prefixes, Files: make([]agentFile, len(a.Files))}
		for j, f := range a.Files {
			af := agentFile{Name: f.Name, State: f.State, Size: f.Size, SHA256: f.SHA256, Reupload: f.Reupload}
			if f.State == recording.FileUploading && f.UploadID != nil {
				af.UploadURL = uploadsRoute + *f.UploadID
			}
			out[i].Files[j] = af
		}
	}
	return out
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// tusCreate hands a creation request to tusd (beginUpload checks it).
func (s *Server) tusCreate(w http.ResponseWriter, r *http.Request) error {
	s.serveTus(w, r, s.tus.Middleware(http.HandlerFunc(s.tus.PostFile)))
	return nil
}

// serveTus runs a tusd handler with its own error answers (plain text such as
// "ERR_UPLOAD_NOT_FOUND: upload not found") turned into our JSON error body; a 5xx shows no
// detail, which goes to the log.
func (s *Server) serveTus(w http.ResponseWriter, r *http.Request, h http.Handler) {
	tw := &tusErrorWriter{ResponseWriter: w}
	h.ServeHTTP(tw, r)
	if tw.status == 0 {
		return
	}
	text := strings.TrimSpace(tw.body.String())
	msg := text
	if _, rest, ok := strings.Cut(text, ": "); ok && strings.HasPrefix(text, "ERR_") {
		msg = rest
	}
	if tw.status >= 500 {
		s.log.ErrorContext(r.Context(), "upload failed", "status", tw.status, "error", text)
		msg = "internal server error"
	}
	tw.Header().Del("Content-Length")
	writeJSON(w, tw.status, &Error{Message: cmp.Or(msg, http.StatusText(tw.status))})
}

// tusErrorWriter holds back an error answer that is not JSON, for serveTus to rewrite.
type tusErrorWriter struct {
	http.ResponseWriter
	status int // of a held-back error answer
	body   bytes.Buffer
}

func (w *tusErrorWriter) WriteHeader(code int) {
	if code >= 400 && !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		w.status = code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *tusErrorWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		return w.ResponseWriter.Write(b)
	}
	if w.body.Len() < 4096 {
		w.body.Write(b)
	}
	return len(b), nil
}

// Unwrap lets tusd's http.ResponseController reach the connection (deadlines, flushes).
func (w *tusErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// tusUpload serves HEAD and PATCH of an upload the enclosure owns. An upload already finished
// answers as complete, so an agent that lost the final response does not send it again.
func (s *Server) tusUpload(w http.ResponseWriter, r *http.Request) error {
	id := chi.URLParam(r, "upload")
	f, err := s.files.UploadFile(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && f.DeviceID != enclosureOf(r.Context()).ID) {
		return errorf(http.StatusNotFound, "no upload %q for this enclosure", id)
	}
	if err != nil {
		return err
	}
	if f.State == recording.FileUploading && f.UploadID != nil {
		done, err := s.finishStaged(r.Context(), f, enclosureOf(r.Context()).Name)
		if err != nil {
			return err
		}
		if done {
			f.State = recording.FileUploaded
		}
	}
	if f.State != recording.FileUploading {
		size := strconv.FormatInt(*f.Size, 10)
		w.Header().Set("Tus-Resumable", "1.0.0")
		w.Header().Set("Upload-Offset", size)
		w.Header().Set("Upload-Length", size)
		w.Header().Set("Cache-Control", "no-store")
		status := http.StatusOK
		if r.Method == http.MethodPatch {
			status = http.StatusNoContent
		}
		w.WriteHeader(status)
		return nil
	}
	h := s.tus.HeadFile
	if r.Method == http.MethodPatch {
		h = s.tus.PatchFile
	}
	// tusd takes the upload id from what is left of the path.
	s.serveTus(w, r, http.StripPrefix(uploadsRoute, s.tus.Middleware(http.HandlerFunc(h))))
	return nil
}

// beginUpload checks a new upload's metadata and records it (tusd's pre-create hook).
func (s *Server) beginUpload(hook tus.HookEvent) (tus.HTTPResponse, tus.FileInfoChanges, error) {
	e := enclosureOf(hook.Context)
	meta := hook.Upload.MetaData
	fields := map[string]string{}
	sid, err := strconv.ParseInt(meta["session_id"], 10, 64)
	if err != nil || sid <= 0 {
		fields["session_id"] = "must be a session id (a positive integer)"
	}
	name := meta["filename"]
	if name == "" || strings.ContainsAny(name, "/\\\x00") || len(name) > 255 {
		fields["filename"] = "must be a file name without a directory"
	}
	if !sha256Hex.MatchString(meta["sha256"]) {
		fields["sha256"] = "must be the file's SHA-256 in 64 lowercase hex digits"
	}
	if hook.Upload.SizeIsDeferred {
		fields["Upload-Length"] = "is required: the size must be known when the upload begins"
	}
	if len(fields) > 0 {
		return tus.HTTPResponse{}, tus.FileInfoChanges{}, s.tusError(hook.Context, invalid(fields))
	}
	id := auth.RandomID()
	err = s.files.BeginUpload(hook.Context, store.NewUpload{SessionID: sid, DeviceID: e.ID, Name: name,
		Size: hook.Upload.Size, SHA256: meta["sha256"], UploadID: id})
	switch {
	case errors.Is(err, store.ErrNotFound):
		err = errorf(http.StatusNotFound, "enclosure %s is not in recording session %d", e.Name, sid)
	case errors.Is(err, store.ErrNotRecordingFile):
		err = invalid(map[string]string{"filename": err.Error()})
	case errors.Is(err, store.ErrAlreadyVerified):
		err = errorf(http.StatusConflict, "%s is %s", name, store.ErrAlreadyVerified)
	case errors.Is(err, store.ErrVerifiedOtherContent):
		// Not a retry: other bytes under a verified name. Keep a trace of who tried.
		refusal := store.AuditEntry{Action: recording.AuditUploadRefusedVerified, Subject: fmt.Sprintf("session %d enclosure %s file %s", sid, e.Name, name),
			Detail: "sha256 " + meta["sha256"]}
		if aerr := s.users.Audit(context.WithoutCancel(hook.Context), refusal); aerr != nil {
			s.log.ErrorContext(hook.Context, "writing audit log", "action", recording.AuditUploadRefusedVerified, "error", aerr.Error())
		}
		s.log.WarnContext(hook.Context, "upload refused: the file is verified", "session", sid, "enclosure", e.Name, "file", name)
		err = errorf(http.StatusConflict, "%s is %s", name, store.ErrVerifiedOtherContent)
	}
	if err != nil {
		return tus.HTTPResponse{}, tus.FileInfoChanges{}, s.tusError(hook.Context, err)
	}
	return tus.HTTPResponse{}, tus.FileInfoChanges{ID: id}, nil
}

// finishUpload moves a complete upload into storage and records it UPLOADED before the final
// PATCH is answered (tusd's pre-finish hook). It runs to the end even if the agent hangs up.
func (s *Server) finishUpload(hook tus.HookEvent) (tus.HTTPResponse, error) {
	ctx := context.WithoutCancel(hook.Context)
	f, err := s.files.UploadFile(ctx, hook.Upload.ID)
	if err == nil && f.State != recording.FileUploading {
		// Finished (or verified) already: its bytes in storage stay as they are.
		err = errorf(http.StatusConflict, "upload %s of %s is %s already", hook.Upload.ID, f.Name, f.State)
	}
	if err == nil {
		err = s.storeUpload(ctx, f, enclosureOf(hook.Context).Name, hook.Upload)
	}
	if err != nil {
		return tus.HTTPResponse{}, s.tusError(ctx, err)
	}
	return tus.HTTPResponse{}, nil
}

// storeUpload moves the complete staged upload of f into storage and records it UPLOADED.
func (s *Server) storeUpload(ctx context.Context, f store.SessionFile, enclosure string, up tus.FileInfo) error {
	key := storage.Key(f.SessionID, enclosure, f.Name)
	staged := up.Storage[filestore.StorageKeyPath]
	if err := s.storage.PutFile(ctx, key, staged); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	if _, err := s.files.FinishUpload(ctx, up.ID, workflows.DeviceWorkflowID(f.SessionID, f.DeviceID), s.now()); err != nil {
		return err
	}
	_ = os.Remove(staged)
	_ = os.Remove(filepath.Join(s.cfg.Uploads.StagingDir, up.ID+".info"))
	_ = os.Remove(filepath.Join(s.cfg.Uploads.StagingDir, up.ID+".lock"))
	s.metrics.uploaded.WithLabelValues("files").Inc()
	s.metrics.uploaded.WithLabelValues("bytes").Add(float64(up.Size))
	s.log.InfoContext(ctx, "file uploaded", "session", f.SessionID, "enclosure", enclosure, "file", f.Name, "bytes", up.Size)
	return nil
}

// finishStaged completes an upload whose bytes all arrived but whose move into storage
// failed (a full disk when the last PATCH came): the agent's next HEAD or PATCH finishes it.
// It reports whether the upload is now complete.
func (s *Server) finishStaged(ctx context.Context, f store.SessionFile, enclosure string) (bool, error) {
	// Under the upload's lock, as tusd's own requests: a final PATCH may be finishing it now.
	lock, err := s.staging.locker.NewLock(*f.UploadID)
	if err != nil {
		return false, nil
	}
	lockCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := lock.Lock(lockCtx, func() {}); err != nil {
		return false, nil // busy with a PATCH: tusd answers (and the PATCH finishes it)
	}
	defer lock.Unlock() //nolint:errcheck
	if f, err = s.files.UploadFile(ctx, *f.UploadID); err != nil || f.State != recording.FileUploading {
		return err == nil, err
	}
	up, err := s.staging.GetUpload(ctx, *f.UploadID)
	if err != nil {
		return false, nil // tusd answers for a missing or broken upload (404)
	}
	info, err := up.GetInfo(ctx)
	if err != nil || info.SizeIsDeferred || info.Offset < info.Size {
		return false, nil
	}
	return true, s.storeUpload(ctx, f, enclosure, info)
}

// tusError turns an error into tusd's error response, in our JSON error format; internal
// details stay in the log.
func (s *Server) tusError(ctx context.Context, err error) error {
	e := statusOf(err)
	if e.Status >= 500 {
		s.log.ErrorContext(ctx, "upload failed", "error", err.Error())
	}
	body, _ := json.Marshal(&Error{Message: e.Message, Fields: e.Fields})
	te := tus.NewError("ERR_MBA", e.Message, e.Status)
	te.HTTPResponse.Body = string(body)
	te.HTTPResponse.Header = tus.HTTPHeader{"Content-Type": "application/json"}
	if e.RetryAfter > 0 {
		te.HTTPResponse.Header["Retry-After"] = strconv.Itoa(int((e.RetryAfter + time.Second - 1) / time.Second))
	}
	return te
}

// downloadFile streams a stored file to the holder of a signed link (see fileLinks).
func (s *Server) downloadFile(w http.ResponseWriter, r *http.Request) error {
	sid, err := idParam(r, "sid", "Recording session")
	if err != nil {
		return err
	}
	key := storage.Key(sid, chi.URLParam(r, "device"), chi.URLParam(r, "name"))
	badLink := errorf(http.StatusUnauthorized, "the download link is invalid or has expired; open the session again for a fresh one")
	claims, err := s.tokens.ParseDownload(r.URL.Query().Get("token"), key)
	if err != nil {
		return badLink
	}
	// The link is the user's: it ends when the user is disabled (a new token generation).
	u, err := s.users.UserByID(r.Context(), claims.Identity.UID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (u.Disabled || u.TokenGeneration != claims.Generation)) {
		return badLink
	}
	if err != nil {
		return err
	}
	if s.storage == nil {
		return errorf(http.StatusServiceUnavailable, "file storage is not configured on this server")
	}
	info, err := s.storage.Stat(r.Context(), key)
	if errors.Is(err, storage.ErrNotFound) {
		return errorf(http.StatusNotFound, "%s is not in storage", key)
	}
	if err != nil {
		return err
	}
	body, err := s.storage.Open(r.Context(), key, 0)
	if err != nil {
		return err
	}
	defer body.Close()
	// The server's write timeout is for API calls, not for tens of GB.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", chi.URLParam(r, "name")))
	// Once the body has started there is no status left to send: a broken copy shows as a
	// short download (Content-Length tells the client).
	_, _ = io.Copy(w, body)
	return nil
}

// fileLinks adds signed download links to files of a session, for user u.
func (s *Server) fileLinks(u store.User, sessionID int64, enclosure string, files []FileView) {
	for i, f := range files {
		if f.UploadedAt == nil {
			continue
		}
		key := storage.Key(sessionID, enclosure, f.Name)
		token, err := s.tokens.IssueDownload(u.ID, u.TokenGeneration, key, s.cfg.Uploads.DownloadTTL)
		if err != nil {
			continue
		}
		files[i].DownloadURL = filesRoute + fmt.Sprintf("%d/%s/%s?token=%s", sessionID, url.PathEscape(enclosure),
			url.PathEscape(f.Name), url.QueryEscape(token))
	}
}
