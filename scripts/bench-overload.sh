#!/usr/bin/env bash
# The overload proof of admission control (issue 13): a saturation curve of
# /flags (open-loop rate → p50/p99/errors) beside a trivial Go handler under
# the same generator, then 2× the saturation rate for OVERLOAD (60 s): the
# latency of admitted (200) and refused (503) requests apart, the server's
# RSS every second, and a run at half of saturation right after (recovery).
# The server is pinned to core 0 and the generator to core 1, on loopback,
# as in scripts/bench-flags.sh. Results go to stdout and bench/overload-<date>.txt.
#
#   PERSONS=100000 scripts/bench-overload.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PERSONS=${PERSONS:-100000}
# Few flags by default: small answers keep the one-core generator ahead of
# the server, so that it can send twice what the server can take.
FLAGS=${FLAGS:-0}
DURATION=${DURATION:-10s}
OVERLOAD=${OVERLOAD:-60s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-512}
PORT=${PORT:-18100}
out=bench/overload-$(date -u +%Y%m%d-%H%M).txt
mkdir -p bench
go build -o bin/vexil ./cmd/vexil
data=$(mktemp -d)
pin0="" pin1=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0="taskset -c 0"; pin1="taskset -c 1"; fi
server="" trivial="" sampler=""
cleanup() { kill $server $trivial $sampler 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
echo "seeding $PERSONS persons and $FLAGS extra flags through the ingest stream..." >&2
$pin0 bin/vexil serve --data-dir "$data" --http-addr 127.0.0.1:$PORT --grpc-addr 127.0.0.1:$((PORT+1)) \
	--nats-listen 127.0.0.1:$((PORT+2)) --demo --demo-persons "$PERSONS" --demo-flags "$FLAGS" --log-level warn >"$data/serve.out" 2>"$data/serve.err" &
server=$!
until grep -q "demo is ready" "$data/serve.out" 2>/dev/null; do
	kill -0 "$server" 2>/dev/null || { cat "$data/serve.err" >&2; exit 1; }
	sleep 1
done
sleep "${SETTLE:-10}"
token=$(grep -o 'phc_[0-9a-f]*' "$data/serve.out" | head -1)
$pin0 bin/vexil loadtest -trivial-server 127.0.0.1:$((PORT+3)) >/dev/null &
trivial=$!
sleep 1
# lt URL ARGS...: one run, JSON.
lt() { local url=$1; shift; $pin1 bin/vexil loadtest -url "$url" -token "$token" -persons "$PERSONS" -warmup "$WARMUP" -json "$@"; }
flags="http://127.0.0.1:$PORT/flags/?v=2"
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# row LABEL JSON: rate, achieved, p50/p99 overall and by status, statuses.
row() { python3 - "$1" "$2" <<'PY'
import json, sys
label, r = sys.argv[1], json.loads(sys.argv[2])
ms = lambda ns: f"{ns/1e6:.2f}ms"
by = " ".join(f"[{s}: p50 {ms(l['p50_ns'])} p99 {ms(l['p99_ns'])} max {ms(l['max_ns'])}]" for s, l in sorted(r["by_status_latency"].items()))
print(f"{label}: achieved {r['achieved_rate']:.0f}/s, p50 {ms(r['p50_ns'])} p99 {ms(r['p99_ns'])}, errors {r['errors']} of {r['requests']} "
      f"(dropped by the generator {r['dropped']}), statuses {r['by_status']} {by}")
PY
}
{
	echo "# overload benchmark $(date -u +%FT%TZ)"
	echo "# $(bin/vexil version); nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# $PERSONS persons, $((FLAGS + 4)) flags; server on core 0, generator on core 1; open loop, $CONNS connections"
	# Four connections: enough to fill the server's core, few enough that the
	# scheduler does not fall behind (the rate gate would then refuse some).
	sat=$(lt "$flags" -connections 4 -duration "$DURATION")
	# Saturation is the rate of answers (200), not of refusals.
	satrate=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(int(r["achieved_rate"]*r["by_status"].get("200",0)/max(r["requests"],1)))' "$sat")
	row "closed loop c=4 (saturation)" "$sat"
	tsat=$(lt "http://127.0.0.1:$((PORT+3))/" -connections 16 -duration "$DURATION")
	row "trivial handler, closed loop c=16" "$tsat"
	echo "## saturation curve (open loop, $DURATION each; rates as fractions of $satrate/s)"
	for f in 0.25 0.5 0.75 1.0 1.25 1.5 2.0; do
		rate=$(python3 -c "print(int($satrate*$f))")
		row "/flags   ${f}x $rate/s" "$(lt "$flags" -rate "$rate" -connections "$CONNS" -duration "$DURATION")"
		row "trivial  ${f}x $rate/s" "$(lt "http://127.0.0.1:$((PORT+3))/" -rate "$rate" -connections "$CONNS" -duration "$DURATION")"
	done
	echo "## overload: 2x saturation ($((satrate * 2))/s) for $OVERLOAD"
	echo "limit before: $(metric vexil_admission_limit), rate gate $(metric vexil_admission_rate)/s (0: open); RSS before: $(ps -o rss= -p "$server") KiB"
	(while sleep 1; do ps -o rss= -p "$server"; done) >"$data/rss" &
	sampler=$!
	over=$(lt "$flags" -rate $((satrate * 2)) -connections "$CONNS" -duration "$OVERLOAD")
	kill $sampler; sampler=""
	row "2x saturation" "$over"
	echo "limit at the end: $(metric vexil_admission_limit), rate gate $(metric vexil_admission_rate)/s; refused (evaluate): $(metric 'vexil_admission_rejected_total{class="evaluate"}')"
	python3 - "$data/rss" <<'PY'
import sys
v = [int(x) for x in open(sys.argv[1]).read().split()]
n = len(v)
print(f"RSS over the run, {n} samples (KiB): first {v[0]}, min {min(v)}, max {max(v)}, last {v[-1]}; "
      f"mean of the first ten {sum(v[:10])//10}, of the last ten {sum(v[-10:])//10}")
PY
	echo "## recovery: half of saturation right after"
	row "0.5x $((satrate / 2))/s" "$(lt "$flags" -rate $((satrate / 2)) -connections "$CONNS" -duration "$DURATION" -warmup 0s)"
	echo "limit after: $(metric vexil_admission_limit), rate gate $(metric vexil_admission_rate)/s; RSS after: $(ps -o rss= -p "$server") KiB"
	echo "## server-side latency of admitted evaluations over the whole script (vexil_admission_admitted_seconds)"
	curl -s "http://127.0.0.1:$PORT/metrics" | grep '^vexil_admission_admitted_seconds_bucket{class="evaluate"' | sed 's/^/  /'
} | tee "$out"
