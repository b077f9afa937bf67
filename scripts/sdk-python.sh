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
tmp=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin=${VEXIL_BIN:-}
if [ -z "$bin" ]; then
	mkdir -p bin
	go build -o bin/vexil ./cmd/vexil
	bin=$PWD/bin/vexil
fi

# Port 0 everywhere (NATS: -1): the kernel picks free ports, and the demo
# prints the HTTP address it got. The store deadline is generous: this
# checks answers, not latency.
"$bin" serve --demo --demo-persons "$persons" --data-dir "$tmp/data" --store-timeout 10s \
	--http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 --nats-listen 127.0.0.1:-1 \
	--log-level warn >"$tmp/serve.out" 2>"$tmp/serve.log" &
pid=$!
for _ in $(seq 900); do
	grep -q 'demo is ready' "$tmp/serve.out" && break
	if ! kill -0 "$pid" 2>/dev/null; then
		cat "$tmp/serve.out" "$tmp/serve.log" >&2
		echo "sdk-python: vexil serve exited" >&2
		exit 1
	fi
	sleep 0.1
done
if ! grep -q 'demo is ready' "$tmp/serve.out"; then
	cat "$tmp/serve.out" "$tmp/serve.log" >&2
	echo "sdk-python: the demo was not ready within 90s" >&2
	exit 1
fi
# Everything after the ready line is printed at once; read it in full.
sleep 0.2
url=$(sed -n 's|.*Point a PostHog SDK at \(http://[0-9.:]*\).*|\1|p' "$tmp/serve.out" | head -1)
token=$(sed -n 's/.*project token.*: *\(phc_[0-9A-Za-z_]*\).*/\1/p' "$tmp/serve.out" | head -1)
key=$(sed -n 's/.*personal API key.*: *\(phx_[0-9A-Za-z_]*\).*/\1/p' "$tmp/serve.out" | head -1)
if [ -z "$url" ] || [ -z "$token" ] || [ -z "$key" ]; then
	cat "$tmp/serve.out" >&2
	echo "sdk-python: could not read the address, token and personal key from the demo's output" >&2
	exit 1
fi
echo "sdk-python: posthog $version, vexil demo ($persons persons) at $url after $((SECONDS - start))s"

status=0
(cd sdktest/python && VEXIL_URL=$url VEXIL_PROJECT_TOKEN=$token VEXIL_PERSONAL_KEY=$key VEXIL_DEMO_PERSONS=$persons \
	"$venv/bin/python" -W ignore::DeprecationWarning -m unittest -v test_flags) || status=$?
if [ "$status" -ne 0 ]; then
	echo "--- vexil serve log (last 50 lines)" >&2
	tail -50 "$tmp/serve.log" >&2
	echo "sdk-python: FAILED after $((SECONDS - start))s" >&2
	exit "$status"
fi
echo "sdk-python: posthog-python passed in $((SECONDS - start))s"
