#!/usr/bin/env bash
# The fault drill of issue 13 as a recorded proof: TestServeRidesOutages with
# each outage held for HOLD (30 s by default) while a steady /flags load (one
# request every 10 ms) runs against the node:
#   1. NATS stopped, HOLD, then started again on the same port and directory:
#      every /flags answer is a 200 equal to the answer before the outage; a
#      management write answers at once and its notice leaves the outbox when
#      NATS is back; ingest resumes;
#   2. the store unreachable, HOLD, then back: every /flags answer is a 200
#      flagged errorsWhileComputingFlags; /readyz is 503 and /livez 200; a
#      person published meanwhile is applied once the store is back.
# No restart in between. The test's log lines (counts, p50/p99/max) go to
# stdout and to bench/outage-<date>.txt.
#
#   HOLD=30s scripts/bench-outage.sh
set -euo pipefail
cd "$(dirname "$0")/.."
hold=${HOLD:-30s}
mkdir -p bench
out=bench/outage-$(date -u +%Y%m%d-%H%M).txt
{
	echo "# HOLD=$hold scripts/bench-outage.sh, $(date -u +%Y-%m-%dT%H:%MZ), load: $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD)"
	VEXIL_OUTAGE_HOLD=$hold go test -count=1 -run '^TestServeRidesOutages$' -v ./cmd/vexil/ 2>&1 |
		grep -E 'outage|^(--- |ok|FAIL|PASS)'
} | tee "$out"
grep -q '^--- PASS' "$out"
