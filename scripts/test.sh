#!/usr/bin/env bash
# Runs the whole test suite: lint, then every Go test. When the ScyllaDB
# backend is present, a local Cassandra is started for it (and stopped again
# when this script started it). With CI=true, tests that need Cassandra fail
# instead of skipping when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/lint.sh

started_cassandra=0
if [ -x scripts/cassandra.sh ] && [ -z "${VEXIL_TEST_CASSANDRA:-}" ]; then
	if ! scripts/cassandra.sh status >/dev/null 2>&1; then
		scripts/cassandra.sh start
		started_cassandra=1
	fi
	VEXIL_TEST_CASSANDRA=$(scripts/cassandra.sh addr)
	export VEXIL_TEST_CASSANDRA
fi
cleanup() {
	if [ "$started_cassandra" = 1 ]; then scripts/cassandra.sh stop || true; fi
}
trap cleanup EXIT

go test -count=1 -timeout 30m ./... 2>&1 | tee /tmp/vexil-test.$$.log
status=${PIPESTATUS[0]}
passed=$(grep -c '^ok ' /tmp/vexil-test.$$.log || true)
failed=$(grep -cE '^(FAIL|---.FAIL)' /tmp/vexil-test.$$.log || true)
rm -f /tmp/vexil-test.$$.log
echo "go packages: $passed passed, $failed failed"
exit "$status"
