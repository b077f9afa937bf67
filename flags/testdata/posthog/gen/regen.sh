#!/usr/bin/env bash
# Regenerate the PostHog vectors (hash.json, operators.json, flags.json) by
# running PostHog's published SDKs over the inputs in inputs/.
#
#   flags/testdata/posthog/gen/regen.sh [OUT_DIR]
#
# OUT_DIR defaults to flags/testdata/posthog, so a run followed by
# `git diff --exit-code flags/testdata/posthog` shows whether the committed
# vectors are still what the SDKs say. Needs python3 (3.10 or newer), node
# (20 or newer) and npm, and reaches PyPI and npm for the pinned packages;
# everything is installed in a throw-away directory that is removed after.
# The generators themselves make no network calls. Not part of `make test`.
set -euo pipefail

POSTHOG_PY=7.91.1     # posthog on PyPI: the expectations
POSTHOG_NODE=5.70.0   # posthog-node on npm: the cross-check
POSTHOG_CORE=1.67.3   # @posthog/core, pinned: posthog-node asks for ^1.67.1

gen=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(dirname "$gen")}
mkdir -p "$out"
out=$(cd "$out" && pwd)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "installing posthog==$POSTHOG_PY in $tmp/venv" >&2
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check "posthog==$POSTHOG_PY"

echo "installing posthog-node@$POSTHOG_NODE and @posthog/core@$POSTHOG_CORE in $tmp/node" >&2
mkdir "$tmp/node"
(cd "$tmp/node" && npm init -y >/dev/null &&
	npm install --silent --no-audit --no-fund --save-exact \
		"posthog-node@$POSTHOG_NODE" "@posthog/core@$POSTHOG_CORE" >/dev/null)
# node resolves packages from the script's directory.
cp "$gen/gen_node.js" "$tmp/node/"

echo "running posthog-python" >&2
"$tmp/venv/bin/python" "$gen/gen_py.py" "$gen/inputs" "$tmp/work" 2>"$tmp/py.log" ||
	{ cat "$tmp/py.log" >&2; exit 1; }
echo "running posthog-node" >&2
(cd "$tmp/node" && node gen_node.js "$gen/inputs" "$tmp/work") 2>"$tmp/node.log" ||
	{ cat "$tmp/node.log" >&2; exit 1; }
echo "merging into $out" >&2
python3 "$gen/merge.py" "$gen/inputs" "$tmp/work" "$out"
