"""What every libtorrent node of ours on a loopback network shares (imported by
libtorrent_peer.py and scripts/bench-libtorrent-node.py).

Only the DHT runs (no LSD, UPnP, NAT-PMP, peer connections), on one address in 127.0.0.0/8,
with no router nodes (the default list is public; bootstrap is add_dht_node with loopback
nodes only), and with the relaxations a loopback network needs (docs/INTEROP.md):
dht_restrict_routing_ips / dht_restrict_search_ips off (else one node per /24 is kept),
dht_enforce_node_id off (BEP 42 ids cannot match 127.x addresses).
"""

import ipaddress


def loopback(addr: str):
    """'ip:port' -> (ip, port), refusing anything outside 127.0.0.0/8."""
    host, port = addr.rsplit(":", 1)
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"{addr} is not a loopback address")
    return host, int(port)


def loopback_settings(host: str, port: int) -> dict:
    """The session settings shared by our libtorrent nodes; callers add their limits and
    alert mask."""
    return {
        "listen_interfaces": f"{host}:{port}",
        "outgoing_interfaces": "",
        "enable_dht": True,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "enable_outgoing_tcp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_tcp": False,
        "enable_incoming_utp": False,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_enforce_node_id": False,
        "dht_prefer_verified_node_ids": False,
        "dht_ignore_dark_internet": False,
        "dht_read_only": False,
    }
