# Sourced by the suites that run Node or Chromium (scripts/sdk-node.sh,
# sdk-mcp.sh, sdk-ofrep.sh, sdk-browser.sh, ui-test.sh, status-test.sh):
# one way to find Node and the browser on a fresh machine.
#
#   need_node NAME      make node >= 20 and npm available: the system's, or
#                       Node's official Linux build from the npm registry
#                       in ${VEXIL_CACHE:-~/.cache/vexil} (Debian 12's
#                       nodejs is 18; posthog-node 5.70, playwright-core and
#                       node:test need 20); exits with a message otherwise
#   need_chromium NAME  set $chromium to $VEXIL_CHROMIUM or chromium on PATH
#                       (Debian's package: .ci/run installs it); without
#                       one, exit 1 under CI=true, else print SKIPPED and
#                       return 1 so that the caller skips what needs it

node_version=20.20.2

node_ok() { command -v node >/dev/null && node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; }

need_node() {
	local name=$1 arch dir cache
	command -v npm >/dev/null || { echo "$name: npm is required (apt-get install nodejs npm)" >&2; exit 1; }
	node_ok && return 0
	case $(uname -m) in
	x86_64) arch=x64 ;;
	aarch64 | arm64) arch=arm64 ;;
	*) echo "$name: node >= 20 is required" >&2; exit 1 ;;
	esac
	cache=${VEXIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vexil}
	dir=$cache/node-$node_version
	if [ ! -x "$dir/node_modules/node-linux-$arch/bin/node" ]; then
		echo "$name: node >= 20 not found; installing node-linux-$arch@$node_version from npm into $dir"
		rm -rf "$dir"
		npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "node-linux-$arch@$node_version"
	fi
	PATH=$dir/node_modules/node-linux-$arch/bin:$PATH
	export PATH
	node_ok || { echo "$name: node >= 20 is required" >&2; exit 1; }
}

need_chromium() {
	local name=$1
	chromium=${VEXIL_CHROMIUM:-$(command -v chromium || true)}
	[ -n "$chromium" ] && return 0
	if [ "${CI:-}" = true ]; then
		echo "$name: chromium is required (apt-get install chromium)" >&2
		exit 1
	fi
	echo "$name: SKIPPED: chromium not found (apt-get install chromium); CI=true makes this a failure" >&2
	return 1
}
