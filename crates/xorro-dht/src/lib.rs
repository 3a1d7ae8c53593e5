//! # xorro-dht: a sans-IO Kademlia node for the Mainline DHT
//!
//! [`Node`] is the whole DHT node of BEP 5 and its extensions as a state machine: a routing
//! table per address family, the server that answers queries, write tokens, the peer and
//! BEP 44 item stores, and iterative lookups (find_node, get_peers, announce, get/put,
//! sample_infohashes). It owns no socket, reads no clock and spawns nothing; its only
//! randomness is one RNG seeded from [`Config::rng_seed`]. The same seed and the same inputs
//! always give the same outputs, which is what lets the simulator run a million of them.
//!
//! ## The contract
//!
//! Inputs:
//! * [`Node::handle_datagram`]`(now, from, bytes)` — a UDP payload arrived;
//! * [`Node::handle_timeout`]`(now)` — the instant from [`Node::poll_timeout`] was reached;
//! * commands: [`Node::start_bootstrap`], [`Node::start_find_node`], [`Node::start_get_peers`],
//!   [`Node::start_announce`], [`Node::start_get_item`], [`Node::start_put_item`],
//!   [`Node::start_sample_infohashes`], [`Node::start_ping`] return a [`CommandId`];
//!   [`Node::cancel`] stops one.
//!
//! Outputs, drained **after every input, in this order**:
//! 1. [`Node::poll_transmit`] until `None` — datagrams to send;
//! 2. [`Node::poll_timeout`] — when to call `handle_timeout` next;
//! 3. [`Node::poll_event`] until `None` — peers found, items found, commands finished (each
//!    carrying its `CommandId`), data stored on us.
//!
//! Every queue is bounded ([`Config::transmit_queue_max`], [`Config::events_max`],
//! [`Config::requests_in_flight_max`], [`Config::lookups_max`], the store and routing caps);
//! what does not fit is dropped and counted in [`Stats`]. Bad input never panics: it is
//! answered with the KRPC error the BEPs name, or dropped and counted.
//!
//! Persistence: [`Node::snapshot`] gives everything needed to restart warm and
//! [`Node::restore`] takes it back.

pub mod cluster;
pub mod config;
pub mod event;
mod lookup;
mod node;
pub mod ratelimit;
pub mod reach;
pub mod routing;
mod rpc;
mod server;
pub mod store;
pub mod tokens;

pub use config::{Config, K, LOOKUP_ATTEMPTS};
pub use event::{
    CommandError, CommandId, DropCounts, Event, LookupStats, Outcome, QueryCounts, Scrape, Stats,
};
pub use node::{ItemTarget, MemoryUsage, Node, PutRequest, Snapshot, StartError};
pub use store::StoredItem as Item;
