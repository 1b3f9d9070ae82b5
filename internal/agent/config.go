package agent

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config is everything the agent needs. Zero values take the defaults noted.
type Config struct {
	ServerURL string // base URL of the MBA service, e.g. http://server:8080
	Enclosure string // this enclosure's name (X-Mba-Enclosure); default: the hostname
	Token     string // the enclosure's token (Authorization: Bearer)
	VideoDir  string // the client's video directory (its NV<n>-<location> subdirectories are scanned)
	// EnclosureDir, when set, is the one subdirectory of VideoDir that is this enclosure's (a
	// lab whose layout differs); by default any directory named as the client names it.
	EnclosureDir string
	StateDir     string // where the state file (upload URLs, hash cache) is kept

	Concurrency             int           // parallel uploads; default 2
	BandwidthBytesPerSecond int64         // shared by all uploads; 0 = unlimited
	ChunkBytes              int64         // largest PATCH body; default 64 MiB
	ScanEvery               time.Duration // default 30s
	StableFor               time.Duration // size and mtime unchanged this long = finished; default 30s
	DeleteVerified          bool          // delete local files the server has VERIFIED with the same size and SHA-256

	// ClockSlack is how far the enclosure's clock may be behind the server's: a file last
	// modified earlier than a session's start minus this is not that session's (it is left
	// over from an earlier session with the same prefix). Default 1h.
	ClockSlack time.Duration
	// Location is the time zone of the client's date directories; default time.Local.
	Location *time.Location
	// Progress, when set (a terminal), gets a live line per active upload; otherwise progress
	// is logged every ProgressEvery (default 10s).
	Progress      io.Writer
	ProgressEvery time.Duration
	// RetryBase and RetryMax bound the exponential back-off after a network error or a 5xx
	// (defaults 1s and 1m); Attempts is how many times in a row an upload may fail without
	// progress before the file goes to the back of the queue (default 6).
	RetryBase, RetryMax time.Duration
	Attempts            int
	// StallTimeout abandons a PATCH that sent nothing for this long (default 2m); the upload
	// then resumes from the server's offset.
	StallTimeout time.Duration
	// HTTPClient is used for every request; default: a client with sane timeouts.
	HTTPClient *http.Client
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// withDefaults fills in the defaults and checks what cannot work.
func (c Config) withDefaults() (Config, error) {
	var problems []string
	if c.ServerURL == "" {
		problems = append(problems, "server URL is required")
	} else if u, err := url.Parse(c.ServerURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, "server URL must be an http(s) URL")
	}
	if c.Enclosure == "" {
		h, err := os.Hostname()
		if err != nil {
			problems = append(problems, "enclosure name is required (no hostname)")
		}
		c.Enclosure = h
	}
	if c.Token == "" {
		problems = append(problems, "enclosure token is required")
	}
	if c.VideoDir == "" {
		problems = append(problems, "video directory is required")
	}
	if strings.ContainsAny(c.EnclosureDir, `/\`) || c.EnclosureDir == "." || c.EnclosureDir == ".." {
		problems = append(problems, "enclosure directory is a name inside the video directory, not a path")
	}
	if c.StateDir == "" {
		problems = append(problems, "state directory is required")
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 2
	}
	if c.BandwidthBytesPerSecond < 0 {
		problems = append(problems, "bandwidth limit must not be negative")
	}
	if c.ChunkBytes <= 0 {
		c.ChunkBytes = 64 << 20
	}
	if c.ScanEvery <= 0 {
		c.ScanEvery = 30 * time.Second
	}
	if c.StableFor <= 0 {
		c.StableFor = 30 * time.Second
	}
	if c.ClockSlack <= 0 {
		c.ClockSlack = time.Hour
	}
	if c.Location == nil {
		c.Location = time.Local
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 10 * time.Second
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Minute
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 2 * time.Minute
	}
	if c.Attempts <= 0 {
		c.Attempts = 6
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   15 * time.Second,
			ResponseHeaderTimeout: 2 * time.Minute, // tusd answers a PATCH once it stored the body
			ExpectContinueTimeout: time.Second,
		}}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(problems) > 0 {
		return c, errors.New("agent: " + strings.Join(problems, "; "))
	}
	return c, nil
}
