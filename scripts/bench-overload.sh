#!/usr/bin/env bash
# The overload proof of admission control (issue 13): a saturation curve of
# /flags (open-loop rate → p50/p99/errors) beside a trivial Go handler under
# the same generator, then 2× the saturation rate for OVERLOAD (60 s): the
# latency of admitted (200) and refused (503) requests apart, the server's
# RSS every second, and a run at half of saturation right after (recovery).
#
# The generator must be able to offer twice what the server answers, or the
# run measures the generator. So the server (and the trivial handler, for
# the comparison) is pinned to core 0 *and* capped to SERVER_CPU of it by a
# CPU-quota cgroup (v1 cpu controller or v2 cpu.max), while the generator
# has core 1 to itself; on loopback, as in scripts/bench-flags.sh. Without a
# writable cgroup the cap is skipped (said on stderr and in the output).
# Results go to stdout and bench/overload-<date>.txt.
#
#   PERSONS=100000 SERVER_CPU=0.4 scripts/bench-overload.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PERSONS=${PERSONS:-100000}
# Few flags by default: small answers keep the generator ahead of the server.
FLAGS=${FLAGS:-0}
DURATION=${DURATION:-10s}
OVERLOAD=${OVERLOAD:-60s}
WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-512}
PORT=${PORT:-18100}
# The server's share of core 0 (0.4: 40%); 0 or empty: no cap.
SERVER_CPU=${SERVER_CPU:-0.4}
# The quota is granted per CFS period, and a process that used its quota
# waits for the next period: up to (1 - SERVER_CPU) × period. The kernel's
# default 100 ms period would stall admitted requests 60 ms at 0.4, so the
# period is as short as the kernel allows a quota to be (1 ms of quota):
# 2.5 ms at 0.4, stalls of at most 1.5 ms.
CPU_PERIOD_US=${CPU_PERIOD_US:-}
out=bench/overload-$(date -u +%Y%m%d-%H%M).txt
mkdir -p bench
go build -o bin/vexil ./cmd/vexil
data=$(mktemp -d)
pin0="" pin1=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0="taskset -c 0"; pin1="taskset -c 1"; fi
server="" trivial="" sampler="" cg="" cap="none"
cleanup() {
	kill $server $trivial $sampler 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$data"
	if [ -n "$cg" ]; then rmdir "$cg" 2>/dev/null || true; fi
}
trap cleanup EXIT

# The CPU cap: a cgroup whose quota is SERVER_CPU of one core.
if [ -n "$SERVER_CPU" ] && python3 -c "import sys; sys.exit(not 0 < float(sys.argv[1]) < 1)" "$SERVER_CPU"; then
	period=${CPU_PERIOD_US:-$(python3 -c "import math,sys; print(max(1000, math.ceil(1000/float(sys.argv[1]))))" "$SERVER_CPU")}
	quota=$(python3 -c "import sys; print(max(1000, round(float(sys.argv[1])*int(sys.argv[2]))))" "$SERVER_CPU" "$period")
	name=vexil-bench-overload-$$
	if [ -w /sys/fs/cgroup/cpu/cgroup.procs ] && [ -e /sys/fs/cgroup/cpu/cpu.cfs_quota_us ] && mkdir /sys/fs/cgroup/cpu/$name 2>/dev/null; then
		# cgroup v1, the cpu controller.
		cg=/sys/fs/cgroup/cpu/$name
		if echo "$period" >"$cg/cpu.cfs_period_us" && echo "$quota" >"$cg/cpu.cfs_quota_us"; then
			cap="cgroup v1 $cg: cpu.cfs_quota_us $quota, cpu.cfs_period_us $period"
		fi
	elif grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null && mkdir /sys/fs/cgroup/$name 2>/dev/null; then
		# cgroup v2 (the parent must delegate the cpu controller).
		cg=/sys/fs/cgroup/$name
		grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control || echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
		if echo "$quota $period" >"$cg/cpu.max" 2>/dev/null; then
			cap="cgroup v2 $cg: cpu.max $quota $period"
		fi
	fi
	if [ "$cap" = none ]; then
		echo "bench-overload: no writable cgroup cpu controller (v1 /sys/fs/cgroup/cpu or v2 cpu.max; run as root?): the server is NOT capped, and the generator may not be able to offer twice its saturation" >&2
	fi
fi
# capped PID: move a process (all its threads) under the cap.
capped() { if [ "$cap" != none ]; then echo "$1" >"$cg/cgroup.procs"; fi; }
# Under a cap below one core, one P: a second P could only add a thread
# competing for the same quota, and Go's cgroup-aware default would give it
# (it rounds a limit up, to at least 2 Ps when not pinned). With one P the
# scheduler delays and the busy fraction the rate gate reads are those of
# the one CPU the server has, pinned or not. Set at start: the runtime reads
# it once.
srvenv=(env)
if [ "$cap" != none ]; then srvenv=(env GOMAXPROCS=1); fi

echo "seeding $PERSONS persons and $FLAGS extra flags through the ingest stream (uncapped)..." >&2
$pin0 "${srvenv[@]}" bin/vexil serve --data-dir "$data" --http-addr 127.0.0.1:$PORT --grpc-addr 127.0.0.1:$((PORT+1)) \
	--nats-listen 127.0.0.1:$((PORT+2)) --demo --demo-persons "$PERSONS" --demo-flags "$FLAGS" --log-level warn >"$data/serve.out" 2>"$data/serve.err" &
server=$!
until grep -q "demo is ready" "$data/serve.out" 2>/dev/null; do
	kill -0 "$server" 2>/dev/null || { cat "$data/serve.err" >&2; exit 1; }
	sleep 1
done
sleep "${SETTLE:-10}"
token=$(grep -o 'phc_[0-9a-f]*' "$data/serve.out" | head -1)
# Seeded: the server goes under the cap (all its threads).
capped "$server"
# lt URL ARGS...: one run, JSON.
lt() { local url=$1; shift; $pin1 bin/vexil loadtest -url "$url" -token "$token" -persons "$PERSONS" -warmup "$WARMUP" -json "$@"; }
flags="http://127.0.0.1:$PORT/flags/?v=2"
# cputime PID: the process's user+system CPU seconds.
cputime() { awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"; }
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
# Not a pipeline: the trivial handler and the RSS sampler started inside
# must stay the main shell's, for cleanup.
{
	echo "# overload benchmark $(date -u +%FT%TZ)"
	echo "# $(bin/vexil version); nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# $PERSONS persons, $((FLAGS + 4)) flags; server on core 0, generator on core 1; open loop, $CONNS connections"
	echo "# server and trivial handler capped to SERVER_CPU=${SERVER_CPU:-none} of a core: $cap; ${srvenv[*]:1}"
	# Saturation is measured as CPU: the server's CPU time per answer in a
	# closed loop of one connection, and the answers per second its share of
	# a core (SERVER_CPU, or one core) pays for. A closed loop of several
	# connections would fill the server, but then the rate gate refuses, the
	# generator resends at once, and the answers per second it counts are
	# what the gate let through, not what the CPU can do.
	cpu0=$(cputime "$server")
	sat=$(lt "$flags" -connections 1 -duration "$DURATION" -warmup 0s)
	cpu1=$(cputime "$server")
	satrate=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); cpu=float(sys.argv[3])-float(sys.argv[2]); share=float(sys.argv[4] or 1)
print(int(r["by_status"].get("200",0)/cpu*share))' "$sat" "$cpu0" "$cpu1" "$( [ "$cap" != none ] && echo "$SERVER_CPU")")
	row "closed loop c=1" "$sat"
	echo "server CPU over it: $(python3 -c "print(f'{$cpu1-$cpu0:.2f}')") s, so saturation $satrate answers/s on ${SERVER_CPU:-1} of a core"
	row "closed loop c=4 (the gate refuses when it fills)" "$(lt "$flags" -connections 4 -duration "$DURATION")"
	# The trivial handler answers as many bytes as /flags did, under the
	# same pinning, cap and GOMAXPROCS.
	bytes=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["mean_response_bytes"])' "$sat")
	$pin0 "${srvenv[@]}" bin/vexil loadtest -trivial-server 127.0.0.1:$((PORT+3)) -trivial-bytes "$bytes" >/dev/null &
	trivial=$!
	capped "$trivial"
	until curl -s -o /dev/null "http://127.0.0.1:$((PORT+3))/"; do sleep 0.2; done
	echo "# trivial handler: $bytes-byte answers (/flags's mean)"
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
} > >(tee "$out")
