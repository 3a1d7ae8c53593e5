//! A network of nodes on 127.0.0.1 in one process: for examples, tests and trying things out.

use std::time::Duration;

use crate::{Dht, StartError};

/// Starts `n` nodes on 127.0.0.1 (ports chosen by the system, no public bootstrap): the first
/// alone, the others bootstrapping from it. Returns once every node knows `min(n - 1, 8)`
/// others, or after `wait` at most (the nodes keep filling their tables in the background).
pub async fn local_network(n: usize, wait: Duration) -> Result<Vec<Dht>, StartError> {
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let builder = Dht::builder()
            .bind([std::net::SocketAddr::from(([127, 0, 0, 1], 0))])
            .public_bootstrap(false)
            .bootstrap(
                nodes
                    .first()
                    .filter(|_| i > 0)
                    .map(|d: &Dht| d.local_addr().to_string()),
            );
        nodes.push(builder.start().await?);
    }
    let want = n.saturating_sub(1).min(8);
    let deadline = tokio::time::Instant::now() + wait;
    'wait: while tokio::time::Instant::now() < deadline {
        for d in &nodes {
            match d.status().await {
                Ok(s) if s.table_v4 + s.table_v6 >= want => {}
                _ => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue 'wait;
                }
            }
        }
        break;
    }
    Ok(nodes)
}
