#!/usr/bin/env bash
# Regenerate the golden datagram fixtures in crates/xorro-wire/tests/fixtures/.
#
#   interop/capture/run.sh [libtorrent] [bittorrent-dht]     (default: both)
#
# Needs the third-party peers installed (scripts/install-peers.sh): python3-libtorrent
# for /usr/bin/python3, and `npm ci` done in interop/js. The harness wants a python3
# with the `cryptography` package (for one ed25519-signed BEP 44 put); without it the
# mutable-put fixtures are skipped.
#
# All traffic is on 127.0.0.1. When it can, this script also runs each capture in a
# fresh network namespace that has nothing but a loopback interface, so neither
# client could reach any other address even if misconfigured.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
fixtures="$root/crates/xorro-wire/tests/fixtures"
logdir=${TMPDIR:-/tmp}

die() { echo "run.sh: $*" >&2; exit 1; }

clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(libtorrent bittorrent-dht)

# A python3 for the harness: prefer one that has `cryptography`.
harness_py=""
for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import cryptography' 2>/dev/null; then
        harness_py=$py
        break
    fi
done
if [ -z "$harness_py" ]; then
    harness_py=python3
    echo "run.sh: no python3 with 'cryptography': BEP 44 mutable-put fixtures will be missing" >&2
fi

for c in "${clients[@]}"; do
    case "$c" in
        libtorrent)
            "${LT_PYTHON:-/usr/bin/python3}" -c 'import libtorrent' 2>/dev/null \
                || die "libtorrent does not import under ${LT_PYTHON:-/usr/bin/python3}: run scripts/install-peers.sh"
            ;;
        bittorrent-dht)
            command -v "${NODE:-node}" >/dev/null || die "node not found: run scripts/install-peers.sh"
            [ -f "$root/interop/js/node_modules/bittorrent-dht/index.js" ] \
                || die "interop/js/node_modules missing: run scripts/install-peers.sh"
            ;;
        *) die "unknown client '$c' (libtorrent | bittorrent-dht)" ;;
    esac
done

# Loopback-only network namespace, if this machine lets us make one.
isolate=()
if command -v unshare >/dev/null && command -v ip >/dev/null; then
    if unshare --net true 2>/dev/null; then
        isolate=(unshare --net)
    elif unshare --net --map-root-user true 2>/dev/null; then
        isolate=(unshare --net --map-root-user)
    fi
fi
if [ ${#isolate[@]} -eq 0 ]; then
    echo "run.sh: cannot create a network namespace; running in the host namespace (clients are configured loopback-only)" >&2
fi

status=0
for c in "${clients[@]}"; do
    echo "== capturing $c" >&2
    cmd=("$harness_py" "$here/capture.py" --client "$c" --out "$fixtures/$c" --log "$logdir/xorro-capture-$c.jsonl")
    if [ ${#isolate[@]} -gt 0 ]; then
        # shellcheck disable=SC2016
        "${isolate[@]}" bash -c 'ip link set lo up && exec "$@"' _ "${cmd[@]}" || status=1
    else
        "${cmd[@]}" || status=1
    fi
done
[ $status -eq 0 ] || die "a capture did not complete; see the output above"
echo "run.sh: fixtures written under $fixtures (logs in $logdir/xorro-capture-*.jsonl)" >&2
