#!/usr/bin/env bash
# Runs schemathesis (pinned, from PyPI, in a venv under the cache directory)
# against the OpenAPI document that "vexil admin" serves, on a throw-away
# data directory with a bootstrap key: every response must not be a 5xx
# and must match the schema.
#
#   scripts/schemathesis.sh              build ./cmd/vexil and run
#   VEXIL_BIN=path scripts/schemathesis.sh   use an already built binary
#   VEXIL_SCHEMATHESIS_EXAMPLES=N        test cases per operation (default 25)
#   VEXIL_SCHEMATHESIS_CHECKS=a,b      checks (default
#                                        not_a_server_error and the four *_conformance)
#   VEXIL_CACHE=dir                      where the venv lives
#                                        (default ${XDG_CACHE_HOME:-~/.cache}/vexil)
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.32.5
cache=${VEXIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vexil}
venv=$cache/schemathesis-$version
if [ ! -x "$venv/bin/schemathesis" ]; then
	echo "installing schemathesis $version into $venv"
	rm -rf "$venv"
	python3 -m venv "$venv"
	"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
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

bin=${VEXIL_BIN:-}
if [ -z "$bin" ]; then
	bin=$tmp/vexil
	go build -o "$bin" ./cmd/vexil
fi

data=$tmp/data
key=$("$bin" keys create --data-dir "$data" --scopes '*' --label schemathesis 2>/dev/null)

"$bin" admin --data-dir "$data" --http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 2>"$tmp/admin.log" &
pid=$!
base=
for _ in $(seq 300); do
	base=$(sed -n 's/.*management API serving.* http=\(http:\/\/[0-9.:]*\).*/\1/p' "$tmp/admin.log" | head -1)
	[ -n "$base" ] && break
	if ! kill -0 "$pid" 2>/dev/null; then
		cat "$tmp/admin.log" >&2
		echo "vexil admin exited" >&2
		exit 1
	fi
	sleep 0.1
done
if [ -z "$base" ]; then
	cat "$tmp/admin.log" >&2
	echo "vexil admin did not start" >&2
	exit 1
fi

# Something to find: a team (id 1) with a flag, a cohort and a feature.
api() { curl -sf -X "$1" -H "Authorization: Bearer $key" "$base$2" -d "$3" >/dev/null; }
api POST /api/projects '{"name":"schemathesis"}'
api POST /api/projects/1/feature_flags '{"key":"f","active":true,"filters":{"groups":[{"properties":[],"rollout_percentage":50}]}}'
api POST /api/projects/1/cohorts '{"name":"c","kind":"COHORT_KIND_STATIC"}'
api POST /api/projects/1/early_access_features '{"name":"beta thing","stage":"STAGE_BETA"}'

status=0
# One worker: with several, CPython 3.11's ast module (used by hypothesis
# to describe strategies) can fail with "AST constructor recursion depth
# mismatch", an error of the runner, not of the API.
# schemathesis keeps a cache (.schemathesis/) in its working directory:
# run it in the temporary one.
# schemathesis.toml allows the one 503 this server answers by design.
config=$PWD/scripts/schemathesis.toml
(cd "$tmp" && "$venv/bin/schemathesis" --config-file "$config" run "$base/api/openapi.json" \
	--header "Authorization: Bearer $key" \
	--checks "${VEXIL_SCHEMATHESIS_CHECKS:-not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance,response_headers_conformance}" \
	--max-examples "${VEXIL_SCHEMATHESIS_EXAMPLES:-25}" \
	--seed 1 --workers 1 --generation-database none \
	--no-color) || status=$?
if [ "$status" -ne 0 ]; then
	echo "--- vexil admin log (last 50 lines)" >&2
	tail -50 "$tmp/admin.log" >&2
fi
exit "$status"
