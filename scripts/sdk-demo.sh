# Sourced by the SDK suites (scripts/sdk-node.sh, scripts/sdk-python.sh):
# one way to start "vexil serve --demo" for a suite and read its keys.
#
#   sdk_demo_init NAME      make the throw-away dir ($sdk_tmp), set the EXIT
#                           trap that stops the server and removes the dir
#   sdk_demo_start PERSONS  build bin/vexil unless VEXIL_BIN names one, start
#                           the demo on free loopback ports, wait until it is
#                           ready, set sdk_url, sdk_token, sdk_key
#   sdk_demo_failed STATUS  print the server's log tail and exit with STATUS

sdk_name=sdk
sdk_tmp=
sdk_pid=

sdk_demo_init() {
	sdk_name=$1
	sdk_tmp=$(mktemp -d)
	trap sdk_demo_cleanup EXIT
	trap 'exit 130' INT TERM
}

sdk_demo_cleanup() {
	if [ -n "$sdk_pid" ]; then
		kill "$sdk_pid" 2>/dev/null || true
		wait "$sdk_pid" 2>/dev/null || true
	fi
	rm -rf "$sdk_tmp"
}

sdk_demo_start() {
	local persons=$1 bin=${VEXIL_BIN:-} out=$sdk_tmp/serve.out log=$sdk_tmp/serve.log
	if [ -z "$bin" ]; then
		mkdir -p bin
		go build -o bin/vexil ./cmd/vexil
		bin=$PWD/bin/vexil
	fi
	# Port 0 everywhere (NATS: -1): the kernel picks free ports, and the
	# demo prints the HTTP address it got. The store deadline is generous:
	# the suites check answers, not latency, and a loaded CI machine may
	# take longer than the 50 ms default for a read.
	"$bin" serve --demo --demo-persons "$persons" --data-dir "$sdk_tmp/data" --store-timeout 10s \
		--http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 --nats-listen 127.0.0.1:-1 \
		--log-level warn >"$out" 2>"$log" &
	sdk_pid=$!
	for _ in $(seq 900); do
		grep -q 'demo is ready' "$out" && break
		if ! kill -0 "$sdk_pid" 2>/dev/null; then
			cat "$out" "$log" >&2
			echo "$sdk_name: vexil serve exited" >&2
			exit 1
		fi
		sleep 0.1
	done
	if ! grep -q 'demo is ready' "$out"; then
		cat "$out" "$log" >&2
		echo "$sdk_name: the demo was not ready within 90s" >&2
		exit 1
	fi
	# Everything after the ready line is printed at once; read it in full.
	sleep 0.2
	sdk_url=$(sed -n 's|.*Point a PostHog SDK at \(http://[0-9.:]*\).*|\1|p' "$out" | head -1)
	sdk_token=$(sed -n 's/.*project token.*: *\(phc_[0-9A-Za-z_]*\).*/\1/p' "$out" | head -1)
	sdk_key=$(sed -n 's/.*personal API key.*: *\(phx_[0-9A-Za-z_]*\).*/\1/p' "$out" | head -1)
	if [ -z "$sdk_url" ] || [ -z "$sdk_token" ] || [ -z "$sdk_key" ]; then
		cat "$out" >&2
		echo "$sdk_name: could not read the address, token and personal key from the demo's output" >&2
		exit 1
	fi
}

sdk_demo_failed() {
	echo "--- vexil serve log (last 50 lines)" >&2
	tail -50 "$sdk_tmp/serve.log" >&2
	echo "$sdk_name: FAILED after $((SECONDS - start))s" >&2
	exit "$1"
}
