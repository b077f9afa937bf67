#!/usr/bin/env bash
# Runs the whole test suite: lint (gofmt, go vet, generated protobuf code up
# to date), every Go test (the randomized differential test against
# posthog-python included), schemathesis against the management API's
# OpenAPI, PostHog's official Node and Python SDKs against vexil serve, and
# posthog-js in headless Chromium (scripts/sdk-browser.sh). A local Cassandra is started for the ScyllaDB backends' tests (and
# stopped again when this script started it). With CI=true, tests that need
# Cassandra fail instead of skipping when it is missing. The tests that
# need a three-node cluster (multi_node_tests) run first, on their own,
# while scripts/cassandra-cluster.sh runs (about 2 minutes to start on 2
# cores); the cluster is stopped before the rest, so its three JVMs do not
# compete with the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/lint.sh
scripts/proto.sh check

# posthog-python (pinned, from PyPI, in a cached venv) for the differential
# test in flags/posthogdiff; without it that test skips, and fails in CI.
VEXIL_POSTHOG_PYTHON=$(scripts/sdk-python.sh --venv)
export VEXIL_POSTHOG_PYTHON
# duckdb (pinned, from PyPI, in a cached venv) reads snapshots back in
# snapshot's TestIndependentReader; without it that test skips, and fails in CI.
VEXIL_SNAPSHOT_PYTHON=$(scripts/snapshot-read.sh --venv)
export VEXIL_SNAPSHOT_PYTHON
multi_node_tests='^TestHedgedReadsSlowNode$'
multi_node_pkgs=./store/scyllastore/

started_cassandra=0
started_cluster=0
if [ -z "${VEXIL_TEST_CASSANDRA:-}" ]; then
	if ! scripts/cassandra.sh status >/dev/null 2>&1; then
		scripts/cassandra.sh start
		started_cassandra=1
	fi
	VEXIL_TEST_CASSANDRA=$(scripts/cassandra.sh addr)
	export VEXIL_TEST_CASSANDRA
fi
log=$(mktemp)
cleanup() {
	rm -f "$log"
	if [ "$started_cassandra" = 1 ]; then scripts/cassandra.sh stop || true; fi
	if [ "$started_cluster" = 1 ]; then scripts/cassandra-cluster.sh stop || true; fi
}
trap cleanup EXIT

if [ -z "${VEXIL_TEST_CASSANDRA_CLUSTER:-}" ]; then
	if ! scripts/cassandra-cluster.sh status >/dev/null 2>&1; then
		started_cluster=1
		scripts/cassandra-cluster.sh start
	fi
	VEXIL_TEST_CASSANDRA_CLUSTER=$(scripts/cassandra-cluster.sh addr)
fi
VEXIL_TEST_CASSANDRA_CLUSTER=$VEXIL_TEST_CASSANDRA_CLUSTER \
	go test -count=1 -timeout 10m -run "$multi_node_tests" $multi_node_pkgs
if [ "$started_cluster" = 1 ]; then
	scripts/cassandra-cluster.sh stop
	started_cluster=0
fi

set +e
go test -count=1 -timeout 30m -skip "$multi_node_tests" ./... 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -c '^ok ' "$log" || true)
failed=$(grep -cE '^FAIL[[:space:]]' "$log" || true)
echo "go packages: $passed passed, $failed failed"
grep -E '^--- FAIL' "$log" | sed 's/^/failed test: /' || true
[ "$status" = 0 ] || exit "$status"

mkdir -p bin
go build -o bin/vexil ./cmd/vexil
VEXIL_BIN=$PWD/bin/vexil scripts/schemathesis.sh
VEXIL_BIN=$PWD/bin/vexil scripts/sdk-node.sh
VEXIL_BIN=$PWD/bin/vexil scripts/sdk-mcp.sh
VEXIL_BIN=$PWD/bin/vexil scripts/sdk-ofrep.sh
VEXIL_BIN=$PWD/bin/vexil scripts/sdk-python.sh
VEXIL_BIN=$PWD/bin/vexil scripts/ui-test.sh
VEXIL_BIN=$PWD/bin/vexil scripts/status-test.sh
VEXIL_BIN=$PWD/bin/vexil scripts/sdk-browser.sh
