#!/usr/bin/env bash
# Reads snapshots back with an independent Parquet reader, DuckDB from
# PyPI (pinned in snapshot/testdata/requirements.txt, installed into a venv
# under the cache directory): runs snapshot's TestIndependentReader, which
# writes a snapshot and a what-if result and has
# snapshot/testdata/read_snapshot.py check their counts and sample rows.
#
#   scripts/snapshot-read.sh          make the venv and run the test
#   scripts/snapshot-read.sh --venv   only make the venv; print its python
#   VEXIL_CACHE=dir                   where the venv lives
#                                     (default ${XDG_CACHE_HOME:-~/.cache}/vexil)
#
# scripts/test.sh sets VEXIL_SNAPSHOT_PYTHON from --venv, so the whole Go
# suite runs the test; under CI=true the test fails without it.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=snapshot/testdata/requirements.txt
version=$(sed -n 's/^duckdb==\([0-9.]*\)$/\1/p' "$requirements")
[ -n "$version" ] || { echo "snapshot-read: no duckdb==VERSION pin in $requirements" >&2; exit 1; }
cache=${VEXIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vexil}
venv=$cache/duckdb-$version
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
	echo "snapshot-read: installing duckdb $version into $venv" >&2
	rm -rf "$venv"
	python3 -m venv "$venv"
	"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
fi
got=$("$venv/bin/python" -c 'import duckdb; print(duckdb.__version__)')
[ "$got" = "$version" ] || { echo "snapshot-read: $venv holds duckdb $got, want $version" >&2; exit 1; }
if [ "${1:-}" = "--venv" ]; then
	echo "$venv/bin/python"
	exit 0
fi
VEXIL_SNAPSHOT_PYTHON=$venv/bin/python go test -count=1 -run 'TestIndependentReader' ./snapshot/
