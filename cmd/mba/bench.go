package main

import (
	"context"
	"flag"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/jax-mba/mba/internal/bench"
)

// benchCmd runs the load scenarios against the real stack (scripts/bench.sh starts PostgreSQL
// and Temporal and passes them in): mba bench [--quick] [--scenarios a,b] [--report F].
func benchCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	exe, _ := os.Executable()
	pgPID, _ := strconv.Atoi(os.Getenv("MBA_BENCH_POSTGRES_PID"))
	tPID, _ := strconv.Atoi(os.Getenv("MBA_BENCH_TEMPORAL_PID"))
	cfg := bench.Config{Binary: exe, PostgresPID: pgPID, TemporalPID: tPID}
	fs.StringVar(&cfg.DatabaseURL, "db-url", os.Getenv("MBA_BENCH_DATABASE_URL"), "superuser URL of the PostgreSQL to use")
	fs.StringVar(&cfg.TemporalAddress, "temporal", os.Getenv("MBA_BENCH_TEMPORAL_ADDRESS"), "Temporal frontend host:port")
	fs.BoolVar(&cfg.Quick, "quick", false, "about a minute per scenario, for routine checks")
	scenarios := fs.String("scenarios", strings.Join(bench.Order, ","), "scenarios to run (also: "+strings.Join(bench.Extra, ",")+", about 7 minutes)")
	fs.StringVar(&cfg.Report, "report", "bench-report.json", "JSON report")
	fs.IntVar(&cfg.DBConns, "db-conns", 20, "database pool size of the service (and of the floor's clients)")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	cfg.Scenarios = strings.Split(*scenarios, ",")
	return bench.Run(ctx, cfg, out)
}
