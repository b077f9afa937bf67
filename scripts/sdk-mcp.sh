#!/usr/bin/env bash
# Runs the official MCP TypeScript clients, pinned in sdktest/mcp, against a
# real Vexil in both protocol eras: @modelcontextprotocol/sdk 1.x in the 2025
# revisions (mcp.test.mjs), @modelcontextprotocol/client v2 in 2026-07-28
# (mcp2026.test.mjs; each asserts the version it negotiated). It starts
# "vexil serve --demo" on a throw-away data directory and free loopback
# ports, runs the HTTP tests
# (/mcp: an agent's lifecycle, narrowing, a subscribed client told of a
# REST change; "vexil mcp --url" relaying a stdio session to the node),
# stops the server, then runs the stdio test ("vexil mcp" on the stopped
# data directory, started by the client as its subprocess).
#
#   scripts/sdk-mcp.sh                  build bin/vexil and run
#   VEXIL_BIN=path scripts/sdk-mcp.sh   use an already built binary
#
# Needs node >= 20 and npm (scripts/sdk-node.sh fetches a Node when missing;
# run after it, or put one on PATH). npm ci uses npm's own cache (~/.npm).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

. scripts/node-env.sh
need_node sdk-mcp

. scripts/sdk-demo.sh
sdk_demo_init sdk-mcp
tmp=$sdk_tmp

if ! (cd sdktest/mcp && npm ci --no-audit --no-fund --prefer-offline --loglevel=error >"$tmp/npm.log" 2>&1); then
	cat "$tmp/npm.log" >&2
	echo "sdk-mcp: npm ci failed" >&2
	exit 1
fi

sdk_demo_start 50
bin=${VEXIL_BIN:-$PWD/bin/vexil}
echo "sdk-mcp: vexil demo at $sdk_url after $((SECONDS - start))s"
team=$(VEXIL_URL=$sdk_url VEXIL_PERSONAL_KEY=$sdk_key node -e '
	fetch(process.env.VEXIL_URL + "/api/projects/", { headers: { Authorization: "Bearer " + process.env.VEXIL_PERSONAL_KEY } })
		.then((r) => r.json()).then((b) => console.log(b.teams[0].id))')

status=0
(cd sdktest/mcp && VEXIL_URL=$sdk_url VEXIL_PERSONAL_KEY=$sdk_key VEXIL_MCP_PHASE=http VEXIL_BIN=$bin \
	node --no-deprecation --test --test-reporter=spec) || status=$?
[ "$status" -eq 0 ] || sdk_demo_failed "$status"

# stdio: vexil mcp opens the data directory, so the server stops first;
# and one file at a time, since only one process can hold it.
kill "$sdk_pid"
wait "$sdk_pid" 2>/dev/null || true
sdk_pid=
(cd sdktest/mcp && VEXIL_PERSONAL_KEY=$sdk_key VEXIL_MCP_PHASE=stdio VEXIL_BIN=$bin VEXIL_DATA_DIR=$tmp/data VEXIL_TEAM=$team \
	node --no-deprecation --test --test-concurrency=1 --test-reporter=spec) || status=$?
[ "$status" -eq 0 ] || { echo "sdk-mcp: the stdio phase FAILED after $((SECONDS - start))s" >&2; exit "$status"; }
echo "sdk-mcp: @modelcontextprotocol/sdk (2025-11-25) and @modelcontextprotocol/client (2026-07-28) passed (HTTP and stdio) in $((SECONDS - start))s"
