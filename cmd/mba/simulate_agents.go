package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/jax-mba/mba/internal/agent"
	"github.com/jax-mba/mba/internal/apiclient"
	"github.com/jax-mba/mba/internal/simulator"
)

// runAgents gives every simulated enclosure a token of its own (as an admin would, through the
// API) and runs an upload agent beside it, so a demo shows files uploaded and verified. It
// returns once the agents are running; they stop with ctx.
func runAgents(ctx context.Context, log *slog.Logger, sim *simulator.Simulator, apiURL, videoDir, email, password string) error {
	api := apiclient.Client{Base: strings.TrimSuffix(strings.TrimRight(apiURL, "/"), "/api")}
	if err := api.Login(ctx, email, password); err != nil {
		return fmt.Errorf("logging in as %s to give the enclosures tokens: %w", email, err)
	}
	for _, e := range sim.Enclosures() {
		var tok struct {
			Token string `json:"token"`
		}
		path := "/api/device/" + url.PathEscape(e.Name()) + "/token"
		// The enclosure exists once its first heartbeat is in.
		err := retry(ctx, 30*time.Second, func() error { return api.Call(ctx, http.MethodPut, path, nil, &tok) })
		if err != nil {
			return fmt.Errorf("token for %s: %w", e.Name(), err)
		}
		e.SetToken(tok.Token)
		cfg := agent.Config{ServerURL: api.Base, Enclosure: e.Name(), Token: tok.Token, VideoDir: videoDir,
			StateDir: filepath.Join(videoDir+"-agents", e.Name()), Concurrency: 1,
			ScanEvery: 5 * time.Second, StableFor: 5 * time.Second}
		go func() {
			if err := agent.Run(ctx, cfg, log.With("agent", e.Name())); err != nil && ctx.Err() == nil {
				log.Error("upload agent stopped", "enclosure", e.Name(), "error", err)
			}
		}()
	}
	return nil
}

// retry calls fn every second until it succeeds or within has passed.
func retry(ctx context.Context, within time.Duration, fn func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
