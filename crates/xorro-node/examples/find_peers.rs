//! Find peers for an info-hash: start a small local network on 127.0.0.1, announce a peer
//! from one node, and look it up from another, printing peers as they arrive.
//!
//! `cargo run -p xorro-node --example find_peers`
//!
//! Against the real Mainline DHT, build one node with `Dht::builder().start()` (it
//! bootstraps from the public routers) and call `get_peers` the same way.

use std::error::Error;
use std::time::Duration;

use xorro_node::testnet::local_network;
use xorro_wire::InfoHash;

#[tokio::main]
pub async fn main() -> Result<(), Box<dyn Error>> {
    let nodes = local_network(10, Duration::from_secs(10)).await?;

    let info_hash: InfoHash = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a".parse()?;
    let announced = nodes[0].announce(info_hash, Some(51413)).await?;
    println!(
        "announced {info_hash} on port 51413 to {} nodes",
        announced.closest.len()
    );

    let mut peers = nodes[7].get_peers(info_hash).await?;
    while let Some(batch) = peers.next().await {
        for peer in batch {
            println!("peer {peer}");
        }
    }
    let result = peers.finish().await?;
    println!(
        "{} peers in {:?} ({} queries)",
        result.peers.len(),
        result.stats.duration,
        result.stats.messages_sent
    );

    for d in &nodes {
        d.shutdown().await?;
    }
    Ok(())
}
