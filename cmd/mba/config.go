package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ardanlabs/conf/v3"
	confyaml "github.com/ardanlabs/conf/v3/yaml"

	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/mail"
	"github.com/jax-mba/mba/internal/storage"
)

// prefix of every environment variable: MBA_HTTP_ADDR, MBA_DB_URL, ...
const envPrefix = "MBA"

// config is the one configuration of the mba binary. Precedence: defaults < config file <
// environment (MBA_...) < flags placed before the command.
type config struct {
	conf.Version
	Args conf.Args

	Mode       string `conf:"default:development,help:development or production (production refuses missing or weak secrets)" yaml:"mode"`
	ConfigFile string `conf:"flag:config,env:CONFIG_FILE,help:optional YAML file with these settings (mba config init writes one)" yaml:"config_file"`
	Log        struct {
		Level string `conf:"default:info,help:debug; info; warn or error" yaml:"level"`
	} `yaml:"log"`
	HTTP struct {
		Addr            string        `conf:"default:127.0.0.1:8080,help:listen address of the API" yaml:"addr"`
		PublicURL       string        `conf:"default:http://127.0.0.1:8080,help:URL people reach the service at" yaml:"public_url"`
		LinkOrigins     stringList    `conf:"help:origins invite/reset links may point at (default: the origin of public-url)" yaml:"link_origins"`
		CORSOrigins     stringList    `conf:"help:browser origins allowed cross-origin (default: same-origin only)" yaml:"cors_origins"`
		TrustProxy      bool          `conf:"default:false,help:believe X-Forwarded-For (only behind your own reverse proxy)" yaml:"trust_proxy"`
		MaxBodyBytes    int64         `conf:"default:1048576,help:largest request body accepted" yaml:"max_body_bytes"`
		RequestTimeout  time.Duration `conf:"default:30s,help:longest a request may run" yaml:"request_timeout"`
		ReadTimeout     time.Duration `conf:"default:15s" yaml:"read_timeout"`
		WriteTimeout    time.Duration `conf:"default:45s" yaml:"write_timeout"`
		IdleTimeout     time.Duration `conf:"default:2m" yaml:"idle_timeout"`
		ShutdownTimeout time.Duration `conf:"default:20s,help:grace period for in-flight requests on SIGTERM" yaml:"shutdown_timeout"`
		PprofAddr       string        `conf:"help:serve Go's pprof profiles on this separate address (e.g. 127.0.0.1:6060); empty = off" yaml:"pprof_addr"`
		MetricsAddr     string        `conf:"help:serve /metrics on this separate address for Prometheus (e.g. 127.0.0.1:9464); empty = off" yaml:"metrics_addr"`
		MetricsToken    string        `conf:"mask,help:bearer token that may read /metrics on the API address (16+ bytes); empty = /metrics only on metrics-addr" yaml:"metrics_token"`
	} `yaml:"http"`
	DB struct {
		URL            string `conf:"default:postgres://mba@127.0.0.1:5433/mba?sslmode=disable,mask,help:PostgreSQL connection URL" yaml:"url"`
		MaxConns       int32  `conf:"default:20" yaml:"max_conns"`
		MigrateOnStart bool   `conf:"default:true,help:apply pending migrations when serve/worker start" yaml:"migrate_on_start"`
		// The outbox dispatcher's leadership lasts this long unless renewed (every third of it).
		DispatchLease time.Duration `conf:"default:10s,help:another serve process takes over dispatching this long after the leader stops renewing its lease" yaml:"dispatch_lease"`
	} `yaml:"db"`
	Temporal struct {
		Address    string `conf:"default:127.0.0.1:7233" yaml:"address"`
		Namespace  string `conf:"default:default" yaml:"namespace"`
		TaskQueue  string `conf:"default:mba" yaml:"task_queue"`
		RunWorker  bool   `conf:"default:true,help:serve also runs the Temporal worker (small labs)" yaml:"run_worker"`
		CertFile   string `conf:"help:client certificate for mTLS (Temporal Cloud or a TLS cluster)" yaml:"cert_file"`
		KeyFile    string `conf:"help:client key for mTLS" yaml:"key_file"`
		CAFile     string `conf:"help:CA bundle that signed the server certificate" yaml:"ca_file"`
		ServerName string `conf:"help:server name to verify (turns on TLS)" yaml:"server_name"`
		APIKey     string `conf:"mask,help:API key (Temporal Cloud; turns on TLS)" yaml:"api_key"`
		UIURL      string `conf:"default:http://localhost:8233,env:TEMPORAL_UI_URL,flag:temporal-ui-url,help:Temporal Web UI base URL the web UI links sessions to" yaml:"ui_url"`
	} `yaml:"temporal"`
	Auth struct {
		JWTSecret       string        `conf:"mask,help:HMAC secret for JWTs (32+ bytes); required in production" yaml:"jwt_secret"`
		AccessTTL       time.Duration `conf:"default:15m" yaml:"access_ttl"`
		RefreshTTL      time.Duration `conf:"default:720h" yaml:"refresh_ttl"`
		LinkTTL         time.Duration `conf:"default:24h,help:lifetime of invite and reset links" yaml:"link_ttl"`
		HashMemory      uint32        `conf:"default:47104,help:argon2id memory per password hash in KiB" yaml:"hash_memory"`
		HashTime        uint32        `conf:"default:1,help:argon2id passes" yaml:"hash_time"`
		HashThreads     uint8         `conf:"default:1,help:argon2id lanes" yaml:"hash_threads"`
		HashMemoryTotal uint64        `conf:"default:131072,help:KiB all password hashes running at once may take; with hash-memory it sets how many run together (128 MiB: two 46 MiB hashes; the process peaks near 2x this)" yaml:"hash_memory_total"`
		HashWait        time.Duration `conf:"default:2s,help:how long a login waits for a free password hash before a 503 with Retry-After" yaml:"hash_wait"`
		LoginPerAccount api.Rate      `conf:"default:5/1m,help:login and change-password attempts per account from one client address: burst/one more every" yaml:"login_per_account"`
		LoginPerClient  api.Rate      `conf:"default:20/6s,help:login attempts per client address" yaml:"login_per_client"`
		ResetPerAccount api.Rate      `conf:"default:3/10m,help:reset requests per account" yaml:"reset_per_account"`
		ResetPerClient  api.Rate      `conf:"default:10/1m,help:reset requests and resets per client address" yaml:"reset_per_client"`
	} `yaml:"auth"`
	Enclosures struct {
		AutoRegister     bool          `conf:"default:true,help:register unknown enclosure names on their first heartbeat" yaml:"auto_register"`
		DownAfter        time.Duration `conf:"default:60s,help:silence after which an enclosure is DOWN (server clock)" yaml:"down_after"`
		StreamKeepAlive  time.Duration `conf:"default:10s,help:how long one live-view request keeps STREAM going" yaml:"stream_keep_alive"`
		TelemetryBucket  time.Duration `conf:"default:5m,help:downsampling of the telemetry history kept for plots" yaml:"telemetry_bucket"`
		ClockSkewWarning time.Duration `conf:"default:30s,help:device clock offsets past this are flagged" yaml:"clock_skew_warning"`
		ScanEvery        time.Duration `conf:"default:10s,help:how often the fleet monitor looks for silent enclosures" yaml:"scan_every"`
		StreamURL        string        `conf:"help:RTMP base URL the enclosures publish live video to (shown in the live view as <base>/<name>)" yaml:"stream_url"`
		AllowedNetworks  stringList    `conf:"help:CIDRs tokenless heartbeats may come from (required in production; development default: loopback and private ranges; 0.0.0.0/0 and ::/0 = anywhere)" yaml:"allowed_networks"`
		ApproveNew       bool          `conf:"default:false,help:new enclosure names wait for an administrator's approval (204 and no command until then)" yaml:"approve_new"`
		BindOnRegister   bool          `conf:"default:false,help:bind each new enclosure to the address it registered from" yaml:"bind_on_register"`
		RegisterRate     api.Rate      `conf:"default:100/1s,help:new enclosure names registered on first sight: burst/one more every" yaml:"register_rate"`
	} `yaml:"enclosures"`
	Sessions struct {
		MaxEnclosures  int           `conf:"default:1000,help:enclosures per session (Temporal allows 2000 pending children)" yaml:"max_enclosures"`
		MinFPS         int           `conf:"default:1,help:lowest target frame rate accepted" yaml:"min_fps"`
		MaxFPS         int           `conf:"default:120,help:highest target frame rate accepted" yaml:"max_fps"`
		MaxDuration    time.Duration `conf:"default:2160h,help:longest session (90 days)" yaml:"max_duration"`
		BytesPerSecond int64         `conf:"default:1500000,help:video bytes an enclosure writes per second (disk projection)" yaml:"bytes_per_second"`
		RejectLowDisk  bool          `conf:"default:false,help:refuse enclosures without the disk for the whole session (else warn)" yaml:"reject_low_disk"`
		AnyoneMayStop  bool          `conf:"default:false,help:every signed-in user may cancel; remove enclosures from and archive any session (as the original did); else its creator or an admin" yaml:"anyone_may_stop"`
		StartDeadline  time.Duration `conf:"default:1h,help:an enclosure that has not started by then fails" yaml:"start_deadline"`
		EndGrace       time.Duration `conf:"default:5m,help:time past the planned end for an enclosure to report it" yaml:"end_grace"`
		SilenceTimeout time.Duration `conf:"default:30m,help:how long a silent recording enclosure may stay away before it is lost" yaml:"silence_timeout"`
		Resume         bool          `conf:"default:true,help:restart an enclosure that rebooted mid-recording for the rest of the time" yaml:"resume"`
		MinSegment     time.Duration `conf:"default:10s,help:shortest remainder worth resuming" yaml:"min_segment"`
		ReleaseTimeout time.Duration `conf:"default:1h,help:longest wait for an enclosure to take COMPLETE" yaml:"release_timeout"`
	} `yaml:"sessions"`
	Schedules struct {
		TimeZone    string        `conf:"default:UTC,help:the lab's IANA time zone (e.g. America/New_York): schedules' times are read and shown in it" yaml:"time_zone"`
		MinInterval time.Duration `conf:"default:10s,help:shortest interval of a recurring schedule" yaml:"min_interval"`
	} `yaml:"schedules"`
	Audit struct {
		Retention time.Duration `conf:"default:8760h,help:how long audit log rows are kept (365 days); 0 = forever" yaml:"retention"`
	} `yaml:"audit"`
	Storage struct {
		Kind           string        `conf:"default:dir,help:where verified video files are kept: dir (a directory; an NFS mount in most labs) or s3" yaml:"kind"`
		Dir            string        `conf:"default:.data/files,help:root directory of the dir storage" yaml:"dir"`
		StagingDir     string        `conf:"default:.data/uploads,help:incoming uploads until complete (same filesystem as dir makes finishing a rename)" yaml:"staging_dir"`
		S3Endpoint     string        `conf:"env:STORAGE_S3_ENDPOINT,flag:storage-s3-endpoint,help:S3-compatible endpoint host:port (s3 storage)" yaml:"s3_endpoint"`
		S3Bucket       string        `conf:"env:STORAGE_S3_BUCKET,flag:storage-s3-bucket,help:bucket (s3 storage)" yaml:"s3_bucket"`
		S3Region       string        `conf:"env:STORAGE_S3_REGION,flag:storage-s3-region,help:region (s3 storage; empty for MinIO)" yaml:"s3_region"`
		S3Prefix       string        `conf:"env:STORAGE_S3_PREFIX,flag:storage-s3-prefix,help:key prefix inside the bucket" yaml:"s3_prefix"`
		S3AccessKey    string        `conf:"env:STORAGE_S3_ACCESS_KEY,flag:storage-s3-access-key,mask,help:access key (s3 storage)" yaml:"s3_access_key"`
		S3SecretKey    string        `conf:"env:STORAGE_S3_SECRET_KEY,flag:storage-s3-secret-key,mask,help:secret key (s3 storage)" yaml:"s3_secret_key"`
		S3TLS          bool          `conf:"env:STORAGE_S3_TLS,flag:storage-s3-tls,default:true,help:use https to reach the S3 endpoint" yaml:"s3_tls"`
		MaxFileBytes   int64         `conf:"default:1099511627776,help:largest file an agent may upload" yaml:"max_file_bytes"`
		UploadDeadline time.Duration `conf:"default:72h,help:how long after a recording ends its files may take to arrive before they are MISSING" yaml:"upload_deadline"`
		Reuploads      int           `conf:"default:3,help:times a corrupt file is asked for again before it is CORRUPT for good" yaml:"reuploads"`
		Verify         bool          `conf:"default:true,help:check every recorded file (false for a lab that runs no upload agents: no MISSING files then)" yaml:"verify"`
	} `yaml:"storage"`
	Agent struct {
		// The upload agent's settings (mba agent, on the enclosure).
		ServerURL               string        `conf:"help:base URL of the MBA service the agent uploads to (e.g. https://mba.lab.example)" yaml:"server_url"`
		Enclosure               string        `conf:"help:this enclosure's name as the service knows it (default: the hostname)" yaml:"enclosure"`
		Token                   string        `conf:"mask,help:the enclosure's token (prefer token-file)" yaml:"token"`
		TokenFile               string        `conf:"help:file holding the enclosure's token (read at start; preferred over token)" yaml:"token_file"`
		VideoDir                string        `conf:"help:the client's video directory (its NV<n>-<location> subdirectories are scanned)" yaml:"video_dir"`
		EnclosureDir            string        `conf:"help:the one subdirectory of video-dir this enclosure's client writes (default: any NV<n>- directory of its name, as the client names it)" yaml:"enclosure_dir"`
		RelayAddr               string        `conf:"help:also relay the client's heartbeats: listen here (loopback; e.g. 127.0.0.1:8079) and point the client's api at http://<addr>/api" yaml:"relay_addr"`
		RelayTimeout            time.Duration `conf:"default:10s,help:longest a relayed heartbeat waits for the service (the client gives up at 30s)" yaml:"relay_timeout"`
		StateDir                string        `conf:"default:.data/agent,help:where the agent keeps upload URLs and cached checksums" yaml:"state_dir"`
		Concurrency             int           `conf:"default:2,help:files uploaded in parallel" yaml:"concurrency"`
		BandwidthBytesPerSecond int64         `conf:"default:0,help:upload bandwidth limit shared by all uploads in bytes per second; 0 = unlimited" yaml:"bandwidth_bytes_per_second"`
		ChunkBytes              int64         `conf:"default:67108864,help:largest request body of an upload (tus PATCH)" yaml:"chunk_bytes"`
		ScanEvery               time.Duration `conf:"default:30s,help:how often the agent asks for its manifest and scans the video directory" yaml:"scan_every"`
		StableFor               time.Duration `conf:"default:30s,help:a last fragment or timestamp file unchanged this long after the recording ended is finished" yaml:"stable_for"`
		DeleteVerified          bool          `conf:"default:false,help:delete local files the service has verified (same size and SHA-256)" yaml:"delete_verified"`
	} `yaml:"agent"`
	Mail struct {
		Host      string `conf:"help:SMTP server; empty keeps mail in the mail_log table and the log" yaml:"host"`
		Port      int    `conf:"default:587,help:SMTP port" yaml:"port"`
		TLS       string `conf:"default:starttls,help:starttls; tls (implicit) or none" yaml:"tls"`
		User      string `conf:"help:SMTP user name" yaml:"user"`
		Password  string `conf:"mask,help:SMTP password" yaml:"password"`
		From      string `conf:"default:MBA <mba@localhost>,help:sender address" yaml:"from"`
		LogBodies bool   `conf:"default:false,help:without SMTP also write whole messages (working invite and reset links) to the log; development only" yaml:"log_bodies"`
	} `yaml:"mail"`
	Alerts alertsConfig `yaml:"alerts"`
}

const production = "production"

// loadConfig reads the configuration; help is non-empty when --help or --version was asked.
func loadConfig() (cfg config, help string, err error) {
	cfg.Version = conf.Version{Build: build, Desc: "Mouse Behavior Analysis control service"}
	opts := []conf.ParseOption{conf.WithStrictFlags()} // a mistyped setting is refused, not ignored
	if path := configFilePath(os.Args[1:]); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, "", fmt.Errorf("reading config file: %w", err)
		}
		opts = append(opts, conf.WithParser(confyaml.WithData(data)))
	}
	help, err = conf.ParseWithOptions(envPrefix, &cfg, opts...)
	if errors.Is(err, conf.ErrHelpWanted) || errors.Is(err, conf.ErrVersionWanted) {
		return cfg, help, nil
	}
	if err != nil {
		return cfg, "", err
	}
	return cfg, "", cfg.validate()
}

// configFilePath finds the config file before conf parses, since the file is one of conf's inputs.
func configFilePath(args []string) string {
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			break // flags end at the command
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "config" {
			if hasValue {
				return value
			}
			if i+1 < len(args) {
				return args[i+1]
			}
		}
	}
	return os.Getenv(envPrefix + "_CONFIG_FILE")
}

// validate fails fast on settings that cannot work; production also refuses weak secrets.
func (c *config) validate() error {
	var problems []string
	switch c.Mode {
	case "development", production:
	default:
		problems = append(problems, fmt.Sprintf("mode %q must be development or production", c.Mode))
	}
	switch c.Mail.TLS {
	case mail.TLSNone, mail.TLSStartTLS, mail.TLSImplicit:
	default:
		problems = append(problems, fmt.Sprintf("mail tls %q must be starttls, tls or none", c.Mail.TLS))
	}
	if c.Auth.JWTSecret != "" && len(c.Auth.JWTSecret) < 32 {
		problems = append(problems, "auth jwt-secret must be at least 32 bytes (mba config init generates one)")
	}
	if c.Mode == production {
		if c.Auth.JWTSecret == "" {
			problems = append(problems, "auth jwt-secret is required in production (MBA_AUTH_JWT_SECRET or the config file)")
		}
		if c.Auth.HashMemory < 19*1024 {
			problems = append(problems, "auth hash-memory below 19456 KiB is too weak for production")
		}
		if c.Mail.LogBodies {
			problems = append(problems, "mail log-bodies writes working links to the log and is refused in production")
		}
		if c.Mail.Host != "" && c.Mail.TLS == mail.TLSNone && c.Mail.User != "" {
			problems = append(problems, "mail credentials over an unencrypted SMTP connection are refused in production")
		}
	}
	if err := c.storage().Validate(); err != nil {
		problems = append(problems, err.Error())
	}
	if _, err := time.LoadLocation(c.Schedules.TimeZone); err != nil {
		problems = append(problems, fmt.Sprintf("schedules time-zone %q is not an IANA time zone", c.Schedules.TimeZone))
	}
	if c.Storage.Reuploads < 0 || c.Storage.MaxFileBytes < 1 {
		problems = append(problems, "storage reuploads must not be negative and max-file-bytes must be positive")
	}
	if c.HTTP.MetricsToken != "" && len(c.HTTP.MetricsToken) < 16 {
		problems = append(problems, "http metrics-token must be at least 16 bytes")
	}
	if c.Auth.HashMemoryTotal < uint64(c.Auth.HashMemory) || c.Auth.HashWait <= 0 {
		problems = append(problems, "auth hash-memory-total must be at least hash-memory and hash-wait positive")
	}
	if c.DB.DispatchLease < 3*time.Second || c.DB.DispatchLease > 5*time.Minute {
		problems = append(problems, "db dispatch-lease must be between 3s and 5m")
	}
	if c.HTTP.MaxBodyBytes < 1024 {
		problems = append(problems, "http max-body-bytes must be at least 1024")
	}
	if c.Audit.Retention < 0 {
		problems = append(problems, "audit retention must not be negative (0 keeps the log forever)")
	}
	if c.Sessions.MaxEnclosures < 1 || c.Sessions.MaxEnclosures > 1500 {
		problems = append(problems, "sessions max-enclosures must be between 1 and 1500 (Temporal allows 2000 pending children per workflow)")
	}
	if c.Sessions.MinFPS < 1 || c.Sessions.MaxFPS < c.Sessions.MinFPS {
		problems = append(problems, "sessions min-fps must be at least 1 and max-fps at least min-fps")
	}
	for name, d := range map[string]time.Duration{"enclosures down-after": c.Enclosures.DownAfter,
		"enclosures telemetry-bucket": c.Enclosures.TelemetryBucket, "enclosures scan-every": c.Enclosures.ScanEvery,
		"sessions start-deadline": c.Sessions.StartDeadline, "sessions end-grace": c.Sessions.EndGrace,
		"sessions silence-timeout": c.Sessions.SilenceTimeout, "sessions release-timeout": c.Sessions.ReleaseTimeout,
		"storage upload-deadline": c.Storage.UploadDeadline} {
		if d <= 0 {
			problems = append(problems, name+" must be positive")
		}
	}
	if c.Agent.Concurrency < 1 || c.Agent.Concurrency > 64 {
		problems = append(problems, "agent concurrency must be between 1 and 64")
	}
	if c.Agent.BandwidthBytesPerSecond < 0 {
		problems = append(problems, "agent bandwidth-bytes-per-second must not be negative (0 = unlimited)")
	}
	if c.Agent.ChunkBytes < 64<<10 {
		problems = append(problems, "agent chunk-bytes must be at least 65536")
	}
	if c.Agent.ScanEvery <= 0 || c.Agent.StableFor <= 0 {
		problems = append(problems, "agent scan-every and stable-for must be positive")
	}
	if _, err := c.allowedNetworks(); err != nil {
		problems = append(problems, err.Error())
	} else if c.Mode == production && len(c.Enclosures.AllowedNetworks) == 0 {
		problems = append(problems, "enclosures allowed-networks is required in production (the CIDRs of the lab's enclosures; MBA_ENCLOSURES_ALLOWED_NETWORKS)")
	}
	if c.Agent.RelayTimeout <= 0 || c.Agent.RelayTimeout >= 30*time.Second {
		problems = append(problems, "agent relay-timeout must be positive and below the client's 30s timeout")
	}
	if c.Agent.Token != "" && c.Agent.TokenFile != "" {
		problems = append(problems, "agent token and token-file are both set; keep one (token-file is preferred)")
	}
	publicOrigin, ok := api.Origin(c.HTTP.PublicURL)
	if !ok {
		problems = append(problems, fmt.Sprintf("http public-url %q must be an absolute http(s) URL", c.HTTP.PublicURL))
	}
	c.validateAlerts(&problems)
	c.HTTP.LinkOrigins = origins("http link-origins", c.HTTP.LinkOrigins, &problems)
	c.HTTP.CORSOrigins = origins("http cors-origins", c.HTTP.CORSOrigins, &problems)
	slices.Sort(problems)
	if len(problems) > 0 {
		return errors.New("invalid configuration: " + strings.Join(problems, "; "))
	}
	if len(c.HTTP.LinkOrigins) == 0 {
		c.HTTP.LinkOrigins = stringList{publicOrigin}
	}
	return nil
}

// devNetworks are where tokenless heartbeats may come from in development when none are set:
// loopback and the private ranges.
var devNetworks = []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10", "169.254.0.0/16"}

// allowedNetworks parses enclosures allowed-networks (the development default when unset).
func (c *config) allowedNetworks() ([]netip.Prefix, error) {
	cidrs := c.Enclosures.AllowedNetworks
	if len(cidrs) == 0 && c.Mode != production {
		cidrs = devNetworks
	}
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, raw := range cidrs {
		p, err := netip.ParsePrefix(strings.TrimSpace(raw))
		if err != nil {
			return nil, fmt.Errorf("enclosures allowed-networks: %q is not a CIDR like 10.0.0.0/8", raw)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// stringList is a list-valued setting. conf/v3 splits lists on ";" only, while its help shows
// "<string>,[string...]": both separators are accepted, and blanks around items are dropped.
type stringList []string

// Set implements conf's Setter (flags and environment variables); YAML lists decode as usual.
func (l *stringList) Set(value string) error {
	*l = nil
	for _, item := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ';' }) {
		if item = strings.TrimSpace(item); item != "" {
			*l = append(*l, item)
		}
	}
	return nil
}

// origins checks a list of browser origins and writes each the way browsers send it.
func origins(setting string, list stringList, problems *[]string) stringList {
	out := make(stringList, 0, len(list))
	for _, o := range list {
		if o == "*" && setting == "http cors-origins" {
			out = append(out, o)
			continue
		}
		origin, ok := api.Origin(o)
		if !ok {
			*problems = append(*problems, fmt.Sprintf("%s: %q is not an http(s) origin such as https://mba.lab.example", setting, o))
			continue
		}
		out = append(out, origin)
	}
	return out
}

// storage is the file storage the settings describe.
func (c *config) storage() storage.Config {
	st := c.Storage
	return storage.Config{Kind: st.Kind, Dir: st.Dir, S3Endpoint: st.S3Endpoint, S3Bucket: st.S3Bucket,
		S3Region: st.S3Region, S3Prefix: st.S3Prefix, S3AccessKey: st.S3AccessKey, S3SecretKey: st.S3SecretKey, S3TLS: st.S3TLS}
}
