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
. scripts/node-env.sh
need_node sdk-node
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
