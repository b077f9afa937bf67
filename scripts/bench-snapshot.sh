#!/usr/bin/env bash
# Measures snapshots on Pebble: N persons published through the ingest
# stream and projected, then snapshot create (time, records/s, Go heap
# before and at its peak), verify, restore, and a replay of the whole
# stream into an empty store (events/s, 1M persons extrapolated).
#
#   scripts/bench-snapshot.sh            N=100000
#   N=300000 scripts/bench-snapshot.sh
#
# Output goes to stdout and bench/snapshot-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-100000}
mkdir -p bench
out=bench/snapshot-$(date -u +%Y%m%d-%H%M).txt
{
	echo "# scripts/bench-snapshot.sh N=$n, $(date -u +%FT%TZ), $(nproc) cores (shared, noisy)"
	VEXIL_SNAPSHOT_MEASURE=$n go test -tags measure -v -count=1 -timeout 60m -run '^TestMeasureSnapshot$' ./snapshot/ 2>/dev/null | grep -E '^(persons|create|verify|restore|ingest|replay|ok|FAIL)'
} | tee "$out"
