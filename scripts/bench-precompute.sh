#!/usr/bin/env bash
# Measures precompute the way issue 7 asks, and writes bench/precompute-<date>.txt:
#  1. re-materialising one changed flag across PERSONS rows and 50 flags in
#     Pebble (BenchmarkRematerialize), and the storage cost of the results;
#  2. the recompute rate under person writes at RATE/s (BenchmarkPersonWrites);
#  3. /flags on one vexil serve with PERSONS persons and 50 flags, once the
#     worker has caught up: the stored path against the live path
#     (X-Vexil-Eval: live) in the same run, closed loop, server on core 0 and
#     loader on core 1, and the hit ratio from /metrics.
#
#   PERSONS=1000000 scripts/bench-precompute.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PERSONS=${PERSONS:-1000000}
FLAGS=${FLAGS:-50}
RATE=${RATE:-10000}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
PORT=${PORT:-19000}
out=bench/precompute-$(date -u +%Y%m%d-%H%M).txt
mkdir -p bench
go build -o bin/vexil ./cmd/vexil
data=$(mktemp -d)
pin0="" pin1=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0="taskset -c 0"; pin1="taskset -c 1"; fi
server=""
cleanup() { kill $server 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
{
	echo "# precompute benchmark $(date -u +%FT%TZ)"
	echo "# $(bin/vexil version); nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
	echo "## re-materialisation and storage (go test ./precompute -bench Rematerialize -args -bench.persons $PERSONS -bench.flags $FLAGS)"
	go test ./precompute -run '^$' -bench Rematerialize -benchtime 1x -timeout 60m -args -bench.persons "$PERSONS" -bench.flags "$FLAGS" |
		grep -E 'bench_test|^Benchmark'
	echo "## person writes at $RATE/s for 20 s into Pebble with the worker running (go test ./precompute -bench PersonWrites)"
	go test ./precompute -run '^$' -bench PersonWrites -benchtime 1x -timeout 30m -args -bench.rate "$RATE" -bench.seconds 20 -bench.flags "$FLAGS" |
		grep -E 'bench_test|^Benchmark'
} | tee "$out"

echo "seeding $PERSONS persons and $FLAGS flags through the ingest stream..." >&2
$pin0 bin/vexil serve --data-dir "$data" --http-addr 127.0.0.1:$PORT --grpc-addr 127.0.0.1:$((PORT+1)) \
	--nats-listen 127.0.0.1:$((PORT+2)) --demo --demo-persons "$PERSONS" --demo-flags "$FLAGS" --log-level warn >"$data/serve.out" 2>"$data/serve.err" &
server=$!
seed_start=$(date +%s)
until grep -q "demo is ready" "$data/serve.out" 2>/dev/null; do
	kill -0 "$server" 2>/dev/null || { cat "$data/serve.err" >&2; exit 1; }
	sleep 1
done
token=$(grep -o 'phc_[0-9a-f]*' "$data/serve.out" | head -1)
personal=$(grep -o 'phx_[0-9a-f]*' "$data/serve.out" | head -1)
team=$(grep -o 'team [0-9]*' "$data/serve.out" | head -1 | cut -d' ' -f2)
seeded=$(( $(date +%s) - seed_start ))
# Wait until the worker has caught up: the team's run finished and every row
# trigger handled (the computed counter stops moving).
status() { curl -s -H "Authorization: Bearer $personal" "http://127.0.0.1:$PORT/api/projects/$team/precompute"; }
computed() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^vexil_precompute_computed_total/ {s+=$2} END {printf "%d", s}'; }
until status | grep -q FINISHED; do sleep 2; done
prev=-1
while [ "$(computed)" != "$prev" ]; do prev=$(computed); sleep 5; done
caught=$(( $(date +%s) - seed_start ))
sleep "${SETTLE:-20}"
lt() { $pin1 bin/vexil loadtest -url "http://127.0.0.1:$PORT/flags/?v=2" -token "$token" -persons "$PERSONS" -duration "$DURATION" -warmup "$WARMUP" "$@"; }
answers() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v src="$1" '$1 ~ /^vexil_evalsvc_flag_answers_total/ && $1 ~ "source=\""src"\"" {s+=$2} END {printf "%d", s}'; }
{
	echo "## /flags with stored results vs live, one server: $PERSONS persons, $((FLAGS + 4)) flags in Pebble (seeded in ${seeded}s, worker caught up at ${caught}s); server on core 0, loader on core 1"
	echo "run status: $(status)"
	sources="stored live_not_precomputable live_absent live_stale_row live_stale_flag live_expired live_override live_no_subject"
	declare -A before
	for src in $sources; do before[$src]=$(answers "$src"); done
	echo "stored c=2:  $(lt -connections 2)"
	echo "stored c=16: $(lt -connections 16)"
	line="flag answers during the stored runs, by source:"
	for src in $sources; do line="$line $src=$(( $(answers "$src") - ${before[$src]} ))"; done
	echo "$line"
	echo "live   c=2:  $(lt -connections 2 -header 'X-Vexil-Eval: live')"
	echo "live   c=16: $(lt -connections 16 -header 'X-Vexil-Eval: live')"
} | tee -a "$out"
echo "wrote $out" >&2
