//! `xorro testnet`: N nodes on 127.0.0.1 in one process, node 0 the bootstrap of the others
//! and the one serving the HTTP API, until Ctrl-C.
//!
//! The engine exempts loopback addresses from one-node-per-IP in the routing table and from
//! the per-IP rate limits by default, so its defaults suit a loopback network as they are.
//! All nodes start at once and bootstrap from node 0; then rounds of lookups for random
//! targets let them find each other until the tables are about as full as they can be.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;
use xorro_node::Dht;
use xorro_wire::NodeId;

use crate::settings::TestnetSettings;
use crate::{api, daemon, logging};

/// How long the testnet tries to fill the routing tables before saying it is ready anyway.
const FILL_DEADLINE: Duration = Duration::from_secs(30);

/// Runs the testnet.
pub fn run(settings: TestnetSettings) -> anyhow::Result<()> {
    logging::init(
        settings.log_format,
        "warn,xorro=info,xorro_node=warn,xorro_dht=warn",
    );
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(settings))
}

fn udp_addr(base: u16, i: usize) -> SocketAddr {
    let port = if base == 0 {
        0
    } else {
        u16::try_from(usize::from(base) + i).unwrap_or(0)
    };
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

async fn start_node(i: usize, base: u16, bootstrap: Option<SocketAddr>) -> anyhow::Result<Dht> {
    let builder = Dht::builder()
        .bind([udp_addr(base, i)])
        .public_bootstrap(false);
    let builder = match bootstrap {
        Some(b) => builder.bootstrap([b.to_string()]),
        None => builder,
    };
    builder
        .start()
        .await
        .with_context(|| format!("cannot start node {i}"))
}

async fn serve(settings: TestnetSettings) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.api)
        .await
        .map_err(|e| crate::error::Exit {
            code: crate::error::Code::Failed,
            message: format!("cannot listen for the HTTP API on {}: {e}", settings.api),
            hint: Some(
                "is a xorro node or testnet already running? pass another --api address".to_owned(),
            ),
        })?;
    let api_addr = listener
        .local_addr()
        .context("the API socket has no address")?;

    let node0 = start_node(0, settings.port, None).await?;
    let boot = node0.local_addr();
    let mut set = JoinSet::new();
    for i in 1..settings.nodes {
        let base = settings.port;
        set.spawn(async move { (i, start_node(i, base, Some(boot)).await) });
    }
    let mut nodes = vec![None; settings.nodes];
    nodes[0] = Some(node0.clone());
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.context("a node's start task failed")?;
        nodes[i] = Some(r?);
    }
    let nodes: Vec<Dht> = nodes.into_iter().flatten().collect();

    let server = tokio::spawn(api::serve(listener, node0.clone()));
    println!("testnet: {} nodes on 127.0.0.1, starting", nodes.len());
    println!("bootstrap: {boot}");
    println!("api: http://{api_addr} (node 0)");
    println!(
        "try: xorro status | xorro routing-table | xorro announce <infohash> | xorro peers <infohash> | \
         xorro put hello | xorro get <target>"
    );
    if api_addr.to_string() != crate::settings::DEFAULT_API {
        println!("     (with --api {api_addr}, or XORRO_API={api_addr} in the environment)");
    }

    tokio::select! {
        r = fill(&nodes) => {
            let (avg, min) = r?;
            let n = nodes.len();
            if n > 1 && min == 0 {
                tracing::warn!(min, "some nodes found no contact");
            }
            println!("testnet ready: {n} nodes, {avg:.1} contacts each on average (fewest {min})");
        }
        r = daemon::signal() => { r?; return shutdown(&nodes).await; }
    }
    tokio::select! {
        r = daemon::signal() => r?,
        r = server => {
            return match r {
                Ok(Ok(())) => Err(anyhow::anyhow!("the HTTP API stopped")),
                Ok(Err(e)) => Err(e).context("the HTTP API failed"),
                Err(e) => Err(e).context("the HTTP API task failed"),
            };
        }
    }
    shutdown(&nodes).await
}

async fn shutdown(nodes: &[Dht]) -> anyhow::Result<()> {
    println!("testnet: stopping");
    for n in nodes {
        // Nothing is persisted in a testnet; a node that already stopped is fine.
        let _ = n.shutdown().await;
    }
    Ok(())
}

/// Table sizes: (average, smallest).
async fn table_sizes(nodes: &[Dht]) -> anyhow::Result<(f64, usize)> {
    let mut total = 0;
    let mut min = usize::MAX;
    for n in nodes {
        let s = n.status().await.context("a node stopped")?;
        let size = s.table_v4 + s.table_v6;
        total += size;
        min = min.min(size);
    }
    let count = nodes.len().max(1);
    Ok((total as f64 / count as f64, min))
}

/// Runs rounds of random lookups on every node until the tables stop growing, are as full
/// as the network allows, or [`FILL_DEADLINE`] passes. Returns the final table sizes.
async fn fill(nodes: &[Dht]) -> anyhow::Result<(f64, usize)> {
    let deadline = Instant::now() + FILL_DEADLINE;
    let n = nodes.len();
    let mut last = (0.0, 0);
    let mut still = 0;
    loop {
        let (avg, min) = table_sizes(nodes).await?;
        // A node can know everyone else; in a large network, enough for lookups to work.
        let full = min + 1 >= n || (min >= 8 && avg >= 0.9 * (n - 1) as f64);
        if full || Instant::now() >= deadline {
            return Ok((avg, min));
        }
        still = if avg <= last.0 { still + 1 } else { 0 };
        if still >= 3 && min > 0 {
            return Ok((avg, min));
        }
        last = (avg, min);
        let mut set = JoinSet::new();
        for node in nodes {
            let node = node.clone();
            set.spawn(async move {
                let _ = node
                    .find_node(NodeId::from(rand::random::<[u8; 20]>()))
                    .await;
            });
        }
        let round = tokio::time::timeout(Duration::from_secs(10), async {
            while set.join_next().await.is_some() {}
        });
        let _ = round.await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
