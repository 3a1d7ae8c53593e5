#!/usr/bin/python3
"""Drive libtorrent-rasterbar's DHT against the capture harness (loopback only).

Run with Debian's /usr/bin/python3 (python3-libtorrent installs the module there).
Started by capture.py; prints progress lines and "DONE" when its own steps are
over, then idles (answering the harness's queries) until stdin is closed.

Steps: bootstrap from the harness (and nothing else), add a trackerless magnet so
the torrent announces on the DHT (get_peers + announce_peer), BEP 44 immutable
put and get, mutable put (with salt) and get, BEP 51 sample_infohashes.
"""

import argparse
import hashlib
import ipaddress
import os
import select
import shutil
import sys
import tempfile
import time

import libtorrent as lt


def log(*a):
    print(*a, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--harness", required=True, help="127.0.0.1:PORT of the capture harness")
    ap.add_argument("--info-hash", required=True)
    ap.add_argument("--seed", required=True, help="ed25519 seed, hex")
    ap.add_argument("--pubkey", default="", help="ed25519 public key of --seed, hex")
    ap.add_argument("--salt", default="")
    ap.add_argument("--step-timeout", type=float, default=20.0)
    args = ap.parse_args()

    host, port = args.harness.rsplit(":", 1)
    port = int(port)
    if not ipaddress.ip_address(host).is_loopback:
        sys.exit("lt_client: the harness must be on a loopback address")

    log(f"libtorrent {lt.__version__}")
    # Everything but the DHT off; listen on loopback; bootstrap only from the harness.
    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "",
        "enable_dht": True,
        "dht_bootstrap_nodes": f"{host}:{port}",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "enable_outgoing_tcp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_tcp": False,
        "enable_incoming_utp": False,
        "announce_to_all_trackers": False,
        "dht_block_ratelimit": 100000,
        "dht_upload_rate_limit": 1000000,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_enforce_node_id": False,
        "dht_prefer_verified_node_ids": False,
        "dht_ignore_dark_internet": False,
        "dht_read_only": False,
        "dht_announce_interval": 5,
        "alert_mask": lt.alert.category_t.all_categories,
    }
    ses = lt.session(settings)
    if ses.get_settings()["dht_bootstrap_nodes"] != f"{host}:{port}":
        sys.exit("lt_client: dht_bootstrap_nodes not applied; refusing to run")

    tmp = tempfile.mkdtemp(prefix="xorro-lt-")
    sent = set()  # queries libtorrent sent, from dht_pkt_alert

    def pump(pred, timeout, what=None):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            ses.wait_for_alert(200)
            for a in ses.pop_alerts():
                if isinstance(a, lt.dht_pkt_alert):
                    # message() reads "==> ..." for outgoing, "<== ..." for incoming.
                    buf = bytes(a.pkt_buf)
                    if a.message().lstrip().startswith("==>"):
                        d = lt.bdecode(buf) or {}
                        if d.get(b"y") == b"q":
                            sent.add(d.get(b"q", b"?").decode("latin1"))
                    continue
                if isinstance(a, (lt.dht_log_alert,)):
                    continue
                r = pred(a)
                if r is not None:
                    return r
        if what:
            log(f"timeout waiting for {what}")
        return None

    try:
        ok = pump(lambda a: True if isinstance(a, lt.dht_bootstrap_alert) else None, args.step_timeout, "bootstrap")
        log(f"bootstrap: {'ok' if ok else 'no alert'}")

        # add_dht_node: libtorrent contacts a node it is told about.
        ses.add_dht_node((host, port))
        pump(lambda a: None, 1.0)
        log(f"add_dht_node: sent={sorted(sent)}")

        # Announce: a trackerless magnet makes the torrent do get_peers + announce_peer.
        params = lt.parse_magnet_uri(f"magnet:?xt=urn:btih:{args.info_hash}")
        params.save_path = tmp
        ses.add_torrent(params)
        pump(lambda a: True if "announce_peer" in sent else None, 60, "announce_peer")
        log(f"announce: sent={sorted(sent)}")

        # BEP 44 immutable put + get.
        target = ses.dht_put_immutable_item("xorro immutable item from libtorrent")
        pump(lambda a: a if isinstance(a, lt.dht_put_alert) else None, args.step_timeout, "immutable put")
        log(f"immutable put: target {target}")
        ses.dht_get_immutable_item(target)
        a = pump(lambda a: a if isinstance(a, lt.dht_immutable_item_alert) else None, args.step_timeout, "immutable get")
        log(f"immutable get: {a.item if a else None}")

        # BEP 44 mutable put (with salt) + get. libtorrent's secret key is the
        # 64-byte expanded ed25519 key: clamp(SHA-512(seed)).
        if args.pubkey:
            h = bytearray(hashlib.sha512(bytes.fromhex(args.seed)).digest())
            h[0] &= 248
            h[31] &= 63
            h[31] |= 64
            sk, pk, salt = bytes(h), bytes.fromhex(args.pubkey), args.salt.encode()
            ses.dht_put_mutable_item(sk, pk, "xorro mutable item from libtorrent", salt)
            pump(lambda a: a if isinstance(a, lt.dht_put_alert) else None, args.step_timeout, "mutable put")
            log("mutable put: done")
            ses.dht_get_mutable_item(pk, salt)
            a = pump(lambda a: a if isinstance(a, lt.dht_mutable_item_alert) else None, args.step_timeout, "mutable get")
            log(f"mutable get: {a.item if a else None} seq={a.seq if a else None}")
        else:
            log("no --pubkey: skipping mutable put/get")

        # BEP 51.
        ses.dht_sample_infohashes((host, port), lt.sha1_hash(hashlib.sha1(b"xorro lt sample").digest()))
        a = pump(lambda a: a if isinstance(a, lt.dht_sample_infohashes_alert) else None, args.step_timeout, "sample")
        log(f"sample_infohashes: {a.num_samples if a else None} samples")

        log(f"queries sent: {sorted(sent)}")
        log("DONE")
        # Idle (keep answering the harness) until the harness closes our stdin.
        end = time.monotonic() + 300
        while time.monotonic() < end:
            r, _, _ = select.select([sys.stdin], [], [], 0.2)
            if r and not sys.stdin.readline():
                break
            ses.pop_alerts()
    finally:
        ses.pause()
        del ses
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
