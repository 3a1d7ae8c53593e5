//! # xorro-dht: a sans-IO Kademlia node for the Mainline DHT
//!
//! (crate documentation is written with the node module)

pub mod ratelimit;
pub mod routing;
pub mod store;
pub mod tokens;
