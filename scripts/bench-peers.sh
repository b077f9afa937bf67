#!/usr/bin/env bash
# Side by side in one run (issue 17): Unleash Edge and Vexil with the same
# 50 flags (half boolean at 50% on the user id, half multivariate 34/33/33
# gated on country == US), and a trivial Go handler answering Vexil's
# bytes, under the same generator:
#
#   Edge /api/frontend/all          the context in the request, no lookup
#   Vexil, one hot person           /flags?v=2, distinct_id user-42
#   Vexil, a random person          /flags?v=2, a random person of PERSONS each request
#   Vexil, properties in request    /flags?v=2, user-0..999 with person_properties.country
#   trivial Go handler              the same number of bytes as Vexil's answer
#
# Every server runs on core 0 (taskset -c 0), the generator on core 1.
# Closed loop: wrk -t1 -c2, WARMUP then DURATION, ROUNDS interleaved
# rounds (each round visits every target once), the median reported.
# Open loop: vegeta at RATE req/s for OPEN_DURATION per target and round,
# p50/p99 of the latency from the scheduled send, the median of the rounds.
# The table goes to stdout and to bench/peers-<date>.txt (OUT=file: there instead).
# Nothing is measured before the import's background work has finished:
# the script waits until precompute's backlog is empty and the server is
# under IDLE_CPU (default 0.05) of a core for 6 s, prints how long that
# took, and waits SETTLE (default 5) seconds more.
#
#   VEXIL_PEER_EDGE=/work/peers/edge/target/release/unleash-edge scripts/bench-peers.sh
#
# SERVE_ARGS adds settings to vexil serve (e.g. SERVE_ARGS="--store-block-kb 1").
# Without VEXIL_PEER_EDGE the script says how to build Edge and measures
# Vexil and the trivial handler only. Numbers mean something only on a
# quiet machine: run it with nothing else on either core.
set -euo pipefail
cd "$(dirname "$0")/.."
PERSONS=${PERSONS:-1000000}
FLAGS=${FLAGS:-50}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-1000}
OPEN_DURATION=${OPEN_DURATION:-15s}
SETTLE=${SETTLE:-5}
PORT=${PORT:-18100}
EDGE=${VEXIL_PEER_EDGE:-}
out=${OUT:-bench/peers-$(date -u +%Y%m%d-%H%M).txt}

command -v wrk >/dev/null || { echo "bench-peers: needs wrk (apt-get install wrk)" >&2; exit 1; }
if [ -z "$EDGE" ]; then
	cat >&2 <<'EOF'
bench-peers: VEXIL_PEER_EDGE is not set: measuring Vexil and the trivial handler only.
To add Unleash Edge, build it from source outside this repository and point
VEXIL_PEER_EDGE at the binary:
  git clone https://github.com/Unleash/unleash-edge /work/peers/edge
  cd /work/peers/edge && git checkout unleash-edge-v20.2.4   # builds on stable Rust
  RUSTUP_TOOLCHAIN=stable cargo build --release -p unleash-edge
  export VEXIL_PEER_EDGE=/work/peers/edge/target/release/unleash-edge
EOF
elif [ ! -x "$EDGE" ]; then
	echo "bench-peers: VEXIL_PEER_EDGE=$EDGE is not an executable" >&2
	exit 1
fi
pin0="" pin1=""
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0="taskset -c 0"; pin1="taskset -c 1"; fi

mkdir -p bench bin
go build -o bin/vexil ./cmd/vexil
data=$(mktemp -d)
pids=""
cleanup() { [ -n "$pids" ] && kill $pids 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT

# --- Vexil: PERSONS persons and the FLAGS peers' flags, seeded through NATS.
echo "seeding Vexil with $PERSONS persons through the ingest stream..." >&2
$pin0 bin/vexil serve --data-dir "$data/vexil" --http-addr 127.0.0.1:$PORT --grpc-addr 127.0.0.1:$((PORT + 1)) \
	--nats-listen 127.0.0.1:$((PORT + 2)) --demo --demo-persons "$PERSONS" --demo-flags "$FLAGS" --log-level warn ${SERVE_ARGS:-} \
	>"$data/serve.out" 2>"$data/serve.err" &
vexil=$!
pids="$vexil"
until grep -q "demo is ready" "$data/serve.out" 2>/dev/null; do
	kill -0 "$vexil" 2>/dev/null || { cat "$data/serve.err" >&2; exit 1; }
	sleep 1
done
token=$(grep -o 'phc_[0-9a-f]*' "$data/serve.out" | head -1)
personal=$(grep -o 'phx_[0-9a-f]*' "$data/serve.out" | head -1)
team=$(sed -n 's/.*team \([0-9]*\) with.*/\1/p' "$data/serve.out" | head -1)
# The demo's own 4 flags go: both servers answer the same FLAGS flags.
python3 - "http://127.0.0.1:$PORT" "$team" "$personal" <<'PY'
import json, sys, time, urllib.error, urllib.request
base, team, key = sys.argv[1:]
def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    for attempt in range(30):  # 503 while the import still loads the server
        try:
            return json.load(urllib.request.urlopen(req))
        except urllib.error.HTTPError as e:
            if e.code != 503 or attempt == 29:
                sys.exit(f"{method} {path}: {e.code} {e.read()[:300]!r}")
            time.sleep(1)
page = call("GET", f"/api/projects/{team}/feature_flags/?limit=1000")
for f in page["results"]:
    if not f["key"].startswith("bench-"):
        call("PATCH", f"/api/projects/{team}/feature_flags/{f['id']}/", {"deleted": True, "version": f.get("version")})
PY
# Steady state: with one core, the import's background work (precompute's
# row triggers, the run the deletions above start to rewrite every row,
# Pebble's flushes and compactions) delays requests for milliseconds at a
# time. Wait until precompute has no backlog (vexil_precompute_backlog all
# zero) and the server used under IDLE_CPU of a core in each of the last
# three 2 s windows, then SETTLE s more.
echo "waiting for the import's background work to finish (precompute backlog, server CPU)..." >&2
settled=$(python3 - "http://127.0.0.1:$PORT/metrics" "${IDLE_CPU:-0.05}" "${IDLE_TIMEOUT:-1200}" <<'PY'
import sys, time, urllib.request
url, idle_cpu, timeout = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def scrape():
    backlog, cpu, seen = 0.0, 0.0, False
    for line in urllib.request.urlopen(url, timeout=10).read().decode().splitlines():
        if line.startswith("vexil_precompute_backlog{"):
            backlog, seen = backlog + float(line.split()[-1]), True
        elif line.startswith("process_cpu_seconds_total "):
            cpu = float(line.split()[-1])
    if not seen:
        sys.exit("bench-peers: vexil_precompute_backlog is missing from /metrics")
    return backlog, cpu
start = time.monotonic()
quiet, (_, cpu) = 0, scrape()
while quiet < 3:
    if time.monotonic() - start > timeout:
        sys.exit(f"bench-peers: background work not finished after {timeout:.0f} s")
    time.sleep(2)
    backlog, now = scrape()
    used = (now - cpu) / 2
    cpu = now
    quiet = quiet + 1 if backlog == 0 and used < idle_cpu else 0
    print(f"  backlog {backlog:.0f}, server CPU {used:.2f}", file=sys.stderr)
print(f"{time.monotonic() - start:.0f}")
PY
)
echo "background work finished after ${settled}s; settling ${SETTLE}s more..." >&2
sleep "$SETTLE"
vurl="http://127.0.0.1:$PORT/flags/?v=2"
vbytes=$(curl -s "$vurl" -H 'Content-Type: application/json' -d '{"token":"'"$token"'","distinct_id":"user-42"}' | wc -c)
FLAGS=$FLAGS python3 scripts/peers-equivalence.py vexil vexil "$vurl" "$token" >&2
vflags=$(curl -s "$vurl" -H 'Content-Type: application/json' -d '{"token":"'"$token"'","distinct_id":"user-42"}' |
	python3 -c 'import json,sys; print(len(json.load(sys.stdin)["flags"]))')

# --- The trivial handler answering as many bytes.
$pin0 bin/vexil loadtest -trivial-server 127.0.0.1:$((PORT + 3)) -trivial-bytes "$vbytes" >/dev/null &
pids="$pids $!"

# --- Unleash Edge, offline, from a bootstrap of the same flags.
etoken='*:development.vexilbench'
if [ -n "$EDGE" ]; then
	python3 - "$FLAGS" >"$data/bootstrap.json" <<'PY'
import json, sys
n = int(sys.argv[1])
features = []
for i in range(n):
    name = f"bench-{i:03d}"
    if i % 2 == 0:
        strategies = [{"name": "flexibleRollout", "constraints": [],
                       "parameters": {"rollout": "50", "stickiness": "userId", "groupId": name}}]
        variants = []
    else:
        strategies = [{"name": "flexibleRollout",
                       "constraints": [{"contextName": "country", "operator": "IN", "values": ["US"],
                                        "inverted": False, "caseInsensitive": False}],
                       "parameters": {"rollout": "100", "stickiness": "userId", "groupId": name}}]
        variants = [{"name": v, "weight": w, "weightType": "variable", "stickiness": "userId"}
                    for v, w in (("a", 340), ("b", 330), ("c", 330))]
    features.append({"name": name, "type": "release", "enabled": True, "project": "default",
                     "strategies": strategies, "variants": variants})
print(json.dumps({"version": 2, "features": features}))
PY
	# v20.2.4 refuses offline mode without a client token, though only the
	# frontend API is asked: a second token, so the frontend one stays as it is.
	RUST_LOG=warn $pin0 "$EDGE" --port $((PORT + 5)) --interface 127.0.0.1 offline -b "$data/bootstrap.json" -f "$etoken" -c "${etoken}-client" \
		>"$data/edge.out" 2>&1 &
	edge=$!
	pids="$pids $edge"
	for _ in $(seq 50); do
		curl -sf -o /dev/null -H "Authorization: $etoken" "http://127.0.0.1:$((PORT + 5))/api/frontend/all?userId=user-1&country=US" && break
		kill -0 "$edge" 2>/dev/null || { cat "$data/edge.out" >&2; exit 1; }
		sleep 0.2
	done
	ebytes=$(curl -s -H "Authorization: $etoken" "http://127.0.0.1:$((PORT + 5))/api/frontend/all?userId=user-1&country=US" | wc -c)
	# The same flags, answered right, before any number counts: distributions,
	# not per-user values (the hashes differ).
	FLAGS=$FLAGS python3 scripts/peers-equivalence.py edge edge "http://127.0.0.1:$((PORT + 5))" "$etoken" >&2
fi

# --- The generator's scripts: each prints "requests seconds p50_us p99_us
# non2xx": a refusal (503 overloaded) is cheap, so it must not count as an
# answer: req/s in the table counts 2xx answers only, and the refusals are
# shown beside them.
cat >"$data/report.lua" <<'EOF'
done = function(summary, latency, requests)
	io.write(string.format("RESULT %d %.3f %.1f %.1f %d\n", summary.requests, summary.duration / 1e6,
		latency:percentile(50), latency:percentile(99), summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
EOF
vexil_lua() { # $1: the Lua expression of the body
	cat "$data/report.lua"
	cat <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local token = "$token"
local persons = $PERSONS
local i = 0
request = function()
	i = i + 1
	return wrk.format(nil, nil, nil, $1)
end
EOF
}
vexil_lua '"{\"token\":\"" .. token .. "\",\"distinct_id\":\"user-42\"}"' >"$data/hot.lua"
vexil_lua '"{\"token\":\"" .. token .. "\",\"distinct_id\":\"user-" .. math.random(0, persons - 1) .. "\"}"' >"$data/random.lua"
vexil_lua '"{\"token\":\"" .. token .. "\",\"distinct_id\":\"user-" .. (i % 1000) .. "\",\"person_properties\":{\"country\":\"" .. ({"US", "DE", "FR"})[i % 3 + 1] .. "\"}}"' >"$data/props.lua"
cp "$data/random.lua" "$data/trivial.lua"
{
	cat "$data/report.lua"
	cat <<EOF
wrk.headers["Authorization"] = "$etoken"
local i = 0
request = function()
	i = i + 1
	return wrk.format("GET", "/api/frontend/all?userId=user-" .. (i % 1000) .. "&country=" .. ({"US", "DE", "FR"})[i % 3 + 1])
end
EOF
} >"$data/edge.lua"

targets="hot random props trivial"
[ -n "$EDGE" ] && targets="edge $targets"
url_of() {
	case $1 in
	edge) echo "http://127.0.0.1:$((PORT + 5))" ;;
	trivial) echo "http://127.0.0.1:$((PORT + 3))/" ;;
	*) echo "$vurl" ;;
	esac
}
label_of() {
	case $1 in
	edge) echo "Unleash Edge (context in the request, no lookup)" ;;
	hot) echo "Vexil, one hot person (user-42)" ;;
	random) echo "Vexil, a random person of $PERSONS on each request" ;;
	props) echo "Vexil, person properties in the request" ;;
	trivial) echo "trivial Go handler answering $vbytes bytes" ;;
	esac
}

echo "closed loop: wrk -t1 -c2, $WARMUP warm-up then $DURATION, $ROUNDS interleaved rounds" >&2
: >"$data/closed.txt"
for round in $(seq "$ROUNDS"); do
	for t in $targets; do
		$pin1 wrk -t1 -c2 -d"$WARMUP" -s "$data/$t.lua" "$(url_of "$t")" >/dev/null
		r=$($pin1 wrk -t1 -c2 -d"$DURATION" -s "$data/$t.lua" "$(url_of "$t")" | sed -n 's/^RESULT //p')
		echo "$t $round $r" | tee -a "$data/closed.txt" >&2
	done
done

# Open loop: vegeta targets of 10,000 rotating requests per target.
python3 - "$data" "$token" "$PERSONS" "$vurl" "$(url_of trivial)" "http://127.0.0.1:$((PORT + 5))" "$etoken" <<'PY'
import base64, json, random, sys
data, token, persons, vurl, turl, eurl, etok = sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:]
r = random.Random(1)
def post(url, body):
    return json.dumps({"method": "POST", "url": url, "header": {"Content-Type": ["application/json"]},
                       "body": base64.b64encode(json.dumps(body).encode()).decode()})
with open(f"{data}/random.targets", "w") as f, open(f"{data}/trivial.targets", "w") as t, open(f"{data}/edge.targets", "w") as e:
    for i in range(10000):
        body = {"token": token, "distinct_id": f"user-{r.randrange(persons)}"}
        print(post(vurl, body), file=f)
        print(post(turl, body), file=t)
        c = ("US", "DE", "FR")[i % 3]
        print(json.dumps({"method": "GET", "url": f"{eurl}/api/frontend/all?userId=user-{i % 1000}&country={c}",
                          "header": {"Authorization": [etok]}}), file=e)
PY
open_targets="random trivial"
[ -n "$EDGE" ] && open_targets="edge $open_targets"
echo "open loop: vegeta at $RATE req/s for $OPEN_DURATION, $ROUNDS interleaved rounds" >&2
: >"$data/open.txt"
for round in $(seq "$ROUNDS"); do
	for t in $open_targets; do
		sleep "${OPEN_GAP:-5}" # the previous run's sockets
		r=$($pin1 go tool vegeta attack -format=json -targets="$data/$t.targets" -rate "$RATE" -duration "$OPEN_DURATION" |
			go tool vegeta report -type=json | python3 -c 'import json,sys; d=json.load(sys.stdin); l=d["latencies"]; print(d["requests"], d["success"], l["50th"]/1e3, l["99th"]/1e3)')
		echo "$t $round $r" | tee -a "$data/open.txt" >&2
	done
done

# Edge v20.2.4 has no --version: VEXIL_PEER_EDGE_VERSION names it then.
edgever=""
if [ -n "$EDGE" ]; then
	edgever=$("$EDGE" --version 2>/dev/null | head -1 || true)
	edgever=${edgever:-${VEXIL_PEER_EDGE_VERSION:-"(version unknown: set VEXIL_PEER_EDGE_VERSION)"}}
fi
rss() { awk '/VmRSS/ {printf "%d MiB", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
vrss=$(rss "$vexil")
erss=""
[ -n "$EDGE" ] && erss=$(rss "$edge")

{
	echo "# bench-peers $(date -u +%FT%TZ): $(bin/vexil version); nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
	echo "# servers on core 0, generator on core 1; $PERSONS persons, $vflags flags in Vexil ($vbytes-byte answers)${EDGE:+; Edge $edgever (${ebytes}-byte answers)}"
	echo "# closed loop wrk -t1 -c2, $WARMUP + $DURATION, median of $ROUNDS interleaved rounds; open loop vegeta $RATE req/s, $OPEN_DURATION, median of $ROUNDS"
	echo "# vexil serve settings added: ${SERVE_ARGS:-none}"
	echo "# steady state: measured once precompute's backlog was empty and the server under ${IDLE_CPU:-0.05} of a core for 6 s (${settled} s after the import and the flag deletions), then ${SETTLE} s"
	echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); RSS: Vexil $vrss${erss:+, Edge $erss}"
	python3 - "$data/closed.txt" "$data/open.txt" "$targets" <<PY
import statistics, sys
closed, opened, targets = sys.argv[1], sys.argv[2], sys.argv[3].split()
labels = {"edge": """$(label_of edge)""", "hot": """$(label_of hot)""", "random": """$(label_of random)""",
          "props": """$(label_of props)""", "trivial": """$(label_of trivial)"""}
c, o = {}, {}
bad = {}
for line in open(closed):
    t, _, n, secs, p50, p99, errs = line.split()
    c.setdefault(t, []).append(((int(n) - int(errs)) / float(secs), float(p50), float(p99)))
    bad[t] = bad.get(t, 0) + int(errs)
for line in open(opened):
    t, _, n, ok, p50, p99 = line.split()
    o.setdefault(t, []).append((float(ok), float(p50), float(p99)))
med = lambda xs, i: statistics.median(x[i] for x in xs)
base = med(c["edge"], 0) if "edge" in c else None
triv = med(c["trivial"], 0)
print("| | req/s (2xx) | p50 | p99 | vs Edge | vs trivial | not 2xx (all rounds) | open loop p50 / p99 |")
print("|---|---|---|---|---|---|---|---|")
for t in targets:
    rps = med(c[t], 0)
    ratio = f"{rps / base:.2f}x" if base else "n/a"
    ol = f"{med(o[t], 1) / 1e3:.2f} / {med(o[t], 2) / 1e3:.2f} ms (success {min(x[0] for x in o[t]):.4f})" if t in o else ""
    print(f"| {labels[t]} | {rps:,.0f} | {med(c[t], 1) / 1e3:.2f} ms | {med(c[t], 2) / 1e3:.2f} ms | {ratio} | {rps / triv:.2f} | {bad[t]:,} | {ol} |")
PY
} | tee "$out"
