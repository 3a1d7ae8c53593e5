#!/usr/bin/env python3
"""Capture golden KRPC datagrams from a real third-party Mainline DHT client.

This is a minimal hand-written KRPC peer (stdlib only, plus the `cryptography`
package for the ed25519 signature of one BEP 44 mutable put, if installed). It:

1. binds a UDP socket on 127.0.0.1 and starts the third-party client (a small
   driver script: lt_client.py or js_client.mjs) with this socket as its one and
   only bootstrap node;
2. answers every query the client sends (find_node, get_peers, announce_peer,
   get, put, ...) sensibly enough for the client to proceed: tokens, `nodes`
   holding only this peer, and stored BEP 44 items;
3. queries the client itself (ping, find_node, get_peers, announce_peer, get,
   put, sample_infohashes, unknown methods, malformed queries) and records its
   responses and error replies;
4. writes the first datagram of each kind, raw bytes, to OUT_DIR/<kind>.bin, and
   every datagram (both ways) to a JSON-lines log.

Traffic goes only to 127.0.0.0/8: the socket is bound to 127.0.0.1, replies go to
the source address of a received query, which must be a loopback address, and
nothing else is ever addressed.

Usage:
    capture.py --client {libtorrent,bittorrent-dht} --out DIR [--log FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# --------------------------------------------------------------------------- bencode


class BencodeError(ValueError):
    pass


def bencode(obj) -> bytes:
    """Canonical bencode: dict keys sorted as raw byte strings."""
    if isinstance(obj, bool):
        raise TypeError("bool is not bencodable")
    if isinstance(obj, int):
        return b"i%de" % obj
    if isinstance(obj, str):
        obj = obj.encode()
    if isinstance(obj, (bytes, bytearray)):
        return b"%d:%s" % (len(obj), bytes(obj))
    if isinstance(obj, (list, tuple)):
        return b"l" + b"".join(bencode(x) for x in obj) + b"e"
    if isinstance(obj, dict):
        items = sorted(((k.encode() if isinstance(k, str) else k), v) for k, v in obj.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(obj)}")


def bdecode(buf: bytes):
    """Decode one bencoded value. Dicts keep wire order (bytes keys)."""

    def parse(i: int):
        if i >= len(buf):
            raise BencodeError("truncated")
        c = buf[i : i + 1]
        if c == b"i":
            j = buf.index(b"e", i)
            return int(buf[i + 1 : j]), j + 1
        if c == b"l":
            i += 1
            out = []
            while buf[i : i + 1] != b"e":
                v, i = parse(i)
                out.append(v)
            return out, i + 1
        if c == b"d":
            i += 1
            out = {}
            while buf[i : i + 1] != b"e":
                k, i = parse(i)
                if not isinstance(k, bytes):
                    raise BencodeError("non-string key")
                v, i = parse(i)
                out[k] = v
            return out, i + 1
        if c.isdigit():
            j = buf.index(b":", i)
            n = int(buf[i:j])
            if j + 1 + n > len(buf):
                raise BencodeError("truncated string")
            return buf[j + 1 : j + 1 + n], j + 1 + n
        raise BencodeError(f"bad byte {c!r} at {i}")

    try:
        v, end = parse(0)
    except (ValueError, IndexError) as e:
        raise BencodeError(str(e)) from e
    if end != len(buf):
        raise BencodeError(f"{len(buf) - end} trailing bytes")
    return v


def keys_sorted(v) -> bool:
    """True when every dict in v has its keys in canonical (sorted) wire order."""
    if isinstance(v, dict):
        ks = list(v.keys())
        return ks == sorted(ks) and all(keys_sorted(x) for x in v.values())
    if isinstance(v, list):
        return all(keys_sorted(x) for x in v)
    return True


def show(v, depth=0):
    """Short human-readable rendering of a decoded message."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k.decode('latin1')}: {show(x, depth + 1)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(show(x, depth + 1) for x in v) + "]"
    if isinstance(v, bytes):
        if v and all(32 <= b < 127 for b in v) and len(v) <= 64:
            return repr(v.decode())
        return f"<{len(v)}B {v[:8].hex()}{'..' if len(v) > 8 else ''}>"
    return repr(v)


# --------------------------------------------------------------------------- BEP 44 helpers


def sha1(b: bytes) -> bytes:
    return hashlib.sha1(b).digest()


def sig_payload(seq: int, v_bencoded: bytes, salt: bytes | None) -> bytes:
    out = b""
    if salt:
        out += b"4:salt" + bencode(salt)
    return out + b"3:seqi%de1:v" % seq + v_bencoded


def ed25519_keypair(seed: bytes):
    """(sign(msg) -> 64B sig, public key 32B) or None when `cryptography` is missing."""
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    except ImportError:
        return None
    sk = Ed25519PrivateKey.from_private_bytes(seed)
    pk = sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return sk.sign, pk


# Fixed material so that what the harness sends is the same every run.
HARNESS_ID = sha1(b"xorro capture harness node id")
HARNESS_TOKEN = b"xorrotok"
HARNESS_SEED = sha1(b"xorro capture harness ed25519 seed") + b"\0" * 12
CLIENT_SEED = sha1(b"xorro capture client ed25519 seed") + b"\0" * 12
CLIENT_INFO_HASH = sha1(b"xorro capture: info-hash the client announces")
HARNESS_INFO_HASH = sha1(b"xorro capture: info-hash the harness announces")
HARNESS_SALT = b"xorro-harness-salt"
CLIENT_SALT = b"xorro-client-salt"

# --------------------------------------------------------------------------- harness


def is_loopback(addr) -> bool:
    return ipaddress.ip_address(addr[0]).is_loopback


def compact_node(node_id: bytes, addr) -> bytes:
    return node_id + socket.inet_aton(addr[0]) + addr[1].to_bytes(2, "big")


class Harness:
    def __init__(self, client: str, out_dir: Path, log_path: Path, timeout: float):
        self.client = client
        self.out_dir = out_dir
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.addr = self.sock.getsockname()
        self.me = compact_node(HARNESS_ID, self.addr)
        self.log = open(log_path, "w")
        self.log_path = log_path
        self.captured: dict[str, bytes] = {}
        self.client_addr = None
        self.items: dict[bytes, dict] = {}  # BEP 44 items the client put here
        self.pending: dict[bytes, str] = {}  # tid -> step name
        self.tid_counter = 0
        self.client_done = threading.Event()
        self.proc = None
        self.t0 = time.monotonic()

    # -- I/O

    def record(self, direction: str, data: bytes, peer, kind: str | None):
        self.log.write(
            json.dumps(
                {
                    "t": round(time.monotonic() - self.t0, 3),
                    "dir": direction,
                    "peer": f"{peer[0]}:{peer[1]}",
                    "kind": kind,
                    "hex": data.hex(),
                }
            )
            + "\n"
        )
        self.log.flush()
        if direction == "in" and kind and kind not in self.captured:
            self.captured[kind] = data
            (self.out_dir / f"{kind}.bin").write_bytes(data)
            print(f"[capture] {kind:40s} {len(data):4d}B", file=sys.stderr)

    def send(self, data: bytes, peer, kind: str):
        if not is_loopback(peer):  # hard rule: loopback only
            raise RuntimeError(f"refusing to send to non-loopback {peer}")
        self.sock.sendto(data, peer)
        self.record("out", data, peer, kind)

    # -- answering the client's queries

    def answer(self, msg: dict, peer):
        t = msg.get(b"t", b"")
        q = msg.get(b"q", b"")
        a = msg.get(b"a") if isinstance(msg.get(b"a"), dict) else {}
        q = q.decode("latin1") if isinstance(q, bytes) else "?"
        r: dict = {b"id": HARNESS_ID}
        if q == "ping" or q == "announce_peer":
            pass
        elif q == "find_node":
            r[b"nodes"] = self.me
        elif q == "get_peers":
            r[b"token"] = HARNESS_TOKEN
            r[b"nodes"] = self.me
        elif q == "get":
            r[b"token"] = HARNESS_TOKEN
            r[b"nodes"] = self.me
            item = self.items.get(a.get(b"target", b""))
            if item:
                r.update(item)
        elif q == "put":
            if b"v" in a:
                v = bencode(a[b"v"])
                if b"k" in a:
                    target = sha1(a[b"k"] + a.get(b"salt", b""))
                    self.items[target] = {b"v": a[b"v"], b"k": a[b"k"], b"sig": a.get(b"sig", b""), b"seq": a.get(b"seq", 0)}
                else:
                    self.items[sha1(v)] = {b"v": a[b"v"]}
        elif q == "sample_infohashes":
            r.update({b"interval": 21600, b"num": 1, b"samples": CLIENT_INFO_HASH, b"nodes": self.me})
        else:
            err = {b"t": t, b"y": b"e", b"e": [204, b"Method Unknown"]}
            self.send(bencode(err), peer, f"reply_to_{q}")
            return
        self.send(bencode({b"t": t, b"y": b"r", b"r": r}), peer, f"reply_to_{q}")

    @staticmethod
    def query_kind(msg: dict) -> str:
        q = msg.get(b"q", b"?")
        q = q.decode("latin1") if isinstance(q, bytes) else "?"
        a = msg.get(b"a") if isinstance(msg.get(b"a"), dict) else {}
        if q == "put":
            return "query_put_mutable" if b"k" in a else "query_put_immutable"
        if q == "get_peers" and a.get(b"info_hash") != CLIENT_INFO_HASH:
            # Not the torrent lookup: libtorrent bootstraps and refreshes with get_peers.
            return "query_get_peers_bootstrap" if b"bs" in a else "query_get_peers_refresh"
        return "query_" + "".join(c if c.isalnum() or c == "_" else "_" for c in q)

    # -- querying the client

    def next_tid(self) -> bytes:
        self.tid_counter += 1
        return b"x" + self.tid_counter.to_bytes(2, "big")  # 3 bytes: not the usual 2

    def query(self, name: str, q: str, a: dict, extra: dict | None = None):
        tid = self.next_tid()
        msg = {b"t": tid, b"y": b"q", b"q": q, b"a": {b"id": HARNESS_ID, **a}}
        if extra:
            msg.update(extra)
        self.send_raw_query(name, bencode(msg), tid)
        return tid

    def send_raw_query(self, name: str, data: bytes, tid: bytes | None):
        if tid is not None:
            self.pending[tid] = name
        self.send(data, self.client_addr, f"ask_{name}")

    def pump(self, until: float, want_tid: bytes | None = None):
        """Handle datagrams until `until`; return the reply to want_tid if it arrives."""
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], min(left, 0.2))
            if not ready:
                continue
            data, peer = self.sock.recvfrom(65535)
            if not is_loopback(peer):
                self.record("in", data, peer, None)
                continue
            try:
                msg = bdecode(data)
                if not isinstance(msg, dict):
                    raise BencodeError("not a dict")
            except BencodeError:
                self.record("in", data, peer, "invalid_from_client")
                continue
            y = msg.get(b"y")
            if y == b"q":
                if self.client_addr is None:
                    self.client_addr = peer
                    print(f"[capture] client DHT socket is {peer[0]}:{peer[1]}", file=sys.stderr)
                self.record("in", data, peer, self.query_kind(msg))
                self.answer(msg, peer)
            elif y in (b"r", b"e"):
                tid = msg.get(b"t")
                name = self.pending.pop(tid, None)
                if name is None:
                    self.record("in", data, peer, None)
                    continue
                # Steps named "_..." only fetch a token: logged, not kept as fixtures.
                kind = ("error_" if y == b"e" else "response_") + name.lstrip("_")
                self.record("in", data, peer, None if name.startswith("_") else kind)
                if tid == want_tid:
                    return msg
            else:
                self.record("in", data, peer, "unknown_y_from_client")

    def ask(self, name: str, q: str, a: dict, wait: float = 2.0, tries: int = 2):
        for _ in range(tries):
            tid = self.query(name, q, a)
            reply = self.pump(time.monotonic() + wait, tid)
            if reply is not None:
                return reply
            self.pending.pop(tid, None)
        print(f"[capture] no reply to {name}", file=sys.stderr)
        return None

    def ask_raw(self, name: str, data: bytes, tid: bytes | None, wait: float = 2.0):
        self.send_raw_query(name, data, tid)
        reply = self.pump(time.monotonic() + wait, tid)
        if reply is None:
            if tid is not None:
                self.pending.pop(tid, None)
            print(f"[capture] no reply to {name}", file=sys.stderr)
        return reply

    @staticmethod
    def token_of(reply) -> bytes:
        if reply and isinstance(reply.get(b"r"), dict):
            return reply[b"r"].get(b"token", b"")
        return b""

    def active_steps(self):
        """Query the client: every request whose answer we want as a fixture."""
        ask = self.ask
        ask("ping", "ping", {})
        ask("find_node", "find_node", {b"target": sha1(b"xorro find_node target")})
        ask("find_node_want", "find_node", {b"target": sha1(b"xorro find_node target"), b"want": [b"n4", b"n6"]})  # BEP 32

        # BEP 5 get_peers / announce_peer, then get_peers again to see `values`.
        ih = HARNESS_INFO_HASH
        tok = self.token_of(ask("get_peers_nodes", "get_peers", {b"info_hash": ih}))
        ask("announce_peer", "announce_peer", {b"info_hash": ih, b"port": 6881, b"token": tok})
        ask("get_peers_values", "get_peers", {b"info_hash": ih})
        ask("get_peers_scrape", "get_peers", {b"info_hash": ih, b"scrape": 1})  # BEP 33
        ask("announce_peer_bad_token", "announce_peer", {b"info_hash": ih, b"port": 6881, b"token": b"not-a-token"})

        # BEP 44 immutable: get (nothing stored yet), put, get.
        v_imm = b"xorro immutable item from the capture harness"
        t_imm = sha1(bencode(v_imm))
        tok = self.token_of(ask("get_nodes", "get", {b"target": t_imm}))
        ask("put_immutable", "put", {b"token": tok, b"v": v_imm})
        ask("get_immutable", "get", {b"target": t_imm})

        # BEP 44 mutable with salt: get (token), put seq 1, get, then the error cases.
        keys = ed25519_keypair(HARNESS_SEED)
        if keys is None:
            print("[capture] python `cryptography` missing: skipping harness mutable puts", file=sys.stderr)
        else:
            sign, pk = keys
            t_mut = sha1(pk + HARNESS_SALT)
            v_mut = b"xorro mutable item from the capture harness"
            tok_m = self.token_of(ask("_get_mutable_empty", "get", {b"target": t_mut}))

            def put(name, seq, v=v_mut, salt=HARNESS_SALT, extra=None, bad_sig=False):
                sig = sign(sig_payload(seq, bencode(v), salt))
                if bad_sig:
                    sig = bytes([sig[0] ^ 1]) + sig[1:]
                a = {b"token": tok_m, b"k": pk, b"seq": seq, b"sig": sig, b"v": v}
                if salt is not None:
                    a[b"salt"] = salt
                a.update(extra or {})
                return ask(name, "put", a)

            put("put_mutable", 1)
            ask("get_mutable", "get", {b"target": t_mut})
            ask("get_mutable_seq_current", "get", {b"target": t_mut, b"seq": 1})
            put("put_mutable_seq_too_low", 0, v=b"older value")
            put("put_mutable_cas_mismatch", 2, v=b"newer value", extra={b"cas": 7})
            put("put_mutable_bad_signature", 3, v=b"forged value", bad_sig=True)
            long_salt = b"s" * 65
            tok_m_saved = tok_m
            tok_m = self.token_of(ask("_get_for_long_salt", "get", {b"target": sha1(pk + long_salt)})) or tok_m_saved
            put("put_mutable_salt_too_long", 1, salt=long_salt)
            tok_m = tok_m_saved

        big = b"b" * 1001
        tok = self.token_of(ask("_get_for_big_value", "get", {b"target": sha1(bencode(big))}))
        ask("put_immutable_too_big", "put", {b"token": tok, b"v": big})
        ask("put_immutable_bad_token", "put", {b"token": b"not-a-token", b"v": b"x"})

        # BEP 51.
        ask("sample_infohashes", "sample_infohashes", {b"target": sha1(b"xorro sample target")})

        # Unknown methods, with and without a target (BEP 5 forward compatibility).
        ask("unknown_method_with_target", "xorro_unknown", {b"target": sha1(b"xorro unknown target")})
        ask("unknown_method", "xorro_unknown", {})

        # Malformed queries.
        tid = self.next_tid()
        self.ask_raw("malformed", bencode({b"t": tid, b"y": b"q", b"q": b"ping"}), tid)  # no `a`
        tid = self.next_tid()
        self.ask_raw("missing_id", bencode({b"t": tid, b"y": b"q", b"q": b"ping", b"a": {}}), tid)
        ask("find_node_missing_target", "find_node", {})
        ask("get_peers_missing_info_hash", "get_peers", {})
        ask("get_peers_short_info_hash", "get_peers", {b"info_hash": b"short"})
        tid = self.next_tid()
        good = bencode({b"t": tid, b"y": b"q", b"q": b"ping", b"a": {b"id": HARNESS_ID}})
        self.ask_raw("invalid_bencode", good[:-2], tid)  # truncated: not valid bencode
        tid = self.next_tid()
        self.ask_raw("missing_y", bencode({b"t": tid, b"q": b"ping", b"a": {b"id": HARNESS_ID}}), tid)

    # -- driver

    def client_cmd(self) -> list[str]:
        hp = f"{self.addr[0]}:{self.addr[1]}"
        keys = ed25519_keypair(CLIENT_SEED)
        pk = keys[1].hex() if keys else ""
        common = [
            "--harness", hp,
            "--info-hash", CLIENT_INFO_HASH.hex(),
            "--seed", CLIENT_SEED.hex(),
            "--pubkey", pk,
            "--salt", CLIENT_SALT.decode(),
        ]
        if self.client == "libtorrent":
            py = os.environ.get("LT_PYTHON", "/usr/bin/python3")
            return [py, str(HERE / "lt_client.py"), *common]
        node = os.environ.get("NODE", "node")
        return [node, str(HERE / "js_client.mjs"), *common]

    def run(self):
        cmd = self.client_cmd()
        print(f"[capture] harness on {self.addr[0]}:{self.addr[1]}; starting {' '.join(cmd)}", file=sys.stderr)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read_client, daemon=True).start()
        deadline = self.t0 + self.timeout
        try:
            # Wait for the client to bootstrap from us (its first query tells us its address).
            while self.client_addr is None and time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SystemExit(f"client exited early with {self.proc.returncode}")
                self.pump(time.monotonic() + 0.5)
            if self.client_addr is None:
                raise SystemExit("client never contacted the harness")
            self.pump(time.monotonic() + 1.0)
            self.active_steps()
            # Keep answering until the client has done its own queries.
            while not self.client_done.is_set() and time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                self.pump(time.monotonic() + 0.5)
            if not self.client_done.is_set():
                print("[capture] client did not finish its steps in time", file=sys.stderr)
            self.pump(time.monotonic() + 1.0)
        finally:
            if self.proc.poll() is None:
                try:
                    self.proc.stdin.close()
                    self.proc.wait(timeout=15)
                except (subprocess.TimeoutExpired, BrokenPipeError):
                    self.proc.kill()
                    self.proc.wait()
            self.log.close()
        return self.client_done.is_set()

    def _read_client(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            print(f"[{self.client}] {line}", file=sys.stderr)
            if line.strip() == "DONE":
                self.client_done.set()


def summarize(out_dir: Path):
    """Print per-fixture facts that the README's deviation notes are drawn from."""
    for f in sorted(out_dir.glob("*.bin")):
        data = f.read_bytes()
        try:
            msg = bdecode(data)
        except BencodeError as e:
            print(f"{f.name}: undecodable ({e})")
            continue
        t = msg.get(b"t", b"") if isinstance(msg, dict) else b""
        print(
            f"{f.name}: {len(data)}B tid={len(t)}B v={msg.get(b'v', b'-')!r} "
            f"sorted={keys_sorted(msg)} keys={[k.decode() for k in msg]}"
        )
        print(f"    {show(msg)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--client", choices=["libtorrent", "bittorrent-dht"], required=True)
    ap.add_argument("--out", type=Path, help="fixture dir (default: crates/xorro-wire/tests/fixtures/<client>)")
    ap.add_argument("--log", type=Path, help="JSON-lines log of every datagram (default: $TMPDIR)")
    ap.add_argument("--timeout", type=float, default=150.0, help="overall seconds")
    ap.add_argument("--summary", action="store_true", help="only print a summary of OUT's fixtures")
    args = ap.parse_args()
    out = args.out or REPO / "crates/xorro-wire/tests/fixtures" / args.client
    if args.summary:
        summarize(out)
        return
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.bin"):
        old.unlink()
    log = args.log or Path(os.environ.get("TMPDIR", "/tmp")) / f"xorro-capture-{args.client}.jsonl"
    h = Harness(args.client, out, log, args.timeout)
    ok = h.run()
    print(f"[capture] {len(h.captured)} fixtures in {out}; full log {log}", file=sys.stderr)
    summarize(out)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
