#!/usr/bin/env bash
# Measures real-time behavioural cohorts (issue 14): end to end, events
# published on NATS at a steady RATE (5,000/s) to vexil serve, publish →
# the flag of a behavioural cohort on in /flags (vexil loadtest -freshness
# -events); then event ingest throughput into Pebble, JetStream → the rows'
# counters (projector BenchmarkEventThroughput, with serve's GC and block
# cache). The server is pinned to core 0 and the generator to core 1. The
# load average is printed with each number: the machine may be shared.
# Results go to stdout and to bench/events-<date>.txt.
#
#   RATE=5000 DURATION=30s PERSONS=100000 scripts/bench-events.sh
#
# PIN=0 leaves both on both cores; EVENTS=0 skips the ingest benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
PERSONS=${PERSONS:-100000}
RATE=${RATE:-5000}
DURATION=${DURATION:-30s}
EVENTS=${EVENTS:-200000}
PORT=${PORT:-18100}
out=bench/events-$(date -u +%Y%m%d-%H%M).txt
mkdir -p bench
go build -o bin/vexil ./cmd/vexil
data=$(mktemp -d)
pin0="" pin1=""
if [ "${PIN:-1}" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0="taskset -c 0"; pin1="taskset -c 1"; fi
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
# Admission control stays on for /flags, but neither the rate gate (which
# follows the scheduler's delays, lengthened by whatever else runs on a
# shared machine) nor the management class's latency target (the precompute
# run the probe flags start slows the writes that create them) may refuse
# the benchmark's own set-up: this measures freshness, not admission.
cat >"$data/vexil.yaml" <<'YAML'
admission:
  sched-target: 0s
  management-target: 1m
YAML
echo "seeding $PERSONS persons through the ingest stream..." >&2
$pin0 bin/vexil serve --config "$data/vexil.yaml" --data-dir "$data" --http-addr 127.0.0.1:$PORT --grpc-addr 127.0.0.1:$((PORT+1)) \
	--nats-listen 127.0.0.1:$((PORT+2)) --demo --demo-persons "$PERSONS" --log-level warn >"$data/serve.out" 2>"$data/serve.err" &
server=$!
until grep -q "demo is ready" "$data/serve.out" 2>/dev/null; do
	kill -0 "$server" 2>/dev/null || { cat "$data/serve.err" >&2; exit 1; }
	sleep 1
done
sleep "${SETTLE:-10}"
token=$(grep -o 'phc_[0-9a-f]*' "$data/serve.out" | head -1)
personal=$(grep -o 'phx_[0-9a-f]*' "$data/serve.out" | head -1)
{
	echo "# behavioural cohorts benchmark $(date -u +%FT%TZ)"
	echo "# $(bin/vexil version); nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
	where="server on core 0, generator on core 1"
	[ -z "$pin0" ] && where="server and generator unpinned"
	echo "## end to end: events on NATS at $RATE/s for $DURATION, publish → behavioural flag on in /flags ($PERSONS demo persons; $where)"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	$pin1 bin/vexil loadtest -freshness -events -url "http://127.0.0.1:$PORT/flags/?v=2" -nats-url "nats://127.0.0.1:$((PORT+2))" \
		-token "$token" -personal-key "$personal" -team 1 -rate "$RATE" -duration "$DURATION"
	echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
	kill "$server"; wait "$server" 2>/dev/null || true; server=""
	[ "$EVENTS" = 0 ] && exit 0
	echo "## ingest: $EVENTS tracked events, JetStream → counters in Pebble (GOGC 400, 256 MiB cache: vexil serve's)"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	GOGC=400 go test ./projector -run '^$' -bench 'EventThroughput' -benchtime "${EVENTS}x" -count 1 -args -bench.cachemb=256 | grep -E '^Benchmark'
	echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
