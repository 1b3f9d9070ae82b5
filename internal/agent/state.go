package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// stateFileName is the agent's only file in the state directory.
const stateFileName = "agent-state.json"

// hashEntry is a cached SHA-256 of a file as it was at (size, mtime).
type hashEntry struct {
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	SHA256  string `json:"sha256"`
}

// stateData is what the state file holds.
type stateData struct {
	// Uploads maps uploadKey(session, file, sha256) to the upload's URL.
	Uploads map[string]string `json:"uploads"`
	// Hashes maps a file's path to its cached hash.
	Hashes map[string]hashEntry `json:"hashes"`
}

// state is the persistent state, safe for concurrent use; every change is written through
// (atomically: a temporary file renamed over the old one).
type state struct {
	mu   sync.Mutex
	path string
	data stateData
}

func uploadKey(session int64, name, sha string) string {
	return strconv.FormatInt(session, 10) + "/" + name + "/" + sha
}

// loadState reads the state file; a missing file is an empty state, an unreadable one is
// reported (and replaced on the next write) rather than stopping the agent.
func loadState(dir string) (*state, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	s := &state{path: filepath.Join(dir, stateFileName)}
	var err error
	if b, rerr := os.ReadFile(s.path); rerr == nil {
		if jerr := json.Unmarshal(b, &s.data); jerr != nil {
			err = fmt.Errorf("state file %s unreadable, starting afresh: %w", s.path, jerr)
			s.data = stateData{}
		}
	} else if !os.IsNotExist(rerr) {
		return nil, fmt.Errorf("state file: %w", rerr)
	}
	if s.data.Uploads == nil {
		s.data.Uploads = map[string]string{}
	}
	if s.data.Hashes == nil {
		s.data.Hashes = map[string]hashEntry{}
	}
	return s, err
}

// saveLocked writes the state; the caller holds mu.
func (s *state) saveLocked() error {
	b, err := json.MarshalIndent(&s.data, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".agent-state-*.json")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), s.path)
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
	}
	return werr
}

func (s *state) uploadURL(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data.Uploads[key]
}

func (s *state) setUploadURL(key, url string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if url == "" {
		if _, ok := s.data.Uploads[key]; !ok {
			return nil
		}
		delete(s.data.Uploads, key)
	} else {
		s.data.Uploads[key] = url
	}
	return s.saveLocked()
}

func (s *state) cachedHash(path string, size int64, mtime time.Time) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.data.Hashes[path]
	if !ok || h.Size != size || h.MtimeNs != mtime.UnixNano() {
		return "", false
	}
	return h.SHA256, true
}

func (s *state) setHash(path string, size int64, mtime time.Time, sum string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data.Hashes[path] = hashEntry{Size: size, MtimeNs: mtime.UnixNano(), SHA256: sum}
	return s.saveLocked()
}

// forgetHashes drops cached hashes of files that no longer exist.
func (s *state) forgetHashes(gone func(path string) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed := false
	for p := range s.data.Hashes {
		if gone(p) {
			delete(s.data.Hashes, p)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return s.saveLocked()
}

// hashFile streams the file through SHA-256 and returns the digest with the size and mtime
// it had; if the file changed while it was read, it is read again (up to three times).
func hashFile(ctx context.Context, path string) (sum string, size int64, mtime time.Time, err error) {
	buf := make([]byte, 1<<20)
	for range 3 {
		f, err := os.Open(path)
		if err != nil {
			return "", 0, time.Time{}, err
		}
		before, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return "", 0, time.Time{}, err
		}
		h := sha256.New()
		n, err := io.CopyBuffer(h, &ctxReader{ctx: ctx, r: io.LimitReader(f, before.Size())}, buf)
		_ = f.Close()
		if err != nil {
			return "", 0, time.Time{}, err
		}
		after, err := os.Stat(path)
		if err != nil {
			return "", 0, time.Time{}, err
		}
		if n == before.Size() && after.Size() == before.Size() && after.ModTime().Equal(before.ModTime()) {
			return hex.EncodeToString(h.Sum(nil)), n, before.ModTime(), nil
		}
	}
	return "", 0, time.Time{}, fmt.Errorf("%s keeps changing while it is hashed", path)
}

// ctxReader stops reading when the context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
