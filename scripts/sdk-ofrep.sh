#!/usr/bin/env bash
# Runs OpenFeature's official OFREP provider (@openfeature/ofrep-provider
# with @openfeature/server-sdk, and @openfeature/ofrep-core's client for the
# bulk endpoint; pinned in sdktest/ofrep) against a real Vexil: starts
# "vexil serve --demo" on a throw-away data directory and free loopback
# ports, then runs sdktest/ofrep with node's built-in test runner; and
# @openfeature/ofrep-web-provider (on @openfeature/web-sdk) in Debian's
# headless chromium, driven by playwright-core.
#
#   scripts/sdk-ofrep.sh                  build bin/vexil and run
#   VEXIL_BIN=path scripts/sdk-ofrep.sh   use an already built binary
#   VEXIL_SDK_PERSONS=N                   demo persons (default 300)
#   VEXIL_CHROMIUM=path                   the browser (default: chromium on PATH)
#
# Needs npm and node >= 20 (scripts/sdk-node.sh says how to get one; it is
# fetched into the same cache when missing), and chromium (apt-get install
# chromium; .ci/run installs it): without it the browser suite fails under
# CI=true and is skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

. scripts/node-env.sh
need_node sdk-ofrep

suites=(ofrep.test.mjs web.test.mjs)
need_chromium sdk-ofrep || suites=(ofrep.test.mjs)

persons=${VEXIL_SDK_PERSONS:-300}
. scripts/sdk-demo.sh
sdk_demo_init sdk-ofrep
tmp=$sdk_tmp

if ! (cd sdktest/ofrep && npm ci --no-audit --no-fund --prefer-offline --loglevel=error >"$tmp/npm.log" 2>&1); then
	cat "$tmp/npm.log" >&2
	echo "sdk-ofrep: npm ci failed" >&2
	exit 1
fi

sdk_demo_start "$persons"
echo "sdk-ofrep: vexil demo ($persons persons) at $sdk_url after $((SECONDS - start))s"

status=0
(cd sdktest/ofrep && VEXIL_URL=$sdk_url VEXIL_PROJECT_TOKEN=$sdk_token VEXIL_DEMO_PERSONS=$persons VEXIL_CHROMIUM=$chromium \
	node --no-deprecation --test --test-concurrency=1 --test-reporter=spec "${suites[@]}") || status=$?
[ "$status" -eq 0 ] || sdk_demo_failed "$status"
echo "sdk-ofrep: the OFREP providers passed in $((SECONDS - start))s"
