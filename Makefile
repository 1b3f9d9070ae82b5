# Everything runs on this machine: PostgreSQL from apt, the Temporal CLI, MinIO and
# Mailpit built from the Go module proxy into .tools/bin. See scripts/devenv.sh.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

.PHONY: run help test test-unit build lint bench bench-full bench-go bench-faults temporal mailpit-ui clean-data record-histories

# workflowcheck (make lint) at a fixed version, so a new release cannot fail or pass lint unseen.
WORKFLOWCHECK_VERSION := v0.6.0

# PostgreSQL, Temporal dev server (UI :8233), Mailpit (inbox :8025) and the API on :8080
# (metrics :9464); state in .data/.
run:
	scripts/run.sh

# Lists the targets, each with the first line of the comment above it.
help:
	@awk '/^# / { if (doc == "") doc = substr($$0, 3); next } \
		/^[a-z][a-z-]*:/ { if (doc != "") printf "  %-17s %s\n", substr($$1, 1, length($$1) - 1), doc } \
		{ doc = "" }' $(MAKEFILE_LIST)

# Full suite (-race) against throw-away servers. Extra flags: GOTESTFLAGS=-v make test
test:
	scripts/test.sh

# Unit tests only, no servers: -short skips the tests that need PostgreSQL, Temporal or MinIO.
# testenv skips them (the integration tests), so this runs anywhere Go does, in about a minute.
test-unit:
	go test -short ./...

# Build the binary into bin/mba.
build:
	go build -o bin/mba ./cmd/mba

# go vet, gofmt and workflowcheck (the workflows' determinism rules).
lint:
	go vet ./...
	@unformatted=$$(gofmt -l .); \
	if [[ -n $$unformatted ]]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go run go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION) ./workflows/...

# Load scenarios against the real stack (quick: about a minute and a half); see BENCHMARKS.md.
bench:
	scripts/bench.sh --quick --report bench-report.json

# The full-size scenarios (10 000 enclosures, sessions of 1 000): about twenty minutes.
bench-full:
	scripts/bench.sh --report bench-report.json

# Faults injected into a running stack (issue 13): about 5 minutes; also writes
# faults-timeline.svg next to the report.
bench-faults:
	scripts/bench.sh --scenarios faults --report bench-faults.json

# Go micro-benchmarks (heartbeat parsing, ...) against the test servers, without -race.
bench-go:
	MBA_TEST_RACE=0 scripts/test.sh -run '^$$' -bench . -benchmem

# Build the pinned Temporal CLI into .tools/bin (make run/test do this on demand).
temporal:
	source scripts/devenv.sh && ensure_temporal && "$$TEMPORAL_BIN" --version

# Build the pinned Mailpit with its web inbox into .tools/bin (make run does this on demand;
# needs npm and the npm registry).
mailpit-ui:
	source scripts/devenv.sh && ensure_mailpit_ui && echo "$$MAILPIT_BIN: web inbox included"

# Deletes the dev database, Temporal history and config of `make run`.
clean-data:
	@source scripts/devenv.sh; \
	if dir_in_use .data; then echo ".data is in use (is make run up?); stop it first" >&2; exit 1; fi; \
	rm -rf .data && echo "removed .data"

# Re-record the workflow histories the replay tests replay, from the end-to-end tests.
# After an intended workflow change, guarded by workflow.GetVersion.
record-histories:
	MBA_RECORD_HISTORIES=$(CURDIR)/workflows/testdata scripts/test.sh -run . ./internal/e2e/
