//! `xorro node`: the DHT node and its HTTP API, until SIGINT or SIGTERM.
//!
//! The first signal saves the node's state (`Dht::shutdown`) and exits 0; a second one while
//! saving exits at once with code 130.

use anyhow::Context;
use xorro_node::{Dht, StartError};

use crate::error::{Code, Exit};
use crate::settings::{DB_FILE, NodeSettings};
use crate::{api, logging};

/// Runs the daemon with `settings`.
pub fn run(settings: NodeSettings) -> anyhow::Result<()> {
    logging::init(settings.log_format, "info");
    // One thread: the node's driver answers from the thread that polls its sockets, with no
    // wakeup of another worker per batch (the HTTP API is light beside it).
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(settings))
}

async fn serve(settings: NodeSettings) -> anyhow::Result<()> {
    let dir = &settings.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    // Bind the API first: a port in use is found before the node touches its database.
    let listener = tokio::net::TcpListener::bind(settings.api)
        .await
        .map_err(|e| Exit {
            code: Code::Failed,
            message: format!("cannot listen for the HTTP API on {}: {e}", settings.api),
            hint: Some("is another xorro node running? pass another --api address".to_owned()),
        })?;
    let api_addr = listener
        .local_addr()
        .context("the API socket has no address")?;
    let mut builder = Dht::builder()
        .port(settings.port)
        .bootstrap(settings.bootstrap.clone())
        .public_bootstrap(settings.public_bootstrap)
        .read_only(settings.read_only);
    match settings.detect_unreachable {
        // Off: not even a node that finds itself behind NAT judges its reachability.
        Some(after) if after.is_zero() => {
            builder = builder.detect_unreachable_behind_nat(after);
        }
        Some(after) => builder = builder.detect_unreachable(after),
        None => {}
    }
    let dht = builder
        .data_dir(dir.clone())
        .start()
        .await
        .map_err(|e| start_error(e, &settings))?;
    tracing::info!(
        api = %api_addr,
        udp = ?dht.local_addrs(),
        data_dir = %dir.display(),
        bootstrap = ?settings.bootstrap,
        public_bootstrap = settings.public_bootstrap,
        "xorro node running"
    );
    let server = tokio::spawn(api::serve(listener, dht.clone()));

    tokio::select! {
        r = signal() => r?,
        r = server => {
            // The API stopped by itself: save and report.
            let _ = dht.shutdown().await;
            return match r {
                Ok(Ok(())) => Err(anyhow::anyhow!("the HTTP API stopped")),
                Ok(Err(e)) => Err(e).context("the HTTP API failed"),
                Err(e) => Err(e).context("the HTTP API task failed"),
            };
        }
    }
    tracing::info!("shutting down: saving the node's state (signal again to exit at once)");
    tokio::select! {
        r = dht.shutdown() => r.context("saving the node's state at shutdown failed")?,
        r = signal() => {
            r?;
            tracing::warn!("second signal: exiting without saving");
            std::process::exit(130);
        }
    }
    tracing::info!("state saved; bye");
    Ok(())
}

/// Why the node did not start, with what to do about it.
fn start_error(e: StartError, settings: &NodeSettings) -> anyhow::Error {
    let hint = match &e {
        StartError::Bind { .. } => {
            "another program uses this UDP port: pass another --port".to_owned()
        }
        StartError::Storage(_) => format!(
            "moving {} away loses the node's id and contacts and what it was asked to keep announcing and \
             putting (announce and put those again)",
            settings.data_dir.join(DB_FILE).display()
        ),
    };
    let err = anyhow::Error::new(e).context("cannot start the node");
    err.context(Exit {
        code: Code::Failed,
        message: String::new(),
        hint: Some(hint),
    })
}

/// Waits for SIGINT or SIGTERM.
pub async fn signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
