//! Publish and update a mutable record (BEP 44): an ed25519 key and a salt name the record;
//! each update carries a higher sequence number and the publisher's signature, so readers get
//! the newest version and can verify it.
//!
//! `cargo run -p xorro-node --example mutable_record`

use std::error::Error;
use std::time::Duration;

use xorro_node::testnet::local_network;
use xorro_wire::bep44::Keypair;
use xorro_wire::value::Value;

#[tokio::main]
pub async fn main() -> Result<(), Box<dyn Error>> {
    let nodes = local_network(10, Duration::from_secs(10)).await?;

    // In a real program, keep the seed secret and reuse it: it is the record's identity.
    let keypair = Keypair::from_seed([42; 32]);
    let salt = b"status".to_vec();
    for text in ["online", "away"] {
        let value = Value::from(text).to_bytes();
        let put = nodes[1]
            .put_mutable(keypair.clone(), salt.clone(), value, None, None)
            .await?;
        println!(
            "published {text:?} as seq {:?} on {} nodes",
            put.seq,
            put.stored_at.len()
        );
    }

    if let Some(item) = nodes[5].get_mutable(keypair.public_key(), salt).await? {
        println!(
            "read seq {}: {}",
            item.seq,
            String::from_utf8_lossy(&item.value)
        );
    }

    for d in &nodes {
        d.shutdown().await?;
    }
    Ok(())
}
