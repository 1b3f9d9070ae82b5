package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Stored files are readable by the group and others: in a lab the directory is usually an NFS
// mount that analysis machines read.
const (
	dirFileMode = 0o644
	dirDirMode  = 0o755
)

// partialMarker is in the name of every temp file: .<name>.partial-<random>, in the directory
// of the file it becomes. Keys never have a segment starting with a dot, so a temp file can
// never be taken for a stored file.
const partialMarker = ".partial-"

type dirStorage struct {
	root string // absolute, cleaned
}

func newDir(dir string) (*dirStorage, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: dir %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, dirDirMode); err != nil {
		return nil, fmt.Errorf("storage: dir %q: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("storage: dir %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("storage: dir %q is not a directory", dir)
	}
	return &dirStorage{root: abs}, nil
}

func (d *dirStorage) String() string { return "dir " + d.root }

func (d *dirStorage) path(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

func (d *dirStorage) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	dst, err := d.path(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("storage: put %s: negative size %d", key, size)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.write(ctx, key, dst, newExactReader(ctx, r, size))
}

// write copies r into a temp file beside dst, syncs it and renames it to dst.
func (d *dirStorage) write(ctx context.Context, key, dst string, r io.Reader) (err error) {
	dir, name := filepath.Split(dst)
	if err := os.MkdirAll(dir, dirDirMode); err != nil {
		return fmt.Errorf("storage: put %s: %w", key, err)
	}
	f, err := os.CreateTemp(dir, tempPattern(name))
	if err != nil {
		return fmt.Errorf("storage: put %s: %w", key, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("storage: put %s: %w", key, err)
	}
	if err := f.Chmod(dirFileMode); err != nil {
		return fmt.Errorf("storage: put %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("storage: put %s: sync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("storage: put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("storage: put %s: %w", key, err)
	}
	if err := syncDir(dir); err != nil {
		// The file is complete and in place; only its durability across a crash is in doubt.
		return fmt.Errorf("storage: put %s: sync directory: %w", key, err)
	}
	return nil
}

// tempPattern is the os.CreateTemp pattern for a temp file that becomes name.
func tempPattern(name string) string {
	const room = maxSegmentLen - len(partialMarker) - 1 - 20 // dot, and CreateTemp's random digits
	if len(name) > room {
		name = name[:room]
	}
	return "." + name + partialMarker + "*"
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	// Some file systems cannot sync a directory; the rename itself has happened.
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		err = nil
	}
	return err
}

func (d *dirStorage) PutFile(ctx context.Context, key, path string) error {
	dst, err := d.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, fi, err := openRegular(key, path)
	if err != nil {
		return err
	}
	defer f.Close()
	// The data must be on disk before the name is: a rename is durable before the data otherwise.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("storage: put file %s: sync %s: %w", key, path, err)
	}
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, dirDirMode); err != nil {
		return fmt.Errorf("storage: put file %s: %w", key, err)
	}
	err = os.Rename(path, dst)
	if err == nil {
		_ = os.Chmod(dst, dirFileMode)
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("storage: put file %s: sync directory: %w", key, err)
		}
		return nil
	}
	if !errors.Is(err, syscall.EXDEV) {
		return fmt.Errorf("storage: put file %s: %w", key, err)
	}
	// Another file system: copy, then remove the source.
	if err := d.write(ctx, key, dst, newExactReader(ctx, f, fi.Size())); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("storage: put file %s: stored, but removing %s: %w", key, path, err)
	}
	return nil
}

func (d *dirStorage) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("storage: open %s: negative offset %d", key, offset)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, notFound("open", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("storage: open %s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("storage: open %s: %w", key, ErrNotFound)
	}
	if offset > fi.Size() {
		f.Close()
		return nil, fmt.Errorf("storage: open %s: offset %d is beyond the end (%d bytes)", key, offset, fi.Size())
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("storage: open %s: %w", key, err)
		}
	}
	return f, nil
}

func (d *dirStorage) Stat(ctx context.Context, key string) (Info, error) {
	p, err := d.path(key)
	if err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return Info{}, notFound("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("storage: stat %s: %w", key, ErrNotFound)
	}
	return Info{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (d *dirStorage) Delete(ctx context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return fmt.Errorf("storage: delete %s: %w", key, err)
	}
	if fi.IsDir() {
		return nil // a directory is no stored file
	}
	if err := os.Remove(p); err != nil && !isNotExist(err) {
		return fmt.Errorf("storage: delete %s: %w", key, err)
	}
	return nil
}

// isNotExist: the file is absent, or a parent is a file rather than a directory.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func notFound(op, key string, err error) error {
	if isNotExist(err) {
		return fmt.Errorf("storage: %s %s: %w", op, key, ErrNotFound)
	}
	return fmt.Errorf("storage: %s %s: %w", op, key, err)
}
