#!/usr/bin/env bash
# The Go client's benchmarks (vexilclient): local evaluation of the peers'
# 50-flag workload against the engine alone, and the remote round trip over
# loopback. The machine is shared and noisy, so the local/engine comparison
# is made three ways, each printed:
#   1. PAIRS rounds of the engine then the client, back to back in one
#      process (BenchmarkLocalVsEngine50Flags), with the ratio of each pair;
#   2. the CPU profile of the client's benchmark: the share of its CPU time
#      spent outside flags.(*Set).AppendEvaluate is the client's overhead,
#      whatever the machine's load;
#   3. BenchmarkRemoteEvaluate, COUNT times;
#   4. instructions per call (callgrind, scripts/bench-instructions.sh) of
#      the engine's own BenchmarkEvaluate50Flags and of the client's local
#      evaluation: the same on a busy machine as on a quiet one (needs
#      valgrind; skipped with a line saying so without it).
#
#   scripts/bench-client.sh [out-file]     PAIRS=8 COUNT=5 by default
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${PAIRS:-8}
count=${COUNT:-5}
out=${1:-/dev/stdout}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go test -c -o "$tmp/vc.test" ./vexilclient/
{
	echo "# scripts/bench-client.sh $(date -u +%Y-%m-%dT%H:%MZ), load: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "## 1. engine vs client, $pairs pairs (ns/op per 50 flags)"
	for i in $(seq "$pairs"); do
		"$tmp/vc.test" -test.run '^$' -test.bench 'LocalVsEngine50Flags' -test.benchtime 1s -test.benchmem |
			awk -v i="$i" '/engine/ {e=$3} /client/ {c=$3} END {printf "pair %d: engine %d client %d ratio %.3f\n", i, e, c, c/e}'
	done
	echo "## 2. CPU profile of the client's local evaluation"
	"$tmp/vc.test" -test.run '^$' -test.bench 'LocalVsEngine50Flags/client' -test.benchtime 3s -test.cpuprofile "$tmp/cpu.prof" | grep Benchmark
	total=$(go tool pprof -top "$tmp/vc.test" "$tmp/cpu.prof" 2>/dev/null | sed -n 's/.*Total samples = \([0-9.]*\)\(m*s\).*/\1 \2/p')
	engine=$(go tool pprof -top -cum "$tmp/vc.test" "$tmp/cpu.prof" 2>/dev/null | awk '/flags\.\(\*Set\)\.AppendEvaluate$/ {print $4, $5}')
	echo "total samples: $total; in flags.(*Set).AppendEvaluate (cum, cum%): $engine"
	echo "## 3. remote round trip over loopback"
	"$tmp/vc.test" -test.run '^$' -test.bench 'RemoteEvaluate' -test.benchtime 2s -test.count "$count" -test.benchmem | grep Benchmark
	echo "## 4. instructions per 50-flag evaluation (callgrind, collector off)"
	if command -v valgrind >/dev/null; then
		e=$(scripts/bench-instructions.sh ./flags/ '^BenchmarkEvaluate50Flags$' | tail -1)
		c=$(scripts/bench-instructions.sh ./vexilclient/ '^BenchmarkLocalVsEngine50Flags$/^client$' | tail -1)
		echo "$e"
		echo "$c"
		ei=$(sed -n 's/.*: \([0-9]*\) instructions.*/\1/p' <<<"$e")
		ci=$(sed -n 's/.*: \([0-9]*\) instructions.*/\1/p' <<<"$c")
		awk -v e="$ei" -v c="$ci" 'BEGIN {printf "client / engine: %.3f\n", c / e}'
	else
		echo "valgrind is not installed: no instruction counts (apt-get install valgrind)"
	fi
} | tee "$out"
