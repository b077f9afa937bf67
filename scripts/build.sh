#!/usr/bin/env bash
# Builds bin/vexil.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/vexil ./cmd/vexil
echo "built bin/vexil"
