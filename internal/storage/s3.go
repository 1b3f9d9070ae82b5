package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

type s3Storage struct {
	client   *minio.Client
	endpoint string
	bucket   string
	prefix   string // "" or ends in "/"
}

// checkS3 returns why the S3 settings cannot work, or nil.
func checkS3(cfg Config) error {
	switch {
	case cfg.S3Endpoint == "":
		return errors.New("storage: s3_endpoint is empty (host:port of the S3-compatible server)")
	case strings.Contains(cfg.S3Endpoint, "://"):
		return fmt.Errorf("storage: s3_endpoint %q must be host:port without a scheme (s3_tls chooses https)", cfg.S3Endpoint)
	case strings.ContainsAny(cfg.S3Endpoint, "/?#@ "):
		return fmt.Errorf("storage: s3_endpoint %q must be host:port, without a path", cfg.S3Endpoint)
	case cfg.S3Bucket == "":
		return errors.New("storage: s3_bucket is empty")
	case (cfg.S3AccessKey == "") != (cfg.S3SecretKey == ""):
		return errors.New("storage: s3_access_key and s3_secret_key must be set together")
	}
	if err := s3utils.CheckValidBucketNameStrict(cfg.S3Bucket); err != nil {
		return fmt.Errorf("storage: s3_bucket %q: %w", cfg.S3Bucket, err)
	}
	if prefix := strings.Trim(cfg.S3Prefix, "/"); prefix != "" {
		if err := checkKey(prefix); err != nil {
			return fmt.Errorf("storage: s3_prefix %q: %s", cfg.S3Prefix, err)
		}
	}
	return nil
}

func newS3(ctx context.Context, cfg Config) (*s3Storage, error) {
	prefix := strings.Trim(cfg.S3Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	client, err := minio.New(cfg.S3Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.S3AccessKey, cfg.S3SecretKey, ""),
		Secure: cfg.S3TLS,
		Region: cfg.S3Region,
	})
	if err != nil {
		return nil, fmt.Errorf("storage: s3_endpoint %q: %w", cfg.S3Endpoint, err)
	}
	s := &s3Storage{client: client, endpoint: cfg.S3Endpoint, bucket: cfg.S3Bucket, prefix: prefix}

	exists, err := client.BucketExists(ctx, cfg.S3Bucket)
	if err != nil {
		return nil, fmt.Errorf("storage: %s: checking bucket: %w", s, err)
	}
	if !exists {
		err := client.MakeBucket(ctx, cfg.S3Bucket, minio.MakeBucketOptions{Region: cfg.S3Region})
		if err != nil && minio.ToErrorResponse(err).Code != minio.BucketAlreadyOwnedByYou {
			return nil, fmt.Errorf("storage: %s: creating bucket: %w", s, err)
		}
	}
	return s, nil
}

func (s *s3Storage) String() string {
	if s.prefix == "" {
		return "s3 " + s.endpoint + "/" + s.bucket
	}
	return "s3 " + s.endpoint + "/" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/")
}

func (s *s3Storage) object(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

func (s *s3Storage) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("storage: put %s: negative size %d", key, size)
	}
	// With the size known minio-go streams: one PUT, or a multipart upload (aborted on any
	// error) buffering one part at a time. The object appears only when the upload completes.
	er := newExactReader(ctx, r, size)
	_, err = s.client.PutObject(ctx, s.bucket, name, er, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
	})
	if err != nil {
		if cause := er.Failure(); cause != nil {
			err = cause // the reader's failure, not how the HTTP client reported it
		}
		return fmt.Errorf("storage: put %s: %w", key, err)
	}
	return nil
}

func (s *s3Storage) PutFile(ctx context.Context, key, path string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	f, fi, err := openRegular(key, path)
	if err != nil {
		return err
	}
	defer f.Close()
	// An *os.File is an io.ReaderAt: minio-go uploads its parts in parallel.
	_, err = s.client.PutObject(ctx, s.bucket, name, f, fi.Size(), minio.PutObjectOptions{
		ContentType: "application/octet-stream",
	})
	if err != nil {
		return fmt.Errorf("storage: put file %s: %w", key, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("storage: put file %s: stored, but removing %s: %w", key, path, err)
	}
	return nil
}

func (s *s3Storage) Open(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	name, err := s.object(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("storage: open %s: negative offset %d", key, offset)
	}
	var opts minio.GetObjectOptions
	if offset > 0 {
		if err := opts.SetRange(offset, 0); err != nil {
			return nil, fmt.Errorf("storage: open %s: %w", key, err)
		}
	}
	obj, err := s.client.GetObject(ctx, s.bucket, name, opts)
	if err != nil {
		return nil, s.error("open", key, err)
	}
	// GetObject is lazy: Stat sends the request, so a missing object is reported here.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).Code == minio.InvalidRange {
			// Offset at or past the end. At the end is an empty read, as from a file.
			info, serr := s.Stat(ctx, key)
			if serr != nil {
				return nil, serr
			}
			if offset == info.Size {
				return io.NopCloser(strings.NewReader("")), nil
			}
			return nil, fmt.Errorf("storage: open %s: offset %d is beyond the end (%d bytes)", key, offset, info.Size)
		}
		return nil, s.error("open", key, err)
	}
	return obj, nil
}

func (s *s3Storage) Stat(ctx context.Context, key string) (Info, error) {
	name, err := s.object(key)
	if err != nil {
		return Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.error("stat", key, err)
	}
	return Info{Size: oi.Size, ModTime: oi.LastModified}, nil
}

func (s *s3Storage) Delete(ctx context.Context, key string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	// S3 reports success for an absent object.
	if err := s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return nil
		}
		return fmt.Errorf("storage: delete %s: %w", key, err)
	}
	return nil
}

func (s *s3Storage) error(op, key string, err error) error {
	if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
		return fmt.Errorf("storage: %s %s: %w", op, key, ErrNotFound)
	}
	return fmt.Errorf("storage: %s %s: %w", op, key, err)
}
