#!/usr/bin/python3
"""One libtorrent-rasterbar DHT node for Xorro's interop tests, driven over stdin/stdout.

Run with Debian's /usr/bin/python3 (python3-libtorrent installs the module only there):

    libtorrent_peer.py --bind 127.1.1.5:0 [--bootstrap 127.1.1.1:40000,127.1.1.2:40001]

It starts a libtorrent session with nothing but the DHT (no UPnP, NAT-PMP, LSD, trackers,
peer connections), bound to one loopback address, that contacts only the loopback nodes it
is given. It prints one JSON line when it is up:

    {"event": "ready", "impl": "libtorrent", "version": "2.0.8.0", "addr": "127.1.1.5:41234",
     "id": "<hex node id>"}

then reads one JSON command a line on stdin and answers each with one JSON line on stdout,
in order: {"ok": true, ...} or {"ok": false, "error": "..."}. Every command may carry
"timeout" (seconds, default 20). Byte strings are hex unless said otherwise.

    {"cmd": "add_nodes", "addrs": ["ip:port", ...], "lookup": true}
        add_dht_node for each (libtorrent contacts them and adds those that answer), then,
        with "lookup", a get_peers lookup for our own id, which makes every responder a
        routing-table entry. -> {}
    {"cmd": "routing_table"}             -> {"nodes": [{"id": hex, "addr": "ip:port"}]}
    {"cmd": "get_peers", "info_hash": hex}    -> {"peers": ["ip:port", ...]}
        (a get_peers lookup, run to its end)
    {"cmd": "announce", "info_hash": hex}
        adds a trackerless magnet (Debian's bindings of 2.0.8 cannot call dht_announce: its
        flags type is not exported), which makes libtorrent look the info-hash up and send
        announce_peer with its listen port; returns when one announce_peer was answered.
        -> {"port": n, "acked_by": ["ip:port", ...]}
    {"cmd": "put_immutable", "data": "text"}  (stored as the bencoded string)
        -> {"target": hex, "success": n}
    {"cmd": "get_immutable", "target": hex}   -> {"value": hex of the bencoded item | null}
    {"cmd": "put_mutable", "seed": hex32, "key": hex32, "salt": "text", "data": "text"}
        (key: the ed25519 public key of seed; the bindings have no ed25519 of their own)
        libtorrent reads the current item first and puts seq + 1.  -> {"success": n, "seq": n}
    {"cmd": "get_mutable", "key": hex32, "salt": "text"}
        -> {"value": hex | null, "seq": n, "signature": hex, "authoritative": bool}
    {"cmd": "sample_infohashes", "addr": "ip:port", "target": hex}
        -> {"samples": [hex], "num": n, "interval": s}
    {"cmd": "traffic"}  what this node sent and received, from its packet log:
        -> {"sent": {"ip:port": {"q:get_peers": n, ...}}, "received": {...}}
    {"cmd": "quit"}

Settings relaxed for a loopback network (see docs/INTEROP.md): dht_restrict_routing_ips and
dht_restrict_search_ips off (else one node per /24 is kept, and every node here is in
127.0.0.0/8), dht_enforce_node_id off (BEP 42 ids cannot match 127.x addresses),
dht_block_ratelimit raised (else more than 50 packets in 10 s from one IP ban it for 5 min).

Logs go to stderr (the test shows the last lines when it fails; XORRO_INTEROP_LOG=1 shows them
live, LIBTORRENT_PEER_DHT_LOG=1 adds libtorrent's own DHT log).
"""

import argparse
import collections
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import warnings

try:
    import libtorrent as lt
except ImportError as e:  # the Rust test reports this line
    print(json.dumps({"event": "error", "error": f"cannot import libtorrent ({e}): run ./scripts/install-peers.sh"}), flush=True)
    sys.exit(3)

from lt_loopback import loopback, loopback_settings  # noqa: E402 (beside this script)

warnings.simplefilter("ignore", DeprecationWarning)


def raw(x) -> bytes:
    """Bytes of what the bindings give as str (salt) or bytes-like (keys)."""
    return x.encode("latin1") if isinstance(x, str) else bytes(x)


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


START = time.monotonic()
# LIBTORRENT_PEER_DHT_LOG=1: libtorrent's own DHT log on stderr (XORRO_INTEROP_LOG=1 shows it).
DHT_LOG = bool(os.environ.get("LIBTORRENT_PEER_DHT_LOG"))


def log(*a):
    print(f"[{time.monotonic() - START:7.3f}]", *a, file=sys.stderr, flush=True)


PKT = re.compile(r"^\s*(==>|<==)\s*\[([0-9.]+):(\d+)\]")


class Peer:
    def __init__(self, bind: str, bootstrap):
        host, port = loopback(bind)
        self.host = host
        settings = {
            **loopback_settings(host, port),
            "announce_to_all_trackers": False,
            "announce_to_all_tiers": False,
            "dht_block_ratelimit": 100000,
            "dht_upload_rate_limit": 1000000,
            "dht_announce_interval": 10,
            "alert_mask": lt.alert.category_t.dht_notification
            | lt.alert.category_t.dht_operation_notification
            | lt.alert.category_t.dht_log_notification
            | lt.alert.category_t.status_notification
            | lt.alert.category_t.error_notification,
        }
        self.ses = lt.session(settings)
        if self.ses.get_settings()["dht_bootstrap_nodes"] != "":
            raise SystemExit("libtorrent_peer: dht_bootstrap_nodes not applied; refusing to run")
        self.tmp = tempfile.mkdtemp(prefix="xorro-lt-peer-")
        self.queue = collections.deque()  # alerts popped, not yet seen by pump
        self.sent = {}  # "ip:port" -> {"q:method" | "r" | "e": count}
        self.received = {}
        self.pending_announces = {}  # (endpoint, tid) -> info_hash hex of announce_peer sent
        self.acked = {}  # info_hash hex -> [endpoint] that answered announce_peer
        self.listening = None
        self.pump(lambda a: True if self.listening else None, 10)
        if not self.listening:
            raise SystemExit(f"libtorrent_peer: no listen socket on {bind}")
        self.port = self.listening
        state = self.ses.dht_state()[b"node-id"]
        if isinstance(state, list):
            state = state[0]
        self.node_id = bytes(state[:20])
        for a in bootstrap:
            self.ses.add_dht_node(loopback(a))

    def count(self, table, ep, kind):
        t = table.setdefault(ep, {})
        t[kind] = t.get(kind, 0) + 1

    def packet(self, a):
        m = PKT.match(a.message())
        if not m:
            return
        outgoing = m.group(1) == "==>"
        ep = f"{m.group(2)}:{m.group(3)}"
        d = lt.bdecode(bytes(a.pkt_buf)) or {}
        y = d.get(b"y", b"?").decode("latin1")
        kind = f"q:{d.get(b'q', b'?').decode('latin1')}" if y == "q" else y
        self.count(self.sent if outgoing else self.received, ep, kind)
        tid = d.get(b"t", b"")
        if outgoing and kind == "q:announce_peer":
            ih = d.get(b"a", {}).get(b"info_hash", b"")
            self.pending_announces[(ep, tid)] = bytes(ih).hex()
        elif not outgoing and y == "r" and (ep, tid) in self.pending_announces:
            ih = self.pending_announces.pop((ep, tid))
            self.acked.setdefault(ih, []).append(ep)

    def pump(self, pred, timeout):
        """Reads alerts until pred(alert) returns something (returned) or timeout (None).

        pred sees every alert, in order (packet alerts after they were counted), and None
        after each wait, so that it may test state the packet log updates. Alerts popped but
        not yet seen wait in self.queue for the next call: returning mid-batch must not lose
        the alerts behind the one that matched. An alert stays valid until the next
        pop_alerts(), which is called only once the queue is empty: read what is needed from
        an alert that pump returned before pumping again."""
        end = time.monotonic() + timeout
        while True:
            if not self.queue:
                r = pred(None)
                if r is not None:
                    return r
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.ses.wait_for_alert(int(min(left, 0.2) * 1000) + 1)
                self.queue.extend(self.ses.pop_alerts())
                continue
            a = self.queue.popleft()
            if isinstance(a, lt.dht_pkt_alert):
                self.packet(a)
            elif isinstance(a, lt.listen_succeeded_alert):
                # 2.0 reports the TCP and the uTP socket; the DHT runs on the UDP one.
                if "TCP" not in a.message():
                    self.listening = a.port
            elif isinstance(a, lt.listen_failed_alert):
                log(f"listen failed: {a.message()}")
            elif isinstance(a, lt.dht_log_alert):
                if DHT_LOG:
                    log(f"dht: {a.message()}")
                continue
            r = pred(a)
            if r is not None:
                return r

    def idle(self):
        self.pump(lambda a: None, 0.05)

    # ------------------------------------------------------------------ commands

    def answered(self, ep):
        return self.received.get(ep, {}).get("r", 0)

    def add_nodes(self, c, timeout):
        eps = []
        for a in c["addrs"]:
            host, port = loopback(a)
            eps.append((f"{host}:{port}", self.answered(f"{host}:{port}")))
            self.ses.add_dht_node((host, port))
        # libtorrent queries each (get_peers for our id) and adds it once it answers. A lookup
        # started before any is in the table would end at once with nobody to ask.
        if self.pump(lambda a: True if all(self.answered(ep) > n for ep, n in eps) else None, timeout) is None:
            silent = [ep for ep, n in eps if self.answered(ep) <= n]
            raise TimeoutError(f"no answer from {silent}; traffic {self.sent} / {self.received}")
        if c.get("lookup", True):
            self.lookup(lt.sha1_hash(self.node_id), timeout)
        return {}

    def lookup(self, target, timeout):
        """Runs a get_peers lookup to its end; returns the peers found.

        libtorrent posts dht_get_peers_reply_alert only for replies that carry peers and
        nothing when the lookup ends, so the end is read from post_dht_stats: the lookup is
        over when no get_peers traversal is active any more."""
        peers = set()
        want = bytes(target.to_bytes())

        def collect(a):
            if isinstance(a, lt.dht_get_peers_reply_alert) and bytes(a.info_hash.to_bytes()) == want:
                peers.update(f"{h}:{p}" for h, p in a.peers())
            return None

        self.ses.dht_get_peers(target)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.ses.post_dht_stats()
            stats = self.pump(lambda a: a if isinstance(a, lt.dht_stats_alert) else collect(a), end - time.monotonic())
            if stats is None:
                break
            if not any(r["type"] == "get_peers" for r in stats.active_requests):
                self.pump(collect, 0.01)
                return sorted(peers)
            self.pump(collect, 0.1)
        raise TimeoutError("the get_peers lookup did not end")

    def routing_table(self, c, timeout):
        self.ses.dht_live_nodes(lt.sha1_hash(self.node_id))
        a = self.pump(lambda a: a if isinstance(a, lt.dht_live_nodes_alert) else None, timeout)
        if a is None:
            raise TimeoutError("no dht_live_nodes_alert")
        nodes = []
        for n in a.nodes:
            host, port = n["endpoint"]
            nodes.append({"id": bytes(n["nid"].to_bytes()).hex(), "addr": f"{host}:{port}"})
        return {"nodes": nodes}

    def get_peers(self, c, timeout):
        return {"peers": self.lookup(lt.sha1_hash(bytes.fromhex(c["info_hash"])), timeout)}

    def announce(self, c, timeout):
        ih = c["info_hash"].lower()
        params = lt.parse_magnet_uri(f"magnet:?xt=urn:btih:{ih}")
        params.save_path = self.tmp
        self.ses.add_torrent(params)
        if self.pump(lambda a: True if self.acked.get(ih) else None, timeout) is None:
            raise TimeoutError("no announce_peer was answered")
        return {"port": self.port, "acked_by": sorted(set(self.acked[ih]))}

    @staticmethod
    def value_of(item):
        """The bencoded value of an item alert's `item`, or None.

        The bindings give a dict {"value": <the value as Python>, ...}, and raise for a
        mutable item that was not found."""
        try:
            if isinstance(item, dict) and "value" in item:
                return lt.bencode(item["value"]).hex()
        except RuntimeError:
            pass
        return None

    def put_immutable(self, c, timeout):
        target = self.ses.dht_put_immutable_item(c["data"])
        want = bytes(target.to_bytes())
        a = self.pump(
            lambda a: a if isinstance(a, lt.dht_put_alert) and bytes(a.target.to_bytes()) == want else None,
            timeout,
        )
        if a is None:
            raise TimeoutError("no dht_put_alert")
        return {"target": want.hex(), "success": a.num_success}

    def get_immutable(self, c, timeout):
        want = bytes.fromhex(c["target"])
        self.ses.dht_get_immutable_item(lt.sha1_hash(want))
        a = self.pump(
            lambda a: a if isinstance(a, lt.dht_immutable_item_alert) and bytes(a.target.to_bytes()) == want else None,
            timeout,
        )
        if a is None:
            raise TimeoutError("no dht_immutable_item_alert")
        return {"value": self.value_of(a.item)}

    @staticmethod
    def secret(seed: bytes) -> bytes:
        # libtorrent's secret key is the 64-byte expanded ed25519 key: clamp(SHA-512(seed)).
        h = bytearray(hashlib.sha512(seed).digest())
        h[0] &= 248
        h[31] &= 63
        h[31] |= 64
        return bytes(h)

    def put_mutable(self, c, timeout):
        seed = bytes.fromhex(c["seed"])
        pk = bytes.fromhex(c["key"])
        salt = c.get("salt", "")
        self.ses.dht_put_mutable_item(self.secret(seed), pk, c["data"], salt)

        def mine(a):
            if not isinstance(a, lt.dht_put_alert) or a.seq == 0:
                return None  # an immutable put's alert has seq 0
            return a if raw(a.public_key) == pk and raw(a.salt) == salt.encode() else None

        a = self.pump(mine, timeout)
        if a is None:
            raise TimeoutError("no dht_put_alert")
        return {"success": a.num_success, "seq": a.seq}

    def get_mutable(self, c, timeout):
        pk = bytes.fromhex(c["key"])
        salt = c.get("salt", "")
        self.ses.dht_get_mutable_item(pk, salt)

        def mine(a):
            # Read everything now: an alert is freed by the next pop_alerts().
            if not isinstance(a, lt.dht_mutable_item_alert):
                return None
            if raw(a.key) != pk or raw(a.salt) != salt.encode():
                return None
            value = self.value_of(a.item) if a.seq > 0 else None
            return {
                "value": value,
                "seq": a.seq,
                "signature": raw(a.signature).hex() if value else None,
                "authoritative": a.authoritative,
            }

        # A first alert may come before the lookup ends (authoritative = False).
        best = None
        end = time.monotonic() + timeout
        while True:
            got = self.pump(mine, max(end - time.monotonic(), 0))
            if got is None:
                break
            log(f"dht_mutable_item_alert: seq {got['seq']}, authoritative {got['authoritative']}")
            best = got
            if got["authoritative"]:
                break
        if best is None:
            raise TimeoutError("no dht_mutable_item_alert")
        if not best["authoritative"]:
            log(f"get_mutable: the lookup did not end; traffic {self.sent} / {self.received}")
        return best

    def sample_infohashes(self, c, timeout):
        self.ses.dht_sample_infohashes(loopback(c["addr"]), lt.sha1_hash(bytes.fromhex(c["target"])))
        a = self.pump(lambda a: a if isinstance(a, lt.dht_sample_infohashes_alert) else None, timeout)
        if a is None:
            raise TimeoutError("no dht_sample_infohashes_alert")
        return {
            "samples": [bytes(s.to_bytes()).hex() for s in a.samples],
            "num": a.num_infohashes,
            "interval": a.interval.total_seconds() if hasattr(a.interval, "total_seconds") else a.interval,
        }

    def traffic(self, c, timeout):
        self.idle()
        return {"sent": self.sent, "received": self.received}

    def close(self):
        try:
            self.ses.pause()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True, help="loopback ip:port (port 0: any)")
    ap.add_argument("--bootstrap", default="", help="comma-separated loopback ip:port")
    args = ap.parse_args()
    bootstrap = [b for b in args.bootstrap.split(",") if b]
    for b in bootstrap:
        loopback(b)

    peer = Peer(args.bind, bootstrap)
    out({
        "event": "ready",
        "impl": "libtorrent",
        "version": lt.__version__,
        "addr": f"{peer.host}:{peer.port}",
        "id": peer.node_id.hex(),
    })
    commands = {
        "add_nodes": peer.add_nodes,
        "routing_table": peer.routing_table,
        "get_peers": peer.get_peers,
        "announce": peer.announce,
        "put_immutable": peer.put_immutable,
        "get_immutable": peer.get_immutable,
        "put_mutable": peer.put_mutable,
        "get_mutable": peer.get_mutable,
        "sample_infohashes": peer.sample_infohashes,
        "traffic": peer.traffic,
    }
    import select

    try:
        while True:
            r, _, _ = select.select([sys.stdin], [], [], 0.2)
            if not r:
                peer.idle()
                continue
            line = sys.stdin.readline()
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            log(f"command: {line}")
            try:
                c = json.loads(line)
                name = c.get("cmd")
                if name == "quit":
                    out({"ok": True})
                    break
                fn = commands.get(name)
                if fn is None:
                    raise ValueError(f"unknown command {name!r}")
                res = fn(c, float(c.get("timeout", 20)))
                res["ok"] = True
                out(res)
            except Exception as e:  # reported to the test, which fails with it
                traceback.print_exc()
                out({"ok": False, "error": f"{type(e).__name__}: {e}"})
    finally:
        peer.close()


if __name__ == "__main__":
    main()
