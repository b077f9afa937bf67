#!/usr/bin/env bash
# Runs PostHog's official Node SDK (posthog-node, pinned in sdktest/node)
# against a real Vexil: starts "vexil serve --demo" on a throw-away data
# directory and free loopback ports, then runs sdktest/node with node's
# built-in test runner (remote and local evaluation of every demo flag for
# a set of persons, expectations computed in the test from the demo's data).
#
#   scripts/sdk-node.sh                  build bin/vexil and run
#   VEXIL_BIN=path scripts/sdk-node.sh   use an already built binary
#   VEXIL_SDK_PERSONS=N                  demo persons (default 300)
#
# Needs node >= 20 and npm. npm ci uses npm's own cache (~/.npm).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

command -v node >/dev/null || { echo "sdk-node: node is required (node >= 20 and npm)" >&2; exit 1; }
command -v npm >/dev/null || { echo "sdk-node: npm is required" >&2; exit 1; }

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

# The SDK, exactly as locked; quiet unless it fails.
if ! (cd sdktest/node && npm ci --no-audit --no-fund --prefer-offline --loglevel=error >"$tmp/npm.log" 2>&1); then
	cat "$tmp/npm.log" >&2
	echo "sdk-node: npm ci failed" >&2
	exit 1
fi

# Port 0 everywhere (NATS: -1): the kernel picks free ports, and the demo
# prints the HTTP address it got.
"$bin" serve --demo --demo-persons "$persons" --data-dir "$tmp/data" \
	--http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 --nats-listen 127.0.0.1:-1 \
	--log-level warn >"$tmp/serve.out" 2>"$tmp/serve.log" &
pid=$!
for _ in $(seq 900); do
	grep -q 'demo is ready' "$tmp/serve.out" && break
	if ! kill -0 "$pid" 2>/dev/null; then
		cat "$tmp/serve.out" "$tmp/serve.log" >&2
		echo "sdk-node: vexil serve exited" >&2
		exit 1
	fi
	sleep 0.1
done
if ! grep -q 'demo is ready' "$tmp/serve.out"; then
	cat "$tmp/serve.out" "$tmp/serve.log" >&2
	echo "sdk-node: the demo was not ready within 90s" >&2
	exit 1
fi
# Everything after the ready line is printed at once; read it in full.
sleep 0.2
url=$(sed -n 's|.*Point a PostHog SDK at \(http://[0-9.:]*\).*|\1|p' "$tmp/serve.out" | head -1)
token=$(sed -n 's/.*project token.*: *\(phc_[0-9A-Za-z_]*\).*/\1/p' "$tmp/serve.out" | head -1)
key=$(sed -n 's/.*personal API key.*: *\(phx_[0-9A-Za-z_]*\).*/\1/p' "$tmp/serve.out" | head -1)
if [ -z "$url" ] || [ -z "$token" ] || [ -z "$key" ]; then
	cat "$tmp/serve.out" >&2
	echo "sdk-node: could not read the address, token and personal key from the demo's output" >&2
	exit 1
fi
echo "sdk-node: vexil demo ($persons persons) at $url after $((SECONDS - start))s"

status=0
(cd sdktest/node && VEXIL_URL=$url VEXIL_PROJECT_TOKEN=$token VEXIL_PERSONAL_KEY=$key VEXIL_DEMO_PERSONS=$persons \
	node --no-deprecation --test --test-reporter=spec) || status=$?
if [ "$status" -ne 0 ]; then
	echo "--- vexil serve log (last 50 lines)" >&2
	tail -50 "$tmp/serve.log" >&2
	echo "sdk-node: FAILED after $((SECONDS - start))s" >&2
	exit "$status"
fi
echo "sdk-node: posthog-node passed in $((SECONDS - start))s"
