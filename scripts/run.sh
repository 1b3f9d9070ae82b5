#!/usr/bin/env bash
# `make run`: PostgreSQL + Temporal dev server + Mailpit (SMTP with a web inbox) +
# mba serve on this machine, state kept in .data/ so a second run picks up where
# the first left off. Set MBA_DB_URL / MBA_TEMPORAL_ADDRESS / MBA_MAIL_HOST to use
# servers of your own instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/devenv.sh

DATA=${MBA_DATA_DIR:-$PWD/.data}
mkdir -p "$DATA"

PG_STARTED=0
TEMPORAL_PID= # a value inherited from the environment is not ours to stop
MAILPIT_PID=
serve_pid=
sim_pid=
# Stop only what this script started, newest first.
cleanup() {
	# Ignore further signals rather than die mid-way: `timeout` and make send SIGTERM to the
	# script and to its process group, so a second one arrives while this runs.
	trap - EXIT
	trap '' HUP INT TERM
	if [[ -n $sim_pid ]]; then kill -TERM "$sim_pid" 2>/dev/null || true; fi
	if [[ -n $serve_pid ]] && kill -0 "$serve_pid" 2>/dev/null; then
		kill -TERM "$serve_pid" 2>/dev/null || true
		wait "$serve_pid" 2>/dev/null || true
	fi
	temporal_down || true
	mailpit_down || true
	if ((PG_STARTED)); then pg_down "$DATA/pg" || true; fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z ${MBA_DB_URL:-} ]]; then
	ensure_postgres_binaries
	pg_up "$DATA/pg" 5433
	export MBA_DB_URL="postgres://mba@127.0.0.1:5433/mba?sslmode=disable"
fi

ui="(not started here)"
if [[ -z ${MBA_TEMPORAL_ADDRESS:-} ]]; then
	ensure_temporal
	temporal_up "$DATA/temporal.db" 7233 8233 "$DATA/temporal.log"
	export MBA_TEMPORAL_ADDRESS=127.0.0.1:7233
	ui=http://127.0.0.1:8233
fi

# Invites, password resets and alerts land in Mailpit's inbox, never in a real mailbox.
inbox="(not started here: mail goes to MBA_MAIL_HOST)"
if [[ -z ${MBA_MAIL_HOST:-} ]]; then
	# The web inbox needs a build of Mailpit with its UI (npm); without one, the API and the
	# text view still work. MBA_MAILPIT_UI=0 (scripts/test.sh's run of this script) skips it.
	inbox_note="latest message as text: "
	if [[ ${MBA_MAILPIT_UI:-1} == 0 ]]; then
		ensure_mailpit
	elif ! ensure_mailpit_ui; then
		_err "Mailpit's web inbox stays blank; \`make mailpit-ui\` builds it (log .tools/mailpit-build.log)"
		ensure_mailpit
		inbox_note="web inbox blank, see \`make mailpit-ui\`; latest message as text: "
	fi
	# Mailpit's usual ports, unless taken (another make run, the tests' run of this script).
	smtp_port=${MBA_MAILPIT_SMTP_PORT:-1025}
	if [[ -z ${MBA_MAILPIT_SMTP_PORT:-} ]] && port_in_use "$smtp_port"; then smtp_port=$(free_port); fi
	inbox_port=${MBA_MAILPIT_HTTP_PORT:-8025}
	if [[ -z ${MBA_MAILPIT_HTTP_PORT:-} ]] && port_in_use "$inbox_port"; then
		inbox_port=$(free_port)
		while [[ $inbox_port == "$smtp_port" ]]; do inbox_port=$(free_port); done
	fi
	mailpit_up "$smtp_port" "$inbox_port" "$DATA/mailpit.db" "$DATA/mailpit.log"
	export MBA_MAIL_HOST=127.0.0.1 MBA_MAIL_PORT=$smtp_port MBA_MAIL_TLS=none
	inbox="$MAILPIT_URL/   ($inbox_note$MAILPIT_URL/view/latest.txt)"
fi

_say "building bin/mba"
go build -o bin/mba ./cmd/mba

if [[ ! -f $DATA/mba.yaml ]]; then
	bin/mba config init --file "$DATA/mba.yaml"
fi
export MBA_CONFIG_FILE=$DATA/mba.yaml

bin/mba migrate up

# Alerts on a quicker cycle than production's (DOWN after 60 s, escalation after 15 min to
# nobody): trying them locally should take minutes. The environment or the config file wins.
demo_default() { # VAR yaml_key value
	if [[ -z ${!1:-} ]] && ! grep -Eq "^[[:space:]]*$2:" "$MBA_CONFIG_FILE"; then export "$1=$3"; fi
}
demo_default MBA_ENCLOSURES_DOWN_AFTER down_after 30s
demo_default MBA_ENCLOSURES_SCAN_EVERY scan_every 5s
demo_default MBA_ALERTS_ESCALATE_AFTER escalate_after 2m
demo_default MBA_ALERTS_ESCALATION escalation oncall@example.com
demo_default MBA_ALERTS_DAMPING damping 30s

# Where serve listens, as a URL this machine can reach (a wildcard address is reached on
# loopback); links in mail point there too unless MBA_HTTP_PUBLIC_URL says otherwise.
addr=${MBA_HTTP_ADDR:-127.0.0.1:8080}
host=${addr%:*}
case $host in "" | 0.0.0.0) host=127.0.0.1 ;; "[::]") host="[::1]" ;; esac
base=http://$host:${addr##*:}
export MBA_HTTP_PUBLIC_URL=${MBA_HTTP_PUBLIC_URL:-$base}

# Prometheus' view of the service (enclosures, sessions, outbox, the worker's SDK metrics).
export MBA_HTTP_METRICS_ADDR=${MBA_HTTP_METRICS_ADDR:-127.0.0.1:9464}

email=${MBA_DEV_ADMIN_EMAIL:-admin@example.com}
pw=${MBA_DEV_ADMIN_PASSWORD:-}
generated=0
if [[ -z $pw ]]; then
	pw=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
	generated=1
fi
result=$(printf '%s\n' "$pw" | bin/mba user add --email "$email" --admin --password-stdin --if-absent)
if grep -qw created <<<"$result"; then
	if ((generated)); then
		admin_note="dev admin:    $email   password: $pw   (shown only this once)"
	else
		admin_note="dev admin:    $email   (password from MBA_DEV_ADMIN_PASSWORD)"
	fi
elif grep -qw exists <<<"$result"; then
	admin_note="dev admin:    $email   (already existed; password unchanged)"
else
	admin_note="dev admin:    $email   (unexpected answer from mba user add: $result)"
fi

cat <<BANNER

  mba is starting
    Web UI:       $base/
    API:          $base/api/
    Temporal UI:  $ui
    Mail inbox:   $inbox
    Metrics:      http://$MBA_HTTP_METRICS_ADDR/metrics
    Alerts:       DOWN after ${MBA_ENCLOSURES_DOWN_AFTER:-the configured time}, escalated after ${MBA_ALERTS_ESCALATE_AFTER:-the configured time} to ${MBA_ALERTS_ESCALATION:-the configured tiers}; mail in the inbox above (scripts/alerts-demo.sh)
    $admin_note
    data:         $DATA   (logs: postgres.log, temporal.log, mailpit.log)
  Press Ctrl-C to stop everything started here.

BANNER

# Own session, so Ctrl-C reaches only this script; the trap then stops serve
# before the servers it depends on.
setsid bin/mba serve &
serve_pid=$!

# MBA_SIMULATE=N adds N simulated enclosures (SIM1..SIMN, heartbeat every 2 s) for a demo.
# They write the client's video files under $DATA/sim-video, and when the admin's password is
# known here (MBA_DEV_ADMIN_PASSWORD, or just generated) an upload agent beside each one sends
# them to the service, which verifies them. MBA_SIMULATE_TIME_SCALE speeds up their clock.
if [[ ${MBA_SIMULATE:-0} -gt 0 ]]; then
	until curl -fs "$base/healthz" >/dev/null 2>&1; do
		kill -0 "$serve_pid" 2>/dev/null || exit 1 # serve failed; its error is above
		sleep 0.2
	done
	sim_args=(--count "$MBA_SIMULATE" --api "$base/api" --prefix SIM --interval 2s --report 1m
		--video-dir "$DATA/sim-video" --time-scale "${MBA_SIMULATE_TIME_SCALE:-1}")
	agents="no upload agents: set MBA_DEV_ADMIN_PASSWORD to have them"
	if [[ -n ${MBA_DEV_ADMIN_PASSWORD:-} ]] || grep -qw created <<<"$result"; then
		sim_args+=(--agents)
		agents="with upload agents"
	fi
	MBA_SIMULATE_ADMIN_EMAIL=$email MBA_SIMULATE_ADMIN_PASSWORD=$pw \
		setsid bin/mba simulate "${sim_args[@]}" >"$DATA/simulate.log" 2>&1 &
	sim_pid=$!
	echo "==> $MBA_SIMULATE simulated enclosures, $agents (log: $DATA/simulate.log)"
fi
wait "$serve_pid"
