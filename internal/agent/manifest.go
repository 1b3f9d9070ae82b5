package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// File states the server reports in the manifest.
const (
	StatePending   = "PENDING"   // expected, nothing received
	StateUploading = "UPLOADING" // an upload exists: resume it at UploadURL
	StateUploaded  = "UPLOADED"  // received, being verified
	StateVerified  = "VERIFIED"
	StateCorrupt   = "CORRUPT"
	StateMissing   = "MISSING"
)

// Manifest is the server's view of this enclosure's sessions (GET /api/agent/manifest).
type Manifest struct {
	Enclosure string            `json:"enclosure"`
	Sessions  []ManifestSession `json:"sessions"`
}

// ManifestSession is one recording session of the enclosure.
type ManifestSession struct {
	SessionID      int64          `json:"session_id"`
	StartedAt      time.Time      `json:"started_at"`
	EndedAt        *time.Time     `json:"ended_at"`
	Recording      bool           `json:"recording"`
	FragmentHourly bool           `json:"fragment_hourly"`
	Prefixes       []string       `json:"prefixes"` // as the client names files ("_" included); later = resumed segments
	Files          []ManifestFile `json:"files"`
}

// ManifestFile is what the server knows of one file.
type ManifestFile struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	UploadURL string `json:"upload_url"`
	Reupload  bool   `json:"reupload"`
}

// file returns the server's entry for name, if any.
func (s *ManifestSession) file(name string) (ManifestFile, bool) {
	for _, f := range s.Files {
		if f.Name == name {
			return f, true
		}
	}
	return ManifestFile{}, false
}

// validPrefix refuses prefixes that cannot be a file-name prefix (a path separator, NUL, "."
// or ".."), so a bad manifest can never make the agent look outside the date directories.
func validPrefix(p string) bool {
	return p != "" && p != "." && p != ".." && !strings.ContainsAny(p, "/\\\x00")
}

// decodeManifest parses and checks a manifest; sessions with unusable prefixes lose them.
func decodeManifest(r io.Reader) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(io.LimitReader(r, 32<<20))
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	for i := range m.Sessions {
		s := &m.Sessions[i]
		kept := s.Prefixes[:0]
		for _, p := range s.Prefixes {
			if validPrefix(p) {
				kept = append(kept, p)
			}
		}
		s.Prefixes = kept
	}
	return &m, nil
}

// HTTPError is a response the agent did not expect, with the server's reason.
type HTTPError struct {
	Op     string
	Status int
	Reason string
}

func (e *HTTPError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("%s: HTTP %d", e.Op, e.Status)
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.Op, e.Status, e.Reason)
}

// temporary says whether trying again later may help (5xx, 408, 429).
func (e *HTTPError) temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests
}

// httpError reads a short reason from the body: the "error" field of a JSON body, else its text.
func httpError(op string, resp *http.Response) *HTTPError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	reason := strings.TrimSpace(string(body))
	var j struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &j) == nil && j.Error != "" {
		reason = j.Error
	}
	return &HTTPError{Op: op, Status: resp.StatusCode, Reason: reason}
}

// fetchManifest asks the server for this enclosure's manifest.
func (c *client) fetchManifest(ctx context.Context) (*Manifest, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.resolve("/api/agent/manifest"), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return nil, httpError("manifest", resp)
	}
	return decodeManifest(resp.Body)
}
