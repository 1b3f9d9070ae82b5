package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/jax-mba/mba/activities"
	"github.com/jax-mba/mba/api"
	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/dispatch"
	"github.com/jax-mba/mba/internal/mail"
	"github.com/jax-mba/mba/internal/manifest"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/sdkmetrics"
	"github.com/jax-mba/mba/internal/storage"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/migrations"
	"github.com/jax-mba/mba/worker"
	"github.com/jax-mba/mba/workflows"
)

// serve runs the API (withAPI) and/or the Temporal worker until ctx is canceled (SIGINT/SIGTERM),
// then shuts both down gracefully.
func serve(ctx context.Context, cfg config, log *slog.Logger, withAPI bool) error {
	log.Info("starting", "build", build, "mode", cfg.Mode, "api", withAPI, "worker", !withAPI || cfg.Temporal.RunWorker)
	log.Info("configuration (secrets masked)", "config", configString(cfg))
	secret := []byte(cfg.Auth.JWTSecret)
	if len(secret) == 0 {
		secret = []byte(auth.RandomID() + auth.RandomID())
		log.Warn("no auth jwt-secret configured: using a random one, so tokens end when the process does (development only)")
	}

	pool, err := waitFor(ctx, log, "PostgreSQL", func(ctx context.Context) (*pgxpool.Pool, error) { return openDB(ctx, cfg) })
	if err != nil {
		return err
	}
	defer pool.Close()
	if cfg.DB.MigrateOnStart {
		if _, err := migrations.Up(ctx, pool, func(m migrations.Migration) {
			log.Info("applying migration", "version", m.Version, "name", m.Name)
		}); err != nil {
			return err
		}
	}
	st := store.New(pool)
	files, err := storage.New(ctx, cfg.storage())
	if err != nil {
		return fmt.Errorf("file storage: %w", err)
	}
	log.Info("file storage", "at", files.String())

	topts, err := temporalOptions(cfg, log)
	if err != nil {
		return err
	}
	// The SDK's own metrics (worker task latencies and failures, slots, requests) go to the
	// same /metrics as the service's.
	sdkMetrics := sdkmetrics.New()
	topts.MetricsHandler = sdkMetrics
	tc, err := waitFor(ctx, log, "Temporal", func(context.Context) (client.Client, error) { return dialTemporal(cfg, topts) })
	if err != nil {
		return err
	}
	defer tc.Close()

	if !withAPI || cfg.Temporal.RunWorker {
		deps := worker.StoreDeps(st)
		deps.Storage = files
		deps.Manifests = manifest.Writer{Source: st, Storage: files}
		deps.AuditRetention = cfg.Audit.Retention
		deps.Channels = cfg.alertChannels(newMailer(cfg, st, log))
		deps.AlertPolicy = cfg.alertPolicy()
		deps.ConditionLimits = cfg.conditionLimits()
		deps.Sessions = worker.StoreSessions(st, sessionRules(cfg), cfg.Enclosures.DownAfter)
		deps.Schedules = worker.StoreSchedules(st, cfg.Enclosures.DownAfter)
		deps.Changes = worker.StoreSessionChanges(st, sessionRules(cfg), cfg.Enclosures.DownAfter)
		w := worker.New(tc, cfg.Temporal.TaskQueue, deps)
		if err := w.Start(); err != nil {
			return fmt.Errorf("starting the Temporal worker: %w", err)
		}
		defer w.Stop()
		if err := worker.StartSingletons(ctx, tc, cfg.Temporal.TaskQueue, activities.FleetWatch{
			Every: cfg.Enclosures.ScanEvery, Down: cfg.Enclosures.DownAfter, Run: time.Hour,
			ReconcileEvery: time.Minute, Settle: time.Minute, ListenGap: listenGap,
			ClockSkew: cfg.Enclosures.ClockSkewWarning}); err != nil {
			return err
		}
		if err := worker.EnsureDigestSchedule(ctx, tc, cfg.Temporal.TaskQueue, cfg.digestSchedule()); err != nil {
			return err
		}
		log.Info("temporal worker running", "task_queue", cfg.Temporal.TaskQueue, "namespace", cfg.Temporal.Namespace)
	}
	if !withAPI {
		if cfg.HTTP.MetricsAddr != "" {
			reg := prometheus.NewRegistry()
			reg.MustRegister(sdkMetrics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			defer serveMetrics(cfg.HTTP.MetricsAddr, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}), log)()
		}
		<-ctx.Done()
		log.Info("shutting down the worker")
		return nil
	}

	sessions := dispatch.Sessions{Temporal: tc, TaskQueue: cfg.Temporal.TaskQueue, Settings: sessionSettings(cfg)}
	dispatcher := &dispatch.Dispatcher{Pool: pool, Outbox: st, Temporal: tc, Namespace: cfg.Temporal.Namespace,
		Sessions: sessions, Log: log.With("component", "outbox"), Poll: time.Second,
		Backoff: time.Second, MaxBackoff: time.Minute, Lease: cfg.DB.DispatchLease, Holder: holderName(),
		Ready: temporalReady{tc, cfg.Temporal.Namespace}.Ping}
	dispatchCtx, stopDispatch := context.WithCancel(context.Background())
	dispatched := make(chan struct{})
	go func() { defer close(dispatched); _ = dispatcher.Run(dispatchCtx) }()
	defer func() { stopDispatch(); <-dispatched }()

	// Heartbeats that arrive together share a transaction and a commit. Two workers measured
	// best on two cores (quick capacity scenario: 1 worker 0.49, 2 workers 0.54 of the floor).
	batcher := st.NewHeartbeatBatcher(2, 64)
	defer batcher.Close()
	networks, err := cfg.allowedNetworks() // checked by validate
	if err != nil {
		return err
	}

	labZone, err := time.LoadLocation(cfg.Schedules.TimeZone) // checked by validate
	if err != nil {
		return err
	}
	srv := api.NewServer(api.Deps{
		Config: api.Config{
			MaxBodyBytes: cfg.HTTP.MaxBodyBytes, RequestTimeout: cfg.HTTP.RequestTimeout,
			CORSOrigins: cfg.HTTP.CORSOrigins, TrustProxy: cfg.HTTP.TrustProxy,
			Info: api.InfoConfig{TemporalUIURL: cfg.Temporal.UIURL, TemporalNamespace: cfg.Temporal.Namespace, Version: build,
				AuditRetention: cfg.Audit.Retention},
			LinkOrigins: cfg.HTTP.LinkOrigins, LinkTTL: cfg.Auth.LinkTTL,
			LoginPerAccount: cfg.Auth.LoginPerAccount, LoginPerClient: cfg.Auth.LoginPerClient,
			ResetPerAccount: cfg.Auth.ResetPerAccount, ResetPerClient: cfg.Auth.ResetPerClient,
			HashMemoryKiB: cfg.Auth.HashMemoryTotal, HashWait: cfg.Auth.HashWait, MetricsToken: cfg.HTTP.MetricsToken,
			Enclosures: api.EnclosureConfig{AutoRegister: cfg.Enclosures.AutoRegister, DownAfter: cfg.Enclosures.DownAfter,
				StreamKeepAlive: cfg.Enclosures.StreamKeepAlive, TelemetryBucket: cfg.Enclosures.TelemetryBucket,
				ClockSkewWarning: cfg.Enclosures.ClockSkewWarning, StreamURL: cfg.Enclosures.StreamURL,
				AllowedNetworks: networks, ApproveNew: cfg.Enclosures.ApproveNew, BindOnRegister: cfg.Enclosures.BindOnRegister,
				RegisterRate: cfg.Enclosures.RegisterRate},
			Sessions: api.SessionConfig{Rules: sessionRules(cfg), AnyoneMayStop: cfg.Sessions.AnyoneMayStop},
			Uploads: api.UploadConfig{StagingDir: cfg.Storage.StagingDir, MaxFileBytes: cfg.Storage.MaxFileBytes,
				ManifestSince: 14 * 24 * time.Hour, DownloadTTL: time.Hour},
			Schedules: api.ScheduleConfig{TimeZone: labZone, MinInterval: cfg.Schedules.MinInterval},
			Alerts:    cfg.apiAlerts(),
		},
		Log:        log,
		Pool:       pool,
		Users:      st,
		Enclosures: store.BatchedStore{Store: st, Batcher: batcher},
		Sessions:   st,
		Workflows:  sessions,
		Changes:    sessions,
		Mailer:     newMailer(cfg, st, log),
		Tokens:     auth.Issuer{Secret: secret, AccessTTL: cfg.Auth.AccessTTL, RefreshTTL: cfg.Auth.RefreshTTL},
		Hasher:     hasher(cfg),
		Temporal:   temporalReady{tc, cfg.Temporal.Namespace},
		Files:      st,
		Storage:    files,

		Alerts:         st,
		Prefs:          st,
		Templates:      st,
		Subjects:       st,
		AlertWorkflows: dispatch.Alerts{Temporal: tc, TaskQueue: cfg.Temporal.TaskQueue, Policy: cfg.alertPolicy()},

		Schedules:        st,
		ScheduleTemporal: dispatch.Schedules{Temporal: tc, TaskQueue: cfg.Temporal.TaskQueue},
	})
	if err := srv.Register(sdkMetrics); err != nil {
		return fmt.Errorf("registering the Temporal SDK metrics: %w", err)
	}
	httpServer := &http.Server{
		Addr:              cfg.HTTP.Addr,
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.HTTP.PprofAddr != "" {
		// On its own address, never the public one: profiles show internals.
		go func() {
			err := http.ListenAndServe(cfg.HTTP.PprofAddr, pprofMux())
			log.Warn("pprof server stopped", "error", err)
		}()
		log.Info("pprof listening", "addr", cfg.HTTP.PprofAddr)
	}
	if cfg.HTTP.MetricsAddr != "" {
		defer serveMetrics(cfg.HTTP.MetricsAddr, srv.MetricsHandler(), log)()
	}
	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.HTTP.Addr, err)
	}
	log.Info("http api listening", "addr", ln.Addr().String(), "public_url", cfg.HTTP.PublicURL)
	go markListening(ctx, st, log)

	errc := make(chan error, 1)
	go func() { errc <- httpServer.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "grace", cfg.HTTP.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	srv.Wait(shutdownCtx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveMetrics serves /metrics on addr, its own address for the scraper only (/metrics on
// the API address needs the token), until the returned stop is called.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (stop func()) {
	metricsServer := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		err := metricsServer.ListenAndServe()
		log.Warn("metrics server stopped", "error", err)
	}()
	log.Info("metrics listening", "addr", addr)
	return func() { _ = metricsServer.Close() }
}

func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func sessionSettings(cfg config) workflows.Settings {
	c := cfg.Sessions
	return workflows.Settings{StartDeadline: c.StartDeadline, EndGrace: c.EndGrace, SilenceTimeout: c.SilenceTimeout,
		Resume: c.Resume, MinSegment: c.MinSegment, ReleaseTimeout: c.ReleaseTimeout,
		UploadDeadline: cfg.Storage.UploadDeadline, Reuploads: cfg.Storage.Reuploads, SkipFileChecks: !cfg.Storage.Verify}
}

// sessionRules are the rules of new sessions, the same for the API and the worker's activity.
func sessionRules(cfg config) recording.Rules {
	c := cfg.Sessions
	return recording.Rules{MaxEnclosures: c.MaxEnclosures, MinFPS: c.MinFPS, MaxFPS: c.MaxFPS, MaxDuration: c.MaxDuration,
		BytesPerSecond: c.BytesPerSecond, RejectLowDisk: c.RejectLowDisk}
}

// listenGap: the API renews its listening mark every listenGap/3; the fleet monitor counts
// an API silent for listenGap as not listening.
const listenGap = 15 * time.Second

// markListening tells the fleet monitor the API hears heartbeats, until ctx ends.
func markListening(ctx context.Context, st *store.Store, log *slog.Logger) {
	t := time.NewTicker(listenGap / 3)
	defer t.Stop()
	for {
		if err := st.MarkListening(ctx, listenGap); err != nil && ctx.Err() == nil {
			log.Warn("recording that the API listens", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// holderName names this process in leases: host and pid, plus a random part for containers
// that all run as pid 1.
func holderName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), auth.RandomID()[:8])
}

// waitFor calls connect until it succeeds or ctx ends, with backoff (1 s doubling to 30 s),
// logging each failure: a dependency that starts later (or restarts) is waited for, not a
// reason to exit.
func waitFor[T any](ctx context.Context, log *slog.Logger, what string, connect func(context.Context) (T, error)) (T, error) {
	wait := time.Second
	for {
		v, err := connect(ctx)
		if err == nil || ctx.Err() != nil {
			return v, err
		}
		log.Warn("waiting for "+what, "error", err.Error(), "retry_in", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, fmt.Errorf("gave up waiting for %s: %w", what, err)
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
}

func openDB(ctx context.Context, cfg config) (*pgxpool.Pool, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return store.Open(ctx, cfg.DB.URL, cfg.DB.MaxConns)
}

func hasher(cfg config) auth.Hasher {
	return auth.Hasher{MemoryKiB: cfg.Auth.HashMemory, Time: cfg.Auth.HashTime, Threads: cfg.Auth.HashThreads}
}

func newMailer(cfg config, st *store.Store, log *slog.Logger) mail.Sender {
	if cfg.Mail.Host == "" {
		log.Warn("no SMTP server configured: mail goes to the mail_log table and the log")
		return mail.Log{Store: st, Logger: log, LogBodies: cfg.Mail.LogBodies}
	}
	return mail.SMTP{Host: cfg.Mail.Host, Port: cfg.Mail.Port, TLS: cfg.Mail.TLS,
		Username: cfg.Mail.User, Password: cfg.Mail.Password, From: cfg.Mail.From}
}

// temporalOptions are the Temporal client's options, with TLS and an API key when configured.
func temporalOptions(cfg config, log *slog.Logger) (client.Options, error) {
	opts := client.Options{
		HostPort:  cfg.Temporal.Address,
		Namespace: cfg.Temporal.Namespace,
		Logger:    tlog.NewStructuredLogger(log.With("component", "temporal")),
		// gRPC keepalive pings (the SDK's defaults, stated): a connection to a frontend that
		// vanished fails within 45 s rather than when TCP gives up.
		ConnectionOptions: client.ConnectionOptions{KeepAliveTime: 30 * time.Second, KeepAliveTimeout: 15 * time.Second},
	}
	t := cfg.Temporal
	if t.CertFile != "" || t.CAFile != "" || t.ServerName != "" || t.APIKey != "" {
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return opts, fmt.Errorf("temporal client certificate: %w", err)
			}
			tlsCfg.Certificates = []tls.Certificate{cert}
		}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return opts, fmt.Errorf("temporal CA bundle: %w", err)
			}
			tlsCfg.RootCAs = x509.NewCertPool()
			if !tlsCfg.RootCAs.AppendCertsFromPEM(pem) {
				return opts, fmt.Errorf("temporal CA bundle %s holds no PEM certificate", t.CAFile)
			}
		}
		opts.ConnectionOptions.TLS = tlsCfg
	}
	if t.APIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(t.APIKey)
	}
	return opts, nil
}

// dialTemporal connects to the Temporal frontend.
func dialTemporal(cfg config, opts client.Options) (client.Client, error) {
	c, err := client.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("connecting to Temporal at %s (namespace %s): %w", cfg.Temporal.Address, cfg.Temporal.Namespace, err)
	}
	return c, nil
}

// temporalReady adapts dispatch.Ready to api.HealthChecker: /readyz is 503 on a wrong namespace
// or missing search attributes, not only when the server is down.
type temporalReady struct {
	c         client.Client
	namespace string
}

func (p temporalReady) Ping(ctx context.Context) error { return dispatch.Ready(ctx, p.c, p.namespace) }
