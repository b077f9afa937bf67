# Vexil: every target calls a script in scripts/; "make help" lists them.
.DEFAULT_GOAL := help
SHELL := /usr/bin/env bash

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-16s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/vexil
	@scripts/build.sh

.PHONY: test
test: ## run the whole test suite (starts a local Cassandra for the ScyllaDB backend)
	@scripts/test.sh

.PHONY: test-short
test-short: ## run the unit tests only (no Cassandra, no long randomized runs)
	@go test -short -count=1 ./...

.PHONY: test-ui
test-ui: ## the web UI in headless chromium with posthog-node (part of make test)
	@scripts/ui-test.sh

.PHONY: test-ofrep
test-ofrep: ## OpenFeature's OFREP providers from npm (server, and web in headless chromium) (part of make test)
	@scripts/sdk-ofrep.sh

.PHONY: bench
bench: ## run the engine benchmarks and print them
	@scripts/bench.sh

.PHONY: lint
lint: ## gofmt and go vet
	@scripts/lint.sh

.PHONY: cassandra-start
cassandra-start: ## start the local Cassandra used by the ScyllaDB backend tests
	@scripts/cassandra.sh start

.PHONY: cassandra-stop
cassandra-stop: ## stop the local Cassandra
	@scripts/cassandra.sh stop

.PHONY: cassandra-cluster-start
cassandra-cluster-start: ## start the three-node local Cassandra of the multi-node tests (hedged reads)
	@scripts/cassandra-cluster.sh start

.PHONY: cassandra-cluster-stop
cassandra-cluster-stop: ## stop the three-node local Cassandra
	@scripts/cassandra-cluster.sh stop

.PHONY: proto
proto: ## regenerate the protobuf code (buf, local plugins)
	@scripts/proto.sh gen

.PHONY: proto-check
proto-check: ## fail if the committed generated code is stale
	@scripts/proto.sh check

.PHONY: bench-flags
bench-flags: ## /flags with 1M persons: closed and open loop, freshness, trivial-handler ratio
	@PERSONS=$${PERSONS:-1000000} scripts/bench-flags.sh

.PHONY: bench-snapshot
bench-snapshot: ## snapshots: create (memory), restore, replay speed; N persons (default 100000)
	@scripts/bench-snapshot.sh

.PHONY: bench-events
bench-events: ## behavioural cohorts: events at 5k/s → /flags freshness, event ingest into Pebble
	@scripts/bench-events.sh

.PHONY: bench-overload
bench-overload: ## admission control: saturation curve, 2x saturation for 60 s, recovery
	@PERSONS=$${PERSONS:-100000} scripts/bench-overload.sh

.PHONY: run
run: ## run Vexil with the demo dataset (vexil serve --demo)
	@go run ./cmd/vexil serve --demo
