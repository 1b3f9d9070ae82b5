#!/usr/bin/env bash
# `make bench`: the load scenarios of `mba bench` against a private PostgreSQL (default
# settings, fsync on: the figures are meant to be real) and Temporal dev server, plus the Go
# micro-benchmarks. Arguments go to `mba bench` (e.g. --quick, --scenarios capacity).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/devenv.sh

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mba-bench.XXXXXX")
cleanup() {
	trap - EXIT HUP INT TERM
	temporal_down || true
	pg_down "$tmp/pg" || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_postgres_binaries
pg_port=$(free_port)
PG_EXTRA_SETTINGS='max_connections = 200' pg_up "$tmp/pg" "$pg_port"
ensure_temporal
temporal_port=$(free_port)
temporal_up "$tmp/temporal.db" "$temporal_port" none "$tmp/temporal.log"

go build -o bin/mba ./cmd/mba
export MBA_BENCH_DATABASE_URL="postgres://mba@127.0.0.1:$pg_port/postgres?sslmode=disable"
export MBA_BENCH_TEMPORAL_ADDRESS=127.0.0.1:$temporal_port
MBA_BENCH_POSTGRES_PID=$(head -1 "$tmp/pg/postmaster.pid")
export MBA_BENCH_POSTGRES_PID MBA_BENCH_TEMPORAL_PID=${TEMPORAL_PID:-0}
bin/mba bench "$@"
