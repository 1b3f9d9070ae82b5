// Command mba is the Mouse Behavior Analysis control service: the HTTP API, the Temporal
// worker and the operator commands, in one binary.
package main

import (
	"context"
	"errors"
	"flag"
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
  bench [--quick] [--scenarios capacity,fleet,fanout,longrun,uploads,faults] [--report F]
                             load scenarios against the real stack (make bench)
  agent [--once]             the upload agent (on an enclosure): send finished video files to
                             the service, resumably (tus); --once: one pass, then exit; with
                             agent relay-addr also the enclosure's heartbeat relay

Settings come from a YAML file (--config or MBA_CONFIG_FILE), MBA_* environment variables,
or flags placed before the command. 'mba --help' lists every setting with its default;
'mba <command> --help' a command's own flags.
`

func main() {
	if err := run(); err != nil && !errors.Is(err, flag.ErrHelp) {
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
	case "serve", "worker":
		if err := parseFlags(flag.NewFlagSet(args[0], flag.ContinueOnError), args[1:], 0); err != nil {
			return err
		}
		return serve(ctx, cfg, log, args[0] == "serve")
	case "migrate":
		if err := parseFlags(flag.NewFlagSet("migrate up|down [N]|status", flag.ContinueOnError), args[1:], 2); err != nil {
			return err
		}
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

// parseFlags parses a command's flags and refuses more than maxArgs arguments after them, so a
// typo never runs a command on its defaults. --help anywhere prints the command's usage and
// returns flag.ErrHelp, which ends mba with exit 0 before it connects to anything.
func parseFlags(fs *flag.FlagSet, args []string, maxArgs int) error {
	fs.SetOutput(io.Discard) // errors are reported once, by main
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(os.Stdout)
			fmt.Fprintf(os.Stdout, "Usage: mba [settings] %s\n", fs.Name())
			for _, line := range strings.Split(usage, "\n") { // the command's lines of mba's usage
				if strings.HasPrefix(line, "  "+strings.Fields(fs.Name())[0]+" ") {
					fmt.Fprintln(os.Stdout, line)
				}
			}
			fs.PrintDefaults()
			fmt.Fprintln(os.Stdout, "\nSettings: see 'mba --help'.")
			return flag.ErrHelp
		}
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s: %w", strings.Fields(fs.Name())[0], err)
	}
	if fs.NArg() > maxArgs {
		return fmt.Errorf("%s: unexpected arguments %q (try 'mba %s --help')", strings.Fields(fs.Name())[0],
			fs.Args()[maxArgs:], strings.Fields(fs.Name())[0])
	}
	return nil
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
