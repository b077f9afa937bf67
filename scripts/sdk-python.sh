#!/usr/bin/env bash
# Runs PostHog's official Python SDK (posthog-python, pinned in
# sdktest/python/requirements.txt, from PyPI into a venv under the cache
# directory) against a real Vexil: starts "vexil serve --demo" on a
# throw-away data directory and free loopback ports, then runs
# sdktest/python with unittest (remote and local evaluation of the demo's
# flags, and local == remote on a team with cohorts, dependencies and
# overrides that the test makes through the management API).
#
#   scripts/sdk-python.sh                  build bin/vexil and run
#   VEXIL_BIN=path scripts/sdk-python.sh   use an already built binary
#   VEXIL_SDK_PERSONS=N                    demo persons (default 300)
#   scripts/sdk-python.sh --venv           only make the venv; print its python
#   VEXIL_CACHE=dir                        where the venv lives
#                                          (default ${XDG_CACHE_HOME:-~/.cache}/vexil)
#
# The venv's python is also what the randomized differential test in
# flags/posthogdiff runs (VEXIL_POSTHOG_PYTHON; scripts/test.sh sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

requirements=sdktest/python/requirements.txt
version=$(sed -n 's/^posthog==\([0-9.]*\)$/\1/p' "$requirements")
[ -n "$version" ] || { echo "sdk-python: no posthog==VERSION pin in $requirements" >&2; exit 1; }
cache=${VEXIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vexil}
venv=$cache/posthog-python-$version
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import posthog' 2>/dev/null; then
	echo "sdk-python: installing posthog $version into $venv" >&2
	rm -rf "$venv"
	python3 -m venv "$venv"
	"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
fi
got=$("$venv/bin/python" -c 'import posthog.version as v; print(v.VERSION)')
[ "$got" = "$version" ] || { echo "sdk-python: $venv holds posthog $got, want $version" >&2; exit 1; }
if [ "${1:-}" = "--venv" ]; then
	echo "$venv/bin/python"
	exit 0
fi

persons=${VEXIL_SDK_PERSONS:-300}
. scripts/sdk-demo.sh
sdk_demo_init sdk-python
sdk_demo_start "$persons"
echo "sdk-python: posthog $version, vexil demo ($persons persons) at $sdk_url after $((SECONDS - start))s"

status=0
(cd sdktest/python && VEXIL_URL=$sdk_url VEXIL_PROJECT_TOKEN=$sdk_token VEXIL_PERSONAL_KEY=$sdk_key VEXIL_DEMO_PERSONS=$persons \
	"$venv/bin/python" -W ignore::DeprecationWarning -m unittest -v test_flags test_capture) || status=$?
[ "$status" -eq 0 ] || sdk_demo_failed "$status"
echo "sdk-python: posthog-python passed in $((SECONDS - start))s"
