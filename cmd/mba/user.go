package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/jax-mba/mba/internal/auth"
	"github.com/jax-mba/mba/internal/store"
)

// userCmd manages accounts without the HTTP API (the first administrator). Passwords come from
// a terminal prompt or stdin, never from the command line where ps and shell history see them.
func userCmd(ctx context.Context, cfg config, args []string, stdin io.Reader, out io.Writer) error {
	if len(args) == 0 || !slices.Contains([]string{"add", "list", "set-admin", "disable"}, args[0]) {
		if err := parseFlags(flag.NewFlagSet("user add|list|set-admin|disable", flag.ContinueOnError), args, 0); err != nil {
			return err
		}
		return fmt.Errorf("user needs add, list, set-admin or disable, not %q", strings.Join(args, " "))
	}
	fs := flag.NewFlagSet("user "+args[0], flag.ContinueOnError)
	email := fs.String("email", "", "the user's e-mail address")
	admin := fs.Bool("admin", false, "administrator (add, set-admin)")
	passwordStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin (add)")
	ifAbsent := fs.Bool("if-absent", false, "succeed without change if the user exists (add)")
	enable := fs.Bool("enable", false, "enable instead of disable (disable)")
	if args[0] == "set-admin" {
		*admin = true
		fs.Lookup("admin").DefValue = "true"
	}
	if err := parseFlags(fs, args[1:], 0); err != nil {
		return err
	}
	if args[0] != "list" && *email == "" {
		return fmt.Errorf("user %s needs --email", args[0])
	}

	pool, err := openDB(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)

	switch args[0] {
	case "add":
		if reason := auth.ValidateEmail(*email); reason != "" {
			return fmt.Errorf("--email %s", reason)
		}
		if _, err := st.UserByEmail(ctx, *email); err == nil {
			if *ifAbsent {
				fmt.Fprintln(out, "exists")
				return nil
			}
			return fmt.Errorf("a user %s already exists", *email)
		}
		pw, err := readPassword(stdin, *passwordStdin, *email)
		if err != nil {
			return err
		}
		hash, err := hasher(cfg).Hash(pw)
		if err != nil {
			return err
		}
		u, err := st.CreateUser(ctx, *email, hash, *admin)
		if errors.Is(err, store.ErrConflict) && *ifAbsent {
			fmt.Fprintln(out, "exists")
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "created user %d %s admin=%v\n", u.ID, u.Email, u.Admin)
		return nil
	case "list":
		users, err := st.ListUsers(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tADMIN\tDISABLED\tCREATED")
		for _, u := range users {
			fmt.Fprintf(tw, "%d\t%s\t%v\t%v\t%s\n", u.ID, u.Email, u.Admin, u.Disabled, u.CreatedAt.Local().Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	case "set-admin", "disable":
		u, err := st.UserByEmail(ctx, *email)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no user %s", *email)
		}
		if err != nil {
			return err
		}
		var ch store.UserChange
		if args[0] == "set-admin" {
			ch.Admin = admin
		} else {
			disabled := !*enable
			ch.Disabled = &disabled
		}
		if u, err = st.UpdateUser(ctx, u.ID, ch); err != nil {
			return err
		}
		fmt.Fprintf(out, "user %d %s admin=%v disabled=%v\n", u.ID, u.Email, u.Admin, u.Disabled)
		return nil
	}
	return fmt.Errorf("unknown user command %q", args[0])
}

// readPassword reads a new password from stdin's first line, or prompts twice on a terminal.
func readPassword(stdin io.Reader, fromStdin bool, email string) (string, error) {
	var pw string
	switch {
	case fromStdin:
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", errors.New("no password on stdin")
		}
		pw = strings.TrimRight(line, "\r\n")
	case term.IsTerminal(int(os.Stdin.Fd())):
		fmt.Fprint(os.Stderr, "Password: ")
		first, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(os.Stderr, "Repeat password: ")
		second, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", err
		}
		if string(first) != string(second) {
			return "", errors.New("the passwords differ")
		}
		pw = string(first)
	default:
		return "", errors.New("stdin is not a terminal: pass the password on stdin with --password-stdin")
	}
	if reason := auth.ValidatePassword(pw, email); reason != "" {
		return "", errors.New("password " + reason)
	}
	return pw, nil
}
