package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/jax-mba/mba/internal/agent"
)

// agentCmd runs the upload agent on an enclosure: mba agent [--once]. It runs until SIGINT or
// SIGTERM; --once does one scan-and-upload pass and fails if any upload failed (tests, cron).
// With agent relay-addr set it is also the enclosure's heartbeat relay (without video-dir,
// only the relay).
func agentCmd(ctx context.Context, cfg config, log *slog.Logger, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	once := fs.Bool("once", false, "one scan-and-upload pass, then exit (non-zero if any upload failed)")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	acfg, err := agentConfig(cfg)
	if err != nil {
		return err
	}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		acfg.Progress = f
	}
	if !*once && cfg.Agent.RelayAddr != "" {
		rcfg := agent.RelayConfig{Addr: cfg.Agent.RelayAddr, ServerURL: acfg.ServerURL, Token: acfg.Token, Timeout: cfg.Agent.RelayTimeout}
		if acfg.VideoDir == "" {
			return agent.RunRelay(ctx, rcfg, log)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		relayErr := make(chan error, 1)
		go func() { relayErr <- agent.RunRelay(ctx, rcfg, log); cancel() }()
		err := agent.Run(ctx, acfg, log)
		cancel()
		return errors.Join(err, <-relayErr)
	}
	if !*once {
		return agent.Run(ctx, acfg, log)
	}
	sum, err := agent.RunOnce(ctx, acfg, log)
	fmt.Fprintln(out, sum.String())
	return err
}

// agentConfig turns the agent settings into the agent's configuration, reading the token file.
func agentConfig(cfg config) (agent.Config, error) {
	a := cfg.Agent
	token := a.Token
	if a.TokenFile != "" {
		b, err := os.ReadFile(a.TokenFile)
		if err != nil {
			return agent.Config{}, fmt.Errorf("agent token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	var missing []string
	if a.ServerURL == "" {
		missing = append(missing, "server-url (MBA_AGENT_SERVER_URL)")
	}
	if token == "" {
		missing = append(missing, "token-file or token (MBA_AGENT_TOKEN_FILE)")
	}
	if a.VideoDir == "" && a.RelayAddr == "" {
		missing = append(missing, "video-dir (MBA_AGENT_VIDEO_DIR)")
	}
	if len(missing) > 0 {
		return agent.Config{}, errors.New("agent: set " + strings.Join(missing, ", "))
	}
	return agent.Config{
		ServerURL:               a.ServerURL,
		Enclosure:               a.Enclosure,
		Token:                   token,
		VideoDir:                a.VideoDir,
		EnclosureDir:            a.EnclosureDir,
		StateDir:                a.StateDir,
		Concurrency:             a.Concurrency,
		BandwidthBytesPerSecond: a.BandwidthBytesPerSecond,
		ChunkBytes:              a.ChunkBytes,
		ScanEvery:               a.ScanEvery,
		StableFor:               a.StableFor,
		DeleteVerified:          a.DeleteVerified,
	}, nil
}
