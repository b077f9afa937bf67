#!/usr/bin/env bash
# Runs the web UI's browser tests: starts "vexil serve --demo" on a
# throw-away data directory and free loopback ports, publishes a few
# companies with an "employees" property through the ingest stream, then
# runs sdktest/ui with node's test runner: playwright-core drives Debian's
# headless chromium through every scenario of issue 16, and posthog-node
# checks that /flags answers as the UI said. Screenshots of the main pages
# (1280 and 390 px wide) go to sdktest/ui/screenshots/ (not committed).
#
#   scripts/ui-test.sh                  build bin/vexil and run
#   VEXIL_BIN=path scripts/ui-test.sh   use an already built binary
#   VEXIL_CHROMIUM=path                 the browser (default: chromium on PATH)
#
# Needs npm, node >= 20 (fetched into the cache when missing) and chromium (apt-get install chromium; .ci/run
# installs it). Without chromium it fails under CI=true and skips otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

. scripts/node-env.sh
need_chromium ui-test || exit 0
need_node ui-test

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

if ! (cd sdktest/ui && npm ci --no-audit --no-fund --prefer-offline --loglevel=error >"$tmp/npm.log" 2>&1); then
	cat "$tmp/npm.log" >&2
	echo "ui-test: npm ci failed" >&2
	exit 1
fi

bin=${VEXIL_BIN:-}
if [ -z "$bin" ]; then
	mkdir -p bin
	go build -o bin/vexil ./cmd/vexil
	bin=$PWD/bin/vexil
fi
persons=300
"$bin" serve --demo --demo-persons "$persons" --data-dir "$tmp/data" --store-timeout 10s \
	--http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 --nats-listen 127.0.0.1:-1 \
	--log-level info >"$tmp/serve.out" 2>"$tmp/serve.log" &
pid=$!
for _ in $(seq 900); do
	grep -q 'login/link' "$tmp/serve.out" && break
	kill -0 "$pid" 2>/dev/null || { cat "$tmp/serve.out" "$tmp/serve.log" >&2; echo "ui-test: vexil serve exited" >&2; exit 1; }
	sleep 0.1
done
grep -q 'login/link' "$tmp/serve.out" || { cat "$tmp/serve.out" >&2; echo "ui-test: the demo was not ready within 90s" >&2; exit 1; }
url=$(sed -n 's|.*Point a PostHog SDK at \(http://[0-9.:]*\).*|\1|p' "$tmp/serve.out" | head -1)
token=$(sed -n 's/.*project token.*: *\(phc_[0-9A-Za-z_]*\).*/\1/p' "$tmp/serve.out" | head -1)
key=$(sed -n 's/.*personal API key.*: *\(phx_[0-9A-Za-z_]*\).*/\1/p' "$tmp/serve.out" | head -1)
link=$(grep -o 'http://[0-9.:]*/ui/login/link?t=[A-Za-z0-9_%-]*' "$tmp/serve.out" | head -1)
nats=$(grep -o 'nats=nats://[0-9.:]*' "$tmp/serve.log" | head -1 | cut -d= -f2)
if [ -z "$url" ] || [ -z "$token" ] || [ -z "$key" ] || [ -z "$link" ] || [ -z "$nats" ]; then
	cat "$tmp/serve.out" "$tmp/serve.log" >&2
	echo "ui-test: could not read the address, keys, login link and NATS URL from the demo's output" >&2
	exit 1
fi

# Companies company-0..company-39 get employees = 10*k (0..390): about
# 30 of them are over 100.
for k in $(seq 0 39); do
	printf '{"type":"group_update","team":1,"group_type_index":0,"group_key":"company-%d","$set":{"employees":%d},"version":100,"timestamp":"2026-12-01T00:00:00Z"}\n' "$k" $((k * 10))
done >"$tmp/companies.jsonl"
"$bin" publish --nats-url "$nats" --file "$tmp/companies.jsonl" >/dev/null

echo "ui-test: vexil demo at $url after $((SECONDS - start))s; chromium $("$chromium" --version 2>/dev/null | head -1)"
status=0
(cd sdktest/ui && VEXIL_URL=$url VEXIL_PROJECT_TOKEN=$token VEXIL_PERSONAL_KEY=$key VEXIL_LOGIN_LINK=$link \
	VEXIL_CHROMIUM=$chromium VEXIL_DEMO_PERSONS=$persons node --no-deprecation --test --test-concurrency=1 --test-reporter=spec) || status=$?
if [ "$status" -ne 0 ]; then
	echo "--- vexil serve log (last 50 lines)" >&2
	tail -50 "$tmp/serve.log" >&2
	echo "ui-test: FAILED after $((SECONDS - start))s" >&2
	exit "$status"
fi
echo "ui-test: passed in $((SECONDS - start))s; screenshots in sdktest/ui/screenshots/"
