//! `xorro probe` against a Xorro node on loopback: every check passes.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use xorro_node::Dht;
use xorro_node::probe::{ProbeOptions, Verdict, probe};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_xorro_node_passes_every_check() {
    // A node with a few contacts, so that `nodes` is not empty; all on 127.34.0.0/24.
    let addr = |host: u8| SocketAddr::from(([127, 34, 0, host], 0));
    let target = Dht::builder()
        .bind([addr(1)])
        .public_bootstrap(false)
        .start()
        .await
        .unwrap();
    let mut others = Vec::new();
    for host in 2..5 {
        let d = Dht::builder()
            .bind([addr(host)])
            .public_bootstrap(false)
            .bootstrap([target.local_addr().to_string()])
            .start()
            .await
            .unwrap();
        others.push(d);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while target.status().await.unwrap().table_v4 < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let opts = ProbeOptions {
        bind: Some(addr(100)),
        timeout: Duration::from_secs(2),
        ..ProbeOptions::default()
    };
    let report = probe(target.local_addr(), &opts).await;
    println!("{report}");
    // For docs/INTEROP.md, next to the reports on libtorrent and bittorrent-dht.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let _ = std::fs::write(dir.join("probe-xorro.md"), report.to_string());
    let _ = std::fs::write(dir.join("probe-xorro.json"), report.to_json());
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .map(|c| format!("{} ({}): {}", c.name, c.verdict, c.observed))
        .collect();
    assert!(
        failed.is_empty(),
        "checks that did not pass:\n{}",
        failed.join("\n")
    );
    assert!(
        report.checks.len() >= 35,
        "every check ran: {}",
        report.checks.len()
    );
    assert_eq!(
        report.node_id,
        Some(target.status().await.unwrap().id.to_string())
    );

    // The JSON form carries the same checks.
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(
        json["checks"].as_array().unwrap().len(),
        report.checks.len()
    );
    assert_eq!(json["checks"][0]["verdict"], "pass");

    // The probe left the node working.
    let pong = others[0].ping(target.local_addr()).await.unwrap();
    assert_eq!(pong.addr, target.local_addr());
    for d in others {
        d.shutdown().await.unwrap();
    }
    target.shutdown().await.unwrap();
}

#[tokio::test]
async fn nobody_listening_is_reported_as_no_answer() {
    // A port nobody listens on: the probe stops after two unanswered pings.
    let sock = std::net::UdpSocket::bind("127.34.1.1:0").unwrap();
    let target = sock.local_addr().unwrap();
    drop(sock);
    let opts = ProbeOptions {
        timeout: Duration::from_millis(200),
        ..ProbeOptions::default()
    };
    let report = probe(target, &opts).await;
    assert_eq!(report.checks.len(), 1, "{report}");
    assert_eq!(report.checks[0].verdict, Verdict::NoAnswer);
    assert!(!report.passed());
}
