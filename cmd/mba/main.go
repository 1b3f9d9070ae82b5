// Command mba is the Mouse Behavior Analysis control service: the HTTP API, the Temporal
// worker and the operator commands, in one binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ardanlabs/conf/v3"
)

// build is set by the linker: -ldflags "-X main.build=v1.2.3".
var build = "develop"

const usage = `Usage: mba [settings] <command> [arguments]

Commands:
  serve                      run the HTTP API (and the Temporal worker unless --temporal-run-worker=false)
  worker                     run the Temporal worker alone
  migrate up|down [N]|status apply, revert (newest N, default 1) or list schema migrations
  user add --email E [--admin] [--password-stdin] [--if-absent]
  user list
  user set-admin --email E [--admin=false]
  user disable --email E [--enable]
  enclosure list [--retired] | approve N | reject N | retire N | token N
  enclosure set N [--relayed=true|false] [--bound-address A|registered|""]
                             the fleet's admission (N: name or id); token prints a new token once
  config init --file F [--force]   write a config file with fresh secrets (mode 0600)
  simulate [--count N] [--api URL] [--interval D] [--time-scale X]
                             run simulated enclosures that behave like the real client
  bench [--quick] [--scenarios capacity,fleet,fanout,longrun,uploads] [--report F]
                             load scenarios against the real stack (make bench)
  agent [--once]             the upload agent (on an enclosure): send finished video files to
                             the service, resumably (tus); --once: one pass, then exit; with
                             agent relay-addr also the enclosure's heartbeat relay

Settings come from a YAML file (--config or MBA_CONFIG_FILE), MBA_* environment variables,
or flags placed before the command. 'mba --help' lists every setting with its default.
`

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mba:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, help, err := loadConfig()
	if err != nil {
		return err
	}
	if help != "" {
		fmt.Print(usage + "\n" + help)
		return nil
	}
	log := newLogger(os.Stderr, cfg.Log.Level)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	args := []string(cfg.Args)
	if len(args) == 0 {
		fmt.Print(usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, cfg, log, true)
	case "worker":
		return serve(ctx, cfg, log, false)
	case "migrate":
		return migrateCmd(ctx, cfg, args[1:], os.Stdout)
	case "user":
		return userCmd(ctx, cfg, args[1:], os.Stdin, os.Stdout)
	case "enclosure":
		return enclosureCmd(ctx, cfg, args[1:], os.Stdout)
	case "config":
		return configCmd(args[1:], os.Stdout)
	case "simulate":
		return simulateCmd(ctx, log, args[1:], os.Stdout)
	case "bench":
		return benchCmd(ctx, args[1:], os.Stdout)
	case "agent":
		return agentCmd(ctx, cfg, log, args[1:], os.Stdout)
	case "help":
		fmt.Print(usage)
		return nil
	}
	return fmt.Errorf("unknown command %q (try 'mba help')", args[0])
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// configString renders the configuration with secrets masked, for the start-up log.
func configString(cfg config) string {
	s, err := conf.String(&cfg)
	if err != nil {
		return "unprintable: " + err.Error()
	}
	return s
}
