package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/tus/tusd/v2/pkg/filelocker"
	"github.com/tus/tusd/v2/pkg/filestore"
	tus "github.com/tus/tusd/v2/pkg/handler"
)

// stagingStore is tusd's file store with the faults of a full or failing disk made safe:
// an upload's .info is written whole or not at all (temp file and rename; tusd writes it in
// place, and a full disk left it empty, every HEAD a 500 "unexpected end of JSON input"
// forever), an upload whose staged files are broken anyway is gone (404, so the agent
// creates a new one) rather than an error forever, and disk errors reach the agent as a
// clear status (507 when full) without the server's paths.
type stagingStore struct {
	files  filestore.FileStore
	locker stagingLocker
	fail   func(ctx context.Context, err error) error // the API's error response (Server.tusError)
}

// stagingLocker is tusd's file locker, its errors (a lock file on a full disk) mapped too.
type stagingLocker struct {
	filelocker.FileLocker
	fail func(ctx context.Context, err error) error
}

func (l stagingLocker) UseIn(composer *tus.StoreComposer) { composer.UseLocker(l) }

func (l stagingLocker) NewLock(id string) (tus.Lock, error) {
	lock, err := l.FileLocker.NewLock(id)
	return stagedLock{lock: lock, fail: l.fail}, err
}

type stagedLock struct {
	lock tus.Lock
	fail func(ctx context.Context, err error) error
}

func (l stagedLock) Unlock() error { return l.lock.Unlock() }

func (l stagedLock) Lock(ctx context.Context, requestRelease func()) error {
	err := l.lock.Lock(ctx, requestRelease)
	var tusErr tus.Error
	if err != nil && !errors.As(err, &tusErr) && ctx.Err() == nil {
		err = l.fail(ctx, fmt.Errorf("locking a staged upload: %w", err))
	}
	return err
}

func (s stagingStore) infoPath(id string) string { return filepath.Join(s.files.Path, id+".info") }
func (s stagingStore) binPath(id string) string  { return filepath.Join(s.files.Path, id) }

// NewUpload creates the empty staged file and then its .info, atomically.
func (s stagingStore) NewUpload(ctx context.Context, info tus.FileInfo) (tus.Upload, error) {
	bin, infoPath := s.binPath(info.ID), s.infoPath(info.ID)
	info.Storage = map[string]string{"Type": "filestore", filestore.StorageKeyPath: bin, filestore.StorageKeyInfoPath: infoPath}
	err := writeNew(bin, nil)
	if err == nil {
		var data []byte
		if data, err = json.Marshal(info); err == nil {
			err = writeAtomically(infoPath, data)
		}
	}
	if err != nil {
		_ = os.Remove(bin)
		return nil, s.fail(ctx, fmt.Errorf("staging upload %s: %w", info.ID, err))
	}
	return s.GetUpload(ctx, info.ID)
}

// GetUpload reads a staged upload; one whose .info cannot be read as an upload is removed
// and reported gone.
func (s stagingStore) GetUpload(ctx context.Context, id string) (tus.Upload, error) {
	up, err := s.files.GetUpload(ctx, id)
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return stagedUpload{Upload: up, fail: s.fail}, nil
	case errors.Is(err, tus.ErrNotFound):
		return nil, err
	case errors.As(err, &syntax), errors.As(err, &typeErr), errors.Is(err, io.ErrUnexpectedEOF):
		_ = os.Remove(s.infoPath(id))
		_ = os.Remove(s.binPath(id))
		return nil, tus.ErrNotFound
	}
	return nil, s.fail(ctx, fmt.Errorf("reading staged upload %s: %w", id, err))
}

// stagedUpload maps the errors of writing a chunk (a full disk, most often).
type stagedUpload struct {
	tus.Upload
	fail func(ctx context.Context, err error) error
}

func (u stagedUpload) WriteChunk(ctx context.Context, offset int64, src io.Reader) (int64, error) {
	n, err := u.Upload.WriteChunk(ctx, offset, src)
	var tusErr tus.Error
	if err != nil && !errors.As(err, &tusErr) && ctx.Err() == nil {
		// What was written stays: the agent resumes from the offset HEAD reports.
		err = u.fail(ctx, fmt.Errorf("writing a staged upload: %w", err))
	}
	return n, err
}

// writeNew creates path with data, failing if it exists.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeAtomically writes data to path through a temp file beside it, so path holds either
// nothing or all of data.
func writeAtomically(path string, data []byte) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	err := writeNew(tmp, data)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
