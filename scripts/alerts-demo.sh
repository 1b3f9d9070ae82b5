#!/usr/bin/env bash
# Rehearses the alert path against a running `make run` (README "Alerts: trying it locally"):
# two simulated enclosures record a session, one stops heartbeating (SIGSTOP: a network
# outage, it keeps recording), and the DOWN mail, its escalation, the acknowledgement and the
# recovery notice are watched in Mailpit, with how long each took.
#
#   MBA_DEV_ADMIN_PASSWORD=... scripts/alerts-demo.sh
#
# MBA_URL (http://127.0.0.1:8080), MAILPIT_URL (http://127.0.0.1:8025), MBA_DEV_ADMIN_EMAIL
# (admin@example.com) say where make run is; ACK=0 leaves the alert unacknowledged.
set -euo pipefail
cd "$(dirname "$0")/.."

base=${MBA_URL:-http://127.0.0.1:8080}
inbox=${MAILPIT_URL:-http://127.0.0.1:8025}
email=${MBA_DEV_ADMIN_EMAIL:-admin@example.com}
pw=${MBA_DEV_ADMIN_PASSWORD:?set MBA_DEV_ADMIN_PASSWORD to the dev admin\'s password (make run prints it)}
wait_max=${DEMO_WAIT:-900} # seconds any one step may take
for c in curl jq go; do command -v "$c" >/dev/null || { echo "alerts-demo: needs $c" >&2; exit 1; }; done

say() { printf '%s  %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { say "FAILED: $*" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
sid=
cleanup() {
	trap - EXIT
	for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
	if [[ -n $sid ]]; then api -X DELETE "$base/api/recording-session/$sid" >/dev/null 2>&1 || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

token=$(curl -fsS -H 'Content-Type: application/json' \
	-d "$(jq -n --arg e "$email" --arg p "$pw" '{email_address: $e, password: $p}')" "$base/api/auth/login" | jq -r .access) ||
	die "cannot sign in to $base as $email (is make run running? the password it printed?)"
api() { curl -fsS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
curl -fsS "$inbox/api/v1/info" >/dev/null || die "no Mailpit API at $inbox (make run prints the inbox URL: set MAILPIT_URL)"

# until SECONDS_MAX WHAT COMMAND...: runs COMMAND every second until it succeeds.
until_ok() {
	local max=$1 what=$2 start=$SECONDS
	shift 2
	until "$@"; do
		((SECONDS - start < max)) || die "$what: not within ${max}s"
		sleep 1
	done
}

go build -o bin/mba ./cmd/mba
# Each enclosure is a process of its own, so one can be stopped alone.
for n in 1 2; do
	bin/mba simulate --api "$base/api" --count 1 --prefix DEMO --first "$n" --interval 2s >"$tmp/sim$n.log" 2>&1 &
	pids+=($!)
done

idle_ids() {
	api "$base/api/device" | jq -e -r '[.[] | select((.name == "DEMO1" or .name == "DEMO2") and .state == "IDLE") | .id] |
		if length == 2 then join(" ") else error("not yet") end' >"$tmp/ids" 2>/dev/null
}
until_ok 60 "DEMO1 and DEMO2 registered and IDLE" idle_ids
read -r id1 id2 <"$tmp/ids"

sid=$(api -d "$(jq -n --argjson a "$id1" --argjson b "$id2" '{name: "alerts demo", duration: 3600, target_fps: 30,
	fragment_hourly: true, device_spec: [{device_id: $a, filename_prefix: "cage1"}, {device_id: $b, filename_prefix: "cage2"}]}')" \
	"$base/api/recording-session" | jq -r .id)
say "session $sid started on DEMO1 and DEMO2: $base/#/sessions/$sid"
recording() { api "$base/api/recording-session/$sid" | jq -e '[.device_statuses[].status] | all(. == "RECORDING")' >/dev/null; }
until_ok 120 "both enclosures recording" recording

# mail SUBJECT_PREFIX: the id of the first message whose subject starts so, into $tmp/mail.
find_mail() {
	curl -fsS "$inbox/api/v1/messages?limit=200" |
		jq -e -r --arg s "$1" '[.messages[] | select(.Subject | startswith($s))] | last | .ID' >"$tmp/mail" 2>/dev/null
}
# (No gsub on "^": jq 1.6 loops on an empty match, eating memory.)
show() { curl -fsS "$inbox/api/v1/message/$(cat "$tmp/mail")" | jq -r '"    To: \([.To[].Address] | join(", "))\n    Subject: \(.Subject)\n" + (.Text | gsub("\r"; "") | split("\n") | map("    " + .) | join("\n"))'; }

kill -STOP "${pids[1]}"
down_at=$SECONDS
say "DEMO2 stopped heartbeating (SIGSTOP); waiting for the DOWN mail"
subject="enclosure_down: DEMO2 is DOWN in session $sid "
until_ok "$wait_max" "the DOWN mail" find_mail "[MBA ALERT] $subject"
say "ALERT mail $((SECONDS - down_at))s after the last heartbeat:"
show
alert=$(api "$base/api/alerts?kind=enclosure_down&session=$sid" | jq -r '.[0].id')
say "alert $alert: $base/#/alerts?session=$sid"

notified_at=$SECONDS
until_ok "$wait_max" "the escalation mail" find_mail "[MBA ESCALATED] $subject"
say "ESCALATED mail $((SECONDS - notified_at))s after the first (nobody acknowledged):"
show

if [[ ${ACK:-1} == 1 ]]; then
	api -d '{"note": "alerts demo: on my way"}' "$base/api/alerts/$alert/acknowledge" >/dev/null
	say "acknowledged as $email with a note: no further escalation"
fi

kill -CONT "${pids[1]}"
back_at=$SECONDS
say "DEMO2 heartbeats again; waiting for the recovery notice"
until_ok "$wait_max" "the recovery mail" find_mail "[MBA RESOLVED] $subject"
say "RESOLVED mail $((SECONDS - back_at))s after the enclosure returned:"
show
say "the alert's record and timeline (GET /api/alerts/$alert):"
api "$base/api/alerts/$alert" | jq -r '"    state \(.state), tier \(.tier), acknowledged by \(.acked_by // "nobody") at \(.acked_at // "-"): \(.ack_note // "")",
	(.events[] | "    \(.at)  \(.state)\(if .actor != "" then " by " + .actor else "" end)  \(.note)")'
say "done; the session is canceled and the simulated enclosures stop"
