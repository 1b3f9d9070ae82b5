package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/jax-mba/mba/internal/simulator"
)

// simulateCmd runs simulated enclosures that behave like the unmodified client, for demos,
// load and end-to-end checks: mba simulate --count 20 --api http://127.0.0.1:8080/api
func simulateCmd(ctx context.Context, log *slog.Logger, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	cfg := simulator.Config{Logger: log}
	fs.StringVar(&cfg.BaseURL, "api", "http://127.0.0.1:8080/api", "the service's API base URL")
	fs.IntVar(&cfg.Count, "count", 10, "number of enclosures")
	fs.StringVar(&cfg.NamePrefix, "prefix", "NV", "hostname prefix (NV1, NV2, ...)")
	fs.IntVar(&cfg.FirstNumber, "first", 1, "number of the first enclosure")
	fs.StringVar(&cfg.Location, "location", "sim", "location label")
	fs.DurationVar(&cfg.Interval, "interval", 10*time.Second, "heartbeat interval (update_interval)")
	fs.DurationVar(&cfg.FollowUp, "follow-up", time.Second, "poll delay after START, STOP or COMPLETE")
	fs.Float64Var(&cfg.TimeScale, "time-scale", 1, "simulated seconds per real second")
	fs.StringVar(&cfg.VideoDir, "video-dir", "", "write the client's video files here")
	fs.BoolVar(&cfg.Relayed, "relayed", false, "the enclosures sit behind their relay: heartbeats carry their token (with --agents); by default none, like the unmodified client")
	every := fs.Duration("report", 10*time.Second, "how often to print a summary")
	agents := fs.Bool("agents", false, "run an upload agent beside each enclosure (needs --video-dir; gives each enclosure a token as the admin in MBA_SIMULATE_ADMIN_EMAIL / MBA_SIMULATE_ADMIN_PASSWORD)")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *agents && (cfg.VideoDir == "" || os.Getenv("MBA_SIMULATE_ADMIN_PASSWORD") == "") {
		return errors.New("simulate: --agents needs --video-dir and MBA_SIMULATE_ADMIN_PASSWORD (and MBA_SIMULATE_ADMIN_EMAIL)")
	}
	sim, err := simulator.New(cfg)
	if err != nil {
		return err
	}
	if *agents {
		go func() {
			email := cmp.Or(os.Getenv("MBA_SIMULATE_ADMIN_EMAIL"), "admin@example.com")
			if err := runAgents(ctx, log, sim, cfg.BaseURL, cfg.VideoDir, email, os.Getenv("MBA_SIMULATE_ADMIN_PASSWORD")); err != nil {
				log.Error("no upload agents", "error", err)
				return
			}
			fmt.Fprintf(out, "upload agents running for %d enclosures\n", cfg.Count)
		}()
	}
	go func() {
		t := time.NewTicker(*every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fmt.Fprintln(out, sim.Stats().String())
			}
		}
	}()
	fmt.Fprintf(out, "simulating %d enclosures against %s; Ctrl-C stops\n", cfg.Count, cfg.BaseURL)
	err = sim.Run(ctx)
	fmt.Fprintln(out, sim.Stats().String())
	if ctx.Err() != nil {
		return nil // Ctrl-C is how a simulation ends
	}
	return err
}
