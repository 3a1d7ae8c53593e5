//! The client commands: each validates its arguments (exit code 2 on bad input, before any
//! network traffic), calls the node's HTTP API, and prints a table or, with `--json`, the
//! API's JSON. Finding nothing (no peers, no item) is exit code 1.

pub mod http;

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use xorro_wire::{InfoHash, NodeId};

use crate::api::types;
use crate::error::Exit;
use crate::flags::{
    AnnounceArgs, ClientArgs, FindNodeArgs, GetArgs, PeersArgs, PingArgs, PutArgs, SamplesArgs,
    UnannounceArgs,
};
use crate::{keyfile, parse};
use http::{Api, query_escape};

/// Runs `fut` on a single-threaded runtime.
fn block_on<T>(fut: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(fut)
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).context("cannot encode JSON")?
    )?;
    Ok(())
}

fn usage(msg: String) -> anyhow::Error {
    Exit::usage(msg)
}

/// `xorro status`.
pub fn status(args: &ClientArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let s: types::Status = block_on(api.get("/v1/status"))?;
    if args.json {
        return print_json(&s);
    }
    let dropped: u64 = s.stats.drops.values().sum();
    let rows = [
        ("node id", s.id.clone()),
        ("listening", s.local_addrs.join(", ")),
        ("external ip", external_line(&s)),
        (
            "routing table",
            format!("{} IPv4 contacts, {} IPv6", s.table_v4, s.table_v6),
        ),
        (
            "stored",
            format!(
                "{} info-hashes with {} peers, {} items",
                s.stored_infohashes, s.stored_peers, s.stored_items
            ),
        ),
        (
            "publishing",
            format!(
                "{} announcements, {} items",
                s.own_announcements, s.own_items
            ),
        ),
        (
            "lookups",
            format!(
                "{} running, {} started, {} finished",
                s.lookups_running, s.stats.lookups_started, s.stats.lookups_finished
            ),
        ),
        (
            "packets",
            format!(
                "{} in, {} out, {} dropped, {} lost at the sockets",
                s.stats.datagrams_in,
                s.stats.datagrams_out,
                dropped,
                s.socket_errors.values().sum::<u64>()
            ),
        ),
        (
            "uptime",
            human_duration(Duration::from_secs_f64(s.uptime_secs.max(0.0))),
        ),
        ("mode", mode_line(&s)),
    ];
    for (k, v) in rows {
        outln!("{k:<14} {v}")?;
    }
    Ok(())
}

/// The `external ip` row of `xorro status`: one address a family, as the other nodes see it.
fn external_line(s: &types::Status) -> String {
    if !s.external_ips.is_empty() {
        return s.external_ips.join(", ");
    }
    // A daemon from before `external_ips`.
    s.external_ip
        .clone()
        .unwrap_or_else(|| "not known yet".to_owned())
}

/// The `mode` row of `xorro status`: "read-write", or for example "read-write (ipv4
/// unreachable; behind NAT over ipv4)".
fn mode_line(s: &types::Status) -> String {
    let mode = if s.read_only {
        "read-only (BEP 43)"
    } else {
        "read-write"
    };
    // Where it judges its reachability: "read-write (ipv4 reachable, ipv6 learning)";
    // an unreachable family is read-only there.
    let by_family: Vec<String> = s
        .reachability
        .iter()
        .map(|(family, r)| format!("{family} {r}"))
        .collect();
    let mut notes = by_family.join(", ");
    if !s.behind_nat.is_empty() {
        // The address others see is not this machine's: queries from strangers
        // reach the node only where the NAT forwards its port.
        let sep = if notes.is_empty() { "" } else { "; " };
        notes = format!("{notes}{sep}behind NAT over {}", s.behind_nat.join(", "));
    }
    if notes.is_empty() {
        mode.to_owned()
    } else {
        format!("{mode} ({notes})")
    }
}

/// `xorro routing-table`.
pub fn routing_table(args: &ClientArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    let t: types::RoutingTable = block_on(api.get("/v1/routing-table"))?;
    if args.json {
        return print_json(&t);
    }
    outln!(
        "{:<40}  {:<22} {:<12} {:>9} {:>10}",
        "ID",
        "ADDRESS",
        "STATE",
        "RTT",
        "LAST SEEN"
    )?;
    for c in &t.contacts {
        let rtt = c
            .rtt_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"));
        let seen = c.last_response_secs.map_or_else(
            || "never".to_owned(),
            |s| {
                format!(
                    "{} ago",
                    human_duration(Duration::from_secs_f64(s.max(0.0)))
                )
            },
        );
        outln!(
            "{:<40}  {:<22} {:<12} {:>9} {:>10}",
            c.id,
            c.addr,
            c.state,
            rtt,
            seen
        )?;
    }
    outln!("{} contacts", t.contacts.len())?;
    Ok(())
}

/// `xorro ping`.
pub fn ping(args: &PingArgs) -> anyhow::Result<()> {
    let addr = parse::host_port("ADDR", &args.addr).map_err(usage)?;
    let api = Api::new(&args.client.api)?;
    let p: types::Pong = block_on(api.post("/v1/ping", &types::PingRequest { addr }))?;
    if args.client.json {
        return print_json(&p);
    }
    outln!(
        "pong from {} at {} in {:.1} ms",
        p.node.id,
        p.node.addr,
        p.rtt_ms
    )?;
    Ok(())
}

fn print_nodes(nodes: &[types::Node]) -> std::io::Result<()> {
    outln!("{:<40}  ADDRESS", "ID")?;
    for n in nodes {
        outln!("{:<40}  {}", n.id, n.addr)?;
    }
    Ok(())
}

fn lookup_summary(l: &types::Lookup) -> String {
    format!(
        "{} queries, {} answers, {} timeouts, {} hops, {:.0} ms",
        l.messages_sent, l.responses, l.timeouts, l.rounds, l.duration_ms
    )
}

/// `xorro find-node`.
pub fn find_node(args: &FindNodeArgs) -> anyhow::Result<()> {
    let id: NodeId = parse::id("ID", &args.id).map_err(usage)?;
    let api = Api::new(&args.client.api)?;
    let r: types::FindNode = block_on(api.get(&format!("/v1/find-node/{id}")))?;
    if args.client.json {
        return print_json(&r);
    }
    print_nodes(&r.nodes)?;
    outln!("{} nodes ({})", r.nodes.len(), lookup_summary(&r.lookup))?;
    Ok(())
}

/// `xorro peers`: peers are printed as they arrive (one `ip:port` a line), the summary goes
/// to stderr; with `--json` one document at the end.
pub fn peers(args: &PeersArgs) -> anyhow::Result<()> {
    let info_hash: InfoHash = parse::id("INFOHASH", &args.infohash).map_err(usage)?;
    let api = Api::new(&args.client.api)?;
    let json = args.client.json;
    let mut done = None;
    let mut failed = None;
    block_on(
        api.get_lines(&format!("/v1/peers/{info_hash}?stream=true"), |line| {
            let line: types::PeersLine = serde_json::from_slice(line)
                .context("the node sent a line of peers this xorro does not understand")?;
            match line {
                types::PeersLine::Peers { peers } => {
                    if !json {
                        for p in peers {
                            outln!("{p}")?;
                        }
                    }
                }
                types::PeersLine::Done(r) => done = Some(r),
                types::PeersLine::Error(e) => failed = Some(e),
            }
            Ok(())
        }),
    )?;
    if let Some(e) = failed {
        return Err(Exit::failed(e.error, e.hint));
    }
    let r = done.ok_or_else(|| Exit::failed("the node ended the lookup without a result", None))?;
    if json {
        print_json(&r)?;
    } else {
        eprintln!("{} peers ({})", r.peers.len(), lookup_summary(&r.lookup));
    }
    if r.peers.is_empty() {
        return Err(Exit::failed(
            format!("no peers found for {info_hash}"),
            Some("nobody announced it, or the announcements expired (30 min)".to_owned()),
        ));
    }
    Ok(())
}

/// `xorro announce`.
pub fn announce(args: &AnnounceArgs) -> anyhow::Result<()> {
    let info_hash: InfoHash = parse::id("INFOHASH", &args.infohash).map_err(usage)?;
    if args.port == Some(0) {
        return Err(usage(
            "--port must be 1 to 65535 (leave it out for the node's DHT port)".to_owned(),
        ));
    }
    let api = Api::new(&args.client.api)?;
    let req = types::AnnounceRequest {
        info_hash: info_hash.to_string(),
        port: args.port,
    };
    let r: types::Announced = block_on(api.post("/v1/announce", &req))?;
    if args.client.json {
        print_json(&r)?;
    } else {
        let port = args
            .port
            .map_or_else(|| "the node's DHT port".to_owned(), |p| format!("port {p}"));
        outln!(
            "announced {info_hash} ({port}) to {} nodes ({})",
            r.stored_at.len(),
            lookup_summary(&r.lookup)
        )?;
        outln!("the node re-announces it every 15 minutes until `xorro unannounce {info_hash}`")?;
    }
    if r.stored_at.is_empty() {
        return Err(Exit::failed(
            format!("no node stored the announcement of {info_hash}"),
            Some("the node keeps trying every 15 minutes; check its contacts with `xorro routing-table`".to_owned()),
        ));
    }
    Ok(())
}

/// `xorro unannounce`.
pub fn unannounce(args: &UnannounceArgs) -> anyhow::Result<()> {
    let info_hash: InfoHash = parse::id("INFOHASH", &args.infohash).map_err(usage)?;
    let api = Api::new(&args.client.api)?;
    let r: types::Unannounced = block_on(api.delete(&format!("/v1/announce/{info_hash}")))?;
    if args.client.json {
        return print_json(&r);
    }
    outln!("no longer announcing {info_hash} (peers drop it within 30 minutes)")?;
    Ok(())
}

/// The value of `xorro put`, as the API takes it.
fn put_value(args: &PutArgs) -> anyhow::Result<(Option<String>, Option<String>)> {
    if let Some(hex) = &args.bencoded {
        let bytes = parse::hex_bytes("--bencoded", hex).map_err(usage)?;
        parse::bencoded("--bencoded", bytes).map_err(usage)?;
        return Ok((Some(hex.trim().to_owned()), None));
    }
    if let Some(path) = &args.file {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let value =
            parse::byte_string(&format!("the file {}", path.display()), &bytes).map_err(usage)?;
        return Ok((Some(hex::encode(value)), None));
    }
    let text = args
        .value
        .clone()
        .ok_or_else(|| usage("give a VALUE, --bencoded HEX or --file FILE".to_owned()))?;
    parse::byte_string("VALUE", text.as_bytes()).map_err(usage)?;
    Ok((None, Some(text)))
}

/// `xorro put`.
pub fn put(args: &PutArgs) -> anyhow::Result<()> {
    let (value_hex, value_utf8) = put_value(args)?;
    let api = Api::new(&args.client.api)?;
    let mut salt_text = None;
    let r: types::Stored = if args.mutable {
        let salt = args.salt.clone().unwrap_or_default();
        parse::salt("--salt", salt.as_bytes().to_vec()).map_err(usage)?;
        let path = args
            .key_file
            .as_ref()
            .ok_or_else(|| usage("--mutable needs --key-file FILE".to_owned()))?;
        let key = keyfile::load_or_create(path)?;
        if key.created {
            eprintln!(
                "created the key file {} with a new ed25519 key (public key {})",
                path.display(),
                key.public_key()
            );
        }
        let req = types::PutMutable {
            seed_hex: hex::encode(key.seed),
            salt: (!salt.is_empty()).then(|| salt.clone()),
            salt_hex: None,
            value_hex,
            value_utf8,
            seq: args.seq,
            cas: args.cas,
        };
        salt_text = Some(salt);
        block_on(api.post("/v1/mutable", &req))?
    } else {
        block_on(api.post(
            "/v1/immutable",
            &types::PutImmutable {
                value_hex,
                value_utf8,
            },
        ))?
    };
    if args.client.json {
        print_json(&r)?;
    } else {
        outln!("{:<11} {}", "target", r.target)?;
        if let Some(pk) = &r.public_key {
            outln!("{:<11} {pk}", "public key")?;
        }
        if let Some(seq) = r.seq {
            outln!("{:<11} {seq}", "seq")?;
        }
        outln!("{:<11} {} nodes", "stored at", r.stored_at.len())?;
        match (&r.public_key, salt_text) {
            (Some(pk), Some(salt)) if !salt.is_empty() => {
                eprintln!("fetch it with: xorro get --mutable --key {pk} --salt {salt}");
            }
            (Some(pk), _) => eprintln!("fetch it with: xorro get --mutable --key {pk}"),
            (None, _) => eprintln!("fetch it with: xorro get {}", r.target),
        }
    }
    if r.stored_at.is_empty() {
        return Err(Exit::failed(
            format!("no node stored the item {}", r.target),
            Some(
                "the node keeps trying every hour; check its contacts with `xorro routing-table`"
                    .to_owned(),
            ),
        ));
    }
    Ok(())
}

/// `xorro get`: prints the value (its text when it is a UTF-8 byte string).
pub fn get(args: &GetArgs) -> anyhow::Result<()> {
    let path = if args.mutable {
        let key = match (&args.key, &args.key_file) {
            (Some(k), None) => parse::public_key("--key", k).map_err(usage)?,
            (None, Some(f)) => {
                xorro_wire::bep44::Keypair::from_seed(keyfile::load(f)?).public_key()
            }
            _ => {
                return Err(usage(
                    "--mutable needs --key PUBKEYHEX or --key-file FILE".to_owned(),
                ));
            }
        };
        let salt = args.salt.clone().unwrap_or_default();
        parse::salt("--salt", salt.as_bytes().to_vec()).map_err(usage)?;
        if salt.is_empty() {
            format!("/v1/mutable/{key}")
        } else {
            format!("/v1/mutable/{key}?salt={}", query_escape(&salt))
        }
    } else {
        let target = args
            .target
            .as_deref()
            .ok_or_else(|| usage("give the TARGET of the item".to_owned()))?;
        let target: NodeId = parse::id("TARGET", target).map_err(usage)?;
        format!("/v1/immutable/{target}")
    };
    let api = Api::new(&args.client.api)?;
    let item: types::Item = block_on(api.get(&path))?;
    if args.client.json {
        return print_json(&item);
    }
    outln!(
        "{}",
        item.value_utf8.as_deref().unwrap_or(&item.value_display)
    )?;
    if let Some(seq) = item.seq {
        eprintln!("seq {seq}");
    }
    Ok(())
}

/// `xorro samples`.
pub fn samples(args: &SamplesArgs) -> anyhow::Result<()> {
    let target: NodeId = match &args.target {
        Some(t) => parse::id("TARGET", t).map_err(usage)?,
        None => NodeId::from(rand::random::<[u8; 20]>()),
    };
    let api = Api::new(&args.client.api)?;
    let r: types::Samples = block_on(api.get(&format!("/v1/samples/{target}")))?;
    if args.client.json {
        print_json(&r)?;
    } else {
        for s in &r.samples {
            outln!("{s}")?;
        }
        eprintln!(
            "{} info-hashes sampled around {}",
            r.samples.len(),
            r.target
        );
    }
    if r.samples.is_empty() {
        return Err(Exit::failed(
            format!("no info-hash samples found around {target}"),
            Some("the nodes there store nothing, or do not support BEP 51".to_owned()),
        ));
    }
    Ok(())
}

/// `1h 2m 3s`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_external_line_gives_one_address_a_family() {
        let mut s = types::Status::default();
        assert_eq!(external_line(&s), "not known yet");
        s.external_ip = Some("203.0.113.5".into());
        assert_eq!(external_line(&s), "203.0.113.5");
        s.external_ips = vec!["203.0.113.5".into(), "2001:db8::5".into()];
        assert_eq!(external_line(&s), "203.0.113.5, 2001:db8::5");
    }

    #[test]
    fn the_mode_line_names_reachability_and_nat() {
        let mut s = types::Status::default();
        assert_eq!(mode_line(&s), "read-write");
        s.reachability.insert("ipv4".into(), "unreachable".into());
        s.reachability.insert("ipv6".into(), "reachable".into());
        s.behind_nat = vec!["ipv4".into()];
        assert_eq!(
            mode_line(&s),
            "read-write (ipv4 unreachable, ipv6 reachable; behind NAT over ipv4)"
        );
        s.reachability.clear();
        s.read_only = true;
        assert_eq!(mode_line(&s), "read-only (BEP 43) (behind NAT over ipv4)");
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(Duration::from_secs(5)), "5s");
        assert_eq!(human_duration(Duration::from_secs(65)), "1m 5s");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600 + 120)), "3h 2m");
        assert_eq!(human_duration(Duration::from_secs(90000)), "1d 1h");
    }
}
