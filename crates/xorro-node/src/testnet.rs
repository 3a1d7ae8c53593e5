//! A network of nodes on 127.0.0.1 in one process: for examples, tests and trying things out.
//!
//! [`start`] binds every node, then each joins through a few nodes already up (its seeds:
//! node 0 and up to [`SEEDS`] - 1 others picked at random). [`fill`] then runs rounds of
//! lookups on every node at once for random targets in its [`FILL_BUCKETS`] farthest
//! buckets (all of them each round in a network of up to [`FILL_ALL_BUCKETS_MAX`] nodes, one
//! a round, in turn, in a larger one), until the routing tables are full enough
//! ([`full_enough`]): the way refresh lookups fill a real node's table, only back to back.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinSet;
use xorro_wire::NodeId;

use crate::{Dht, DhtError, StartError};

/// How many running nodes a joining node bootstraps from.
pub const SEEDS: usize = 4;

/// Fill lookups per node and round: one into each of this many farthest buckets.
pub const FILL_BUCKETS: usize = 4;

/// The largest network in which every node runs its [`FILL_BUCKETS`] fill lookups at once;
/// in a larger one, thousands of lookups at once would cost more memory and time than they
/// save.
pub const FILL_ALL_BUCKETS_MAX: usize = 256;

/// Starts `n` nodes on 127.0.0.1 (ports chosen by the system, no public bootstrap): the first
/// alone, the others bootstrapping from it. Returns once every node knows `min(n - 1, 8)`
/// others, or after `wait` at most (the nodes keep filling their tables in the background).
pub async fn local_network(n: usize, wait: Duration) -> Result<Vec<Dht>, StartError> {
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let builder = Dht::builder()
            .bind([SocketAddr::from(([127, 0, 0, 1], 0))])
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

/// The UDP address of node `i` of a testnet whose node 0 listens on `port` (0: any port).
pub fn node_addr(port: u16, i: usize) -> SocketAddr {
    let port = if port == 0 {
        0
    } else {
        u16::try_from(usize::from(port) + i).unwrap_or(0)
    };
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Why a testnet could not start.
#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    /// Node `index` did not start.
    #[error("cannot start node {index}: {source}")]
    Start {
        /// Which node.
        index: usize,
        /// Why.
        source: StartError,
    },
    /// A node stopped while the network was forming.
    #[error(transparent)]
    Node(#[from] DhtError),
}

/// Starts `n` nodes on 127.0.0.1, node `i` on UDP port `port + i` (all on ports the system
/// picks when `port` is 0). Node 0 starts alone; then all the others start at once, each
/// bootstrapping from node 0 and up to [`SEEDS`] - 1 other nodes picked at random. Returns
/// as soon as every node is bound; call [`fill`] to wait for full tables.
pub async fn start(n: usize, port: u16) -> Result<Vec<Dht>, TestnetError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let start_one = |i: usize, seeds: Vec<String>| async move {
        Dht::builder()
            .bind([node_addr(port, i)])
            .public_bootstrap(false)
            .bootstrap(seeds)
            .start()
            .await
            .map_err(|source| TestnetError::Start { index: i, source })
    };
    let node0 = start_one(0, Vec::new()).await?;
    let boot = node0.local_addr();
    // With fixed ports every address is known before the nodes start; with port 0 only
    // node 0's is, so the others join through it alone.
    let seeds_of = |i: usize| -> Vec<String> {
        let mut seeds = vec![boot.to_string()];
        if port != 0 && n > 2 {
            while seeds.len() < SEEDS.min(n - 1) {
                let j = 1 + rand::random::<u64>() as usize % (n - 1);
                let addr = node_addr(port, j).to_string();
                if j != i && !seeds.contains(&addr) {
                    seeds.push(addr);
                }
            }
        }
        seeds
    };
    let mut set = JoinSet::new();
    for i in 1..n {
        let fut = start_one(i, seeds_of(i));
        set.spawn(async move { (i, fut.await) });
    }
    let mut nodes: Vec<Option<Dht>> = vec![None; n];
    nodes[0] = Some(node0);
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.map_err(|_| TestnetError::Node(DhtError::Stopped))?;
        nodes[i] = Some(r?);
    }
    Ok(nodes.into_iter().flatten().collect())
}

/// Table sizes: (average, smallest).
pub async fn table_sizes(nodes: &[Dht]) -> Result<(f64, usize), DhtError> {
    let mut total = 0;
    let mut min = usize::MAX;
    for n in nodes {
        let s = n.status().await?;
        let size = s.table_v4 + s.table_v6;
        total += size;
        min = min.min(size);
    }
    let count = nodes.len().max(1);
    #[allow(clippy::cast_precision_loss)]
    Ok((total as f64 / count as f64, min.min(total)))
}

/// Whether tables of `avg` contacts on average and `min` at least are full enough in a
/// network of `n` nodes: every node knows all others, or at least 8 (k) and the average
/// node 90 % of the others.
pub fn full_enough(n: usize, avg: f64, min: usize) -> bool {
    #[allow(clippy::cast_precision_loss)]
    let others = n.saturating_sub(1) as f64;
    min + 1 >= n || (min >= 8 && avg >= 0.9 * others)
}

/// A random id in bucket `depth` of `id`'s table: it shares the first `depth` bits with
/// `id` and differs in the next.
fn target_in_bucket(id: NodeId, depth: usize) -> NodeId {
    let mut t: [u8; 20] = rand::random();
    let own = id.as_bytes();
    for bit in 0..=depth.min(159) {
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        let want = if bit == depth {
            !own[byte] & mask
        } else {
            own[byte] & mask
        };
        t[byte] = (t[byte] & !mask) | want;
    }
    NodeId::from(t)
}

/// Runs rounds of lookups on every node at once (see the module doc) until the tables are [`full_enough`], stop growing for three rounds, or `deadline`
/// passes. Returns the final table sizes.
pub async fn fill(nodes: &[Dht], deadline: Duration) -> Result<(f64, usize), DhtError> {
    let deadline = tokio::time::Instant::now() + deadline;
    let n = nodes.len();
    let mut ids = Vec::with_capacity(n);
    for node in nodes {
        ids.push(node.status().await?.id);
    }
    let mut last = 0.0;
    let mut still = 0;
    let mut round = 0;
    loop {
        let (avg, min) = table_sizes(nodes).await?;
        if full_enough(n, avg, min) || tokio::time::Instant::now() >= deadline {
            return Ok((avg, min));
        }
        still = if avg <= last { still + 1 } else { 0 };
        if still >= 3 && min > 0 {
            return Ok((avg, min));
        }
        last = avg;
        let mut set = JoinSet::new();
        let depths = if n <= FILL_ALL_BUCKETS_MAX {
            0..FILL_BUCKETS
        } else {
            let d = round % FILL_BUCKETS;
            d..d + 1
        };
        round += 1;
        for (node, id) in nodes.iter().zip(&ids) {
            for depth in depths.clone() {
                let node = node.clone();
                let target = target_in_bucket(*id, depth);
                set.spawn(async move {
                    // A lookup that fails leaves the table as it is; the next round retries.
                    let _ = node.find_node(target).await;
                });
            }
        }
        let _ =
            tokio::time::timeout_at(deadline, async { while set.join_next().await.is_some() {} })
                .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_fall_in_the_bucket_asked_for() {
        let id = NodeId::from(rand::random::<[u8; 20]>());
        for depth in [0, 1, 5, 8, 13, 159] {
            let t = target_in_bucket(id, depth);
            let d = id.distance(&t);
            assert_eq!(d.leading_zeros() as usize, depth, "depth {depth}");
        }
    }

    #[test]
    fn full_enough_rules() {
        assert!(full_enough(1, 0.0, 0));
        assert!(full_enough(5, 4.0, 4));
        assert!(!full_enough(5, 3.5, 3));
        assert!(full_enough(100, 90.0, 8));
        assert!(!full_enough(100, 89.0, 60));
        assert!(!full_enough(100, 95.0, 7));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_testnet_fills_its_tables() {
        let nodes = start(12, 0).await.unwrap();
        let (avg, min) = fill(&nodes, Duration::from_secs(20)).await.unwrap();
        assert!(full_enough(12, avg, min), "avg {avg}, min {min}");
        for n in &nodes {
            n.shutdown().await.unwrap();
        }
    }
}
