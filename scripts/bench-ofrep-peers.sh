#!/usr/bin/env bash
# Side by side: OFREP bulk evaluation (POST /ofrep/v1/evaluate/flags) of the
# peers' 50-flag workload (BENCHMARKS.md "The peers") by Vexil, flagd and GO
# Feature Flag's relay proxy, in one run. Nothing of the peers is in this
# repository: give their binaries (built from their published sources) by
# environment; a peer whose binary is not given is left out.
#
#   FLAGD_BIN=/path/flagd GOFF_BIN=/path/relay-proxy scripts/bench-ofrep-peers.sh [out-file]
#
#   ROUNDS=3 DURATION=10s WARMUP=3s CONNS=2   wrk -t1 -c$CONNS, rounds interleaved, medians by hand
#   GOFF_CONFIG=file                          the relay proxy's config (default: one written here,
#                                             listening on $GOFF_PORT and reading the rendered flags)
#   VEXIL_BIN=file SERVE_ARGS="..."           a built vexil (default: go build), settings added to serve
#
# Each server runs alone on core 0 (taskset -c 0); wrk runs on core 1, on
# loopback, rotating 1,000 contexts (user-0..999, country cycling US/DE/FR)
# so nothing can cache one answer. Vexil runs "serve --demo" with
# --demo-flags 50 (the same 50 flags, beside the demo's 4) and 1,000 persons
# stored, so it also reads each person's row. Needs wrk, taskset, and a
# machine not shared with other work for numbers worth recording.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
duration=${DURATION:-10s}
warmup=${WARMUP:-3s}
conns=${CONNS:-2}
out=${1:-}
flagd_port=${FLAGD_PORT:-18016}
goff_port=${GOFF_PORT:-11031}
for bin in ${FLAGD_BIN:-} ${GOFF_BIN:-} ${VEXIL_BIN:-}; do [ -x "$bin" ] || { echo "bench-ofrep-peers: $bin is not an executable" >&2; exit 1; }; done
for tool in wrk taskset; do command -v $tool >/dev/null || { echo "bench-ofrep-peers: $tool is required" >&2; exit 1; }; done

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# The workload in each peer's format: bool-<i> at 50%, mv-<i> 34/33/33
# gated on country == US.
{
	echo '{"flags": {'
	for i in $(seq 0 49); do
		sep=,; [ "$i" = 49 ] && sep=
		if [ $((i % 2)) = 0 ]; then
			echo "\"bool-$i\": {\"state\":\"ENABLED\",\"variants\":{\"on\":true,\"off\":false},\"defaultVariant\":\"off\",\"targeting\":{\"fractional\":[[\"on\",50],[\"off\",50]]}}$sep"
		else
			echo "\"mv-$i\": {\"state\":\"ENABLED\",\"variants\":{\"control\":\"control\",\"test\":\"test\",\"test-2\":\"test-2\",\"off\":\"off\"},\"defaultVariant\":\"off\",\"targeting\":{\"if\":[{\"==\":[{\"var\":\"country\"},\"US\"]},{\"fractional\":[[\"control\",34],[\"test\",33],[\"test-2\",33]]},\"off\"]}}$sep"
		fi
	done
	echo '}}'
} >"$tmp/flagd.json"
{
	for i in $(seq 0 49); do
		if [ $((i % 2)) = 0 ]; then
			printf 'bool-%d:\n  variations:\n    "on": true\n    "off": false\n  defaultRule:\n    percentage:\n      "on": 50\n      "off": 50\n' "$i"
		else
			printf 'mv-%d:\n  variations:\n    control: control\n    test: test\n    test-2: test-2\n    "off": "off"\n  targeting:\n    - query: country eq "US"\n      percentage:\n        control: 34\n        test: 33\n        test-2: 33\n  defaultRule:\n    variation: "off"\n' "$i"
		fi
	done
} >"$tmp/goff-flags.yaml"
printf 'server:\n  mode: http\n  port: %s\nlisten: %s\nlogLevel: error\npollingInterval: 600000\nretrievers:\n  - kind: file\n    path: %s\n' "$goff_port" "$goff_port" "$tmp/goff-flags.yaml" >"$tmp/goff.yaml"

# wrk: rotate 1,000 OFREP bodies; the token, when set, as a bearer.
cat >"$tmp/ofrep.lua" <<'LUA'
local countries = {"US", "DE", "FR"}
local bodies = {}
for i = 0, 999 do
  bodies[i + 1] = string.format('{"context":{"targetingKey":"user-%d","country":"%s"}}', i, countries[i % 3 + 1])
end
local n = 0
local token = os.getenv("OFREP_TOKEN")
request = function()
  n = n % #bodies + 1
  local headers = {["Content-Type"] = "application/json"}
  if token and token ~= "" then headers["Authorization"] = "Bearer " .. token end
  return wrk.format("POST", "/ofrep/v1/evaluate/flags", headers, bodies[n])
end
LUA

wait_http() { # url body
	for _ in $(seq 300); do
		code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' ${OFREP_TOKEN:+-H "Authorization: Bearer $OFREP_TOKEN"} -d "$2" "$1" || true)
		[ "$code" = 200 ] && return 0
		sleep 0.1
	done
	echo "bench-ofrep-peers: $1 did not answer 200 (last: $code)" >&2
	tail -20 "$tmp"/*.out "$tmp"/*.log 2>/dev/null >&2 || true
	return 1
}

# start <name>: runs the server on core 0 and sets base and OFREP_TOKEN.
start() {
	OFREP_TOKEN=
	case $1 in
	vexil)
		bin=${VEXIL_BIN:-}
		if [ -z "$bin" ]; then go build -o "$tmp/vexil" ./cmd/vexil; bin=$tmp/vexil; fi
		# Seeded on both cores, then pinned to core 0 (every thread) once ready.
		"$bin" serve --demo --demo-persons 1000 --demo-flags 50 --data-dir "$tmp/vexil-data" \
			--http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 --nats-listen 127.0.0.1:-1 --log-level error ${SERVE_ARGS:-} >"$tmp/vexil.out" 2>&1 &
		pids+=($!)
		for _ in $(seq 3000); do
			grep -qs 'demo is ready' "$tmp/vexil.out" && break
			kill -0 "${pids[-1]}" 2>/dev/null || { cat "$tmp/vexil.out" >&2; echo "bench-ofrep-peers: vexil serve exited" >&2; return 1; }
			sleep 0.1
		done
		sleep 0.2
		taskset -a -p -c 0 "${pids[-1]}" >/dev/null
		base=$(sed -n 's|.*Point a PostHog SDK at \(http://[0-9.:]*\).*|\1|p' "$tmp/vexil.out" | head -1)
		OFREP_TOKEN=$(sed -n 's/.*project token.*: *\(phc_[0-9A-Za-z_]*\).*/\1/p' "$tmp/vexil.out" | head -1)
		;;
	flagd)
		taskset -c 0 "$FLAGD_BIN" start --uri "file:$tmp/flagd.json" --ofrep-port "$flagd_port" --port $((flagd_port + 1)) \
			--management-port $((flagd_port + 2)) --sync-port $((flagd_port + 3)) >"$tmp/flagd.log" 2>&1 &
		pids+=($!)
		base=http://127.0.0.1:$flagd_port
		;;
	goff)
		taskset -c 0 "$GOFF_BIN" --config "${GOFF_CONFIG:-$tmp/goff.yaml}" >"$tmp/goff.log" 2>&1 &
		pids+=($!)
		base=http://127.0.0.1:$goff_port
		;;
	esac
	export OFREP_TOKEN
	wait_http "$base/ofrep/v1/evaluate/flags" '{"context":{"targetingKey":"user-1","country":"US"}}'
}

stop_last() {
	local p=${pids[-1]}
	kill "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	unset 'pids[-1]'
}

# summary rounds-file: the median of each peer's rounds, and its ratio to
# Vexil's req/s. wrk prints latencies with their own unit (us, ms, s).
summary() {
	python3 - "$1" <<'PY'
import re, statistics, sys
unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
def ms(t):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", t)
    return float(m.group(1)) * unit[m.group(2)] if m else float("nan")
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    # round R NAME: req/s X p50 Y p99 Z response NB non-2xx E
    rows.setdefault(f[2].rstrip(":"), []).append((float(f[4]), ms(f[6]), ms(f[8]), f[10], int(f[12])))
med = lambda xs, i: statistics.median(x[i] for x in xs)
base = med(rows["vexil"], 0) if "vexil" in rows else None
print(f"| median of {len(next(iter(rows.values())))} rounds | req/s | p50 | p99 | vs Vexil | response | non-2xx |")
print("|---|---|---|---|---|---|---|")
for name, xs in rows.items():
    ratio = f"{med(xs, 0) / base:.2f}x" if base else "n/a"
    print(f"| {name} | {med(xs, 0):,.0f} | {med(xs, 1):.2f} ms | {med(xs, 2):.2f} ms | {ratio} | {xs[0][3]} | {sum(x[4] for x in xs)} |")
PY
}

peers=(vexil)
[ -n "${FLAGD_BIN:-}" ] && peers+=(flagd)
[ -n "${GOFF_BIN:-}" ] && peers+=(goff)
{
	echo "# scripts/bench-ofrep-peers.sh $(date -u +%Y-%m-%dT%H:%MZ), nproc $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# wrk -t1 -c$conns -d$duration (after $warmup of warm-up), OFREP bulk, 50 flags, 1,000 rotating contexts"
	for r in $(seq "$rounds"); do
		for p in "${peers[@]}"; do
			start "$p"
			# Once per peer: the same flags, answered right, before any number counts.
			[ "$r" = 1 ] && FLAGS=50 python3 scripts/peers-equivalence.py "$p" ofrep "$base" "$OFREP_TOKEN" >&2
			size=$(curl -s -X POST -H 'Content-Type: application/json' ${OFREP_TOKEN:+-H "Authorization: Bearer $OFREP_TOKEN"} \
				-d '{"context":{"targetingKey":"user-1","country":"US"}}' "$base/ofrep/v1/evaluate/flags" | wc -c)
			taskset -c 1 wrk -t1 -c"$conns" -d"$warmup" -s "$tmp/ofrep.lua" "$base" >/dev/null
			res=$(taskset -c 1 wrk -t1 -c"$conns" -d"$duration" --latency -s "$tmp/ofrep.lua" "$base")
			rps=$(awk '/Requests\/sec/ {print $2}' <<<"$res")
			p50=$(awk '$1 == "50%" {print $2}' <<<"$res")
			p99=$(awk '$1 == "99%" {print $2}' <<<"$res")
			errs=$(awk '/Non-2xx/ {print $NF}' <<<"$res")
			echo "round $r $p: req/s $rps p50 $p50 p99 $p99 response ${size}B non-2xx ${errs:-0}" | tee -a "$tmp/rounds.txt"
			stop_last
		done
	done
	summary "$tmp/rounds.txt"
} | if [ -n "$out" ]; then tee "$out"; else cat; fi
