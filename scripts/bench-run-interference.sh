#!/usr/bin/env bash
# What a precompute run costs serving while it lasts, with and without a
# budget: for each run rate (0 = unbounded), vexil serve with PERSONS persons
# and 50 flags on core 0, then a new flag (the freshness probe) starts a run
# over every row while person writes arrive at 1k/s and /flags is asked for
# them (publish → visible), measured during the run; then the run's length.
# Writes bench/run-interference-<date>.txt.
#
#   PERSONS=1000000 RATES="0 25000" scripts/bench-run-interference.sh
#
# PIN=0 leaves the server and the load unpinned (both share every core).
# Each rate also prints what the store and the projector did during the run
# (deltas of Pebble's stalls, flushes, compactions and apply time, and the
# projector's batch time). PROFILE=dir also saves, per rate, a CPU profile
# (10 s), an execution trace (3 s) and a /metrics snapshot of the server
# taken during the measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
PERSONS=${PERSONS:-1000000}
RATES=${RATES:-0 25000}
PORT=${PORT:-20000}
out=bench/run-interference-$(date -u +%Y%m%d-%H%M).txt
mkdir -p bench
go build -o bin/vexil ./cmd/vexil
pin0="" pin1=""
if [ "${PIN:-1}" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0="taskset -c 0"; pin1="taskset -c 1"; fi
where="server and load unpinned"
[ -z "$pin0" ] || where="server on core 0, writes and probes on core 1"
server="" data=""
cleanup() { kill $server 2>/dev/null || true; wait 2>/dev/null || true; [ -z "$data" ] || rm -rf "$data"; }
trap cleanup EXIT
{
	echo "# precompute run interference $(date -u +%FT%TZ); $(bin/vexil version); nproc $(nproc)"
	echo "# $PERSONS persons, 54 flags, $where, GOMAXPROCS ${GOMAXPROCS:-default}; freshness at 1000 writes/s for 10 s, measured while the probe flag's run goes"
} | tee "$out"
for rate in $RATES; do
	data=$(mktemp -d)
	$pin0 bin/vexil serve --data-dir "$data" --http-addr 127.0.0.1:$PORT --grpc-addr 127.0.0.1:$((PORT+1)) \
		--nats-listen 127.0.0.1:$((PORT+2)) --demo --demo-persons "$PERSONS" --demo-flags 50 --precompute-run-rate "$rate" \
		--log-level warn >"$data/serve.out" 2>"$data/serve.err" &
	server=$!
	until grep -q "demo is ready" "$data/serve.out" 2>/dev/null; do
		kill -0 "$server" 2>/dev/null || { cat "$data/serve.err" >&2; exit 1; }
		sleep 1
	done
	token=$(grep -o 'phc_[0-9a-f]*' "$data/serve.out" | head -1)
	personal=$(grep -o 'phx_[0-9a-f]*' "$data/serve.out" | head -1)
	team=$(grep -o 'team [0-9]*' "$data/serve.out" | head -1 | cut -d' ' -f2)
	status() { curl -s -H "Authorization: Bearer $personal" "http://127.0.0.1:$PORT/api/projects/$team/precompute"; }
	computed() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^vexil_precompute_computed_total/ {s+=$2} END {printf "%d", s}'; }
	# Pebble's stalls, flushes, compactions and apply time, and the
	# projector's batch time, summed over labels.
	storemetrics() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^vexil_pebblestore_(write_stall|flushes|compactions|apply_seconds_(sum|count))|^vexil_projector_batch_seconds_(sum|count)/ {sub(/\{.*/, "", $1); s[$1]+=$2} END {for (k in s) printf "%s %s\n", k, s[k]}' | sort; }
	until status | grep -q FINISHED; do sleep 2; done
	prev=-1
	while [ "$(computed)" != "$prev" ]; do prev=$(computed); sleep 5; done
	sleep 20
	{
		echo "## run rate ${rate} rows/s (0: unbounded)"
		storemetrics >"$data/before"
		if [ -n "${PROFILE:-}" ]; then
			mkdir -p "$PROFILE"
			curl -s -o "$PROFILE/cpu-rate$rate.pprof" "http://127.0.0.1:$PORT/debug/pprof/profile?seconds=10" &
			(sleep 4; curl -s -o "$PROFILE/trace-rate$rate.out" "http://127.0.0.1:$PORT/debug/pprof/trace?seconds=3"; \
				curl -s "http://127.0.0.1:$PORT/metrics" >"$PROFILE/metrics-rate$rate.txt") &
		fi
		$pin1 bin/vexil loadtest -freshness -wait-precompute=false -url "http://127.0.0.1:$PORT/flags/?v=2" -nats-url "nats://127.0.0.1:$((PORT+2))" \
			-token "$token" -personal-key "$personal" -team "$team" -persons 100000 -rate 1000 -duration 10s
		until status | grep -q FINISHED; do sleep 1; done
		storemetrics >"$data/after"
		echo "store and projector during the run (delta):"
		join "$data/before" "$data/after" | awk '{printf "  %s %g\n", $1, $3-$2}'
		echo "the probe flag's run: $(status | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["rows_done"], "rows from", s["started_at"], "to", s.get("finished_at"), "at", int(s["rows_per_second"]), "rows/s")')"
	} | tee -a "$out"
	kill $server; wait $server 2>/dev/null || true
	rm -rf "$data"; data="" server=""
done
echo "wrote $out" >&2
