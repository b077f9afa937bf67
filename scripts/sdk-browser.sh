#!/usr/bin/env bash
# Runs posthog-js (pinned in sdktest/browser, with playwright-core) in
# headless Chromium against a real Vexil: starts "vexil serve --demo" on a
# throw-away data directory and free loopback ports, then runs
# sdktest/browser with node's test runner. The page is served by the test
# from a second local origin and loads posthog-js from node_modules.
#
#   scripts/sdk-browser.sh                  build bin/vexil and run
#   VEXIL_BIN=path scripts/sdk-browser.sh   use an already built binary
#   VEXIL_CHROMIUM=path                     the browser (default: chromium on PATH,
#                                           Debian's chromium: .ci/run installs it)
#
# Needs npm and node >= 20 (fetched into the cache when missing: scripts/node-env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

. scripts/node-env.sh
need_chromium sdk-browser || exit 0
need_node sdk-browser
echo "sdk-browser: node $(node --version), $("$chromium" --version 2>/dev/null | head -1)"

. scripts/sdk-demo.sh
sdk_demo_init sdk-browser
tmp=$sdk_tmp

if ! (cd sdktest/browser && npm ci --no-audit --no-fund --prefer-offline --loglevel=error >"$tmp/npm.log" 2>&1); then
	cat "$tmp/npm.log" >&2
	echo "sdk-browser: npm ci failed" >&2
	exit 1
fi

sdk_demo_start 20
echo "sdk-browser: vexil demo at $sdk_url after $((SECONDS - start))s"

status=0
(cd sdktest/browser && VEXIL_URL=$sdk_url VEXIL_PERSONAL_KEY=$sdk_key VEXIL_CHROMIUM=$chromium \
	node --no-deprecation --test --test-reporter=spec) || status=$?
[ "$status" -eq 0 ] || sdk_demo_failed "$status"
echo "sdk-browser: posthog-js passed in $((SECONDS - start))s"
