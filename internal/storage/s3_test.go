package storage

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
)

// The S3 backend is tested against a real S3-compatible server: the MinIO that `make test`
// (scripts/test.sh) starts on loopback.
const (
	s3EndpointEnv  = "MBA_TEST_S3_ENDPOINT" // host:port, plain http
	s3AccessKeyEnv = "MBA_TEST_S3_ACCESS_KEY"
	s3SecretKeyEnv = "MBA_TEST_S3_SECRET_KEY"
	requireS3Env   = "MBA_TEST_REQUIRE_S3" // "1": fail rather than skip without a server
)

// s3Endpoint is the test server's host:port. Without one the test is skipped, or fails under
// MBA_TEST_REQUIRE_S3=1 (as in `make test` and CI).
func s3Endpoint(t *testing.T) string {
	t.Helper()
	endpoint := os.Getenv(s3EndpointEnv)
	if endpoint == "" {
		msg := s3EndpointEnv + " is not set: run `make test` (scripts/test.sh starts MinIO), or set " +
			s3EndpointEnv + ", " + s3AccessKeyEnv + " and " + s3SecretKeyEnv + " for an S3-compatible server"
		if os.Getenv(requireS3Env) == "1" {
			t.Fatalf("%s=1 but %s", requireS3Env, msg)
		}
		t.Skip(msg)
	}
	return endpoint
}

// s3TestConfig is the configuration of a bucket of t's own, removed when t ends.
func s3TestConfig(t *testing.T) Config {
	t.Helper()
	cfg := Config{
		Kind:        "s3",
		S3Endpoint:  s3Endpoint(t),
		S3Bucket:    "mba-test-" + randomHex(6),
		S3Prefix:    "lab/files",
		S3AccessKey: os.Getenv(s3AccessKeyEnv),
		S3SecretKey: os.Getenv(s3SecretKeyEnv),
	}
	t.Cleanup(func() { removeBucket(t, cfg) })
	return cfg
}

func TestS3(t *testing.T) {
	s3Endpoint(t)
	conformance(t, func(t *testing.T) backend {
		cfg := s3TestConfig(t)
		st, err := New(context.Background(), cfg)
		require.NoError(t, err)
		s := st.(*s3Storage)
		return backend{Storage: st, leftovers: func(t *testing.T) []string {
			return incompleteUploads(t, s.client, cfg.S3Bucket)
		}}
	})
}

func TestS3Layout(t *testing.T) {
	ctx := context.Background()
	cfg := s3TestConfig(t)
	cfg.S3Prefix = "/lab/files/" // slashes around the prefix do not matter
	st, err := New(ctx, cfg)
	require.NoError(t, err)
	require.Equal(t, "s3 "+cfg.S3Endpoint+"/"+cfg.S3Bucket+"/lab/files", st.String())
	require.NotContains(t, st.String(), cfg.S3SecretKey)

	key := Key(7, "enc-01", "rec.mp4")
	require.NoError(t, st.Put(ctx, key, strings.NewReader("data"), 4))
	client := st.(*s3Storage).client
	oi, err := client.StatObject(ctx, cfg.S3Bucket, "lab/files/"+key, minio.StatObjectOptions{})
	require.NoError(t, err)
	require.Equal(t, int64(4), oi.Size)

	// New on an existing bucket uses it.
	st2, err := New(ctx, cfg)
	require.NoError(t, err)
	require.Equal(t, "data", string(readAll(t, st2, key, 0)))

	// Without a prefix, keys are object names.
	cfg.S3Prefix = ""
	st3, err := New(ctx, cfg)
	require.NoError(t, err)
	require.Equal(t, "s3 "+cfg.S3Endpoint+"/"+cfg.S3Bucket, st3.String())
	require.NoError(t, st3.Put(ctx, key, strings.NewReader("bare"), 4))
	_, err = client.StatObject(ctx, cfg.S3Bucket, key, minio.StatObjectOptions{})
	require.NoError(t, err)
	require.Equal(t, "data", string(readAll(t, st2, key, 0)), "prefixes keep storages apart")
}

func TestS3WrongCredentials(t *testing.T) {
	cfg := s3TestConfig(t)
	cfg.S3SecretKey = "not-the-secret"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := New(ctx, cfg)
	require.ErrorContains(t, err, "checking bucket")
	require.NotContains(t, err.Error(), "not-the-secret")
}

// TestS3LeftoverCheck makes sure the conformance suite's check for abandoned multipart uploads
// can see one (some servers list them only for an exact object name).
func TestS3LeftoverCheck(t *testing.T) {
	ctx := context.Background()
	cfg := s3TestConfig(t)
	st, err := New(ctx, cfg)
	require.NoError(t, err)
	client := st.(*s3Storage).client
	core := minio.Core{Client: client}
	name := "lab/files/" + Key(1, "enc-01", "rec.mp4")
	id, err := core.NewMultipartUpload(ctx, cfg.S3Bucket, name, minio.PutObjectOptions{})
	require.NoError(t, err)
	require.Equal(t, []string{name + " " + id}, incompleteUploads(t, client, cfg.S3Bucket))
	require.NoError(t, core.AbortMultipartUpload(ctx, cfg.S3Bucket, name, id))
	require.Empty(t, incompleteUploads(t, client, cfg.S3Bucket))
}

func incompleteUploads(t *testing.T, client *minio.Client, bucket string) []string {
	t.Helper()
	var found []string
	for u := range client.ListIncompleteUploads(context.Background(), bucket, "", true) {
		require.NoError(t, u.Err)
		found = append(found, u.Key+" "+u.UploadID)
	}
	return found
}

// removeBucket deletes the test bucket and everything in it.
func removeBucket(t *testing.T, cfg Config) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := newS3(ctx, Config{
		Kind: "s3", S3Endpoint: cfg.S3Endpoint, S3Bucket: cfg.S3Bucket,
		S3AccessKey: cfg.S3AccessKey, S3SecretKey: cfg.S3SecretKey,
	})
	if err != nil {
		t.Logf("removing test bucket %s: %v", cfg.S3Bucket, err)
		return
	}
	if err := s.client.RemoveBucketWithOptions(ctx, cfg.S3Bucket, minio.RemoveBucketOptions{ForceDelete: true}); err != nil {
		t.Logf("removing test bucket %s: %v", cfg.S3Bucket, err)
	}
}
