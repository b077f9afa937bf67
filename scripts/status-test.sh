#!/usr/bin/env bash
# Runs the public status page's browser test: starts "vexil serve --demo"
# on a throw-away data directory and free loopback ports, then runs
# sdktest/status with node's test runner: it sends remote and local
# evaluation requests, and playwright-core drives Debian's headless
# chromium to /status (no key), checking that the page renders its charts
# and that its numbers equal the node's /metrics.
#
#   scripts/status-test.sh                  build bin/vexil and run
#   VEXIL_BIN=path scripts/status-test.sh   use an already built binary
#   VEXIL_CHROMIUM=path                     the browser (default: chromium on PATH)
#
# Needs npm, node >= 20 (fetched into the cache when missing) and chromium
# (apt-get install chromium; .ci/run installs it). Without chromium it
# fails under CI=true and skips otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

. scripts/node-env.sh
need_chromium status-test || exit 0
need_node status-test

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

if ! (cd sdktest/status && npm ci --no-audit --no-fund --prefer-offline --loglevel=error >"$tmp/npm.log" 2>&1); then
	cat "$tmp/npm.log" >&2
	echo "status-test: npm ci failed" >&2
	exit 1
fi

bin=${VEXIL_BIN:-}
if [ -z "$bin" ]; then
	mkdir -p bin
	go build -o bin/vexil ./cmd/vexil
	bin=$PWD/bin/vexil
fi
"$bin" serve --demo --demo-persons 100 --data-dir "$tmp/data" --store-timeout 10s \
	--http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 --nats-listen 127.0.0.1:-1 \
	--log-level info >"$tmp/serve.out" 2>"$tmp/serve.log" &
pid=$!
for _ in $(seq 900); do
	grep -q 'personal API key' "$tmp/serve.out" && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/serve.out" "$tmp/serve.log" >&2; echo "status-test: vexil serve exited" >&2; exit 1; }
	sleep 0.1
done
url=$(sed -n 's|.*Point a PostHog SDK at \(http://[0-9.:]*\).*|\1|p' "$tmp/serve.out" | head -1)
token=$(sed -n 's/.*project token.*: *\(phc_[0-9A-Za-z_]*\).*/\1/p' "$tmp/serve.out" | head -1)
key=$(sed -n 's/.*personal API key.*: *\(phx_[0-9A-Za-z_]*\).*/\1/p' "$tmp/serve.out" | head -1)
if [ -z "$url" ] || [ -z "$token" ] || [ -z "$key" ]; then
	cat "$tmp/serve.out" "$tmp/serve.log" >&2
	echo "status-test: could not read the address and keys from the demo's output" >&2
	exit 1
fi

echo "status-test: vexil demo at $url after $((SECONDS - start))s; chromium $("$chromium" --version 2>/dev/null | head -1)"
status=0
(cd sdktest/status && VEXIL_URL=$url VEXIL_PROJECT_TOKEN=$token VEXIL_PERSONAL_KEY=$key VEXIL_CHROMIUM=$chromium \
	node --no-deprecation --test --test-concurrency=1 --test-reporter=spec) || status=$?
if [ "$status" -ne 0 ]; then
	echo "--- vexil serve log (last 50 lines)" >&2
	tail -50 "$tmp/serve.log" >&2
	echo "status-test: FAILED after $((SECONDS - start))s" >&2
	exit "$status"
fi
echo "status-test: passed in $((SECONDS - start))s"
