#!/usr/bin/env bash
# What an idle node allocates and spends: one `vexil serve --demo` of
# PERSONS persons on core 0, left alone once the demo is ready (SETTLE
# seconds more for the import's flushes and compactions), then WINDOW
# seconds in which nothing is asked of it but the two scrapes. Prints the
# bytes allocated a second (go_memstats_alloc_bytes_total), the share of a
# core used (process_cpu_seconds_total), the collector's cycles, and the
# top of the allocation profile's difference over the window
# (/debug/pprof/heap?gc=1 before and after, -base).
#
#   go build -o /tmp/vexil ./cmd/vexil && scripts/bench-idle.sh /tmp/vexil
#
# KEEP=DIR keeps the server's output and the profiles there; CPUPROFILE=1
# also takes a CPU profile over the window and prints its top;
# MEMPROFILERATE=N samples an allocation every N bytes (the runtime's
# default, 512 KiB, leaves an idle node's few allocators to chance; a
# small N costs CPU, so take the share of a core from a run without it).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:?usage: bench-idle.sh BIN}
PERSONS=${PERSONS:-100000}; SETTLE=${SETTLE:-30}; WINDOW=${WINDOW:-60}; PORT=${PORT:-28400}
d=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$d"/out "$d"/err "$d"/*.pb.gz "$KEEP"/ 2>/dev/null || true; fi
	rm -rf "$d"
}
trap cleanup EXIT
GODEBUG=${MEMPROFILERATE:+memprofilerate=$MEMPROFILERATE} taskset -c 0 "$BIN" serve --data-dir "$d/data" --http-addr 127.0.0.1:"$PORT" --grpc-addr 127.0.0.1:$((PORT + 1)) \
	--nats-listen 127.0.0.1:$((PORT + 2)) --demo --demo-persons "$PERSONS" --log-level warn >"$d/out" 2>"$d/err" &
pid=$!
until grep -q "demo is ready" "$d/out" 2>/dev/null; do
	kill -0 "$pid" 2>/dev/null || { echo "bench-idle: the server exited" >&2; cat "$d/err" >&2; exit 1; }
	sleep 1
done
sleep "$SETTLE"
metric() { awk -v m="$1" '$1 == m {print $2}' "$2"; }
url=http://127.0.0.1:$PORT
# The allocation profile is published at the end of a collection, and an
# idle node may go minutes without one: heap?gc=1 collects first (outside
# the window: the profile before the first scrape, after the second).
curl -s -o "$d/allocs0.pb.gz" "$url/debug/pprof/heap?gc=1"; curl -s "$url/metrics" >"$d/mscrape"; curl -s "$url/metrics" >"$d/m0"
if [ -n "${CPUPROFILE:-}" ]; then # a CPU profile of the window too (its own cost is in the share)
	curl -s -o "$d/cpu.pb.gz" "$url/debug/pprof/profile?seconds=$WINDOW"
else
	sleep "$WINDOW"
fi
curl -s "$url/metrics" >"$d/m1"; curl -s -o "$d/allocs1.pb.gz" "$url/debug/pprof/heap?gc=1"
awk -v w="$WINDOW" \
	-v a0="$(metric go_memstats_alloc_bytes_total "$d/m0")" -v a1="$(metric go_memstats_alloc_bytes_total "$d/m1")" \
	-v c0="$(metric process_cpu_seconds_total "$d/m0")" -v c1="$(metric process_cpu_seconds_total "$d/m1")" \
	-v g0="$(metric go_gc_duration_seconds_count "$d/m0")" -v g1="$(metric go_gc_duration_seconds_count "$d/m1")" \
	-v s0="$(metric go_memstats_alloc_bytes_total "$d/mscrape")" \
	'BEGIN { printf "idle over %d s: %.0f bytes/s allocated, %.2f%% of a core, %d GC cycles (one /metrics scrape, counted in the window: %.0f bytes)\n", w, (a1 - a0) / w, 100 * (c1 - c0) / w, g1 - g0, a0 - s0 }'
go tool pprof -sample_index=alloc_space -base "$d/allocs0.pb.gz" -top -nodecount="${TOP:-25}" "$BIN" "$d/allocs1.pb.gz" 2>/dev/null | sed -n '1,40p'
if [ -n "${CPUPROFILE:-}" ]; then
	go tool pprof -top -nodecount="${TOP:-25}" "$BIN" "$d/cpu.pb.gz" 2>/dev/null | sed -n '1,40p'
fi
