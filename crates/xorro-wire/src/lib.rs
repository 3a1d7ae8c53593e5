//! # xorro-wire: the Mainline DHT wire format
//!
//! Bytes in, typed KRPC messages out, and back: BEP 5 (ping, find_node, get_peers,
//! announce_peer), BEP 32 (IPv6 `nodes6`, `want`), BEP 33 (scrape Bloom filters), BEP 42
//! (secure node ids, `ip`), BEP 43 (`ro`), BEP 44 (get/put of immutable and mutable items),
//! BEP 51 (`sample_infohashes`).
//!
//! This crate does no I/O, reads no clock and draws no random numbers. It may be fed any
//! bytes from the network:
//!
//! * [`decode`](fn@decode) never panics and never allocates: a [`Message`] borrows the
//!   datagram. Nesting is bounded ([`decode::MAX_DEPTH`]); unknown keys are ignored. A
//!   [`DecodeError`] tells a server which KRPC error to answer with
//!   ([`DecodeError::reply`]): 203 for malformed input, 204 for an unknown method, nothing
//!   when there is no transaction id.
//! * [`encode`](fn@encode) writes canonical bencode (sorted keys) into a reused `Vec<u8>` and
//!   never produces a datagram over [`MAX_DATAGRAM_LEN`] bytes: long `values` lists are
//!   trimmed.
//!
//! ```
//! use xorro_wire::{Body, Message, NodeId, Query, QueryKind, TransactionId, decode, encode};
//!
//! let ping = Message {
//!     transaction_id: TransactionId::from_u16(1),
//!     version: None,
//!     requester_ip: None,
//!     read_only: false,
//!     body: Body::Query(Query { id: NodeId::ZERO, kind: QueryKind::Ping }),
//! };
//! let mut buf = Vec::new();
//! encode(&ping, &mut buf).unwrap();
//! assert_eq!(decode(&buf).unwrap(), ping);
//! ```

pub mod bep33;
pub mod bep42;
pub mod bep44;
pub mod bytes;
pub mod compact;
pub mod decode;
pub mod encode;
pub mod id;
pub mod message;
pub mod value;

pub use bytes::{PublicKey, Signature, Token, TokenRef, TransactionId};
pub use compact::{CompactAddr, Family, NodeInfo, Nodes, Peers, Samples};
pub use decode::{DecodeError, DecodeErrorKind, decode};
pub use encode::{EncodeError, MAX_DATAGRAM_LEN, encode, encode_append, encode_with_limit};
pub use id::{Distance, ID_LEN, InfoHash, NodeId, ParseIdError};
pub use message::{
    BloomBytes, Body, ErrorBody, ErrorCode, Message, MutablePut, PublicKeyBytes, PutQuery, Query,
    QueryKind, RawValue, Response, SignatureBytes, Want,
};
