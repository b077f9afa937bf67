#!/usr/bin/env bash
# Measures /flags the way issue 6 asks: Vexil serving N persons and 50 flags
# from Pebble (seeded through the real ingest stream), the server pinned to
# core 0 and the load generator to core 1, loopback only; closed loop for
# capacity, open loop at fixed rates for latency, and a trivial Go handler
# under the same generator for the ceiling. Results go to stdout and to
# bench/flags-<date>.txt.
#
#   PERSONS=1000000 scripts/bench-flags.sh
#   SERVE_ARGS="--store-compression none" PERSONS=1000000 scripts/bench-flags.sh   # settings added to vexil serve
set -euo pipefail
cd "$(dirname "$0")/.."
PERSONS=${PERSONS:-1000000}
FLAGS=${FLAGS:-50}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
PORT=${PORT:-18000}
out=bench/flags-$(date -u +%Y%m%d-%H%M).txt
mkdir -p bench
go build -o bin/vexil ./cmd/vexil
data=$(mktemp -d)
pin0="" pin1=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0="taskset -c 0"; pin1="taskset -c 1"; fi
server="" trivial=""
cleanup() { kill $server $trivial 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
echo "seeding $PERSONS persons and $((FLAGS)) flags through the ingest stream..." >&2
$pin0 bin/vexil serve --data-dir "$data" --http-addr 127.0.0.1:$PORT --grpc-addr 127.0.0.1:$((PORT+1)) \
	--nats-listen 127.0.0.1:$((PORT+2)) --demo --demo-persons "$PERSONS" --demo-flags "$FLAGS" --log-level warn ${SERVE_ARGS:-} >"$data/serve.out" 2>"$data/serve.err" &
server=$!
seed_start=$(date +%s)
until grep -q "demo is ready" "$data/serve.out" 2>/dev/null; do
	kill -0 "$server" 2>/dev/null || { cat "$data/serve.err" >&2; exit 1; }
	sleep 1
done
seed_s=$(( $(date +%s) - seed_start ))
# Let the import's flushes and compactions settle: steady state is measured.
sleep "${SETTLE:-20}"
token=$(grep -o 'phc_[0-9a-f]*' "$data/serve.out" | head -1)
$pin0 bin/vexil loadtest -trivial-server 127.0.0.1:$((PORT+3)) >/dev/null &
trivial=$!
# The same trivial handler padded to the size of a /flags response: the open
# loop's control (reading 14 KB answers is what limits a one-core loader).
$pin0 bin/vexil loadtest -trivial-server 127.0.0.1:$((PORT+4)) -trivial-bytes 13963 >/dev/null &
trivial="$trivial $!"
# Every person may be asked for: loadtest's default of 10,000 distinct
# bodies would keep the working set at 10k persons, which any cache holds.
lt() { $pin1 bin/vexil loadtest -url "http://127.0.0.1:$PORT/flags/?v=2" -token "$token" -persons "$PERSONS" -bodies "${BODIES:-$PERSONS}" -duration "$DURATION" -warmup "$WARMUP" "$@"; }
{
	echo "# /flags benchmark $(date -u +%FT%TZ)"
	echo "# $(bin/vexil version); nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
	echo "# $PERSONS persons and $((FLAGS + 4)) flags in Pebble, seeded through NATS in ${seed_s}s, then ${SETTLE:-20}s to settle; server on core 0, loader on core 1"
	echo "# vexil serve settings added: ${SERVE_ARGS:-none}"
	echo "## closed loop"
	echo "c=2:  $(lt -connections 2)"
	c16=$(lt -connections 16 -json)
	echo "c=16: $c16"
	sat=$(echo "$c16" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["achieved_rate"]))')
	half=$((sat / 2))
	echo "## open loop with vegeta (the peers' tool; latency from the scheduled send time), 10k rotating bodies"
	python3 - "$PERSONS" "$token" "http://127.0.0.1:$PORT/flags/?v=2" >"$data/targets.json" <<'PY'
import base64, json, random, sys
persons, token, url = int(sys.argv[1]), sys.argv[2], sys.argv[3]
r = random.Random(1)
for _ in range(10000):
    body = json.dumps({"token": token, "distinct_id": f"user-{r.randrange(persons)}"})
    print(json.dumps({"method": "POST", "url": url, "header": {"Content-Type": ["application/json"]},
                      "body": base64.b64encode(body.encode()).decode()}))
PY
	# Each run waits for the previous one's sockets to leave TIME_WAIT.
	veg() { sleep 45; $pin1 go tool vegeta attack -format=json -targets="$1" -rate "$2" -duration "$DURATION" | go tool vegeta report | sed -n '1p;3p;7p'; }
	# The server's own latency histogram over a run (vexil_evalsvc_request_seconds
	# of /flags, bucket deltas, interpolated like histogram_quantile): what the
	# server spends, without the one-core loader's own queueing.
	buckets() { curl -s "http://127.0.0.1:$PORT/metrics" | grep '^vexil_evalsvc_request_seconds_bucket{endpoint="flags"'; }
	serverq() { python3 - "$1" "$2" <<'PY'
import re, sys
def parse(path):
    out = {}
    for line in open(path):
        m = re.search(r'le="([^"]+)"\}\s+(\S+)', line)
        if m:
            out[float('inf') if m.group(1) == '+Inf' else float(m.group(1))] = float(m.group(2))
    return out
a, b = parse(sys.argv[1]), parse(sys.argv[2])
les = sorted(b)
d = [(le, b[le] - a.get(le, 0)) for le in les]
total = d[-1][1]
res = []
for q in (0.5, 0.9, 0.99):
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le, c in d:
        if c >= rank:
            v = le if le == float('inf') else prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
            res.append(f"p{int(q*100)} {v*1e3:.3f}ms")
            break
        prev_le, prev_c = le, c
print(f"server-side over {int(total)} requests: " + " ".join(res))
PY
	}
	echo "1000 req/s:"; buckets >"$data/b0"; veg "$data/targets.json" 1000; buckets >"$data/b1"; serverq "$data/b0" "$data/b1"
	echo "$half req/s (half of saturation):"; buckets >"$data/b0"; veg "$data/targets.json" "$half"; buckets >"$data/b1"; serverq "$data/b0" "$data/b1"
	echo "control, a trivial handler answering the same 14 KB at the same rates (the loader's own limit on one core):"
	echo '{"method":"POST","url":"http://127.0.0.1:'$((PORT+4))'/","body":""}' >"$data/trivial.json"
	echo "1000 req/s:"; veg "$data/trivial.json" 1000
	echo "$half req/s:"; veg "$data/trivial.json" "$half"
	echo "## gRPC EvalService.Evaluate, same persons (vexil loadtest -grpc)"
	echo "closed loop c=2:  $(lt -grpc 127.0.0.1:$((PORT+1)) -connections 2)"
	echo "closed loop c=16: $(lt -grpc 127.0.0.1:$((PORT+1)) -connections 16)"
	echo "open loop 1000/s: $(lt -grpc 127.0.0.1:$((PORT+1)) -rate 1000 -connections 64)"
	echo "## freshness: person writes published on NATS at 1k/s, publish → visible in /flags"
	personal=$(grep -o 'phx_[0-9a-f]*' "$data/serve.out" | head -1)
	$pin1 bin/vexil loadtest -freshness -url "http://127.0.0.1:$PORT/flags/?v=2" -nats-url "nats://127.0.0.1:$((PORT+2))" \
		-token "$token" -personal-key "$personal" -team 1 -rate 1000 -duration "$DURATION"
	echo "## trivial Go handler, same generator (the ceiling)"
	tc16=$($pin1 bin/vexil loadtest -url "http://127.0.0.1:$((PORT+3))/" -duration "$DURATION" -warmup "$WARMUP" -connections 16 -json)
	echo "c=16: $tc16"
	echo "open loop 1000 req/s against the trivial handler (the generator's own floor): $($pin1 bin/vexil loadtest -url "http://127.0.0.1:$((PORT+3))/" -duration "$DURATION" -warmup "$WARMUP" -rate 1000 -connections 64)"
	python3 - "$c16" "$tc16" <<'PY'
import json, sys
v, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"ratio Vexil/trivial at c=16: {v['achieved_rate']/t['achieved_rate']:.2f}")
PY
} | tee "$out"
