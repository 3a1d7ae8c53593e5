//! Compact encodings of BEP 5 and BEP 32, and the borrowed lists that carry them.
//!
//! * peer info: 4-byte IPv4 + 2-byte port (6 bytes) or 16-byte IPv6 + port (18 bytes);
//! * node info: 20-byte id + peer info (26 bytes in `nodes`, 38 bytes in `nodes6`).
//!
//! Lists decoded from a datagram borrow it ([`Nodes::from_compact`], [`Peers`] over the raw
//! bencoded list); lists to encode borrow the caller's slice ([`Nodes::from_slice`]). Both
//! iterate the same way and compare equal when they hold the same items.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::id::{ID_LEN, InfoHash, NodeId};

/// BEP 5: compact IPv4 peer info is 6 bytes.
pub const PEER_V4_LEN: usize = 6;
/// BEP 32: compact IPv6 peer info is 18 bytes.
pub const PEER_V6_LEN: usize = 18;
/// BEP 5: compact IPv4 node info is 26 bytes.
pub const NODE_V4_LEN: usize = ID_LEN + PEER_V4_LEN;
/// BEP 32: compact IPv6 node info is 38 bytes.
pub const NODE_V6_LEN: usize = ID_LEN + PEER_V6_LEN;

/// A contact: a node id and the UDP address it answers on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeInfo {
    /// The node's id.
    pub id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
}

impl NodeInfo {
    /// A contact.
    pub fn new(id: NodeId, addr: SocketAddr) -> Self {
        Self { id, addr }
    }
}

impl fmt::Debug for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.addr)
    }
}

/// The address family of a compact list (`nodes` is IPv4, `nodes6` is IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address. Callers that receive on a dual-stack socket canonicalize
    /// IPv4-mapped addresses first (`SocketAddr::ip().to_canonical()`).
    pub fn of(addr: &SocketAddr) -> Family {
        Family::of_ip(addr.ip())
    }

    /// The family of an IP address (canonicalize IPv4-mapped ones first, as for
    /// [`Family::of`]).
    pub fn of_ip(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Length of a compact node info of this family.
    pub const fn node_len(self) -> usize {
        match self {
            Family::V4 => NODE_V4_LEN,
            Family::V6 => NODE_V6_LEN,
        }
    }

    /// Length of a compact peer info of this family.
    pub const fn peer_len(self) -> usize {
        match self {
            Family::V4 => PEER_V4_LEN,
            Family::V6 => PEER_V6_LEN,
        }
    }
}

/// Reads compact peer info of 6 or 18 bytes.
pub fn decode_peer(bytes: &[u8]) -> Option<SocketAddr> {
    match bytes.len() {
        PEER_V4_LEN => {
            let ip = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
            let port = u16::from_be_bytes([bytes[4], bytes[5]]);
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        PEER_V6_LEN => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&bytes[..16]);
            let port = u16::from_be_bytes([bytes[16], bytes[17]]);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                0,
                0,
            )))
        }
        _ => None,
    }
}

/// A UDP address in compact peer form, as BEP 42 `ip` carries it: 4-byte IPv4 or 16-byte
/// IPv6 address, then the port, big-endian. 19 bytes where a [`SocketAddr`] takes 32; convert
/// with [`CompactAddr::to_socket_addr`] or `From`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompactAddr {
    /// 6 bytes: IPv4 address and port.
    V4([u8; PEER_V4_LEN]),
    /// 18 bytes: IPv6 address and port.
    V6([u8; PEER_V6_LEN]),
}

impl CompactAddr {
    /// Reads compact peer info of 6 or 18 bytes; `None` for any other length.
    #[inline(always)]
    pub fn from_compact(bytes: &[u8]) -> Option<Self> {
        if let Ok(b) = <[u8; PEER_V4_LEN]>::try_from(bytes) {
            Some(CompactAddr::V4(b))
        } else {
            <[u8; PEER_V6_LEN]>::try_from(bytes)
                .ok()
                .map(CompactAddr::V6)
        }
    }

    /// The 6 or 18 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            CompactAddr::V4(b) => b,
            CompactAddr::V6(b) => b,
        }
    }

    /// The address (flow info and scope id of IPv6 are 0).
    pub fn to_socket_addr(&self) -> SocketAddr {
        match *self {
            CompactAddr::V4([a, b, c, d, p0, p1]) => SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::new(a, b, c, d),
                u16::from_be_bytes([p0, p1]),
            )),
            CompactAddr::V6(b) => {
                let (ip, port) = b.split_at(16);
                let ip = <[u8; 16]>::try_from(ip).unwrap_or_default();
                let port = <[u8; 2]>::try_from(port).unwrap_or_default();
                SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(ip),
                    u16::from_be_bytes(port),
                    0,
                    0,
                ))
            }
        }
    }
}

impl From<SocketAddr> for CompactAddr {
    fn from(addr: SocketAddr) -> Self {
        let [p0, p1] = addr.port().to_be_bytes();
        match addr.ip() {
            IpAddr::V4(ip) => {
                let [a, b, c, d] = ip.octets();
                CompactAddr::V4([a, b, c, d, p0, p1])
            }
            IpAddr::V6(ip) => {
                let mut out = [0u8; PEER_V6_LEN];
                out[..16].copy_from_slice(&ip.octets());
                out[16] = p0;
                out[17] = p1;
                CompactAddr::V6(out)
            }
        }
    }
}

impl From<CompactAddr> for SocketAddr {
    fn from(addr: CompactAddr) -> Self {
        addr.to_socket_addr()
    }
}

impl fmt::Debug for CompactAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompactAddr({})", self.to_socket_addr())
    }
}

impl fmt::Display for CompactAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_socket_addr().fmt(f)
    }
}

/// Writes compact peer info (6 bytes for IPv4, 18 for IPv6) to `out`.
pub fn encode_peer(addr: &SocketAddr, out: &mut Vec<u8>) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Reads one compact node info of 26 or 38 bytes.
pub fn decode_node(bytes: &[u8]) -> Option<NodeInfo> {
    if bytes.len() != NODE_V4_LEN && bytes.len() != NODE_V6_LEN {
        return None;
    }
    let id = NodeId::from_slice(&bytes[..ID_LEN])?;
    let addr = decode_peer(&bytes[ID_LEN..])?;
    Some(NodeInfo { id, addr })
}

/// Writes one compact node info to `out`.
pub fn encode_node(node: &NodeInfo, out: &mut Vec<u8>) {
    out.extend_from_slice(node.id.as_bytes());
    encode_peer(&node.addr, out);
}

#[derive(Clone, Copy)]
enum NodesRepr<'a> {
    Compact { bytes: &'a [u8], family: Family },
    Slice(&'a [NodeInfo]),
}

/// A list of contacts: the value of `nodes` (IPv4) or `nodes6` (IPv6).
///
/// When built from a slice, the encoder writes only the contacts of the field's family.
#[derive(Clone, Copy)]
pub struct Nodes<'a>(NodesRepr<'a>);

impl<'a> Nodes<'a> {
    /// Borrows concatenated compact node infos; `None` unless the length is a multiple of the
    /// family's node length.
    pub fn from_compact(bytes: &'a [u8], family: Family) -> Option<Self> {
        bytes
            .len()
            .is_multiple_of(family.node_len())
            .then_some(Nodes(NodesRepr::Compact { bytes, family }))
    }

    /// Borrows contacts to encode.
    pub fn from_slice(nodes: &'a [NodeInfo]) -> Self {
        Nodes(NodesRepr::Slice(nodes))
    }

    /// The contacts, in order.
    pub fn iter(&self) -> NodesIter<'a> {
        match self.0 {
            NodesRepr::Compact { bytes, family } => {
                NodesIter::Compact(bytes.chunks_exact(family.node_len()))
            }
            NodesRepr::Slice(s) => NodesIter::Slice(s.iter()),
        }
    }

    /// The compact bytes, when the list was decoded (and so holds only `family`).
    pub(crate) fn as_compact(&self, family: Family) -> Option<&'a [u8]> {
        match self.0 {
            NodesRepr::Compact { bytes, family: f } if f == family => Some(bytes),
            _ => None,
        }
    }

    /// The contacts, when the list borrows a slice of them.
    pub(crate) fn as_slice(&self) -> Option<&'a [NodeInfo]> {
        match self.0 {
            NodesRepr::Slice(s) => Some(s),
            NodesRepr::Compact { .. } => None,
        }
    }

    /// How many contacts.
    pub fn len(&self) -> usize {
        match self.0 {
            NodesRepr::Compact { bytes, family } => bytes.len() / family.node_len(),
            NodesRepr::Slice(s) => s.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Iterator over [`Nodes`].
#[derive(Debug, Clone)]
pub enum NodesIter<'a> {
    /// Over compact bytes.
    Compact(std::slice::ChunksExact<'a, u8>),
    /// Over a slice.
    Slice(std::slice::Iter<'a, NodeInfo>),
}

impl Iterator for NodesIter<'_> {
    type Item = NodeInfo;
    fn next(&mut self) -> Option<NodeInfo> {
        match self {
            NodesIter::Compact(c) => c.next().and_then(decode_node),
            NodesIter::Slice(s) => s.next().copied(),
        }
    }
}

impl PartialEq for Nodes<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}
impl Eq for Nodes<'_> {}

impl fmt::Debug for Nodes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[derive(Clone, Copy)]
enum PeersRepr<'a> {
    /// The inside of a bencoded list whose items were checked to be 6- or 18-byte strings.
    Bencoded {
        items: &'a [u8],
        count: usize,
    },
    Slice(&'a [SocketAddr]),
}

/// Peer addresses: the `values` of a `get_peers` response.
#[derive(Clone, Copy)]
pub struct Peers<'a>(PeersRepr<'a>);

impl<'a> Peers<'a> {
    /// Borrows addresses to encode.
    pub fn from_slice(peers: &'a [SocketAddr]) -> Self {
        Peers(PeersRepr::Slice(peers))
    }

    /// Wraps the inside of a bencoded list (without `l` and `e`) that the decoder checked to
    /// hold `count` strings of 6 or 18 bytes.
    pub(crate) fn from_bencoded(items: &'a [u8], count: usize) -> Self {
        Peers(PeersRepr::Bencoded { items, count })
    }

    /// The inside of the bencoded list and how many items it holds, when the list was
    /// decoded.
    pub(crate) fn as_bencoded(&self) -> Option<(&'a [u8], usize)> {
        match self.0 {
            PeersRepr::Bencoded { items, count } => Some((items, count)),
            PeersRepr::Slice(_) => None,
        }
    }

    /// The addresses, when the list borrows a slice of them.
    pub(crate) fn as_slice(&self) -> Option<&'a [SocketAddr]> {
        match self.0 {
            PeersRepr::Slice(s) => Some(s),
            PeersRepr::Bencoded { .. } => None,
        }
    }

    /// The addresses, in order.
    pub fn iter(&self) -> PeersIter<'a> {
        match self.0 {
            PeersRepr::Bencoded { items, .. } => PeersIter::Bencoded(items),
            PeersRepr::Slice(s) => PeersIter::Slice(s.iter()),
        }
    }

    /// How many addresses.
    pub fn len(&self) -> usize {
        match self.0 {
            PeersRepr::Bencoded { count, .. } => count,
            PeersRepr::Slice(s) => s.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Iterator over [`Peers`].
#[derive(Debug, Clone)]
pub enum PeersIter<'a> {
    /// Over `6:......` / `18:...` items.
    Bencoded(&'a [u8]),
    /// Over a slice.
    Slice(std::slice::Iter<'a, SocketAddr>),
}

impl Iterator for PeersIter<'_> {
    type Item = SocketAddr;
    fn next(&mut self) -> Option<SocketAddr> {
        match self {
            PeersIter::Bencoded(rest) => {
                // Items were validated by the decoder: "6:" + 6 bytes or "18:" + 18 bytes.
                let (len, skip) = match rest.first()? {
                    b'6' => (PEER_V4_LEN, 2),
                    _ => (PEER_V6_LEN, 3),
                };
                let item = rest.get(skip..skip + len)?;
                *rest = rest.get(skip + len..)?;
                decode_peer(item)
            }
            PeersIter::Slice(s) => s.next().copied(),
        }
    }
}

impl PartialEq for Peers<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}
impl Eq for Peers<'_> {}

impl fmt::Debug for Peers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[derive(Clone, Copy)]
enum SamplesRepr<'a> {
    Compact(&'a [u8]),
    Slice(&'a [InfoHash]),
}

/// BEP 51 `samples`: concatenated 20-byte info-hashes.
#[derive(Clone, Copy)]
pub struct Samples<'a>(SamplesRepr<'a>);

impl<'a> Samples<'a> {
    /// Borrows concatenated info-hashes; `None` unless the length is a multiple of 20.
    pub fn from_compact(bytes: &'a [u8]) -> Option<Self> {
        bytes
            .len()
            .is_multiple_of(ID_LEN)
            .then_some(Samples(SamplesRepr::Compact(bytes)))
    }

    /// Borrows info-hashes to encode.
    pub fn from_slice(hashes: &'a [InfoHash]) -> Self {
        Samples(SamplesRepr::Slice(hashes))
    }

    /// The concatenated info-hashes, when the list was decoded.
    pub(crate) fn as_compact(&self) -> Option<&'a [u8]> {
        match self.0 {
            SamplesRepr::Compact(b) => Some(b),
            SamplesRepr::Slice(_) => None,
        }
    }

    /// The info-hashes, in order.
    pub fn iter(&self) -> impl Iterator<Item = InfoHash> + 'a {
        let (compact, slice): (&'a [u8], &'a [InfoHash]) = match self.0 {
            SamplesRepr::Compact(b) => (b, &[]),
            SamplesRepr::Slice(s) => (&[], s),
        };
        compact
            .chunks_exact(ID_LEN)
            .filter_map(InfoHash::from_slice)
            .chain(slice.iter().copied())
    }

    /// How many info-hashes.
    pub fn len(&self) -> usize {
        match self.0 {
            SamplesRepr::Compact(b) => b.len() / ID_LEN,
            SamplesRepr::Slice(s) => s.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for Samples<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}
impl Eq for Samples<'_> {}

impl fmt::Debug for Samples<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_round_trip() {
        for s in ["1.2.3.4:6881", "[2001:db8::1]:51413"] {
            let a: SocketAddr = s.parse().unwrap();
            let mut out = Vec::new();
            encode_peer(&a, &mut out);
            assert_eq!(decode_peer(&out), Some(a));
        }
        assert_eq!(decode_peer(&[1, 2, 3]), None);
    }

    #[test]
    fn nodes_views_compare_equal() {
        let a = NodeInfo::new(NodeId([1; 20]), "127.0.0.1:1".parse().unwrap());
        let b = NodeInfo::new(NodeId([2; 20]), "127.0.0.2:2".parse().unwrap());
        let slice = [a, b];
        let mut bytes = Vec::new();
        for n in &slice {
            encode_node(n, &mut bytes);
        }
        let compact = Nodes::from_compact(&bytes, Family::V4).unwrap();
        assert_eq!(compact.len(), 2);
        assert_eq!(compact, Nodes::from_slice(&slice));
        assert!(Nodes::from_compact(&bytes[1..], Family::V4).is_none());
    }
}
