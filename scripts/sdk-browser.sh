#!/usr/bin/env bash
# Runs posthog-js (pinned in sdktest/browser, with playwright-core) in
# headless Chromium against a real Vexil: starts "vexil serve --demo" on a
# throw-away data directory and free loopback ports, then runs
# sdktest/browser with node's test runner. The page is served by the test
# from a second local origin and loads posthog-js from node_modules.
#
#   scripts/sdk-browser.sh                  build bin/vexil and run
#   VEXIL_BIN=path scripts/sdk-browser.sh   use an already built binary
#   VEXIL_CHROMIUM=path                     the browser (default /usr/bin/chromium,
#                                           Debian's chromium: .ci/run installs it)
#
# Needs npm and node >= 20 (scripts/sdk-node.sh fetches one when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

chromium=${VEXIL_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "sdk-browser: $chromium not found (apt-get install chromium)" >&2; exit 1; }
command -v npm >/dev/null || { echo "sdk-browser: npm is required (apt-get install nodejs npm)" >&2; exit 1; }
node_ok() { command -v node >/dev/null && node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; }
if ! node_ok; then
	# The same cached Node as scripts/sdk-node.sh.
	cache=${VEXIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vexil}
	for d in "$cache"/node-*/node_modules/node-linux-*/bin; do [ -x "$d/node" ] && PATH=$d:$PATH; done
	export PATH
	node_ok || { echo "sdk-browser: node >= 20 is required (run scripts/sdk-node.sh once, or install it)" >&2; exit 1; }
fi
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
