#!/usr/bin/env bash
# Runs a throw-away three-node Cassandra 5.0 cluster on 127.0.0.1, 127.0.0.2
# and 127.0.0.3 (Linux routes all of 127/8 to the loopback interface, no
# set-up needed), for the tests that need replicas on several nodes (the
# hedged reads of store/scyllastore). Each node is one scripts/cassandra.sh
# with its own address, run dir and token; the ports differ from the
# single node's, so both can run at once.
#
#   scripts/cassandra-cluster.sh start    start the nodes one after the other, wait until each answers CQL
#   scripts/cassandra-cluster.sh stop     stop every node, remove the run dirs
#   scripts/cassandra-cluster.sh status   exit 0 iff every node runs and answers
#   scripts/cassandra-cluster.sh addr     print the nodes' host:port, comma-separated
#                                         (for VEXIL_TEST_CASSANDRA_CLUSTER)
#
# Environment (defaults in brackets):
#   VEXIL_CLUSTER_RUN             parent of the nodes' run dirs [/tmp/vexil-cassandra-cluster]
#   VEXIL_CLUSTER_CQL_PORT        CQL port of every node [19143]
#   VEXIL_CLUSTER_STORAGE_PORT    internode port of every node [17100]
#   VEXIL_CLUSTER_HEAP            -Xmx of each node [512m]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
run=${VEXIL_CLUSTER_RUN:-/tmp/vexil-cassandra-cluster}
cql_port=${VEXIL_CLUSTER_CQL_PORT:-19143}
storage_port=${VEXIL_CLUSTER_STORAGE_PORT:-17100}
heap=${VEXIL_CLUSTER_HEAP:-512m}

addresses=(127.0.0.1 127.0.0.2 127.0.0.3)
# Evenly spaced Murmur3 tokens: each node is the first replica of a third
# of the ring.
tokens=(-9223372036854775808 -3074457345618258603 3074457345618258602)

# node I ARGS...: runs scripts/cassandra.sh for node I (0-based).
node() {
	local i=$1
	shift
	VEXIL_CASSANDRA_RUN="$run/node$((i + 1))" \
		VEXIL_CASSANDRA_ADDRESS="${addresses[$i]}" \
		VEXIL_CASSANDRA_SEEDS="${addresses[0]}:$storage_port" \
		VEXIL_CASSANDRA_TOKEN="${tokens[$i]}" \
		VEXIL_CASSANDRA_CQL_PORT="$cql_port" \
		VEXIL_CASSANDRA_STORAGE_PORT="$storage_port" \
		VEXIL_CASSANDRA_HEAP="$heap" \
		"$here/cassandra.sh" "$@"
}

do_start() {
	mkdir -p "$run"
	local t0=$SECONDS i
	# The seed first; the others join one at a time (concurrent joins are
	# refused by Cassandra's range-movement check).
	for i in 0 1 2; do
		if ! node "$i" start; then
			do_stop >/dev/null 2>&1 || true
			exit 1
		fi
	done
	echo "Cassandra cluster ready in $((SECONDS - t0))s at $(do_addr)"
}

do_stop() {
	local i
	for i in 2 1 0; do node "$i" stop || true; done
	rm -rf "$run"
}

do_status() {
	local i
	for i in 0 1 2; do node "$i" status >/dev/null || { echo "Cassandra cluster not running"; return 1; }; done
	echo "Cassandra cluster running at $(do_addr)"
}

do_addr() {
	local out="" a
	for a in "${addresses[@]}"; do out+="${out:+,}$a:$cql_port"; done
	echo "$out"
}

case "${1:-}" in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
addr) do_addr ;;
*)
	echo "usage: $0 start|stop|status|addr" >&2
	exit 2
	;;
esac
