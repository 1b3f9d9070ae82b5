// Package storage keeps verified video files, behind one small interface with two backends:
// a directory (the default; in most labs an NFS mount) and S3-compatible object storage.
//
// Every file lives under a key of the form sessions/<session id>/<enclosure name>/<file name>
// (Key). A file becomes visible under its key only once it is complete, and everything is
// streamed: files can be tens of gigabytes, and none is ever held in memory.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// ErrNotFound is returned (possibly wrapped) by Open and Stat for a key that holds no file.
var ErrNotFound = errors.New("storage: no such file")

// Key is the layout of every stored file: sessions/<session id>/<enclosure name>/<file name>.
// It does not validate; every Storage method rejects a key that is not valid (e.g. an
// enclosure or file name that is empty, "..", or contains a slash).
func Key(sessionID int64, enclosure, file string) string {
	return "sessions/" + strconv.FormatInt(sessionID, 10) + "/" + enclosure + "/" + file
}

// Info describes a stored file.
type Info struct {
	Size    int64
	ModTime time.Time
}

// Storage is where verified video files are kept. Implementations are safe for concurrent use.
type Storage interface {
	// Put stores exactly size bytes read from r under key. The file becomes visible under key only
	// once complete (dir: temp file in the same directory + fsync + rename; s3: PutObject, which is atomic).
	// A short or failing reader leaves nothing visible and no temp file behind.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// PutFile moves the local file at path into storage under key (dir: rename when on the same
	// filesystem, else copy like Put then remove; s3: upload then remove the local file).
	PutFile(ctx context.Context, key, path string) error
	// Open reads the file from offset (for resumable hashing). ErrNotFound if absent.
	Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (Info, error) // ErrNotFound if absent
	Delete(ctx context.Context, key string) error       // no error if absent
	String() string                                     // "dir /path" or "s3 endpoint/bucket/prefix", for logs (never secrets)
}

// Config selects and configures a backend (the storage section of the service's settings).
type Config struct {
	Kind string // "dir" or "s3"
	Dir  string

	S3Endpoint, S3Bucket, S3Region, S3Prefix, S3AccessKey, S3SecretKey string
	S3TLS                                                              bool
}

// New validates cfg (clear error naming the bad setting), creates the directory / checks the
// bucket exists (creates it if missing), and returns the backend.
func New(ctx context.Context, cfg Config) (Storage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Kind == "s3" {
		return newS3(ctx, cfg)
	}
	return newDir(cfg.Dir)
}

// Validate returns why the settings cannot work (naming the setting), or nil; it touches
// neither the disk nor the network, so a binary can check its configuration first.
func (cfg Config) Validate() error {
	switch cfg.Kind {
	case "dir":
		if cfg.Dir == "" {
			return errors.New("storage: dir is empty (the root directory of dir storage)")
		}
		return nil
	case "s3":
		return checkS3(cfg)
	case "":
		return errors.New("storage: kind is empty (want dir or s3)")
	default:
		return fmt.Errorf("storage: kind %q is not dir or s3", cfg.Kind)
	}
}

// Longest key and key segment accepted: S3 allows 1024 bytes per key, and most file
// systems 255 bytes per name.
const (
	maxKeyLen     = 1024
	maxSegmentLen = 255
)

// ValidateKey reports why key cannot name a stored file, or nil if it can. A key is a
// relative, slash-separated path of non-empty segments in UTF-8, with no "." or ".." segment,
// no segment starting with a dot (temp files in dir storage start with one, so they can never
// be mistaken for a stored file), no backslash and no NUL or other control character.
func ValidateKey(key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("storage: invalid key %q: %s", key, err)
	}
	return nil
}

func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty")
	case len(key) > maxKeyLen:
		return fmt.Errorf("longer than %d bytes", maxKeyLen)
	case !utf8.ValidString(key):
		return errors.New("not valid UTF-8")
	case strings.HasPrefix(key, "/"):
		return errors.New("absolute path (starts with /)")
	case strings.Contains(key, `\`):
		return errors.New("contains a backslash")
	case strings.Contains(key, "\x00"):
		return errors.New("contains a NUL byte")
	}
	for _, c := range key {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("contains control character %U", c)
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return errors.New("empty path segment (leading, trailing or doubled slash)")
		case seg == "..":
			return errors.New(`".." path segment`)
		case seg == ".":
			return errors.New(`"." path segment`)
		case strings.HasPrefix(seg, "."):
			return fmt.Errorf("path segment %q starts with a dot", seg)
		case len(seg) > maxSegmentLen:
			return fmt.Errorf("path segment longer than %d bytes", maxSegmentLen)
		}
	}
	return nil
}

// exactReader passes on exactly size bytes of r. It fails with io.ErrUnexpectedEOF if r ends
// early, and with an error if r holds more than size bytes (checked before the last bytes are
// returned, so a consumer that stops at size still sees the failure). It also stops when ctx ends.
type exactReader struct {
	ctx       context.Context
	r         io.Reader
	remaining int64
	size      int64
	err       error

	mu     sync.Mutex
	failed error // err unless io.EOF, for Failure (another goroutine may be reading)
}

func newExactReader(ctx context.Context, r io.Reader, size int64) *exactReader {
	return &exactReader{ctx: ctx, r: r, remaining: size, size: size}
}

// Failure is the error the reader failed with, if any: the cause, when a client library
// reports the failure as something else (an HTTP body shorter than its Content-Length).
func (e *exactReader) Failure() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.failed
}

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.read(p)
	if err != nil && err != io.EOF {
		e.mu.Lock()
		if e.failed == nil {
			e.failed = err
		}
		e.mu.Unlock()
	}
	return n, err
}

func (e *exactReader) read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if err := e.ctx.Err(); err != nil {
		e.err = err
		return 0, err
	}
	if e.remaining == 0 {
		e.err = e.checkEnd()
		if e.err == nil {
			e.err = io.EOF
		}
		return 0, e.err
	}
	if int64(len(p)) > e.remaining {
		p = p[:e.remaining]
	}
	n, err := e.r.Read(p)
	e.remaining -= int64(n)
	if e.remaining == 0 {
		if endErr := e.checkEnd(); endErr != nil {
			e.err = endErr
			return 0, endErr
		}
		return n, nil
	}
	if err == io.EOF {
		e.err = fmt.Errorf("storage: reader ended after %d of %d bytes: %w", e.size-e.remaining, e.size, io.ErrUnexpectedEOF)
		return n, e.err
	}
	if err != nil {
		e.err = err
	}
	return n, err
}

// checkEnd is called once size bytes have been read: r must be at its end.
func (e *exactReader) checkEnd() error {
	var b [1]byte
	for range 100 { // readers may return 0, nil a few times
		n, err := e.r.Read(b[:])
		if n > 0 {
			return fmt.Errorf("storage: reader holds more than the %d bytes announced", e.size)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// openRegular opens the local file PutFile is to store under key.
func openRegular(key, path string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("storage: put file %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("storage: put file %s: %w", key, err)
	}
	return f, fi, nil
}

// IsFull reports an error of a full disk or an exhausted quota.
func IsFull(err error) bool { return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) }
