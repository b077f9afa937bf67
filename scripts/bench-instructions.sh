#!/usr/bin/env bash
# Instructions per benchmark iteration, counted by valgrind's callgrind:
# repeatable on a shared, noisy machine where nanoseconds are not. The
# benchmark runs twice, N1 and N2 iterations; the difference over N2-N1
# cancels start-up and setup. The collector is off while counting
# (GOGC=off): its work depends on when it happens to run, which would make
# the counts vary by a fifth from run to run; what a change saves in
# collection shows in the bytes and allocations per op, printed alongside.
#
#   scripts/bench-instructions.sh ./evalsvc/ '^BenchmarkServeFlags50$/^stored$'
#
# BIN=<test binary> counts that binary (built with go test -c) instead of
# building the package: an A/B of two commits without switching trees.
# The benchmark runs in the package's directory either way.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: $0 <package> <benchmark regexp>" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
N1=${N1:-2000}
N2=${N2:-12000}
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
if [ -n "${BIN:-}" ]; then
	cp "$BIN" "$bin"
	chmod +x "$bin"
else
	go test -c -o "$bin" "$1"
fi
cd "$1"
count() {
	# Go's asynchronous preemption signals trip callgrind: off while counting.
	GOGC=off GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" -test.run '^$' \
		-test.bench "$2" -test.benchtime "${1}x" -test.benchmem 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
a=$(count "$N1" "$2")
z=$(count "$N2" "$2")
allocs=$("$bin" -test.run '^$' -test.bench "$2" -test.benchtime "${N2}x" -test.benchmem | grep -o '[0-9]* B/op.*allocs/op' | head -1)
echo "$2: $(( (z - a) / (N2 - N1) )) instructions/op; $allocs"
