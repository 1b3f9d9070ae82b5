package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/jax-mba/mba/migrations"
)

// migrateCmd: migrate up | down [N] | status.
func migrateCmd(ctx context.Context, cfg config, args []string, out io.Writer) error {
	if len(args) == 0 || !slices.Contains([]string{"up", "down", "status"}, args[0]) {
		return fmt.Errorf("migrate needs up, down [N] or status, not %q", strings.Join(args, " "))
	}
	if len(args) > 1 && args[0] != "down" {
		return fmt.Errorf("migrate %s: unexpected arguments %q", args[0], args[1:])
	}
	pool, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	progress := func(verb string) func(migrations.Migration) {
		return func(m migrations.Migration) { fmt.Fprintf(out, "%s %04d_%s\n", verb, m.Version, m.Name) }
	}
	switch args[0] {
	case "up":
		applied, err := migrations.Up(ctx, pool, progress("applying"))
		if err == nil {
			fmt.Fprintf(out, "schema up to date (%d applied now)\n", len(applied))
		}
		return err
	case "down":
		steps := 1
		if len(args) > 1 {
			if steps, err = strconv.Atoi(args[1]); err != nil || steps < 1 {
				return fmt.Errorf("migrate down takes a positive number of steps, not %q", args[1])
			}
		}
		reverted, err := migrations.Down(ctx, pool, steps, progress("reverting"))
		if err == nil {
			fmt.Fprintf(out, "%d reverted\n", len(reverted))
		}
		return err
	case "status":
		list, err := migrations.List(ctx, pool)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
		for _, s := range list {
			applied := "pending"
			if s.AppliedAt != nil {
				applied = s.AppliedAt.Local().Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(tw, "%04d\t%s\t%s\n", s.Version, s.Name, applied)
		}
		return tw.Flush()
	}
	return fmt.Errorf("unknown migrate command %q: use up, down [N] or status", args[0])
}
