package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/store"
)

// enclosureCmd manages the fleet's admission from the database, like the admin API:
// mba enclosure list [--retired] | approve N | reject N | retire N | set N [--relayed=B]
// [--bound-address A] | token N. N is an enclosure's name or id.
func enclosureCmd(ctx context.Context, cfg config, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("enclosure needs list, approve, reject, retire, set or token")
	}
	fs := flag.NewFlagSet("enclosure "+args[0], flag.ContinueOnError)
	retired := fs.Bool("retired", false, "list the retired enclosures instead (list)")
	relayed := fs.String("relayed", "", "true: its heartbeats must come through its relay with its token; false: not (set)")
	bound := fs.String("bound-address", "-", `tokenless heartbeats only from this address; "registered" = where it registered from; "" unbinds (set)`)
	// The enclosure may come before or after the flags.
	ref, rest := "", args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		ref, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if ref == "" && fs.NArg() == 1 {
		ref = fs.Arg(0)
	} else if fs.NArg() > 0 {
		ref = ""
	}
	if args[0] != "list" && ref == "" {
		return fmt.Errorf("enclosure %s needs one enclosure name or id", args[0])
	}
	pool, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)
	now, down := time.Now(), cfg.Enclosures.DownAfter

	if args[0] == "list" {
		devices, err := st.ListDevices(ctx, now, down, *retired)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tLOCATION\tSTATE\tADMISSION\tRELAYED\tTOKEN\tBOUND\tLAST SEEN")
		for _, d := range devices {
			seen := "never"
			if d.LastUpdate != nil {
				seen = d.LastUpdate.Local().Format("2006-01-02 15:04:05")
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%v\t%v\t%s\t%s\n", d.ID, d.Name, d.Location, d.State, d.Admission,
				d.Relayed, d.HasToken, deref(d.BoundAddress), seen)
		}
		return tw.Flush()
	}
	d, err := st.DeviceByRef(ctx, ref, now, down)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no enclosure %s", ref)
	}
	if err != nil {
		return err
	}
	switch args[0] {
	case "approve", "reject":
		if err := st.SetDeviceAdmission(ctx, d.ID, args[0] == "approve"); err != nil {
			return err
		}
	case "retire":
		deleted, err := st.RetireDevice(ctx, d.ID, now)
		if err != nil {
			return err
		}
		if deleted {
			fmt.Fprintf(out, "enclosure %s deleted (it never recorded)\n", d.Name)
		} else {
			fmt.Fprintf(out, "enclosure %s retired; the sessions it recorded keep their history\n", d.Name)
		}
		return nil
	case "set":
		var set store.DeviceSettings
		if *relayed != "" {
			b, err := strconv.ParseBool(*relayed)
			if err != nil {
				return errors.New("--relayed must be true or false")
			}
			if b && !d.HasToken {
				return fmt.Errorf("enclosure %s has no token: give it one first (mba enclosure token %s), its relay sends it", d.Name, d.Name)
			}
			set.Relayed = &b
		}
		if *bound != "-" {
			addr, err := d.BoundAddressFor(*bound)
			if err != nil {
				return fmt.Errorf("--bound-address: %w", err)
			}
			set.BoundAddress = &addr
		}
		if err := st.UpdateDevice(ctx, d.ID, set); err != nil {
			return err
		}
	case "token":
		token, hash := auth.NewLinkToken()
		if err := st.SetDeviceToken(ctx, d.ID, hash); err != nil {
			return err
		}
		fmt.Fprintln(out, token) // shown once: install it on the enclosure (agent token-file)
		return nil
	default:
		return fmt.Errorf("unknown enclosure command %q", args[0])
	}
	d, err = st.DeviceByID(ctx, d.ID, now, down)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "enclosure %d %s admission=%s relayed=%v bound=%s\n", d.ID, d.Name, d.Admission, d.Relayed, deref(d.BoundAddress))
	return nil
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}
