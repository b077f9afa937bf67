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
# The generator is `vexil loadtest -raw` (a minimal HTTP/1.1 client: a few
# µs a request where net/http's client costs tens, so core 1 can offer
# twice what the server answers); latencies count from each request's
# scheduled start. The script ends with the whole table in Markdown, each
# target checked. Results go to stdout and bench/overload-<date>.txt.
#
#   PERSONS=100000 SERVER_CPU=0.4 scripts/bench-overload.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PERSONS=${PERSONS:-100000}
# Extra demo flags beside the demo's 4. A refusal costs the server about
# what a trivial handler does (net/http's per-request work): with 4 flags
# an answer costs barely twice that, so 2x saturation cannot even be
# refused on the server's share of a core (the table prints a refusal's
# cost against an answer's). 50 flags is a project of ordinary size.
FLAGS=${FLAGS:-50}
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
lt() { local url=$1; shift; $pin1 bin/vexil loadtest -raw -url "$url" -token "$token" -persons "$PERSONS" -warmup "$WARMUP" -json "$@"; }
flags="http://127.0.0.1:$PORT/flags/?v=2"
triv="http://127.0.0.1:$((PORT+3))/"
# cputime PID: the process's user+system CPU seconds.
cputime() { awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"; }
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# throttled: the cap's "nr_periods nr_throttled throttled_time(ns)".
throttled() { if [ "$cap" != none ] && [ -e "$cg/cpu.stat" ]; then awk '$1=="nr_periods"{p=$2} $1=="nr_throttled"{n=$2} $1=="throttled_time"{t=$2} $1=="throttled_usec"{t=$2*1000} END{printf "%.0f %.0f %.0f\n", p, n, t}' "$cg/cpu.stat"; else echo "0 0 0"; fi; }
# save NAME JSON: keep a run for the table; row LABEL NAME prints it.
res="$data/results"; mkdir -p "$res"
save() { printf '%s\n' "$2" >"$res/$1.json"; }
row() { python3 - "$1" "$res/$2.json" <<'PY'
import json, sys
label, r = sys.argv[1], json.load(open(sys.argv[2]))
ms = lambda ns: f"{ns/1e6:.2f}ms"
by = " ".join(f"[{s}: p50 {ms(l['p50_ns'])} p99 {ms(l['p99_ns'])} max {ms(l['max_ns'])}]" for s, l in sorted(r["by_status_latency"].items()))
print(f"{label}: achieved {r['achieved_rate']:.0f}/s, p50 {ms(r['p50_ns'])} p99 {ms(r['p99_ns'])}, errors {r['errors']} of {r['requests']} "
      f"(not sent, all connections busy: {r['dropped']}), statuses {r['by_status']} {by}")
PY
}
# run NAME PID URL ARGS...: a load run with the server's CPU seconds and the
# cap's throttling over it, saved as NAME (NAME.cpu, NAME.thr).
run() { local name=$1 pid=$2 url=$3; shift 3
	local c0 c1 t0 t1; c0=$(cputime "$pid"); t0=$(throttled)
	save "$name" "$(lt "$url" "$@")"
	c1=$(cputime "$pid"); t1=$(throttled)
	python3 -c "print(f'{$c1-$c0:.3f}')" >"$res/$name.cpu"
	echo "$t0 $t1" >"$res/$name.thr"
}
# Not a pipeline: the trivial handler and the RSS sampler started inside
# must stay the main shell's, for cleanup.
{
	echo "# overload benchmark $(date -u +%FT%TZ)"
	echo "# $(bin/vexil version); nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# $PERSONS persons, $((FLAGS + 4)) flags; server on core 0, generator (vexil loadtest -raw) on core 1; open loop, $CONNS connections"
	echo "# server and trivial handler capped to SERVER_CPU=${SERVER_CPU:-none} of a core: $cap; ${srvenv[*]:1}"
	# Saturation is measured as CPU: a closed loop of 8 connections, the
	# server's CPU seconds over it, and the answers per second its share of
	# a core (SERVER_CPU, or one core) pays for at that CPU per answer
	# (refusals' CPU counted as the answers': a low estimate when the gate
	# refuses). A closed loop's own rate is not a capacity: once the server
	# fills, the rate gate refuses and the generator resends at once.
	run sat "$server" "$flags" -connections 8 -duration "$DURATION" -warmup 0s
	satrate=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); cpu=float(open(sys.argv[2]).read()); share=float(sys.argv[3] or 1)
print(int(r["by_status"].get("200",0)/cpu*share))' "$res/sat.json" "$res/sat.cpu" "$( [ "$cap" != none ] && echo "$SERVER_CPU")")
	echo "$satrate" >"$res/satrate"
	row "closed loop c=8" sat
	echo "server CPU over it: $(cat "$res/sat.cpu") s, so saturation $satrate answers/s on ${SERVER_CPU:-1} of a core"
	# The trivial handler answers as many bytes as /flags did, under the
	# same pinning, cap and GOMAXPROCS.
	bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mean_response_bytes"])' "$res/sat.json")
	$pin0 "${srvenv[@]}" bin/vexil loadtest -trivial-server 127.0.0.1:$((PORT+3)) -trivial-bytes "$bytes" >/dev/null &
	trivial=$!
	capped "$trivial"
	until curl -s -o /dev/null "$triv"; do sleep 0.2; done
	echo "# trivial handler: $bytes-byte answers (/flags's mean)"
	run tsat "$trivial" "$triv" -connections 8 -duration "$DURATION" -warmup 0s
	row "trivial handler, closed loop c=8" tsat
	echo "trivial handler CPU over it: $(cat "$res/tsat.cpu") s"
	echo "## saturation curve (open loop, $DURATION each; rates as fractions of $satrate/s)"
	for f in 0.25 0.5 0.75 1.0 1.25 1.5 2.0; do
		rate=$(python3 -c "print(max(1, int($satrate*$f)))")
		run "curve-flags-$f" "$server" "$flags" -rate "$rate" -connections "$CONNS" -duration "$DURATION"
		row "/flags   ${f}x $rate/s" "curve-flags-$f"
		run "curve-trivial-$f" "$trivial" "$triv" -rate "$rate" -connections "$CONNS" -duration "$DURATION"
		row "trivial  ${f}x $rate/s" "curve-trivial-$f"
	done
	echo "refused (evaluate) over the curve, by reason: limit $(metric 'vexil_admission_refused_total{class="evaluate",reason="limit"}'), rate $(metric 'vexil_admission_refused_total{class="evaluate",reason="rate"}'), late $(metric 'vexil_admission_refused_total{class="evaluate",reason="late"}')"
	echo "## overload: 2x saturation ($((satrate * 2))/s) for $OVERLOAD"
	echo "limit before: $(metric vexil_admission_limit), rate gate $(metric vexil_admission_rate)/s (0: open); RSS before: $(ps -o rss= -p "$server") KiB"
	(while sleep 1; do ps -o rss= -p "$server"; done) >"$res/rss" &
	sampler=$!
	run over "$server" "$flags" -rate $((satrate * 2)) -connections "$CONNS" -duration "$OVERLOAD" -warmup 0s
	kill $sampler; sampler=""
	row "2x saturation" over
	echo "limit at the end: $(metric vexil_admission_limit), rate gate $(metric vexil_admission_rate)/s; refused (evaluate): $(metric 'vexil_admission_rejected_total{class="evaluate"}')"
	echo "refused (evaluate) since the start, by reason: limit $(metric 'vexil_admission_refused_total{class="evaluate",reason="limit"}'), rate $(metric 'vexil_admission_refused_total{class="evaluate",reason="rate"}'), late $(metric 'vexil_admission_refused_total{class="evaluate",reason="late"}')"
	echo "## recovery: half of saturation right after"
	run recovery "$server" "$flags" -rate $((satrate / 2)) -connections "$CONNS" -duration "$DURATION" -warmup 0s
	row "0.5x $((satrate / 2))/s" recovery
	echo "limit after: $(metric vexil_admission_limit), rate gate $(metric vexil_admission_rate)/s; RSS after: $(ps -o rss= -p "$server") KiB"
	ps -o rss= -p "$server" >"$res/rss-after"
	echo "## server-side latency of admitted evaluations over the whole script (vexil_admission_admitted_seconds)"
	curl -s "http://127.0.0.1:$PORT/metrics" | grep '^vexil_admission_admitted_seconds_bucket{class="evaluate"' | sed 's/^/  /'
	echo "## the table"
	python3 scripts/bench-overload-table.py "$res" "${SERVER_CPU:-1}" "$OVERLOAD" "$cap"
} > >(tee "$out")
