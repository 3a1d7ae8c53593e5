//! # xorro-node: the Xorro DHT node on tokio
//!
//! The runtime around the sans-IO engine ([`xorro_dht::Node`]): one driver task owns the UDP
//! sockets (IPv4, and IPv6 when the host has it: BEP 32 dual stack) and the engine, and runs
//! the drain loop of DESIGN.md. [`Dht`] is the cloneable async handle to it:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use xorro_node::Dht;
//! use xorro_wire::InfoHash;
//!
//! let dht = Dht::builder().port(0).bootstrap(["127.0.0.1:6881"]).public_bootstrap(false).start().await?;
//! let info_hash: InfoHash = "0123456789abcdef0123456789abcdef01234567".parse()?;
//! let mut peers = dht.get_peers(info_hash).await?;
//! while let Some(batch) = peers.next().await {
//!     println!("{batch:?}");
//! }
//! dht.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! With a data directory ([`DhtBuilder::data_dir`]) the node keeps its id, token secrets,
//! routing table, the data it stores for others, and its own announcements and puts in a
//! redb database ([`storage`]); it restarts warm and keeps republishing what it published.

mod dht;
mod driver;
pub mod probe;
pub mod storage;
pub mod testnet;

pub use dht::{
    ANNOUNCE_INTERVAL, Contact, DEFAULT_PORT, Dht, DhtBuilder, DhtError, LatencyHistogram,
    MutableItem, PUBLIC_ROUTERS, PUT_INTERVAL, PeerStream, PeersResult, PutResult, SocketErrors,
    StartError, Status,
};
