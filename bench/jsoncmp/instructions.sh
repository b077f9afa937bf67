#!/usr/bin/env bash
# Instructions per decode, counted by valgrind's callgrind: repeatable on a
# shared, noisy machine where nanoseconds are not. Each benchmark runs
# twice, with N1 and N2 iterations; the difference over N2-N1 cancels the
# process's start-up and the benchmark's setup.
#
#   bench/jsoncmp/instructions.sh                       # the standard library, goccy/go-json, sonic, wire
#   GOEXPERIMENT=jsonv2 bench/jsoncmp/instructions.sh   # and encoding/json/v2
set -euo pipefail
cd "$(dirname "$0")"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
N1=${N1:-1000}
N2=${N2:-11000}
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
go test -c -o "$bin" .
count() { # benchmark regexp, iterations -> instructions
	GOGC=off GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" -test.run '^$' \
		-test.bench "$1" -test.benchtime "${2}x" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
decoders="wire encoding-json goccy-go-json sonic"
[[ "${GOEXPERIMENT:-}" == *jsonv2* ]] && decoders="$decoders encoding-json-v2"
printf '%-32s %12s\n' benchmark instr/op
for b in node node-min python js; do
	for d in $decoders; do
		re="^BenchmarkRequestBody\$/^$b\$/^$d\$"
		a=$(count "$re" "$N1"); z=$(count "$re" "$N2")
		printf '%-32s %12d\n' "RequestBody/$b/$d" $(( (z - a) / (N2 - N1) ))
	done
done
for d in $decoders; do
	re="^BenchmarkStoredProperties\$/^$d\$"
	a=$(count "$re" "$N1"); z=$(count "$re" "$N2")
	printf '%-32s %12d\n' "StoredProperties/$d" $(( (z - a) / (N2 - N1) ))
done
