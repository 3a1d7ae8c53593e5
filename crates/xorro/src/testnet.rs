//! `xorro testnet`: N nodes on 127.0.0.1 in one process, node 0 the one serving the HTTP
//! API, until Ctrl-C.
//!
//! The engine exempts loopback addresses from one-node-per-IP in the routing table and from
//! the per-IP rate limits by default, so its defaults suit a loopback network as they are.
//! The network forms as [`xorro_node::testnet`] describes: node 0 first, then all others at
//! once, each joining through a few running nodes, then rounds of lookups on every node until
//! the tables are full enough. The ready line says how long that took.

use std::time::{Duration, Instant};

use anyhow::Context;
use xorro_node::Dht;
use xorro_node::testnet::{self as net, full_enough};

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

    let started = Instant::now();
    let nodes = net::start(settings.nodes, settings.port)
        .await
        .context("cannot start the testnet")?;
    let node0 = nodes
        .first()
        .context("a testnet has at least one node")?
        .clone();
    let boot = node0.local_addr();

    let server = tokio::spawn(api::serve(listener, node0.clone()));
    outln!("testnet: {} nodes on 127.0.0.1, starting", nodes.len())?;
    outln!("bootstrap: {boot}")?;
    outln!("api: http://{api_addr} (node 0)")?;
    outln!(
        "try: xorro status | xorro routing-table | xorro announce <infohash> | xorro peers <infohash> | \
         xorro put hello | xorro get <target>"
    )?;
    if api_addr.to_string() != crate::settings::DEFAULT_API {
        outln!("     (with --api {api_addr}, or XORRO_API={api_addr} in the environment)")?;
    }

    tokio::select! {
        r = net::fill(&nodes, FILL_DEADLINE) => {
            let (avg, min) = r.context("a node stopped while the testnet formed")?;
            let n = nodes.len();
            if n > 1 && min == 0 {
                tracing::warn!(min, "some nodes found no contact");
            }
            let took = started.elapsed().as_secs_f64();
            let short = if full_enough(n, avg, min) {
                ""
            } else {
                ", short of full-enough tables"
            };
            outln!(
                "testnet ready: {n} nodes, {avg:.1} contacts each on average (fewest {min}), \
                 {took:.2} s after start{short}"
            )?;
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
    outln!("testnet: stopping")?;
    for n in nodes {
        // Nothing is persisted in a testnet; a node that already stopped is fine.
        let _ = n.shutdown().await;
    }
    Ok(())
}
