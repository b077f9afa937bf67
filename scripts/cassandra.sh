#!/usr/bin/env bash
# Runs a throw-away single-node Cassandra 5.0 (Maven Central's cassandra-all,
# version pinned in scripts/cassandra/pom.xml) for the ScyllaDB backend tests.
# Recipe and pitfalls: docs/cassandra.md.
#
#   scripts/cassandra.sh start    start it (no-op when already running), wait until CQL answers
#   scripts/cassandra.sh stop     SIGTERM, then SIGKILL after a grace period; remove the run dir
#   scripts/cassandra.sh status   exit 0 iff it runs and the CQL port answers
#   scripts/cassandra.sh addr     print <address>:<cql port> (for VEXIL_TEST_CASSANDRA)
#
# Environment (defaults in brackets):
#   VEXIL_CASSANDRA_RUN           run dir, wiped on start and stop [/tmp/vexil-cassandra]
#   VEXIL_CASSANDRA_LIB           jar cache, reused when present
#                                 [${XDG_CACHE_HOME:-$HOME/.cache}/vexil/cassandra/lib]
#   VEXIL_CASSANDRA_CQL_PORT      native transport port [19043; 19042 is Scylla's shard-aware port]
#   VEXIL_CASSANDRA_STORAGE_PORT  internode port [17000]
#   VEXIL_CASSANDRA_HEAP          -Xmx [1g]; -Xms stays 256m (as root, JNA mlockall pins -Xms)
#   VEXIL_CASSANDRA_TIMEOUT       seconds to wait for the CQL port on start [120]
#   VEXIL_CASSANDRA_ADDRESS       listen and CQL address, any 127.x.y.z [127.0.0.1]
#   VEXIL_CASSANDRA_SEEDS         seed list [<address>:<storage port>]
#   VEXIL_CASSANDRA_TOKEN         the node's initial_token [0]
# The last three let scripts/cassandra-cluster.sh run several nodes of one
# cluster on loopback addresses.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tmpl="$here/cassandra"
run=${VEXIL_CASSANDRA_RUN:-/tmp/vexil-cassandra}
lib=${VEXIL_CASSANDRA_LIB:-${XDG_CACHE_HOME:-$HOME/.cache}/vexil/cassandra/lib}
cql_port=${VEXIL_CASSANDRA_CQL_PORT:-19043}
storage_port=${VEXIL_CASSANDRA_STORAGE_PORT:-17000}
heap=${VEXIL_CASSANDRA_HEAP:-1g}
timeout_s=${VEXIL_CASSANDRA_TIMEOUT:-120}
address=${VEXIL_CASSANDRA_ADDRESS:-127.0.0.1}
seeds=${VEXIL_CASSANDRA_SEEDS:-$address:$storage_port}
token=${VEXIL_CASSANDRA_TOKEN:-0}
pidfile="$run/cassandra.pid"

# A running node's own port wins over the environment, so addr/status agree
# with what start launched.
if [ -f "$run/cql_port" ]; then cql_port=$(cat "$run/cql_port"); fi

version=$(sed -n 's:.*<artifactId>cassandra-all</artifactId>[[:space:]]*<version>\([^<]*\)</version>.*:\1:p' "$tmpl/pom.xml")
if [ -z "$version" ]; then
	version=$(grep -A1 '<artifactId>cassandra-all</artifactId>' "$tmpl/pom.xml" | sed -n 's:.*<version>\([^<]*\)</version>.*:\1:p')
fi

log() { echo "cassandra.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# port_open PORT: true when something accepts TCP connections on $address:PORT.
port_open() {
	timeout 2 bash -c "exec 3<>/dev/tcp/$address/$1" 2>/dev/null
}

# our_pid: prints the recorded PID when that process is alive and is our
# Cassandra (its command line names this run dir); fails otherwise. Guards
# against signalling an unrelated process that reused the PID.
our_pid() {
	[ -f "$pidfile" ] || return 1
	local pid
	pid=$(cat "$pidfile" 2>/dev/null) || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [ -r "/proc/$pid/cmdline" ]; then
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-Dcassandra.storagedir=$run/data" || return 1
	fi
	echo "$pid"
}

log_tail() {
	local f
	for f in "$run/logs/stdout.log" "$run/logs/system.log"; do
		if [ -s "$f" ]; then
			echo "---- last lines of $f" >&2
			tail -n 40 "$f" >&2
		fi
	done
}

ensure_jars() {
	[ -n "$version" ] || die "cannot read the cassandra-all version from $tmpl/pom.xml"
	if [ -f "$lib/cassandra-all-$version.jar" ] && [ -f "$lib/.complete-$version" ]; then
		return
	fi
	command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install maven)"
	log "copying cassandra-all $version runtime jars into $lib"
	local work
	work=$(mktemp -d)
	cp "$tmpl/pom.xml" "$work/pom.xml"
	if ! mvn -B -q -f "$work/pom.xml" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$work/lib" >&2; then
		rm -rf "$work"
		die "mvn could not fetch cassandra-all $version"
	fi
	touch "$work/lib/.complete-$version"
	mkdir -p "$(dirname "$lib")"
	rm -rf "$lib"
	mv "$work/lib" "$lib"
	rm -rf "$work"
}

render_conf() {
	mkdir -p "$run/conf" "$run/data" "$run/logs" "$run/tmp"
	sed -e "s/@STORAGE_PORT@/$storage_port/g" -e "s/@CQL_PORT@/$cql_port/g" \
		-e "s/@ADDRESS@/$address/g" -e "s/@SEEDS@/$seeds/g" -e "s/@TOKEN@/$token/g" \
		"$tmpl/cassandra.yaml.tmpl" >"$run/conf/cassandra.yaml"
	cp "$tmpl/logback.xml" "$run/conf/logback.xml"
	echo "$cql_port" >"$run/cql_port"
}

launch() {
	command -v java >/dev/null || die "java not found: install a JDK 17 (apt-get install openjdk-17-jre-headless)"
	local jamm
	jamm=$(ls "$lib"/jamm-*.jar 2>/dev/null | head -n 1 || true)
	local args=(
		-Xms256m "-Xmx$heap" -Xss256k -ea -da:net.openhft...
		-XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:+UseThreadPriorities
		-XX:+PerfDisableSharedMem -XX:+HeapDumpOnOutOfMemoryError "-XX:HeapDumpPath=$run" -XX:+ExitOnOutOfMemoryError
		-Djava.net.preferIPv4Stack=true -Djdk.attach.allowAttachSelf=true -Dio.netty.tryReflectionSetAccessible=true
		-Dio.netty.allocator.useCacheForAllThreads=true -Dio.netty.allocator.maxOrder=11 -Dchronicle.analytics.disable=true
		--add-exports java.base/jdk.internal.misc=ALL-UNNAMED --add-exports java.base/java.lang.ref=ALL-UNNAMED
		--add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
		--add-exports java.management/com.sun.jmx.remote.security=ALL-UNNAMED
		--add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
		--add-exports java.sql/java.sql=ALL-UNNAMED --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
		--add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
		--add-opens java.base/java.lang.module=ALL-UNNAMED --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
		--add-opens java.base/jdk.internal.ref=ALL-UNNAMED --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
		--add-opens java.base/jdk.internal.math=ALL-UNNAMED --add-opens java.base/jdk.internal.module=ALL-UNNAMED
		--add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
		--add-opens java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/java.io=ALL-UNNAMED
		--add-opens java.base/java.lang.reflect=ALL-UNNAMED --add-opens java.base/java.lang=ALL-UNNAMED
		--add-opens java.base/java.util=ALL-UNNAMED --add-opens java.base/java.nio=ALL-UNNAMED
		--add-opens java.base/java.nio.charset=ALL-UNNAMED --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
	)
	if [ -n "$jamm" ]; then args+=("-javaagent:$jamm"); fi
	args+=(
		"-Djava.io.tmpdir=$run/tmp" "-Djna.tmpdir=$run/tmp"
		"-Dcassandra.config=file://$run/conf/cassandra.yaml" "-Dcassandra.storagedir=$run/data"
		"-Dcassandra.logdir=$run/logs" "-Dlogback.configurationFile=$run/conf/logback.xml" -Dcassandra-foreground=yes
		-Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.load_ring_state=false -Dcassandra.superuser_setup_delay_ms=0
		-Dcassandra.memtable_row_overhead_computation_step=100 -Dcassandra.test.flush_local_schema_changes=false
		-Dcassandra.skip_sync=true -Dcassandra.libjemalloc=-
		-Dcassandra.shutdown_announce_in_ms=0 -Dcassandra.test.messagingService.nonGracefulShutdown=true
		-cp "$run/conf:$lib/*" org.apache.cassandra.service.CassandraDaemon
	)
	# A new session, so the node outlives the caller's terminal and job
	# control; the inner shell records its own PID and then becomes java.
	MALLOC_ARENA_MAX=4 setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" java "${args[@]}" \
		</dev/null >"$run/logs/stdout.log" 2>&1 9>&- &
	local i
	for i in $(seq 1 50); do
		[ -s "$pidfile" ] && return
		sleep 0.1
	done
	die "no PID file after 5 s"
}

wait_ready() {
	local pid=$1 deadline=$((SECONDS + timeout_s))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "Cassandra (PID $pid) exited during startup"
			log_tail
			exit 1
		fi
		if port_open "$cql_port"; then
			# The port could belong to someone else only if the pre-start check
			# raced; the PID must still be ours and alive.
			kill -0 "$pid" 2>/dev/null || { log_tail; die "PID $pid died"; }
			return
		fi
		sleep 0.1
	done
	log "CQL port $cql_port did not open within ${timeout_s}s"
	log_tail
	do_stop >/dev/null 2>&1 || true
	exit 1
}

do_start() {
	local pid
	if pid=$(our_pid); then
		if port_open "$cql_port"; then
			echo "Cassandra already running (PID $pid) at $address:$cql_port"
			return
		fi
		log "Cassandra PID $pid is starting; waiting for port $cql_port"
		wait_ready "$pid"
		echo "Cassandra ready (PID $pid) at $address:$cql_port"
		return
	fi
	# Not running: forget any port a dead run recorded.
	cql_port=${VEXIL_CASSANDRA_CQL_PORT:-19043}
	local p
	for p in "$cql_port" "$storage_port"; do
		if port_open "$p"; then
			die "port $p on $address is already in use (a leftover node?); stop it or set VEXIL_CASSANDRA_CQL_PORT/VEXIL_CASSANDRA_STORAGE_PORT"
		fi
	done
	ensure_jars
	rm -rf "$run"
	render_conf
	# JNA unpacks a native library into the run dir's tmp and maps it
	# executable: on a noexec mount the node exits at once.
	if command -v findmnt >/dev/null && findmnt -no OPTIONS --target "$run" 2>/dev/null | tr ',' '\n' | grep -qx noexec; then
		die "$run is on a noexec mount (JNA cannot load its native library there); set VEXIL_CASSANDRA_RUN to a directory on an exec mount"
	fi
	local t0=$SECONDS
	launch
	pid=$(cat "$pidfile")
	wait_ready "$pid"
	echo "Cassandra $version ready in $((SECONDS - t0))s (PID $pid) at $address:$cql_port, run dir $run"
}

do_stop() {
	local pid
	if pid=$(our_pid); then
		kill -TERM "$pid" 2>/dev/null || true
		local i
		for i in $(seq 1 150); do # 15 s grace
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "PID $pid ignored SIGTERM for 15s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			for i in $(seq 1 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
		fi
		echo "Cassandra stopped (PID $pid)"
	else
		echo "Cassandra not running"
	fi
	rm -rf "$run"
}

do_status() {
	local pid
	if pid=$(our_pid) && port_open "$cql_port"; then
		echo "Cassandra running (PID $pid) at $address:$cql_port"
		return 0
	fi
	echo "Cassandra not running"
	return 1
}

# start and stop of one run dir are serialized (two test runs starting at
# once would otherwise race on the ports and the run dir). The lock lives
# beside the run dir, which stop removes; the node does not inherit it.
lock() {
	exec 9>"$run.lock"
	if command -v flock >/dev/null; then flock 9; fi
}

case "${1:-}" in
start) lock && do_start ;;
stop) lock && do_stop ;;
status) do_status ;;
addr) echo "$address:$cql_port" ;;
*)
	echo "usage: $0 start|stop|status|addr" >&2
	exit 2
	;;
esac
