#!/usr/bin/env bash
# A/B of two vexil binaries on /flags, interleaved: both serve the same demo
# (PERSONS persons, 50 extra flags) pinned to core 0, idle but for the one
# being measured; a closed loop of CONNS connections on core 1, ROUNDS
# rounds of DURATION each, alternating A and B. Each line: requests, p50,
# p99 (p99.9 with wrk) and the bytes the server allocated per request
# (go_memstats_alloc_bytes_total before and after the round).
#
#   go build -o /tmp/vexil.a ./cmd/vexil   # at the base commit, and /tmp/vexil.b after
#   scripts/bench-ab.sh /tmp/vexil.a /tmp/vexil.b                  # GEN=wrk (default) or GEN=loadtest
#
# A binary may be a wrapper script adding serve flags (exec vexil "$@" --gc-percent 1600).
# Numbers mean something only as a comparison within one run, ideally on a
# quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?binary A}; B=${2:?binary B}
PERSONS=${PERSONS:-100000}; CONNS=${CONNS:-2}; ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-10}; GEN=${GEN:-wrk}
case $GEN in
wrk) command -v wrk >/dev/null || { echo "bench-ab: needs wrk (apt-get install wrk)" >&2; exit 1; } ;;
loadtest) go build -o bin/vexil ./cmd/vexil ;;
*) echo "bench-ab: GEN is wrk or loadtest" >&2; exit 2 ;;
esac
pids=() dirs=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "${dirs[@]}"; }
trap cleanup EXIT
start() { # BIN PORT: a demo server; sets its data dir in dirs
	local d; d=$(mktemp -d); dirs+=("$d")
	taskset -c 0 "$1" serve --data-dir "$d" --http-addr 127.0.0.1:"$2" --grpc-addr 127.0.0.1:$(($2 + 1)) --nats-listen 127.0.0.1:$(($2 + 2)) \
		--demo --demo-persons "$PERSONS" --demo-flags 50 --log-level warn >"$d/out" 2>"$d/err" &
	pids+=($!)
}
start "$A" 28100; start "$B" 28200
for d in "${dirs[@]}"; do
	until grep -q "demo is ready" "$d/out" 2>/dev/null; do sleep 1; done
done
sleep "${SETTLE:-25}" # the import's flushes and compactions
token() { grep -o 'phc_[0-9a-f]*' "$1/out" | head -1; }
lua() { # TOKEN: a wrk script, a random person per request
	cat <<L
done = function(summary, latency, requests)
	io.write(string.format("%d requests, p50 %.0f us, p99 %.0f us, p99.9 %.0f us", summary.requests, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
	return wrk.format(nil, nil, nil, "{\"token\":\"$1\",\"distinct_id\":\"user-" .. math.random(0, $PERSONS - 1) .. "\"}")
end
L
}
lua "$(token "${dirs[0]}")" >"${dirs[0]}/r.lua"; lua "$(token "${dirs[1]}")" >"${dirs[1]}/r.lua"
alloc() { curl -s "http://127.0.0.1:$1/metrics" | awk '$1 == "go_memstats_alloc_bytes_total" {print $2}'; }
measure() { # DIR PORT: one round; prints the line
	local a0 a1 r n
	a0=$(alloc "$2")
	if [ "$GEN" = wrk ]; then
		r=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$1/r.lua" "http://127.0.0.1:$2/flags/?v=2" | tail -1)
		n=${r%% *}
	else
		r=$(taskset -c 1 bin/vexil loadtest -raw -url "http://127.0.0.1:$2/flags/?v=2" -token "$(token "$1")" -persons "$PERSONS" \
			-warmup 1s -json -connections "$CONNS" -duration "${DURATION}s" |
			python3 -c 'import json,sys; r=json.load(sys.stdin); print("%d requests, p50 %.0f us, p99 %.0f us" % (r["requests"], r["p50_ns"]/1e3, r["p99_ns"]/1e3))')
		n=${r%% *}
	fi
	a1=$(alloc "$2")
	echo "$r; $(python3 -c "print(round(($a1 - $a0) / max($n, 1)))") B allocated a request"
}
echo "# bench-ab $(date -u +%FT%TZ): A=$A B=$B, $PERSONS persons, $GEN, $CONNS connections, $ROUNDS x ${DURATION}s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$ROUNDS"); do
	echo "A $(measure "${dirs[0]}" 28100)"
	echo "B $(measure "${dirs[1]}" 28200)"
done
