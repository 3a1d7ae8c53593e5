#!/usr/bin/env bash
# Query throughput of a xorro node beside its bounds, in one run: the trivial UDP echo server
# (`xorro bench-echo`, the physical bound), a `xorro node`, and libtorrent's DHT
# (scripts/bench-libtorrent-node.py), each loaded in turn by `xorro bench` with ping,
# find_node and get_peers, ROUNDS times interleaved, so that all three see the same machine
# load. Figures are replies per CPU-second of the server process (from /proc/PID/stat);
# compare the ratios to echo within one round.
#
# The servers share one core (taskset -c SERVER_CPU) and the generator gets the other
# (GEN_CPU). The node and libtorrent first join a small testnet so that find_node and
# get_peers answers carry 8 nodes, as on the real network. Every address is on 127.0.0.0/8.
#
#   scripts/bench-node.sh [--rounds 3] [--duration 10] [--sources 128] [--window 8]
#                         [--no-libtorrent] [--out DIR] [--baseline XORRO_BINARY]
#
# --baseline adds a second xorro node run by another build of xorro (say, before a change),
# loaded in the same rounds as "xorro-baseline".
#
# Needs a release build (cargo build --release -p xorro) and, for libtorrent, Debian's
# python3-libtorrent under /usr/bin/python3 (scripts/install-peers.sh).
set -euo pipefail

ROUNDS=3
DURATION=10
SOURCES=128
WINDOW=8
LIBTORRENT=1
OUT=""
BASELINE=""
SERVER_CPU=${SERVER_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
BASE_PORT=${BASE_PORT:-47000}

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --sources) SOURCES=$2; shift 2 ;;
        --window) WINDOW=$2; shift 2 ;;
        --no-libtorrent) LIBTORRENT=0; shift ;;
        --out) OUT=$2; shift 2 ;;
        --baseline) BASELINE=$2; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "bench-node.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
XORRO=${XORRO:-$ROOT/target/release/xorro}
if [ ! -x "$XORRO" ]; then
    echo "bench-node.sh: no $XORRO: run 'cargo build --release -p xorro' first" >&2
    exit 2
fi
if [ "$LIBTORRENT" = 1 ] && ! /usr/bin/python3 -c 'import libtorrent' 2>/dev/null; then
    echo "bench-node.sh: /usr/bin/python3 cannot import libtorrent: run scripts/install-peers.sh or pass --no-libtorrent" >&2
    exit 2
fi

WORK=$(mktemp -d -t xorro-bench-node.XXXXXX)
OUT=${OUT:-$WORK}
mkdir -p "$OUT"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK/data-node" "$WORK/data-baseline"
}
trap cleanup EXIT

ECHO_PORT=$((BASE_PORT + 1))
NODE_PORT=$((BASE_PORT + 2))
LT_PORT=$((BASE_PORT + 3))
TESTNET_PORT=$((BASE_PORT + 100))
TESTNET_NODES=32

wait_line() { # file pattern seconds
    local i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt $(($3 * 10)) ]; then
            echo "bench-node.sh: no '$2' in $1 after $3 s:" >&2
            tail -5 "$1" >&2
            exit 1
        fi
        sleep 0.1
    done
}

taskset -c "$SERVER_CPU" "$XORRO" testnet --nodes $TESTNET_NODES --port $TESTNET_PORT \
    --api 127.0.0.1:$((BASE_PORT + 882)) >"$WORK/testnet.log" 2>&1 &
PIDS+=($!)
wait_line "$WORK/testnet.log" "testnet ready" 60

taskset -c "$SERVER_CPU" "$XORRO" bench-echo 127.0.0.1:$ECHO_PORT >"$WORK/echo.log" 2>&1 &
ECHO_PID=$!
PIDS+=($ECHO_PID)
wait_line "$WORK/echo.log" "listening" 10

# start_node BINARY NAME UDP_PORT API_PORT: a node on the server core, joined to the testnet;
# sets STARTED_PID.
start_node() {
    mkdir -p "$WORK/data-$2"
    taskset -c "$SERVER_CPU" "$1" node --port "$3" --api "127.0.0.1:$4" \
        --data-dir "$WORK/data-$2" --bootstrap 127.0.0.1:$TESTNET_PORT --no-public-bootstrap \
        >"$WORK/$2.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=($STARTED_PID)
    wait_line "$WORK/$2.log" "xorro node running" 20
}

start_node "$XORRO" node $NODE_PORT $((BASE_PORT + 881))
NODE_PID=$STARTED_PID

TARGETS="echo:127.0.0.1:$ECHO_PORT:$ECHO_PID xorro:127.0.0.1:$NODE_PORT:$NODE_PID"
if [ -n "$BASELINE" ]; then
    if [ ! -x "$BASELINE" ]; then
        echo "bench-node.sh: --baseline $BASELINE is not an executable" >&2
        exit 2
    fi
    start_node "$BASELINE" baseline $((BASE_PORT + 4)) $((BASE_PORT + 884))
    BASELINE_PID=$STARTED_PID
    TARGETS="$TARGETS xorro-baseline:127.0.0.1:$((BASE_PORT + 4)):$BASELINE_PID"
fi
if [ "$LIBTORRENT" = 1 ]; then
    BOOT=$(seq -s, -f "127.0.0.1:%g" $TESTNET_PORT $((TESTNET_PORT + 7)))
    # stdin stays open (a FIFO held by this script) so that the node runs until we stop it.
    mkfifo "$WORK/lt.in"
    taskset -c "$SERVER_CPU" /usr/bin/python3 "$ROOT/scripts/bench-libtorrent-node.py" \
        --bind 127.0.0.1:$LT_PORT --bootstrap "$BOOT" <"$WORK/lt.in" >"$WORK/lt.log" 2>&1 &
    LT_PID=$!
    PIDS+=($LT_PID)
    exec 9>"$WORK/lt.in"
    wait_line "$WORK/lt.log" '"ready"' 30
    TARGETS="$TARGETS libtorrent:127.0.0.1:$LT_PORT:$LT_PID"
fi
sleep 2 # let the node's bootstrap lookups finish

echo "bench-node: $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg), $ROUNDS rounds of ${DURATION} s, $SOURCES sources x $WINDOW in flight"
echo "node: $("$XORRO" status --api 127.0.0.1:$((BASE_PORT + 881)) 2>/dev/null | grep -i 'routing' | head -1)"
[ "$LIBTORRENT" = 1 ] && echo "libtorrent: $(head -1 "$WORK/lt.log")"

RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
    for query in ping find-node get-peers; do
        for t in $TARGETS; do
            name=${t%%:*}
            rest=${t#*:}
            pid=${rest##*:}
            addr=${rest%:*}
            taskset -c "$GEN_CPU" "$XORRO" bench "$addr" --query "$query" --sources "$SOURCES" \
                --window "$WINDOW" --duration "$DURATION" --pid "$pid" --json \
                | jq -c --arg server "$name" --argjson round "$round" '. + {server: $server, round: $round}' \
                >>"$RESULTS"
            tail -1 "$RESULTS" | jq -r '"round \(.round) \(.query) \(.server): \(.answered_per_sec | floor) replies/s, \(.answers_per_cpu_sec // 0 | floor) per CPU-s (CPU \(.target_cpu_secs)), timed out \(.timeouts)"'
        done
    done
done

echo
echo "replies per CPU-second of the server (thousands) and ratio to echo, round by round:"
jq -s -r '
  group_by(.query)[] as $q
  | ($q | map(select(.server == "echo")) | map({key: (.round|tostring), value: .answers_per_cpu_sec}) | from_entries) as $echo
  | ($q | group_by(.server)[]
      | . as $s
      | ($s | sort_by(.round) | map(.answers_per_cpu_sec / $echo[(.round|tostring)])) as $r
      | ($r | sort) as $sorted
      | "\($q[0].query)\t\($s[0].server)\t" + ($s | sort_by(.round) | map(.answers_per_cpu_sec / 1000 | floor | tostring) | join(" / ")) + " k\tratio " + ($r | map(. * 100 | round / 100 | tostring) | join(" / ")) + "\tmedian " + ($sorted[($sorted|length)/2|floor] * 100 | round / 100 | tostring))
' "$RESULTS" | column -t -s $'\t'
echo "raw results: $RESULTS"
