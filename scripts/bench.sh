#!/usr/bin/env bash
# Runs the engine benchmarks. The results recorded in BENCHMARKS.md came from
# this script on the development machine (2 shared cores).
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench . -benchmem -count "${COUNT:-5}" ./flags/ "$@"
