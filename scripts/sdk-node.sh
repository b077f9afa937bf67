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
# Needs npm, and node >= 20 (fetched from the npm registry into the cache
# when missing or older). npm ci uses npm's own cache (~/.npm).
#   VEXIL_CACHE=dir                      where a fetched Node lives
#                                        (default ${XDG_CACHE_HOME:-~/.cache}/vexil)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

# posthog-node 5.70 needs Node >= 20 (its local evaluation uses the global
# WebCrypto, which Node 18, Debian 12's nodejs, lacks). Without one, take
# Node's official Linux build from the npm registry into the cache (npm is
# enough to fetch it: apt-get install nodejs npm).
cache=${VEXIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vexil}
node_version=20.20.2
node_ok() { command -v node >/dev/null && node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; }
command -v npm >/dev/null || { echo "sdk-node: npm is required (apt-get install nodejs npm)" >&2; exit 1; }
if ! node_ok; then
	case $(uname -m) in
	x86_64) arch=x64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) echo "sdk-node: node >= 20 is required" >&2; exit 1 ;;
	esac
	dir=$cache/node-$node_version
	if [ ! -x "$dir/node_modules/node-linux-$arch/bin/node" ]; then
		echo "sdk-node: node >= 20 not found; installing node-linux-$arch@$node_version from npm into $dir"
		rm -rf "$dir"
		npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "node-linux-$arch@$node_version"
	fi
	PATH=$dir/node_modules/node-linux-$arch/bin:$PATH
	export PATH
	node_ok || { echo "sdk-node: node >= 20 is required" >&2; exit 1; }
fi
echo "sdk-node: node $(node --version), npm $(npm --version 2>/dev/null)"

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
# prints the HTTP address it got. The store deadline is generous: this
# checks answers, not latency, and a loaded CI machine may take longer than
# the 50 ms default for a read.
"$bin" serve --demo --demo-persons "$persons" --data-dir "$tmp/data" --store-timeout 10s \
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
