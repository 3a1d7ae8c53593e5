#!/usr/bin/python3
"""A libtorrent-rasterbar DHT node to load with `xorro bench` (see scripts/bench-node.sh).

Run with Debian's /usr/bin/python3 (python3-libtorrent installs the module only there):

    bench-libtorrent-node.py --bind 127.0.0.1:PORT [--bootstrap 127.0.0.1:6000,...]

Only the DHT runs (no UPnP, NAT-PMP, LSD, trackers, peer connections), on one loopback
address, and it contacts only the loopback nodes it is given. The limits that would decide a
throughput figure are raised: dht_upload_rate_limit (bytes a second the DHT may send; the
default of 8000 would cap it at a few dozen answers a second), dht_block_ratelimit (queries
a second from one IP before it is blocked), and the alert mask is empty (no alert per packet).
The loopback relaxations are those of interop/peers/libtorrent_peer.py.

Prints one JSON line once listening, with the UDP port and the process id whose CPU time the
bench reads ({"event": "ready", "addr": "127.0.0.1:PORT", "pid": N, "table": N}), then runs
until stdin closes or a signal ends it.
"""

import argparse
import json
import os
import sys
import time

try:
    import libtorrent as lt
except ImportError as e:
    print(f"bench-libtorrent-node: cannot import libtorrent ({e}): run ./scripts/install-peers.sh", file=sys.stderr)
    sys.exit(3)


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop", "peers"))
from lt_loopback import loopback, loopback_settings  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True, help="ip:port on 127.0.0.0/8")
    ap.add_argument("--bootstrap", default="", help="comma-separated ip:port on 127.0.0.0/8")
    ap.add_argument("--fill-secs", type=float, default=5.0, help="how long to wait for the table to fill")
    args = ap.parse_args()
    try:
        host, port = loopback(args.bind)
        boot = [loopback(a) for a in args.bootstrap.split(",") if a]
    except ValueError as e:
        raise SystemExit(f"bench-libtorrent-node: {e}")
    settings = {
        **loopback_settings(host, port),
        "dht_upload_rate_limit": 2**31 - 1,
        # Large, but not so large that libtorrent's int arithmetic on it overflows (2**31 - 1
        # blocks every source it tracks).
        "dht_block_ratelimit": 1_000_000,
        "send_socket_buffer_size": 4 << 20,
        "recv_socket_buffer_size": 4 << 20,
        "alert_mask": lt.alert.category_t.status_notification | lt.alert.category_t.error_notification,
    }
    ses = lt.session(settings)
    if ses.get_settings()["dht_bootstrap_nodes"] != "":
        raise SystemExit("bench-libtorrent-node: dht_bootstrap_nodes not applied; refusing to run")
    listening = None
    end = time.monotonic() + 10
    while listening is None and time.monotonic() < end:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_succeeded_alert) and "TCP" not in a.message():
                listening = a.port
            elif isinstance(a, lt.listen_failed_alert):
                print(f"bench-libtorrent-node: {a.message()}", file=sys.stderr)
    if listening is None:
        raise SystemExit(f"bench-libtorrent-node: no listen socket on {args.bind}")
    for b in boot:
        ses.add_dht_node(b)
    ses.apply_settings({"alert_mask": lt.alert.category_t.dht_notification})
    table = 0
    end = time.monotonic() + args.fill_secs
    while boot and time.monotonic() < end:
        time.sleep(0.25)
        ses.post_dht_stats()
        time.sleep(0.05)
        for a in ses.pop_alerts():
            if isinstance(a, lt.dht_stats_alert):
                table = sum(b["num_nodes"] for b in a.routing_table)
    # No alerts from here on: none is posted per packet while the bench runs.
    ses.apply_settings({"alert_mask": 0})
    print(json.dumps({"event": "ready", "addr": f"{host}:{listening}", "pid": os.getpid(), "table": table}), flush=True)
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
