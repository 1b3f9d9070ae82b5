#!/usr/bin/env bash
# `make test`: the Go test suite against a throw-away PostgreSQL, Temporal dev
# server, MinIO (S3) and Mailpit (SMTP) on random free ports in a private temp
# dir, so it never touches .data/ or a running `make run`.
#
# Usage: scripts/test.sh [go test flags] [packages]   (packages default to ./...)
#   GOTESTFLAGS   extra go test flags (e.g. GOTESTFLAGS=-v make test)
#   MBA_TEST_RACE=0   drop -race (benchmarks)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/devenv.sh

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mba-test.XXXXXX")
# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
	# Ignore further signals rather than die mid-way: `timeout` and make send SIGTERM to the
	# script and to its process group, so a second one arrives while this runs.
	trap - EXIT
	trap '' HUP INT TERM
	temporal_down || true
	minio_down || true
	mailpit_down || true
	pg_down "$tmp/pg" || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# A scratch cluster: crash safety buys nothing, speed does (every test
# creates and drops a database).
PG_EXTRA_SETTINGS=$'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200'

ensure_chromium
ensure_nginx
ensure_promtool
ensure_postgres_binaries
ensure_temporal
ensure_minio
ensure_mailpit
# The tests read mail through Mailpit's API, so they need not build its web inbox (npm, ~1 min),
# not even for the test of run.sh; an inbox build already in .tools serves them as well.
export MBA_MAILPIT_UI=0

pg_port=$(free_port)
pg_up "$tmp/pg" "$pg_port"
temporal_port=$(free_port)
temporal_up "$tmp/temporal.db" "$temporal_port" none "$tmp/temporal.log"
minio_port=$(free_port)
minio_up "$tmp/minio" "$minio_port" "$tmp/minio.log"
smtp_port=$(free_port)
mailpit_http_port=$(free_port)
while [[ $mailpit_http_port == "$smtp_port" ]]; do mailpit_http_port=$(free_port); done
mailpit_up "$smtp_port" "$mailpit_http_port" none "$tmp/mailpit.log"

# Tests must reach only these servers, never the developer's own.
unset MBA_DB_URL MBA_TEMPORAL_ADDRESS MBA_CONFIG_FILE
export MBA_TEST_DATABASE_URL="postgres://mba@127.0.0.1:$pg_port/postgres?sslmode=disable"
export MBA_TEST_TEMPORAL_ADDRESS=127.0.0.1:$temporal_port
export MBA_TEST_S3_ENDPOINT=127.0.0.1:$minio_port MBA_TEST_S3_ACCESS_KEY=$MINIO_USER MBA_TEST_S3_SECRET_KEY=$MINIO_PASSWORD
export MBA_TEST_REQUIRE_S3=1 # the S3 storage tests fail rather than skip
# Mail sent here is read back through Mailpit's HTTP API (internal/testenv/mailpit.go).
export MBA_TEST_SMTP_ADDR=127.0.0.1:$smtp_port MBA_TEST_MAILPIT_URL=$MAILPIT_URL

race=(-race)
[[ ${MBA_TEST_RACE:-1} != 0 ]] || race=()
pkgs=(./...)
for arg in "$@"; do
	case $arg in ./* | ../* | github.com/*) pkgs=() ;; esac
done

# shellcheck disable=SC2086 # GOTESTFLAGS is a list of flags
# The end-to-end package runs its stacks one after another: about 9 minutes on a loaded
# 2-core machine, too close to go test's default 10-minute limit.
go test "${race[@]}" -count=1 -timeout 40m ${GOTESTFLAGS:-} "$@" "${pkgs[@]}" && rc=0 || rc=$?
exit "$rc"
