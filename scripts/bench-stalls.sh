#!/usr/bin/env bash
# What holds the one P while /flags requests are due: a demo server
# (PERSONS persons, 50 extra flags) on core 0, wrk -t1 -c2 for 10 s on
# core 1 (a random person per request), a 5 s runtime trace from its 3rd
# second, and the bytes allocated per request. Prints wrk's line and
# `vexil tracewaits`' stall summary (stretches over 300 µs in which the P
# ran goroutines other than requests; see BENCHMARKS.md, issue 17).
#
#   go build -o /tmp/vexil.a ./cmd/vexil && scripts/bench-stalls.sh /tmp/vexil.a
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:?a vexil binary}; PORT=${PORT:-38600}; PERSONS=${PERSONS:-100000}
command -v wrk >/dev/null || { echo "bench-stalls: needs wrk (apt-get install wrk)" >&2; exit 1; }
go build -o bin/vexil ./cmd/vexil # for tracewaits
d=$(mktemp -d); pid=""
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$d"' EXIT
taskset -c 0 "$BIN" serve --data-dir "$d/data" --http-addr 127.0.0.1:$PORT --grpc-addr 127.0.0.1:$((PORT + 1)) --nats-listen 127.0.0.1:$((PORT + 2)) \
	--demo --demo-persons "$PERSONS" --demo-flags 50 --log-level warn >"$d/out" 2>"$d/err" &
pid=$!
until grep -q "demo is ready" "$d/out" 2>/dev/null; do sleep 1; done
sleep "${SETTLE:-25}"
token=$(grep -o 'phc_[0-9a-f]*' "$d/out" | head -1)
cat >"$d/r.lua" <<L
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
	return wrk.format(nil, nil, nil, "{\"token\":\"$token\",\"distinct_id\":\"user-" .. math.random(0, $PERSONS - 1) .. "\"}")
end
done = function(summary, latency, requests)
	io.write(string.format("%d requests, p50 %.0f us, p99 %.0f us, p99.9 %.0f us\n", summary.requests, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
L
alloc() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '$1 == "go_memstats_alloc_bytes_total" {print $2}'; }
a0=$(alloc)
taskset -c 1 wrk -t1 -c2 -d10s -s "$d/r.lua" "http://127.0.0.1:$PORT/flags/?v=2" | tail -1 >"$d/wrk" &
sleep 3
curl -s -o "$d/t.trace" "http://127.0.0.1:$PORT/debug/pprof/trace?seconds=5"
wait %2 2>/dev/null || true
a1=$(alloc)
n=$(awk '{print $1}' "$d/wrk")
echo "$BIN: $(cat "$d/wrk"); $(python3 -c "print(round(($a1 - $a0) / max($n, 1)))") B allocated a request; load average $(cut -d' ' -f1-3 /proc/loadavg)"
bin/vexil tracewaits "$d/t.trace" | sed -n '/^stalls/,/^episodes/p' | grep -v '^episodes'
