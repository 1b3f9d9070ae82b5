// Package apiclient calls the service's REST API as a signed-in user, for the tools that drive
// a running service: the simulator's upload agents (mba simulate --agents) and the benchmarks.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Client sends JSON requests to one service.
type Client struct {
	Base  string // e.g. http://127.0.0.1:8080
	Token string // the access token Login got; empty: anonymous
}

// Login signs in and keeps the access token for the calls that follow.
func (c *Client) Login(ctx context.Context, email, password string) error {
	var tokens struct {
		Access string `json:"access"`
	}
	if err := c.Call(ctx, http.MethodPost, "/api/auth/login",
		map[string]string{"email_address": email, "password": password}, &tokens); err != nil {
		return err
	}
	c.Token = tokens.Access
	return nil
}

// Call sends body (if not nil) as JSON and decodes a 2xx reply into out (if not nil); any
// other status is an error carrying the reply.
func (c *Client) Call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, strings.TrimSpace(string(raw)))
	}
	if out != nil && len(raw) > 0 {
		return json.Unmarshal(raw, out)
	}
	return nil
}
