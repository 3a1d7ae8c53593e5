//! The typed model of every KRPC message the Mainline DHT uses.
//!
//! A [`Message`] borrows the datagram it was decoded from (or the caller's data when it is
//! built to be encoded). Field names follow the BEPs; the bencode key is given in each doc.

use std::net::SocketAddr;
use std::time::Duration;

use crate::bytes::{TokenRef, TransactionId};
use crate::compact::{CompactAddr, Nodes, Peers, Samples};
use crate::id::{InfoHash, NodeId};

/// One KRPC message: the top-level dictionary of a datagram (BEP 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// `t`: chosen by the querier, echoed by the responder.
    pub transaction_id: TransactionId,
    /// `v`: the sender's client version (BEP 5 suggests 2 letters and 2 bytes of version).
    pub version: Option<&'a [u8]>,
    /// `ip`: BEP 42, the requester's address as the responder sees it, in compact form
    /// ([`Message::requester_addr`] converts it).
    pub requester_ip: Option<CompactAddr>,
    /// `ro`: BEP 43, the sender is read-only and must not be added to routing tables.
    pub read_only: bool,
    /// `y` and what goes with it.
    pub body: Body<'a>,
}

impl Message<'_> {
    /// `ip` (BEP 42) as a socket address.
    pub fn requester_addr(&self) -> Option<SocketAddr> {
        self.requester_ip.map(SocketAddr::from)
    }
}

/// `y`: a query (`q`), a response (`r`) or an error (`e`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    /// `y = q`: method `q` with arguments `a`.
    Query(Query<'a>),
    /// `y = r`: return values `r`.
    Response(Response<'a>),
    /// `y = e`: `e = [code, message]`.
    Error(ErrorBody<'a>),
}

/// A query: the sender's id and the method with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    /// `a.id`: the querying node.
    pub id: NodeId,
    /// `q` and the other keys of `a`.
    pub kind: QueryKind<'a>,
}

/// BEP 32 `want`: which address families the querier wants in `nodes` / `nodes6`.
///
/// The empty set means the key was absent: answer with the family the query came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Want {
    /// `n4`: IPv4 contacts in `nodes`.
    pub v4: bool,
    /// `n6`: IPv6 contacts in `nodes6`.
    pub v6: bool,
}

impl Want {
    /// No `want` key.
    pub const UNSPECIFIED: Want = Want {
        v4: false,
        v6: false,
    };
    /// `want: ["n4", "n6"]`.
    pub const BOTH: Want = Want { v4: true, v6: true };

    /// True when the key was absent (or named no family we know).
    pub fn is_unspecified(&self) -> bool {
        !self.v4 && !self.v6
    }
}

/// `q`: the method, with the arguments that belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKind<'a> {
    /// BEP 5 `ping`.
    Ping,
    /// BEP 5 `find_node`.
    FindNode {
        /// `target`.
        target: NodeId,
        /// `want` (BEP 32).
        want: Want,
    },
    /// BEP 5 `get_peers`.
    GetPeers {
        /// `info_hash`.
        info_hash: InfoHash,
        /// `want` (BEP 32).
        want: Want,
        /// `noseed = 1` (BEP 33): return only peers that are not seeds.
        no_seed: bool,
        /// `scrape = 1` (BEP 33): return the `BFsd` / `BFpe` Bloom filters.
        scrape: bool,
    },
    /// BEP 5 `announce_peer`.
    AnnouncePeer {
        /// `info_hash`.
        info_hash: InfoHash,
        /// `port`.
        port: u16,
        /// `implied_port = 1`: use the UDP source port instead of `port`.
        implied_port: bool,
        /// `token`: from an earlier `get_peers` reply to the same IP.
        token: TokenRef<'a>,
        /// `seed = 1` (BEP 33): the announcer is a seed.
        seed: bool,
    },
    /// BEP 44 `get`.
    Get {
        /// `target`: SHA-1 of the value (immutable) or of key and salt (mutable).
        target: NodeId,
        /// `seq`: only return the value if the stored seq is greater.
        seq: Option<i64>,
        /// `want` (BEP 32).
        want: Want,
    },
    /// BEP 44 `put`.
    Put(PutQuery<'a>),
    /// BEP 51 `sample_infohashes`.
    SampleInfohashes {
        /// `target`: where to return `nodes` around.
        target: NodeId,
        /// `want` (BEP 32).
        want: Want,
    },
    /// A method this codec does not know that carries a `target` or an `info_hash`: a
    /// server answers it like `find_node` (as libtorrent does, for forward compatibility).
    /// A method with neither is a [`DecodeError`](crate::DecodeError) with reply code 204.
    Unknown {
        /// `q`.
        method: &'a [u8],
        /// `target`, if present and 20 bytes.
        target: Option<NodeId>,
        /// `info_hash`, if present and 20 bytes.
        info_hash: Option<InfoHash>,
        /// `want` (BEP 32).
        want: Want,
    },
}

impl QueryKind<'_> {
    /// The method name as sent in `q`.
    pub fn method(&self) -> &[u8] {
        match self {
            QueryKind::Ping => b"ping",
            QueryKind::FindNode { .. } => b"find_node",
            QueryKind::GetPeers { .. } => b"get_peers",
            QueryKind::AnnouncePeer { .. } => b"announce_peer",
            QueryKind::Get { .. } => b"get",
            QueryKind::Put(_) => b"put",
            QueryKind::SampleInfohashes { .. } => b"sample_infohashes",
            QueryKind::Unknown { method, .. } => method,
        }
    }
}

/// BEP 44 `put` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutQuery<'a> {
    /// `token`: from an earlier `get` reply to the same IP.
    pub token: TokenRef<'a>,
    /// `v`: the value, any bencoded value of at most 1000 bytes (checked by the server).
    pub value: RawValue<'a>,
    /// The keys of a mutable item; `None` for an immutable one.
    pub mutable: Option<MutablePut<'a>>,
}

/// The keys of a BEP 44 mutable `put`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutablePut<'a> {
    /// `k`: the ed25519 public key (borrowed; [`crate::PublicKey`] owns one).
    pub key: &'a PublicKeyBytes,
    /// `sig`: signature over the signing buffer (see [`crate::bep44`]; borrowed,
    /// [`crate::Signature`] owns one).
    pub signature: &'a SignatureBytes,
    /// `seq`: the item's sequence number.
    pub seq: i64,
    /// `salt`: at most 64 bytes (checked by the server, error 207).
    pub salt: Option<&'a [u8]>,
    /// `cas`: only store if the current seq equals this (else error 301).
    pub cas: Option<i64>,
}

/// A bencoded value kept as its exact bytes (BEP 44 `v`), so that signatures over it verify.
///
/// Built by the decoder, or from bytes by [`RawValue::new`], which checks that they are exactly
/// one well-formed bencoded value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawValue<'a>(&'a [u8]);

impl<'a> RawValue<'a> {
    /// Checks that `bytes` hold exactly one bencoded value.
    pub fn new(bytes: &'a [u8]) -> Result<Self, crate::DecodeError> {
        crate::decode::check_value(bytes).map(|()| RawValue(bytes))
    }

    pub(crate) fn from_checked(bytes: &'a [u8]) -> Self {
        RawValue(bytes)
    }

    /// The bencoded bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

impl std::fmt::Debug for RawValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawValue({})", self.0.escape_ascii())
    }
}

/// BEP 33: a 256-byte Bloom filter (`BFsd` for seeds, `BFpe` for peers).
pub type BloomBytes = [u8; 256];

/// BEP 44: the bytes of an ed25519 public key (`k`), as a message borrows them.
pub type PublicKeyBytes = [u8; 32];

/// BEP 44: the bytes of an ed25519 signature (`sig`), as a message borrows them.
pub type SignatureBytes = [u8; 64];

/// `r`: the return values of any method. Which keys are present depends on the method that
/// was asked (known only to the querier, through the transaction id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response<'a> {
    /// `id`: the responding node.
    pub id: NodeId,
    /// `nodes`: IPv4 contacts close to the target.
    pub nodes: Option<Nodes<'a>>,
    /// `nodes6`: IPv6 contacts close to the target (BEP 32).
    pub nodes6: Option<Nodes<'a>>,
    /// `token`: write token for `announce_peer` / `put`.
    pub token: Option<TokenRef<'a>>,
    /// `values`: peers for the info-hash.
    pub values: Option<Peers<'a>>,
    /// `BFsd`: Bloom filter of seeds (BEP 33).
    pub seeds_bloom: Option<&'a BloomBytes>,
    /// `BFpe`: Bloom filter of peers (BEP 33).
    pub peers_bloom: Option<&'a BloomBytes>,
    /// `v`: a stored BEP 44 value.
    pub value: Option<RawValue<'a>>,
    /// `k`: the key of a mutable BEP 44 item.
    pub key: Option<&'a PublicKeyBytes>,
    /// `sig`: the signature of a mutable BEP 44 item.
    pub signature: Option<&'a SignatureBytes>,
    /// `seq`: the sequence number of a mutable BEP 44 item.
    pub seq: Option<i64>,
    /// `samples`: BEP 51 info-hash samples (present, maybe empty, in every reply to it).
    pub samples: Option<Samples<'a>>,
    /// `num`: BEP 51, how many info-hashes the node stores.
    pub num: Option<u64>,
    /// `interval`: BEP 51, how long to wait before asking the node again (0–6 h).
    pub interval: Option<Duration>,
}

impl Response<'_> {
    /// A response that carries only `id`.
    pub fn new(id: NodeId) -> Self {
        Response {
            id,
            nodes: None,
            nodes6: None,
            token: None,
            values: None,
            seeds_bloom: None,
            peers_bloom: None,
            value: None,
            key: None,
            signature: None,
            seq: None,
            samples: None,
            num: None,
            interval: None,
        }
    }
}

/// A KRPC error code (BEP 5, BEP 44).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub i64);

impl ErrorCode {
    /// BEP 5 201: Generic Error.
    pub const GENERIC: ErrorCode = ErrorCode(201);
    /// BEP 5 202: Server Error.
    pub const SERVER: ErrorCode = ErrorCode(202);
    /// BEP 5 203: Protocol Error, such as a malformed packet, invalid arguments, or bad token.
    pub const PROTOCOL: ErrorCode = ErrorCode(203);
    /// BEP 5 204: Method Unknown.
    pub const METHOD_UNKNOWN: ErrorCode = ErrorCode(204);
    /// BEP 44 205: message (v field) too big.
    pub const VALUE_TOO_BIG: ErrorCode = ErrorCode(205);
    /// BEP 44 206: invalid signature.
    pub const INVALID_SIGNATURE: ErrorCode = ErrorCode(206);
    /// BEP 44 207: salt (salt field) too big.
    pub const SALT_TOO_BIG: ErrorCode = ErrorCode(207);
    /// BEP 44 301: the CAS hash mismatched, re-read value and try again.
    pub const CAS_MISMATCH: ErrorCode = ErrorCode(301);
    /// BEP 44 302: sequence number less than current.
    pub const SEQ_TOO_LOW: ErrorCode = ErrorCode(302);

    /// The message the BEPs give for this code, used when we send it.
    pub fn default_message(self) -> &'static str {
        match self.0 {
            201 => "Generic Error",
            202 => "Server Error",
            203 => "Protocol Error",
            204 => "Method Unknown",
            205 => "Message (v field) too big",
            206 => "Invalid signature",
            207 => "Salt (salt field) too big",
            301 => "CAS mismatch, re-read value and try again",
            302 => "Sequence number less than current",
            _ => "Error",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0, self.default_message())
    }
}

/// `e`: an error reply, `[code, message]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody<'a> {
    /// The code.
    pub code: ErrorCode,
    /// The human-readable message (bytes: peers do not always send UTF-8).
    pub message: &'a [u8],
}

impl ErrorBody<'static> {
    /// An error with the BEP's message for `code`.
    pub fn from_code(code: ErrorCode) -> Self {
        ErrorBody {
            code,
            message: code.default_message().as_bytes(),
        }
    }
}
