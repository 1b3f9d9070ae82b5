# shellcheck shell=bash disable=SC2034 # PG_STARTED etc. are read by the sourcing scripts
# Shared helpers for scripts/run.sh, scripts/test.sh and the Makefile: a
# private PostgreSQL and a Temporal dev server, both bound to 127.0.0.1 only.
# Source it; every function reports failure through its return status, so it
# works with or without `set -euo pipefail` in the caller.

MBA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MBA_TOOLS_BIN=$MBA_ROOT/.tools/bin

# Newer CLI releases no longer build with `go install`, so this is pinned.
TEMPORAL_CLI_VERSION=1.5.1

# MinIO (S3-compatible storage for the tests) publishes no semver tags, so this
# is the pseudo-version `go install github.com/minio/minio@latest` resolved to.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

# Mailpit (an SMTP server that keeps every message, with a web inbox and an HTTP API) for
# make run's mail and the tests that read what the service sent.
MAILPIT_VERSION=v1.33.1

# Custom search attributes the workflows use; registered on every start. Their source is
# workflows/contract.go: TestSearchAttributesAreDefinedOnce fails when this list drifts from it.
MBA_SEARCH_ATTRIBUTES=(MbaSessionId=Int MbaDeviceNames=KeywordList MbaStatus=Keyword)

# Extra postgresql.conf lines for pg_up (test.sh trades durability for speed).
PG_EXTRA_SETTINGS=${PG_EXTRA_SETTINGS:-}

_say() { printf '==> %s\n' "$*" >&2; }
_err() { printf 'error: %s\n' "$*" >&2; }

# ---------------------------------------------------------------- PostgreSQL

_newest_initdb() {
	# shellcheck disable=SC2012 # fixed Debian paths; ls | sort -V orders 9.6 < 15
	ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1 || true
}

# _apt_install PKG...: install Debian packages (sudo unless root).
_apt_install() {
	local sudo=()
	[[ $EUID -eq 0 ]] || sudo=(sudo)
	# Lock timeout: wait for a concurrent apt/unattended-upgrades instead of failing.
	local apt=(apt-get -q -o DPkg::Lock::Timeout=300)
	if ! "${sudo[@]}" "${apt[@]}" update ||
		! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" "${apt[@]}" install -y --no-install-recommends "$@" </dev/null; then
		_err "apt-get install $* failed"
		return 1
	fi
}

# ensure_postgres_binaries: find (or apt-install) PostgreSQL; exports PG_BIN.
ensure_postgres_binaries() {
	local initdb
	initdb=$(_newest_initdb)
	if [[ -z $initdb ]]; then
		_say "installing PostgreSQL from apt (first time only)"
		# The package creates and may start a system cluster on :5432; we never use it.
		_apt_install postgresql || return 1
		local sudo=()
		[[ $EUID -eq 0 ]] || sudo=(sudo)
		if command -v pg_lsclusters >/dev/null; then
			local ver name _rest
			while read -r ver name _rest; do
				"${sudo[@]}" pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
			done < <(pg_lsclusters -h 2>/dev/null | awk '$4 == "online"')
		fi
		initdb=$(_newest_initdb)
		[[ -n $initdb ]] || { _err "no initdb under /usr/lib/postgresql after install"; return 1; }
	fi
	PG_BIN=$(dirname "$initdb")
	export PG_BIN
}

# PostgreSQL refuses to run as root, so as root its tools run as `postgres`.
_pg_as() {
	if [[ $EUID -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# Root only: a postgres user, and every parent of DIR searchable by it
# (mktemp -d and /root are 0700).
_pg_prepare_owner() {
	local dir=$1
	[[ $EUID -eq 0 ]] || return 0
	if ! id -u postgres >/dev/null 2>&1; then
		useradd --system --user-group --home-dir /var/lib/postgresql --no-create-home \
			--shell /usr/sbin/nologin postgres || return 1
	fi
	local d=$dir
	while d=$(dirname "$d"); [[ $d != / ]]; do
		if ! runuser -u postgres -- test -x "$d"; then
			_say "allowing user postgres to traverse $d (chmod o+x)"
			chmod o+x "$d" || return 1
		fi
	done
}

# pg_running DATADIR: true if a postmaster is alive for DATADIR.
pg_running() {
	[[ -f $1/postmaster.pid ]] && _pg_as "$PG_BIN/pg_ctl" status -D "$1" >/dev/null 2>&1
}

# pg_up DATADIR PORT: initialise (once) and start PostgreSQL on 127.0.0.1:PORT
# with trust auth, then make sure role `mba` and database `mba` exist.
# Sets PG_STARTED=1 if this call started the server, 0 if it was already up.
pg_up() {
	local datadir=$1 port=$2
	[[ -n ${PG_BIN:-} ]] || { _err "pg_up: call ensure_postgres_binaries first"; return 1; }
	mkdir -p "$datadir" || return 1
	datadir=$(cd "$datadir" && pwd) || return 1
	local log
	log=$(dirname "$datadir")/postgres.log

	_pg_prepare_owner "$datadir" || return 1
	touch "$log" && chmod 700 "$datadir" || return 1
	if [[ $EUID -eq 0 ]]; then
		chown postgres: "$datadir" "$log" || return 1
	fi

	if [[ ! -f $datadir/PG_VERSION ]]; then
		_say "initialising PostgreSQL data directory $datadir"
		_pg_as "$PG_BIN/initdb" -D "$datadir" -U postgres --auth=trust -E UTF8 \
			--locale=C.UTF-8 >>"$log" 2>&1 || { _err "initdb failed:"; tail -n 20 "$log" >&2; return 1; }
		echo "include_if_exists = 'mba.conf'" >>"$datadir/postgresql.conf"
	fi

	PG_STARTED=0
	if pg_running "$datadir"; then
		# Line 4 of postmaster.pid is the port the running server listens on.
		local running_port
		running_port=$(sed -n 4p "$datadir/postmaster.pid")
		if [[ $running_port != "$port" ]]; then
			_err "PostgreSQL for $datadir already runs on port $running_port, not $port"
			return 1
		fi
		_say "reusing PostgreSQL already running from $datadir"
	else
		# Rewritten on each start so the port can change; no Unix socket, so
		# nothing depends on /var/run/postgresql.
		{
			echo "listen_addresses = '127.0.0.1'"
			echo "port = $port"
			echo "unix_socket_directories = ''"
			printf '%s\n' "$PG_EXTRA_SETTINGS"
		} >"$datadir/mba.conf" || return 1
		[[ $EUID -ne 0 ]] || chown postgres: "$datadir/mba.conf"
		_pg_as "$PG_BIN/pg_ctl" -D "$datadir" -l "$log" -w -t 60 start >/dev/null ||
			{ _err "PostgreSQL failed to start:"; tail -n 20 "$log" >&2; return 1; }
		PG_STARTED=1
	fi

	"$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<-'SQL' || { _err "creating role/database mba failed"; return 1; }
		SELECT 'CREATE ROLE mba LOGIN SUPERUSER CREATEDB'
		 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mba') \gexec
		SELECT 'CREATE DATABASE mba OWNER mba'
		 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mba') \gexec
	SQL
	_say "PostgreSQL $(basename "$(dirname "$PG_BIN")") at postgres://mba@127.0.0.1:$port/mba (data $datadir, log $log)"
}

# pg_down DATADIR: fast shutdown, if running.
pg_down() {
	local datadir=$1
	pg_running "$datadir" || return 0
	_pg_as "$PG_BIN/pg_ctl" -D "$datadir" -m fast -w -t 60 stop >/dev/null &&
		_say "PostgreSQL stopped ($datadir)"
}

# ------------------------------------------------------------------ Chromium

# _ensure_apt VAR DEFAULT PACKAGE PURPOSE: the executable at $VAR (else DEFAULT), apt-installing
# PACKAGE the first time it is missing; exports VAR.
_ensure_apt() {
	local var=$1 path=${!1:-$2}
	if [[ ! -x $path ]]; then
		_say "installing $3 from apt for $4 (first time only)"
		_apt_install "$3" || return 1
		[[ -x $path ]] || { _err "no $path after installing $3"; return 1; }
	fi
	printf -v "$var" '%s' "$path"
	export "${var?}"
}

# ensure_chromium: Debian's chromium for the browser tests of the web UI
# (internal/e2e/ui_test.go); exports MBA_CHROMIUM.
ensure_chromium() { _ensure_apt MBA_CHROMIUM /usr/bin/chromium chromium "the web UI's browser tests"; }

# ensure_nginx: Debian's nginx for the test of deploy/nginx (internal/e2e/nginx_test.go);
# exports MBA_NGINX.
ensure_nginx() { _ensure_apt MBA_NGINX /usr/sbin/nginx nginx-light "the test of deploy/nginx"; }

# ensure_promtool: promtool, from Debian's prometheus package, for the test of
# deploy/prometheus (api/deploy_metrics_test.go); exports MBA_PROMTOOL. The package's own
# Prometheus service is never used: stopped and disabled when the install started it.
ensure_promtool() {
	local fresh=0
	[[ -x /usr/bin/promtool ]] || fresh=1
	_ensure_apt MBA_PROMTOOL /usr/bin/promtool prometheus "the test of deploy/prometheus" || return 1
	if ((fresh)) && [[ -d /run/systemd/system ]]; then
		local sudo=()
		[[ $EUID -eq 0 ]] || sudo=(sudo)
		"${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
	fi
}

# ------------------------------------------------------------------ Temporal

_temporal_ok() {
	[[ -x $1 && $("$1" --version 2>/dev/null) == *"version $TEMPORAL_CLI_VERSION "* ]]
}

# _build_tool NAME LABEL CHECK PACKAGE LDFLAGS: go install PACKAGE into .tools/bin/NAME unless
# `CHECK .tools/bin/NAME` passes. The lock stops concurrent make run/make test from building
# twice; the build goes to a scratch dir and is moved, so an interrupted one leaves nothing.
_build_tool() {
	local name=$1 label=$2 check=$3 pkg=$4 ldflags=$5
	local bin=$MBA_TOOLS_BIN/$name
	mkdir -p "$MBA_TOOLS_BIN" || return 1
	"$check" "$bin" && return 0
	(
		flock 9
		"$check" "$bin" && exit 0
		local tmp buildlog=$MBA_ROOT/.tools/$name-build.log
		_say "building $label (first time only, ~4 min; log: .tools/$name-build.log)…"
		tmp=$(mktemp -d "$MBA_TOOLS_BIN/.build.XXXXXX") || exit 1
		if ! GOBIN=$tmp GOFLAGS='' go install -ldflags "$ldflags" "$pkg" >"$buildlog" 2>&1; then
			rm -rf "$tmp"
			_err "building $label failed:"
			tail -n 30 "$buildlog" >&2
			exit 1
		fi
		mv "$tmp/$name" "$bin" && rm -rf "$tmp"
		_say "$label built: $bin"
	) 9>"$MBA_TOOLS_BIN/.$name.lock"
}

# ensure_temporal: build the pinned Temporal CLI into .tools/bin (once). -X stamps the version
# (plain go install reports 0.0.0-DEV), as the upstream release build does; -s -w only shrinks
# the binary.
ensure_temporal() {
	_build_tool temporal "Temporal CLI v$TEMPORAL_CLI_VERSION" _temporal_ok \
		"github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION" \
		"-s -w -X github.com/temporalio/cli/temporalcli.Version=$TEMPORAL_CLI_VERSION" || return 1
	TEMPORAL_BIN=$MBA_TOOLS_BIN/temporal
	export TEMPORAL_BIN
}

# _wait_started NAME PID LOGFILE DOWN CHECK...: wait up to 60 s for the command CHECK... to pass
# while PID lives. If it dies or the time runs out: show the end of LOGFILE, run DOWN (which
# stops the server and forgets its pid) and fail.
_wait_started() {
	local name=$1 pid=$2 logfile=$3 down=$4
	shift 4
	local deadline=$((SECONDS + 60)) why
	until "$@"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			why="exited during start-up"
		elif ((SECONDS >= deadline)); then
			why="not ready after 60 s"
		else
			sleep 0.3
			continue
		fi
		_err "$name $why; $logfile ends with:"
		tail -n 30 "$logfile" >&2
		"$down"
		return 1
	done
}

_temporal_ready() { _temporal_healthy "$1" && _temporal_sync_search_attributes "$1"; }

_temporal_healthy() {
	[[ $(timeout 10 "$TEMPORAL_BIN" operator cluster health --address "$1" 2>/dev/null) == *SERVING* ]]
}

# Adds any of MBA_SEARCH_ATTRIBUTES the namespace lacks. start-dev only
# registers them when it creates the namespace, i.e. on a fresh db file.
_temporal_sync_search_attributes() {
	local addr=$1 have sa
	have=$(timeout 10 "$TEMPORAL_BIN" operator search-attribute list --address "$addr" -n default 2>/dev/null) || return 1
	for sa in "${MBA_SEARCH_ATTRIBUTES[@]}"; do
		grep -qw "${sa%%=*}" <<<"$have" && continue
		_say "registering search attribute ${sa%%=*} (${sa#*=})"
		timeout 10 "$TEMPORAL_BIN" operator search-attribute create --address "$addr" -n default \
			--name "${sa%%=*}" --type "${sa#*=}" >/dev/null || return 1
	done
}

# temporal_up DBFILE PORT UIPORT|none LOGFILE: run `temporal server start-dev`
# in the background and wait until it serves. Sets TEMPORAL_PID (empty if an
# already-healthy server on PORT was reused).
temporal_up() {
	local dbfile=$1 port=$2 uiport=$3 logfile=$4
	local addr=127.0.0.1:$port
	[[ -n ${TEMPORAL_BIN:-} ]] || { _err "temporal_up: call ensure_temporal first"; return 1; }

	TEMPORAL_PID=
	export TEMPORAL_PID
	if port_in_use "$port"; then
		if _temporal_healthy "$addr"; then
			_say "reusing Temporal already serving on $addr"
			_temporal_sync_search_attributes "$addr"
			return
		fi
		_err "port $port is taken by something that is not a Temporal server"
		return 1
	fi

	local args=(server start-dev --ip 127.0.0.1 --port "$port" --db-filename "$dbfile" --log-level warn)
	if [[ $uiport == none ]]; then
		args+=(--headless)
	else
		args+=(--ui-port "$uiport")
	fi
	local sa
	for sa in "${MBA_SEARCH_ATTRIBUTES[@]}"; do
		args+=(--search-attribute "$sa")
	done

	mkdir -p "$(dirname "$dbfile")" "$(dirname "$logfile")" || return 1
	echo "--- $(date -Is) temporal ${args[*]}" >>"$logfile"
	# setsid: Ctrl-C on the terminal must not reach it; our trap stops it in order.
	setsid "$TEMPORAL_BIN" "${args[@]}" </dev/null >>"$logfile" 2>&1 &
	TEMPORAL_PID=$!

	_wait_started "Temporal dev server" "$TEMPORAL_PID" "$logfile" temporal_down _temporal_ready "$addr" || return 1
	local ui="no UI"
	[[ $uiport == none ]] || ui="UI http://127.0.0.1:$uiport"
	_say "Temporal dev server at $addr ($ui; db $dbfile, log $logfile)"
}

# temporal_down: stop the server temporal_up started, if any.
temporal_down() {
	local pid=${TEMPORAL_PID:-}
	TEMPORAL_PID=
	_stop_pid "$pid" "Temporal dev server"
}

# _stop_pid PID NAME: SIGTERM, up to 15 s of grace, then SIGKILL; quiet if PID is empty or gone.
_stop_pid() {
	local pid=$1 name=$2
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	local i
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	_say "$name stopped"
	return 0
}

# --------------------------------------------------------------------- MinIO

_minio_ok() {
	# `minio --version` says DEVELOPMENT.GOGET; the module version is in the build info.
	[[ -x $1 && $(go version -m "$1" 2>/dev/null) == *$'\tmod\tgithub.com/minio/minio\t'"$MINIO_VERSION"$'\t'* ]]
}

# ensure_minio: build the pinned MinIO server into .tools/bin (once).
ensure_minio() {
	_build_tool minio "MinIO $MINIO_VERSION" _minio_ok "github.com/minio/minio@$MINIO_VERSION" "-s -w" || return 1
	MINIO_BIN=$MBA_TOOLS_BIN/minio
	export MINIO_BIN
}

# _http_ok PORT PATH: true if GET PATH on 127.0.0.1:PORT answers 200. No curl on a fresh
# Debian: a bare HTTP/1.0 request through bash.
_http_ok() {
	# shellcheck disable=SC2016 # $1 and $2 are expanded by the inner bash
	timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3 &&
		IFS= read -r line <&3 && [[ $line == "HTTP/1."?" 200"* ]]' _ "$1" "$2" 2>/dev/null
}

_minio_live() { _http_ok "$1" /minio/health/live; }

_random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# minio_up DATADIR PORT LOGFILE: run `minio server` on 127.0.0.1:PORT (console
# on another free port) in the background and wait until it is live. Root
# credentials are MINIO_USER/MINIO_PASSWORD, generated unless already set.
# Sets MINIO_PID.
minio_up() {
	local datadir=$1 port=$2 logfile=$3
	[[ -n ${MINIO_BIN:-} ]] || { _err "minio_up: call ensure_minio first"; return 1; }
	MINIO_PID=
	if port_in_use "$port"; then
		_err "port $port is taken; MinIO needs a free one"
		return 1
	fi
	local console
	console=$(free_port) || return 1
	while [[ $console == "$port" ]]; do console=$(free_port) || return 1; done
	MINIO_USER=${MINIO_USER:-mba-$(_random_hex 6)}
	MINIO_PASSWORD=${MINIO_PASSWORD:-$(_random_hex 16)}

	mkdir -p "$datadir" "$(dirname "$logfile")" || return 1
	echo "--- $(date -Is) minio server $datadir --address 127.0.0.1:$port --console-address 127.0.0.1:$console" >>"$logfile"
	MINIO_ROOT_USER=$MINIO_USER MINIO_ROOT_PASSWORD=$MINIO_PASSWORD MINIO_UPDATE=off \
		setsid "$MINIO_BIN" server "$datadir" --address "127.0.0.1:$port" \
		--console-address "127.0.0.1:$console" </dev/null >>"$logfile" 2>&1 &
	MINIO_PID=$!

	_wait_started MinIO "$MINIO_PID" "$logfile" minio_down _minio_live "$port" || return 1
	_say "MinIO at 127.0.0.1:$port (console http://127.0.0.1:$console; data $datadir, log $logfile)"
}

# minio_down: stop the server minio_up started, if any.
minio_down() {
	local pid=${MINIO_PID:-}
	MINIO_PID=
	_stop_pid "$pid" "MinIO"
}

# ------------------------------------------------------------------- Mailpit

MAILPIT_LDFLAGS="-s -w -X github.com/axllent/mailpit/config.Version=$MAILPIT_VERSION"

# _mailpit_ok BIN: BIN is the pinned Mailpit, either build: the module's own (go install, whose
# inbox page is an empty shell for want of the built assets, see ensure_mailpit_ui) or
# ensure_mailpit_ui's from a copy of the module (reported as (devel), hence the -X version).
_mailpit_ok() {
	local info
	[[ -x $1 ]] && info=$(go version -m "$1" 2>/dev/null) || return 1
	[[ $info == *$'\tpath\tgithub.com/axllent/mailpit\n'* && $info == *"config.Version=$MAILPIT_VERSION\""* ]]
}

# _mailpit_ui_ok BIN: BIN is the pinned Mailpit with its web inbox: the built stylesheet is
# embedded under ui/dist, a name only ensure_mailpit_ui's build carries.
_mailpit_ui_ok() { _mailpit_ok "$1" && grep -qaF ui/dist/app.css "$1"; }

# ensure_mailpit: build the pinned Mailpit into .tools/bin (once), or keep either build there.
# Enough for the HTTP API, which the tests read, and /view/<id>.txt|html.
ensure_mailpit() {
	_build_tool mailpit "Mailpit $MAILPIT_VERSION" _mailpit_ok "github.com/axllent/mailpit@$MAILPIT_VERSION" \
		"$MAILPIT_LDFLAGS" || return 1
	MAILPIT_BIN=$MBA_TOOLS_BIN/mailpit
	export MAILPIT_BIN
}

# ensure_mailpit_ui: the pinned Mailpit with its web inbox in .tools/bin (built once, replacing
# an API-only build). The Go module lacks the inbox's JavaScript and CSS (server/ui/dist,
# built upstream with npm and esbuild), so this builds them as upstream's Dockerfile does, in a
# copy of the module under .tools, then the binary from there. Needs npm (Node 20 works) and
# the npm registry; fails, leaving the binary as it was, when either is missing.
ensure_mailpit_ui() {
	local bin=$MBA_TOOLS_BIN/mailpit
	mkdir -p "$MBA_TOOLS_BIN" || return 1
	if ! _mailpit_ui_ok "$bin"; then
		(
			flock 9
			_mailpit_ui_ok "$bin" || _build_mailpit_ui "$bin"
		) 9>"$MBA_TOOLS_BIN/.mailpit.lock" || return 1
	fi
	MAILPIT_BIN=$bin
	export MAILPIT_BIN
}

# _build_mailpit_ui BIN: ensure_mailpit_ui's build, run under its lock.
_build_mailpit_ui() (
	local bin=$1 dir=$MBA_ROOT/.tools/mailpit-ui-build log=$MBA_ROOT/.tools/mailpit-build.log src
	command -v npm >/dev/null || { _err "npm not found: Mailpit's web inbox is built with it"; exit 1; }
	_say "building Mailpit $MAILPIT_VERSION with its web inbox (first time only: under a minute of npm," \
		"then the Go build, minutes on a fresh machine; log: .tools/mailpit-build.log)…"
	: >"$log"
	fail() { _err "building Mailpit's web inbox failed ($1):"; tail -n 30 "$log" >&2; exit 1; }
	src=$(cd / && GOFLAGS='' go mod download -json "github.com/axllent/mailpit@$MAILPIT_VERSION" 2>>"$log" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') && [[ -n $src ]] || fail "go mod download"
	rm -rf "$dir" && cp -R "$src" "$dir" && chmod -R u+w "$dir" && cd "$dir" || fail "copying $src"
	# No browser downloads (Playwright is only for upstream's own tests) and no install scripts
	# (esbuild's only checks its platform binary, an optional dependency npm installs anyway).
	# --legacy-peer-deps skips sass-embedded, an alternative Sass compiler the build does not
	# use. The lockfile pins everything else.
	export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1 npm_config_update_notifier=false
	local npmflags=(--ignore-scripts --legacy-peer-deps --no-audit --no-fund)
	if ! npm ci "${npmflags[@]}" >>"$log" 2>&1; then
		# The registry reachable here answers 404 for the pinned rapidoc (and has no 12.x), which
		# only the API docs page (/api/v1/) uses: build without it, that page says where the docs are.
		_say "npm ci failed (see the log); retrying without rapidoc, which only the API docs page uses"
		npm uninstall rapidoc "${npmflags[@]}" >>"$log" 2>&1 || fail "npm install"
		echo 'addEventListener("DOMContentLoaded", () => { document.body.textContent = "The API docs' \
			'are not in this build of Mailpit: see https://mailpit.axllent.org/docs/api-v1/"; });' \
			>server/ui-src/docs.js
	fi
	npm run package >>"$log" 2>&1 || fail "npm run package"
	# -buildvcs=false: .tools may sit inside our git checkout, whose revision is not Mailpit's.
	GOFLAGS='' go build -buildvcs=false -ldflags "$MAILPIT_LDFLAGS" -o "$dir/mailpit.bin" . >>"$log" 2>&1 ||
		fail "go build"
	_mailpit_ui_ok "$dir/mailpit.bin" || fail "the binary carries no ui/dist"
	mv "$dir/mailpit.bin" "$bin" && cd / && rm -rf "$dir" || exit 1
	_say "Mailpit $MAILPIT_VERSION with its web inbox built: $bin"
)

_mailpit_ready() { _http_ok "$1" /readyz; }

# mailpit_up SMTPPORT HTTPPORT DBFILE|none LOGFILE: run Mailpit on 127.0.0.1 (SMTP without TLS
# or authentication, as a local catch-all) in the background and wait until it serves. With
# none the messages live in a temporary database deleted when it stops. Sets MAILPIT_PID and
# MAILPIT_URL (the web inbox and API base).
mailpit_up() {
	local smtp=$1 http=$2 dbfile=$3 logfile=$4
	[[ -n ${MAILPIT_BIN:-} ]] || { _err "mailpit_up: call ensure_mailpit first"; return 1; }
	MAILPIT_PID= MAILPIT_URL=
	local p
	for p in "$smtp" "$http"; do
		if port_in_use "$p"; then
			_err "port $p is taken; Mailpit needs it free"
			return 1
		fi
	done
	local args=(--smtp "127.0.0.1:$smtp" --listen "127.0.0.1:$http" --smtp-auth-accept-any
		--smtp-auth-allow-insecure --disable-version-check --smtp-disable-rdns --quiet)
	if [[ $dbfile != none ]]; then
		mkdir -p "$(dirname "$dbfile")" || return 1
		args+=(--database "$dbfile")
	fi
	mkdir -p "$(dirname "$logfile")" || return 1
	echo "--- $(date -Is) mailpit ${args[*]}" >>"$logfile"
	setsid "$MAILPIT_BIN" "${args[@]}" </dev/null >>"$logfile" 2>&1 &
	MAILPIT_PID=$!

	_wait_started Mailpit "$MAILPIT_PID" "$logfile" mailpit_down _mailpit_ready "$http" || return 1
	MAILPIT_URL=http://127.0.0.1:$http
	export MAILPIT_URL
	_say "Mailpit SMTP at 127.0.0.1:$smtp, inbox $MAILPIT_URL/ (log $logfile)"
}

# mailpit_down: stop the server mailpit_up started, if any.
mailpit_down() {
	local pid=${MAILPIT_PID:-}
	MAILPIT_PID=
	_stop_pid "$pid" "Mailpit"
}

# -------------------------------------------------------------------- ports

# port_in_use PORT: true if something listens on PORT (any local address).
port_in_use() {
	if command -v ss >/dev/null; then
		[[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# free_port: print a random free TCP port. 20000-31999 stays below the
# kernel's ephemeral range, where Temporal picks its internal ports.
free_port() {
	local i p
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 12000))
		port_in_use "$p" || { echo "$p"; return 0; }
	done
	_err "no free port found"
	return 1
}

# dir_in_use DIR: true if any process has DIR (or a file below it) open or as cwd.
dir_in_use() {
	local dir
	dir=$(cd "$1" 2>/dev/null && pwd -P) || return 1
	[[ -n $(find /proc/[0-9]*/cwd /proc/[0-9]*/fd -maxdepth 1 \
		\( -lname "$dir" -o -lname "$dir/*" \) -print -quit 2>/dev/null) ]]
}
