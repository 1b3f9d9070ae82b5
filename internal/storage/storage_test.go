package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// backend is one Storage under test, with a look behind it.
type backend struct {
	Storage
	// leftovers lists what a failed Put may have left behind: temp files (dir) or
	// incomplete multipart uploads (s3).
	leftovers func(t *testing.T) []string
}

// conformance runs the behaviour every backend must have; open gives each subtest a fresh,
// empty storage.
func conformance(t *testing.T, open func(t *testing.T) backend) {
	ctx := context.Background()
	const key = "sessions/1/enc-01/rec_2026-11-26_10-00-00.mp4"

	// absent asserts that key shows nothing and that no partial upload is left.
	absent := func(t *testing.T, b backend, key string) {
		t.Helper()
		_, err := b.Stat(ctx, key)
		require.ErrorIs(t, err, ErrNotFound)
		_, err = b.Open(ctx, key, 0)
		require.ErrorIs(t, err, ErrNotFound)
		require.Empty(t, b.leftovers(t))
	}

	t.Run("RoundTrip", func(t *testing.T) {
		b := open(t)
		data := []byte("hello, mouse\n")
		before := time.Now()
		require.NoError(t, b.Put(ctx, key, bytes.NewReader(data), int64(len(data))))
		info, err := b.Stat(ctx, key)
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), info.Size)
		require.WithinDuration(t, before, info.ModTime, time.Minute)
		require.Equal(t, data, readAll(t, b, key, 0))
		require.Empty(t, b.leftovers(t))

		require.NoError(t, b.Delete(ctx, key))
		absent(t, b, key)
		require.NoError(t, b.Delete(ctx, key), "deleting an absent key is no error")
	})

	t.Run("EmptyFile", func(t *testing.T) {
		b := open(t)
		require.NoError(t, b.Put(ctx, key, strings.NewReader(""), 0))
		info, err := b.Stat(ctx, key)
		require.NoError(t, err)
		require.Zero(t, info.Size)
		require.Empty(t, readAll(t, b, key, 0))
	})

	t.Run("OpenAtOffset", func(t *testing.T) {
		b := open(t)
		data := []byte("0123456789abcdef")
		require.NoError(t, b.Put(ctx, key, bytes.NewReader(data), int64(len(data))))
		for _, off := range []int64{0, 1, 7, 15, 16} {
			require.Equal(t, data[off:], readAll(t, b, key, int64(off)), "offset %d", off)
		}
		_, err := b.Open(ctx, key, 17)
		require.Error(t, err, "offset past the end")
		require.NotErrorIs(t, err, ErrNotFound)
		_, err = b.Open(ctx, key, -1)
		require.Error(t, err)
	})

	t.Run("NotFound", func(t *testing.T) {
		b := open(t)
		absent(t, b, key)
		_, err := b.Open(ctx, key, 5)
		require.ErrorIs(t, err, ErrNotFound)

		// A key that is a "directory" of stored files, or goes through a stored file, is no file.
		require.NoError(t, b.Put(ctx, key, strings.NewReader("x"), 1))
		for _, k := range []string{"sessions/1/enc-01", "sessions/1", key + "/below"} {
			_, err := b.Stat(ctx, k)
			require.ErrorIs(t, err, ErrNotFound, k)
			_, err = b.Open(ctx, k, 0)
			require.ErrorIs(t, err, ErrNotFound, k)
			require.NoError(t, b.Delete(ctx, k), k)
		}
		_, err = b.Stat(ctx, key)
		require.NoError(t, err, "deleting a parent key must not delete the file")
	})

	t.Run("FailingReader", func(t *testing.T) {
		b := open(t)
		r := &failingReader{r: bytes.NewReader(make([]byte, 1000)), after: 600, err: errBroken}
		require.ErrorIs(t, b.Put(ctx, key, r, 1000), errBroken)
		absent(t, b, key)
	})

	t.Run("ShortReader", func(t *testing.T) {
		b := open(t)
		err := b.Put(ctx, key, strings.NewReader("only nine"), 20)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		absent(t, b, key)
	})

	t.Run("LongReader", func(t *testing.T) {
		b := open(t)
		err := b.Put(ctx, key, strings.NewReader("more than ten bytes"), 10)
		require.ErrorContains(t, err, "more than")
		absent(t, b, key)
	})

	t.Run("CanceledContext", func(t *testing.T) {
		b := open(t)
		cctx, cancel := context.WithCancel(ctx)
		r := &failingReader{r: bytes.NewReader(make([]byte, 1000)), after: 500, onLimit: cancel}
		require.ErrorIs(t, b.Put(cctx, key, r, 1000), context.Canceled)
		absent(t, b, key)
	})

	t.Run("Overwrite", func(t *testing.T) {
		b := open(t)
		require.NoError(t, b.Put(ctx, key, strings.NewReader("first version, longer"), 21))
		require.NoError(t, b.Put(ctx, key, strings.NewReader("second"), 6))
		require.Equal(t, "second", string(readAll(t, b, key, 0)))
		info, err := b.Stat(ctx, key)
		require.NoError(t, err)
		require.Equal(t, int64(6), info.Size)

		// A failed overwrite keeps the old file whole.
		r := &failingReader{r: bytes.NewReader(make([]byte, 100)), after: 50, err: io.ErrUnexpectedEOF}
		require.Error(t, b.Put(ctx, key, r, 100))
		require.Equal(t, "second", string(readAll(t, b, key, 0)))
		require.Empty(t, b.leftovers(t))
	})

	t.Run("PutFile", func(t *testing.T) {
		b := open(t)
		src := filepath.Join(t.TempDir(), "upload.bin")
		data := []byte("a finished upload")
		require.NoError(t, os.WriteFile(src, data, 0o600))
		require.NoError(t, b.PutFile(ctx, key, src))
		require.NoFileExists(t, src, "PutFile moves: the source is gone")
		require.Equal(t, data, readAll(t, b, key, 0))

		// Over an existing file.
		require.NoError(t, os.WriteFile(src, []byte("v2"), 0o600))
		require.NoError(t, b.PutFile(ctx, key, src))
		require.NoFileExists(t, src)
		require.Equal(t, "v2", string(readAll(t, b, key, 0)))

		// A missing source stores nothing.
		require.Error(t, b.PutFile(ctx, "sessions/1/enc-01/other.mp4", src))
		absent(t, b, "sessions/1/enc-01/other.mp4")
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		b := open(t)
		src := filepath.Join(t.TempDir(), "upload.bin")
		require.NoError(t, os.WriteFile(src, []byte("x"), 0o600))
		for _, tc := range badKeys {
			err := b.Put(ctx, tc.key, strings.NewReader("x"), 1)
			require.ErrorContains(t, err, tc.why, "Put %q", tc.key)
			require.ErrorContains(t, b.PutFile(ctx, tc.key, src), tc.why, "PutFile %q", tc.key)
			_, err = b.Open(ctx, tc.key, 0)
			require.ErrorContains(t, err, tc.why, "Open %q", tc.key)
			require.NotErrorIs(t, err, ErrNotFound)
			_, err = b.Stat(ctx, tc.key)
			require.ErrorContains(t, err, tc.why, "Stat %q", tc.key)
			require.ErrorContains(t, b.Delete(ctx, tc.key), tc.why, "Delete %q", tc.key)
		}
		require.FileExists(t, src, "a rejected PutFile leaves the source alone")
	})

	t.Run("LargeFile", func(t *testing.T) {
		b := open(t)
		const size = 64 << 20 // multipart on S3 (16 MiB parts)
		want := sha256.New()
		_, err := io.Copy(want, generated(7, size))
		require.NoError(t, err)

		require.NoError(t, b.Put(ctx, key, generated(7, size), size))
		info, err := b.Stat(ctx, key)
		require.NoError(t, err)
		require.Equal(t, int64(size), info.Size)
		require.Equal(t, want.Sum(nil), hashFrom(t, b, key, 0))

		// Resumed hashing: the tail from an offset in the middle of a part.
		const off = size - 20<<20 + 12345
		tail := sha256.New()
		g := generated(7, size)
		_, err = io.CopyN(io.Discard, g, off)
		require.NoError(t, err)
		_, err = io.Copy(tail, g)
		require.NoError(t, err)
		require.Equal(t, tail.Sum(nil), hashFrom(t, b, key, off))
	})

	t.Run("LargeFailingReader", func(t *testing.T) {
		b := open(t)
		const size = 40 << 20 // fails in the second multipart part on S3
		r := &failingReader{r: generated(8, size), after: 20 << 20, err: io.ErrUnexpectedEOF}
		require.ErrorIs(t, b.Put(ctx, key, r, size), io.ErrUnexpectedEOF)
		absent(t, b, key)
	})
}

// badKeys: invalid keys and a word of why each is refused.
var badKeys = []struct{ key, why string }{
	{"", "empty"},
	{"/sessions/1/e/f", "absolute"},
	{"sessions/1/e/", "empty path segment"},
	{"sessions//e/f", "empty path segment"},
	{"sessions/1/../f", `".."`},
	{"..", `".."`},
	{"../outside", `".."`},
	{"sessions/./e/f", `"."`},
	{`sessions\1\e\f`, "backslash"},
	{"sessions/1/e/f\x00.mp4", "NUL"},
	{"sessions/1/e/f\n.mp4", "control character"},
	{"sessions/1/e/.hidden", "starts with a dot"},
	{"sessions/1/e/.f.mp4.partial-123", "starts with a dot"},
	{"sessions/1/e/\xff\xfe", "UTF-8"},
	{"sessions/1/e/" + strings.Repeat("f", 256), "longer than 255"},
	{strings.Repeat("abcdefgh/", 114) + "x", "longer than 1024"},
}

func TestValidateKey(t *testing.T) {
	for _, tc := range badKeys {
		err := ValidateKey(tc.key)
		require.ErrorContains(t, err, tc.why, "%q", tc.key)
		require.ErrorContains(t, err, "invalid key")
	}
	for _, k := range []string{
		Key(1, "enc-01", "rec.mp4"),
		Key(9223372036854775807, "Enclosure 7 (left)", "prefix_2026-11-26_10-00-00.mp4"),
		"a",
		"sessions/1/e/f..mp4",
		"sessions/1/e/" + strings.Repeat("f", 255),
		"sessions/1/é/ü.mp4",
	} {
		require.NoError(t, ValidateKey(k), k)
	}
	require.Equal(t, "sessions/42/enc-01/rec.mp4", Key(42, "enc-01", "rec.mp4"))
}

func FuzzValidateKey(f *testing.F) {
	for _, tc := range badKeys {
		f.Add(tc.key)
	}
	f.Add("sessions/1/enc-01/rec.mp4")
	f.Add("a/b")
	f.Fuzz(func(t *testing.T, key string) {
		err := ValidateKey(key)
		if err != nil {
			if !strings.Contains(err.Error(), "invalid key") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		// A valid key is a clean, local, slash-separated path: it cannot leave the root of dir
		// storage, nor collide with a temp file, nor mean anything else to S3.
		if !filepath.IsLocal(key) || filepath.ToSlash(filepath.Clean(key)) != key {
			t.Fatalf("valid key %q is not a clean local path", key)
		}
		root := "/srv/files"
		if p := filepath.Join(root, filepath.FromSlash(key)); !strings.HasPrefix(p, root+"/") {
			t.Fatalf("valid key %q leaves the root: %s", key, p)
		}
		for seg := range strings.SplitSeq(key, "/") {
			if seg == "" || seg[0] == '.' || len(seg) > maxSegmentLen {
				t.Fatalf("valid key %q has segment %q", key, seg)
			}
		}
		if strings.ContainsAny(key, "\\\x00") || len(key) > maxKeyLen {
			t.Fatalf("valid key %q", key)
		}
	})
}

func TestNewValidates(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	s3 := func(c Config) Config {
		c.Kind = "s3"
		if c.S3Endpoint == "" {
			c.S3Endpoint = "127.0.0.1:1"
		}
		return c
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "kind is empty"},
		{Config{Kind: "nfs"}, `kind "nfs"`},
		{Config{Kind: "dir"}, "dir is empty"},
		{Config{Kind: "dir", Dir: file}, "dir"},
		{Config{Kind: "s3", S3Bucket: "b"}, "s3_endpoint is empty"},
		{s3(Config{S3Endpoint: "https://s3.example.org", S3Bucket: "b"}), "without a scheme"},
		{s3(Config{S3Endpoint: "s3.example.org/bucket", S3Bucket: "b"}), "without a path"},
		{s3(Config{}), "s3_bucket is empty"},
		{s3(Config{S3Bucket: "Bad_Bucket"}), "s3_bucket"},
		{s3(Config{S3Bucket: "bucket", S3AccessKey: "k"}), "s3_secret_key"},
		{s3(Config{S3Bucket: "bucket", S3Prefix: "a/../b"}), "s3_prefix"},
		{s3(Config{S3Bucket: "bucket", S3Prefix: "a//b"}), "s3_prefix"},
	} {
		st, err := New(ctx, tc.cfg)
		require.ErrorContains(t, err, tc.want, "%+v", tc.cfg)
		require.Nil(t, st)
	}
}

func TestDir(t *testing.T) {
	conformance(t, func(t *testing.T) backend {
		root := t.TempDir()
		st, err := New(context.Background(), Config{Kind: "dir", Dir: root})
		require.NoError(t, err)
		require.Equal(t, "dir "+root, st.String())
		return backend{Storage: st, leftovers: func(t *testing.T) []string { return partialFiles(t, root) }}
	})
}

func TestDirLayout(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "files") // created by New
	st, err := New(ctx, Config{Kind: "dir", Dir: root})
	require.NoError(t, err)
	key := Key(7, "enc-01", "rec.mp4")
	require.NoError(t, st.Put(ctx, key, strings.NewReader("data"), 4))
	fi, err := os.Stat(filepath.Join(root, "sessions", "7", "enc-01", "rec.mp4"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(dirFileMode), fi.Mode().Perm())

	// A temp file is never a stored file, even for a name chosen to look like one.
	require.True(t, isPartial(filepath.Base(tempPattern("rec.mp4"))))
	require.Error(t, ValidateKey(filepath.ToSlash(filepath.Join("sessions/7/enc-01", tempPattern("rec.mp4")))))
	f, err := os.CreateTemp(filepath.Dir(filepath.Join(root, key)), tempPattern("rec.mp4"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Equal(t, []string{f.Name()}, partialFiles(t, root), "the suite's check for temp files sees one")
	long := tempPattern(strings.Repeat("x", maxSegmentLen))
	require.LessOrEqual(t, len(long)-len("*")+20, maxSegmentLen, "room for CreateTemp's random part")
}

// TestDirPutFileOtherFilesystem moves a file from another file system (copy, then remove).
func TestDirPutFileOtherFilesystem(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	other, err := os.MkdirTemp("/dev/shm", "mba-storage-test-")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(other) })
	if sameDevice(t, root, other) {
		t.Skip("/dev/shm is on the same file system as the temp dir")
	}
	st, err := New(ctx, Config{Kind: "dir", Dir: root})
	require.NoError(t, err)
	src := filepath.Join(other, "upload.bin")
	require.NoError(t, os.WriteFile(src, []byte("from elsewhere"), 0o600))
	key := Key(1, "enc-01", "rec.mp4")
	require.NoError(t, st.PutFile(ctx, key, src))
	require.NoFileExists(t, src)
	require.Equal(t, "from elsewhere", string(readAll(t, backend{Storage: st}, key, 0)))
	require.Empty(t, partialFiles(t, root))
}

// ---------------------------------------------------------------- helpers

func readAll(t *testing.T, st Storage, key string, offset int64) []byte {
	t.Helper()
	rc, err := st.Open(context.Background(), key, offset)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

func hashFrom(t *testing.T, st Storage, key string, offset int64) []byte {
	t.Helper()
	rc, err := st.Open(context.Background(), key, offset)
	require.NoError(t, err)
	defer rc.Close()
	h := sha256.New()
	_, err = io.Copy(h, rc)
	require.NoError(t, err)
	return h.Sum(nil)
}

// generated is size deterministic pseudo-random bytes, made as they are read.
func generated(seed uint64, size int64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return io.LimitReader(mrand.NewChaCha8(s), size)
}

var errBroken = errors.New("connection broken")

// failingReader reads r until after bytes have passed, then fails with err (or, if onLimit is
// set, calls it and goes on).
type failingReader struct {
	r       io.Reader
	after   int64
	err     error
	onLimit func()
	n       int64
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n >= f.after {
		if f.onLimit != nil {
			f.onLimit()
			f.onLimit = nil
		} else if f.err != nil {
			return 0, f.err
		}
	}
	if rest := f.after - f.n; rest > 0 && int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := f.r.Read(p)
	f.n += int64(n)
	return n, err
}

// partialFiles lists the temp files under root.
func partialFiles(t *testing.T, root string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && isPartial(d.Name()) {
			found = append(found, p)
		}
		return nil
	})
	require.NoError(t, err)
	return found
}

func isPartial(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, partialMarker)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sameDevice(t *testing.T, a, b string) bool {
	t.Helper()
	var sa, sb syscall.Stat_t
	require.NoError(t, syscall.Stat(a, &sa))
	require.NoError(t, syscall.Stat(b, &sb))
	return sa.Dev == sb.Dev
}
