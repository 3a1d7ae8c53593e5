//! Store a value and fetch it back (BEP 44 immutable item): the key is the SHA-1 of the
//! bencoded value, so whoever has the key can check what they got.
//!
//! `cargo run -p xorro-node --example store_value`

use std::error::Error;
use std::time::Duration;

use xorro_node::testnet::local_network;
use xorro_wire::value::Value;

#[tokio::main]
pub async fn main() -> Result<(), Box<dyn Error>> {
    let nodes = local_network(10, Duration::from_secs(10)).await?;

    // Values are bencoded: here a byte string.
    let value = Value::from("Hello World!").to_bytes();
    let put = nodes[2].put_immutable(value).await?;
    println!(
        "stored under {} on {} nodes",
        put.target,
        put.stored_at.len()
    );

    match nodes[6].get_immutable(put.target).await? {
        Some(bytes) => println!("fetched {}", String::from_utf8_lossy(&bytes)),
        None => println!("not found"),
    }

    for d in &nodes {
        d.shutdown().await?;
    }
    Ok(())
}
