package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jax-mba/mba/protocol"
)

// RelayConfig is the heartbeat relay's: the enclosure's client has its api setting pointed at
// http://<Addr>/api and the relay forwards each heartbeat to the service with the enclosure's
// token (PROTOCOL.md section 8).
type RelayConfig struct {
	Addr      string        // loopback listen address, e.g. 127.0.0.1:8079
	ServerURL string        // the service's base URL (https in production)
	Token     string        // the enclosure's token
	Timeout   time.Duration // longest a heartbeat waits for the service; default 10s (the client gives up at 30s)
	// HTTPClient forwards the heartbeats; default: one with the timeouts above.
	HTTPClient *http.Client
}

// relayBodyLimit bounds a heartbeat (a real one is under 1 KiB) and a reply.
const relayBodyLimit = 1 << 20

// relayHeaders are the reply headers the client may care about, passed through unchanged.
var relayHeaders = []string{"Content-Type", "Retry-After", "X-Request-Id", "WWW-Authenticate"}

func (c RelayConfig) withDefaults() (RelayConfig, error) {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	var problems []string
	if u, err := url.Parse(c.ServerURL); c.ServerURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, "server URL must be an http(s) URL")
	}
	if c.Token == "" {
		problems = append(problems, "enclosure token is required (the relay adds it to every heartbeat)")
	}
	if host, _, err := net.SplitHostPort(c.Addr); err != nil || !isLoopback(host) {
		problems = append(problems, fmt.Sprintf("relay address %q must be a loopback host:port like 127.0.0.1:8079 (only the enclosure's own client may use it)", c.Addr))
	}
	if c.Timeout >= 30*time.Second {
		problems = append(problems, "relay timeout must be below the client's 30s")
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.Timeout, Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second,
			TLSHandshakeTimeout: c.Timeout, ResponseHeaderTimeout: c.Timeout,
		}}
	}
	if len(problems) > 0 {
		return c, errors.New("relay: " + strings.Join(problems, "; "))
	}
	return c, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// NewRelay returns the relay's handler: POST <anything>/device/heartbeat is forwarded to the
// service's /api/device/heartbeat and its reply returned unchanged (status, the headers that
// matter, the body byte for byte). When the service cannot be reached in time, or answers
// something the client would crash on (a proxy's HTML error page), the client gets what it
// handles best: an error status with a JSON {"message"} body, which it logs as "no command".
func NewRelay(cfg RelayConfig, log *slog.Logger) (http.Handler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	target := strings.TrimRight(cfg.ServerURL, "/") + "/api/device/heartbeat"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/device/heartbeat") {
			relayError(w, http.StatusNotFound, "the relay serves only POST <api>/device/heartbeat")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, relayBodyLimit))
		if err != nil {
			relayError(w, http.StatusRequestEntityTooLarge, "heartbeat body too large or unreadable")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), cfg.Timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			relayError(w, http.StatusBadGateway, "relay: bad server URL")
			return
		}
		req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
		res, err := cfg.HTTPClient.Do(req)
		if err != nil {
			status, msg := http.StatusBadGateway, "relay: the MBA service cannot be reached"
			if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
				status, msg = http.StatusGatewayTimeout, fmt.Sprintf("relay: the MBA service did not answer within %s", cfg.Timeout)
			}
			log.Warn("heartbeat not relayed", "error", err.Error())
			relayError(w, status, msg)
			return
		}
		defer res.Body.Close()
		reply, err := io.ReadAll(io.LimitReader(res.Body, relayBodyLimit+1))
		if err != nil || len(reply) > relayBodyLimit {
			log.Warn("heartbeat reply not read", "status", res.StatusCode)
			relayError(w, http.StatusBadGateway, "relay: the MBA service's reply was cut off")
			return
		}
		if err := protocol.CheckReply(res.StatusCode, res.Header.Get("Content-Type"), reply); err != nil {
			log.Warn("heartbeat reply the client would not survive; answered an error instead", "status", res.StatusCode, "problem", err.Error())
			relayError(w, http.StatusBadGateway, fmt.Sprintf("relay: the MBA service answered %d with a body the client cannot read", res.StatusCode))
			return
		}
		for _, h := range relayHeaders {
			if v := res.Header.Values(h); len(v) > 0 {
				w.Header()[h] = v
			}
		}
		w.WriteHeader(res.StatusCode)
		_, _ = w.Write(reply)
	}), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func relayError(w http.ResponseWriter, status int, msg string) {
	body, _ := json.Marshal(map[string]string{"message": msg})
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusBadGateway || status == http.StatusGatewayTimeout {
		w.Header().Set("Retry-After", "10")
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// RunRelay serves the relay on cfg.Addr until ctx ends.
func RunRelay(ctx context.Context, cfg RelayConfig, log *slog.Logger) error {
	h, err := NewRelay(cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 45 * time.Second, IdleTimeout: 2 * time.Minute}
	log.Info("heartbeat relay started", "addr", ln.Addr().String(), "server", cfg.ServerURL)
	if u, _ := url.Parse(cfg.ServerURL); u.Scheme != "https" && !isLoopback(u.Hostname()) {
		log.Warn("the relay sends the enclosure's token without TLS; use an https server URL", "server", cfg.ServerURL)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		return nil
	case err := <-errc:
		return fmt.Errorf("relay: %w", err)
	}
}
