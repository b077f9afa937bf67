#!/usr/bin/env bash
# Protobuf code generation with buf and the plugins pinned in go.mod's tool
# block (no network, no remote registry).
#
#   scripts/proto.sh gen    lint the protos and regenerate the Go code beside them
#   scripts/proto.sh check  regenerate into a temporary copy and fail if the
#                           committed generated code differs from it
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# gen <dir holding buf.yaml and buf.gen.yaml>: buf runs from the module root so
# that the local plugins ("go tool protoc-gen-go") resolve through go.mod.
gen() {
	go tool buf lint "$1"
	go tool buf generate "$1" --template "$1/buf.gen.yaml" -o "$1"
}

case "${1:-}" in
gen)
	gen "$root/proto"
	echo "generated code under proto/"
	;;
check)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	cp -R proto "$tmp/proto"
	# Remove every generated file so stale ones (of a deleted .proto) show up too.
	find "$tmp/proto" \( -name '*.pb.go' -o -name '*.pb.gw.go' -o -name '*.swagger.json' \) -delete
	gen "$tmp/proto"
	if ! diff -r proto "$tmp/proto"; then
		echo "generated protobuf code is stale: run scripts/proto.sh gen and commit" >&2
		exit 1
	fi
	echo "generated protobuf code is up to date"
	;;
*)
	echo "usage: $0 gen|check" >&2
	exit 2
	;;
esac
