package activities

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/storage"
	"github.com/jax-mba/mba/protocol"
)

// FileManifest is what the server knows of a recording's files, in the activities' own types
// (worker.StoreDeps adapts the store to it).
type FileManifest interface {
	DeviceFiles(ctx context.Context, sessionID, deviceID int64) ([]KnownFile, error)
	SessionFile(ctx context.Context, sessionID, deviceID int64, name string) (KnownFile, error)
	ExpectFiles(ctx context.Context, sessionID, deviceID int64, names []string) error
	RecordFileResult(ctx context.Context, r FileResult) error
}

// KnownFile is what the manifest knows of one file of an enclosure's recording (FileStates'
// result). Its JSON is that of the manifest rows recorded in histories; the session and the
// enclosure are the request's.
type KnownFile struct {
	Name       string              `json:"name"`
	State      recording.FileState `json:"state"`
	Reason     string              `json:"reason"`
	Expected   bool                `json:"expected"`
	Size       *int64              `json:"size"`
	SHA256     *string             `json:"sha256"`
	Uploads    int                 `json:"uploads"`
	Reupload   bool                `json:"reupload"`
	UploadedAt *time.Time          `json:"uploaded_at"`
	VerifiedAt *time.Time          `json:"verified_at"`
	UpdatedAt  time.Time           `json:"updated_at"`
}

// FileResult is what verification found for a file (RecordFileResult's input).
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

// FileReader reads stored files.
type FileReader interface {
	Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (storage.Info, error)
}

// Files holds the activities that verify a recording's uploaded files.
type Files struct {
	Manifest FileManifest
	Storage  FileReader // nil: no storage configured; verification fails for good
}

// FileRef names one file of an enclosure's recording.
type FileRef struct {
	SessionID int64
	DeviceID  int64
	Enclosure string // the enclosure's name, part of the storage key
	Name      string
}

func (f FileRef) key() string { return storage.Key(f.SessionID, f.Enclosure, f.Name) }

// Verification outcomes besides recording.FileVerified and recording.FileCorrupt.
const (
	// FileAbsent: the manifest says uploaded, but storage has no such file.
	FileAbsent recording.FileState = "ABSENT"
)

// Verification is what VerifyFile found.
type Verification struct {
	State  recording.FileState // VERIFIED, CORRUPT or ABSENT
	Reason string
	Upload int // the upload it checked (the manifest's count of completed uploads)
}

// hashProgress is VerifyFile's heartbeat: where a crashed attempt got to, so the next one
// resumes there instead of hashing tens of GB again.
type hashProgress struct {
	Upload int
	Offset int64
	State  []byte // the SHA-256 state at Offset
}

// hashChunk is read between heartbeats.
const hashChunk = 64 << 20

var errNoStorage = temporal.NewNonRetryableApplicationError("no file storage is configured", "NoStorage", nil)

// VerifyFile recomputes a stored file's SHA-256 and compares size and checksum with what the
// agent declared. Storage errors are returned (retried with backoff); a mismatch is a result.
func (a *Files) VerifyFile(ctx context.Context, ref FileRef) (Verification, error) {
	if a.Storage == nil {
		return Verification{}, errNoStorage
	}
	f, err := a.Manifest.SessionFile(ctx, ref.SessionID, ref.DeviceID, ref.Name)
	if err != nil {
		return Verification{}, err
	}
	if f.Size == nil || f.SHA256 == nil {
		return Verification{State: FileAbsent, Reason: "never uploaded", Upload: f.Uploads}, nil
	}
	info, err := a.Storage.Stat(ctx, ref.key())
	if errors.Is(err, storage.ErrNotFound) {
		return Verification{State: FileAbsent, Reason: "not in storage", Upload: f.Uploads}, nil
	}
	if err != nil {
		return Verification{}, err
	}
	if info.Size != *f.Size {
		return Verification{State: recording.FileCorrupt, Upload: f.Uploads,
			Reason: fmt.Sprintf("stored size %d bytes, the agent sent %d", info.Size, *f.Size)}, nil
	}
	sum, err := a.hash(ctx, ref.key(), f.Uploads)
	if errors.Is(err, storage.ErrNotFound) {
		return Verification{State: FileAbsent, Reason: "vanished from storage while being verified", Upload: f.Uploads}, nil
	}
	if err != nil {
		return Verification{}, err
	}
	if sum != *f.SHA256 {
		return Verification{State: recording.FileCorrupt, Upload: f.Uploads,
			Reason: fmt.Sprintf("stored SHA-256 %s, the agent sent %s", sum[:12], (*f.SHA256)[:min(12, len(*f.SHA256))])}, nil
	}
	return Verification{State: recording.FileVerified, Reason: fmt.Sprintf("%d bytes, SHA-256 %s", info.Size, sum), Upload: f.Uploads}, nil
}

// hash streams the file through SHA-256, resuming from the last heartbeat of an earlier
// attempt at the same upload.
func (a *Files) hash(ctx context.Context, key string, upload int) (string, error) {
	h := sha256.New()
	var offset int64
	var p hashProgress
	if activity.HasHeartbeatDetails(ctx) && activity.GetHeartbeatDetails(ctx, &p) == nil && p.Upload == upload {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(p.State); err == nil {
			offset = p.Offset
		} else {
			h.Reset()
		}
	}
	r, err := a.Storage.Open(ctx, key, offset)
	if err != nil {
		return "", err
	}
	defer r.Close()
	buf := make([]byte, 1<<20)
	for {
		n, err := io.CopyBuffer(h, io.LimitReader(r, hashChunk), buf)
		offset += n
		state, merr := h.(encoding.BinaryMarshaler).MarshalBinary()
		if merr == nil {
			activity.RecordHeartbeat(ctx, hashProgress{Upload: upload, Offset: offset, State: state})
		}
		if err != nil {
			return "", err
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if n < hashChunk {
			return hex.EncodeToString(h.Sum(nil)), nil
		}
	}
}

// SegmentRequest asks for the files of one recording segment.
type SegmentRequest struct {
	SessionID int64
	DeviceID  int64
	Enclosure string
	Prefix    string // the file name prefix of the segment (protocol.FileNamePrefix)
	Hourly    bool
	Reported  int64 // seconds the enclosure reported for the whole recording (for the coverage check)
}

// SegmentPlan lists the segment's video files and what its timestamp files say.
type SegmentPlan struct {
	Videos   []string
	Recorded time.Duration // from Ptimestamps.txt; 0 if unknown
	Problem  string        // why the list may be incomplete, or ""
}

// maxStartTimestamp bounds the read of Pstart_timestamp.txt (one line).
const maxStartTimestamp = 4096

// PlanSegment works out the segment's video files: P.avi, or one fragment per local hour from
// the start time in Pstart_timestamp.txt for as long as Ptimestamps.txt says was recorded.
// Fragments that arrived but were not foreseen are included too. The list goes into the
// manifest as expected files.
func (a *Files) PlanSegment(ctx context.Context, req SegmentRequest) (SegmentPlan, error) {
	if a.Storage == nil {
		return SegmentPlan{}, errNoStorage
	}
	ref := FileRef{SessionID: req.SessionID, DeviceID: req.DeviceID, Enclosure: req.Enclosure}
	var plan SegmentPlan
	var problems []string
	recorded, err := a.lastTimestamp(ctx, ref, req.Prefix+"timestamps.txt")
	if err != nil {
		problems = append(problems, err.Error())
	}
	plan.Recorded = recorded
	if !req.Hourly {
		plan.Videos = []string{req.Prefix + ".avi"}
	} else {
		start, err := a.startTimestamp(ctx, ref, req.Prefix+"start_timestamp.txt")
		switch {
		case err != nil:
			problems = append(problems, err.Error()+"; only the fragments received are checked")
		default:
			plan.Videos = protocol.FragmentNames(req.Prefix, start, recorded)
		}
		known, err := a.Manifest.DeviceFiles(ctx, req.SessionID, req.DeviceID)
		if err != nil {
			return plan, err
		}
		for _, f := range known {
			if kind, ok := protocol.MatchFile(req.Prefix, f.Name); ok && kind == protocol.FileFragment && !slices.Contains(plan.Videos, f.Name) {
				plan.Videos = append(plan.Videos, f.Name)
			}
		}
		slices.Sort(plan.Videos)
	}
	if len(problems) > 0 {
		plan.Problem = fmt.Sprint(problems)
	}
	return plan, a.Manifest.ExpectFiles(ctx, req.SessionID, req.DeviceID, plan.Videos)
}

// startTimestamp reads Pstart_timestamp.txt from storage.
func (a *Files) startTimestamp(ctx context.Context, ref FileRef, name string) (time.Time, error) {
	ref.Name = name
	r, err := a.Storage.Open(ctx, ref.key(), 0)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", name, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxStartTimestamp))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", name, err)
	}
	return protocol.ParseStartTimestamp(data)
}

// lastTimestamp reads the end of Ptimestamps.txt (which has a line per frame: only its tail).
func (a *Files) lastTimestamp(ctx context.Context, ref FileRef, name string) (time.Duration, error) {
	ref.Name = name
	info, err := a.Storage.Stat(ctx, ref.key())
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	r, err := a.Storage.Open(ctx, ref.key(), max(0, info.Size-4096))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	defer r.Close()
	tail, err := io.ReadAll(r)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	if info.Size > 4096 {
		// The first line of the tail may be cut; the last is whole.
		if i := bytes.IndexByte(tail, '\n'); i >= 0 {
			tail = tail[i+1:]
		}
	}
	return protocol.ParseLastTimestamp(tail)
}

// FileStates lists what the manifest knows of an enclosure's files (a local activity).
func (a *Files) FileStates(ctx context.Context, ref FileRef) ([]KnownFile, error) {
	return a.Manifest.DeviceFiles(ctx, ref.SessionID, ref.DeviceID)
}

// RecordFileResult writes a verification result (a local activity).
func (a *Files) RecordFileResult(ctx context.Context, r FileResult) error {
	return a.Manifest.RecordFileResult(ctx, r)
}

// ExpectRequest lists files a recording must produce.
type ExpectRequest struct {
	SessionID, DeviceID int64
	Names               []string
}

// ExpectFiles records expected files in the manifest (a local activity).
func (a *Files) ExpectFiles(ctx context.Context, req ExpectRequest) error {
	return a.Manifest.ExpectFiles(ctx, req.SessionID, req.DeviceID, req.Names)
}
