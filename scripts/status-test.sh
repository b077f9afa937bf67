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

chromium=${VEXIL_CHROMIUM:-$(command -v chromium || true)}
if [ -z "$chromium" ]; then
	if [ "${CI:-}" = true ]; then
		echo "status-test: chromium is required (apt-get install chromium)" >&2
		exit 1
	fi
	echo "status-test: SKIPPED: chromium not found (apt-get install chromium); CI=true makes this a failure" >&2
	exit 0
fi
command -v npm >/dev/null || { echo "status-test: npm is required (apt-get install nodejs npm)" >&2; exit 1; }
# Node >= 20 for node:test and playwright-core; Debian 12's nodejs is 18:
# then Node's official build from the npm registry into the cache, the
# directory scripts/sdk-node.sh and scripts/ui-test.sh use.
cache=${VEXIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vexil}
node_version=20.20.2
node_ok() { command -v node >/dev/null && node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; }
if ! node_ok; then
	case $(uname -m) in
	x86_64) arch=x64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) echo "status-test: node >= 20 is required" >&2; exit 1 ;;
	esac
	dir=$cache/node-$node_version
	if [ ! -x "$dir/node_modules/node-linux-$arch/bin/node" ]; then
		echo "status-test: node >= 20 not found; installing node-linux-$arch@$node_version from npm into $dir"
		rm -rf "$dir"
		npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "node-linux-$arch@$node_version"
	fi
	PATH=$dir/node_modules/node-linux-$arch/bin:$PATH
	export PATH
	node_ok || { echo "status-test: node >= 20 is required" >&2; exit 1; }
fi

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
