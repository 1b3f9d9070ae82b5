package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// configTemplate is what `mba config init` writes; every other setting keeps its default
// (see `mba --help`) until added here.
const configTemplate = `# mba configuration, written by 'mba config init'. Keep it private (mode 0600).
# Every setting can also come from the environment (MBA_<SECTION>_<NAME>) or a flag;
# 'mba --help' lists them all with their defaults.
mode: %s
auth:
  # Signs every login token. Changing it signs everybody out.
  jwt_secret: %s
enclosures:
  # Where heartbeats without a token may come from (the unmodified client sends none):
  # narrow these to your enclosures' networks. Required in production.
  allowed_networks: [%s]
  # approve_new: true       # new enclosure names wait for an administrator
  # bind_on_register: true  # bind each new enclosure to the address it registered from
# db:
#   url: postgres://mba:PASSWORD@db.example.org:5432/mba?sslmode=verify-full
# temporal:
#   address: 127.0.0.1:7233
#   namespace: default
# http:
#   addr: 127.0.0.1:8080
#   public_url: https://mba.example.org
#   trust_proxy: true
#   metrics_addr: 127.0.0.1:9464  # Prometheus scrapes /metrics here (not anonymous on addr)
# mail:
#   host: smtp.example.org
#   port: 587
#   tls: starttls
#   user: mba
#   password: CHANGE-ME
#   from: MBA <mba@example.org>
# storage:
#   kind: dir                     # or s3
#   dir: /srv/mba/files           # an NFS mount in most labs
#   staging_dir: /srv/mba/uploads # same filesystem as dir: finishing an upload is a rename
#   # s3_endpoint: s3.example.org:9000
#   # s3_bucket: mba-videos
#   # s3_access_key: CHANGE-ME
#   # s3_secret_key: CHANGE-ME
`

// configCmd: config init --file F [--force] [--production].
func configCmd(args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "init" {
		if err := parseFlags(flag.NewFlagSet("config init --file F", flag.ContinueOnError), args, 0); err != nil {
			return err
		}
		return errors.New("config needs init")
	}
	fs := flag.NewFlagSet("config init", flag.ContinueOnError)
	file := fs.String("file", "", "where to write the config file")
	force := fs.Bool("force", false, "overwrite an existing file")
	prod := fs.Bool("production", false, "write mode: production")
	if err := parseFlags(fs, args[1:], 0); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("config init needs --file")
	}
	secret := make([]byte, 48)
	_, _ = rand.Read(secret)
	// Loopback only in development (simulated enclosures): in production the heartbeats come
	// through nginx, and loopback would admit anyone if trust_proxy were ever off.
	mode, networks := "development", `127.0.0.0/8, "::1/128", 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16`
	if *prod {
		mode, networks = production, "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16"
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(*file, flags, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; use --force to overwrite it (its secrets will change)", *file)
	}
	if err != nil {
		return err
	}
	// An existing file keeps its mode on O_TRUNC; secrets must not stay world-readable.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := fmt.Fprintf(f, configTemplate, mode, base64.RawURLEncoding.EncodeToString(secret), networks); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s (mode 0600)\n", *file)
	return nil
}
