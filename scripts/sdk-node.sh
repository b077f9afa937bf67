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
. scripts/sdk-demo.sh
sdk_demo_init sdk-node
tmp=$sdk_tmp

# The SDK, exactly as locked; quiet unless it fails.
if ! (cd sdktest/node && npm ci --no-audit --no-fund --prefer-offline --loglevel=error >"$tmp/npm.log" 2>&1); then
	cat "$tmp/npm.log" >&2
	echo "sdk-node: npm ci failed" >&2
	exit 1
fi

sdk_demo_start "$persons"
echo "sdk-node: vexil demo ($persons persons) at $sdk_url after $((SECONDS - start))s"

status=0
(cd sdktest/node && VEXIL_URL=$sdk_url VEXIL_PROJECT_TOKEN=$sdk_token VEXIL_PERSONAL_KEY=$sdk_key VEXIL_DEMO_PERSONS=$persons \
	node --no-deprecation --test --test-reporter=spec) || status=$?
[ "$status" -eq 0 ] || sdk_demo_failed "$status"
echo "sdk-node: posthog-node passed in $((SECONDS - start))s"
