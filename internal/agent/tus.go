package agent

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// tusVersion is the protocol version sent with every request.
const tusVersion = "1.0.0"

// uploadsPath is the tus creation endpoint.
const uploadsPath = "/api/agent/uploads/"

var (
	// errUploadGone: the server no longer has the upload (404/410); a new one must be created.
	errUploadGone = errors.New("upload is gone")
	// errAlreadyVerified: the server has verified this file with this checksum (409 on creation).
	errAlreadyVerified = errors.New("already verified on the server")
	// errOffsetMismatch: the PATCH offset was not the server's (409 on PATCH); HEAD again.
	errOffsetMismatch = errors.New("upload offset mismatch")
)

// client talks to the MBA server: the manifest and a tus 1.0 client (core, creation,
// termination).
type client struct {
	hc        *http.Client
	base      *url.URL
	token     string
	enclosure string
}

func newClient(cfg Config) (*client, error) {
	base, err := url.Parse(strings.TrimRight(cfg.ServerURL, "/") + "/")
	if err != nil {
		return nil, err
	}
	return &client{hc: cfg.HTTPClient, base: base, token: cfg.Token, enclosure: cfg.Enclosure}, nil
}

// resolve turns a path or URL from the server (possibly relative) into an absolute URL.
func (c *client) resolve(ref string) string {
	u, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	return c.base.ResolveReference(u).String()
}

// do sends a request with the enclosure's credentials (only to the server's own origin) and
// the tus version header.
func (c *client) do(req *http.Request) (*http.Response, error) {
	if sameOrigin(req.URL, c.base) {
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("X-Mba-Enclosure", c.enclosure)
	}
	req.Header.Set("Tus-Resumable", tusVersion)
	return c.hc.Do(req)
}

// sameOrigin compares scheme, host and port (an absent port is the scheme's default).
func sameOrigin(a, b *url.URL) bool {
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		if strings.EqualFold(u.Scheme, "https") {
			return "443"
		}
		return "80"
	}
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

// drain reads a little of the body and closes it, so the connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// encodeMetadata renders tus Upload-Metadata: "key base64(value)" pairs, comma separated,
// in key order.
func encodeMetadata(meta map[string]string) string {
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + base64.StdEncoding.EncodeToString([]byte(meta[k]))
	}
	return strings.Join(parts, ",")
}

// create makes a new upload of size bytes and returns its absolute URL.
func (c *client) create(ctx context.Context, size int64, meta map[string]string) (string, error) {
	endpoint := c.resolve(uploadsPath)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	req.Header.Set("Upload-Metadata", encodeMetadata(meta))
	resp, err := c.do(req)
	if err != nil {
		return "", err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated:
	case http.StatusConflict:
		return "", errAlreadyVerified
	default:
		return "", httpError("tus create", resp)
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("tus create: no Location in the answer")
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("tus create: bad Location %q: %w", loc, err)
	}
	return req.URL.ResolveReference(u).String(), nil
}

// offset asks how many bytes of the upload the server holds (HEAD) and its length (-1 if
// the server did not say).
func (c *client) offset(ctx context.Context, uploadURL string) (offset, length int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.resolve(uploadURL), nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Cache-Control", "no-store")
	resp, err := c.do(req)
	if err != nil {
		return 0, 0, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
	case http.StatusNotFound, http.StatusGone:
		return 0, 0, errUploadGone
	default:
		return 0, 0, httpError("tus head", resp)
	}
	offset, err = strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || offset < 0 {
		return 0, 0, fmt.Errorf("tus head: bad Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	length = -1
	if l := resp.Header.Get("Upload-Length"); l != "" {
		if length, err = strconv.ParseInt(l, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("tus head: bad Upload-Length %q", l)
		}
	}
	return offset, length, nil
}

// patch sends n bytes from body at offset and returns the server's new offset.
func (c *client) patch(ctx context.Context, uploadURL string, offset int64, body io.Reader, n int64) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, c.resolve(uploadURL), body)
	if err != nil {
		return 0, err
	}
	req.ContentLength = n
	if n == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	resp, err := c.do(req)
	if err != nil {
		return 0, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK:
	case http.StatusConflict:
		return 0, errOffsetMismatch
	case http.StatusNotFound, http.StatusGone:
		return 0, errUploadGone
	default:
		return 0, httpError("tus patch", resp)
	}
	next, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || next < offset {
		return 0, fmt.Errorf("tus patch: bad Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	return next, nil
}

// terminate deletes an upload (tus termination); a gone upload is fine.
func (c *client) terminate(ctx context.Context, uploadURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.resolve(uploadURL), nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK, http.StatusNotFound, http.StatusGone:
		return nil
	}
	return httpError("tus terminate", resp)
}
