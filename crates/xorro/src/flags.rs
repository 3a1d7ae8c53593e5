//! The command line as clap sees it. Nothing here is validated beyond its type: the
//! `settings` module and each command turn these into checked settings.
//!
//! Environment variables fill a flag that is absent (`XORRO_PORT`, `XORRO_API`, ...); see
//! `settings` for the config file that comes after them.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Xorro: a Kademlia DHT that speaks the BitTorrent Mainline protocol.
///
/// Run a node with `xorro node`, or a local network of many with `xorro testnet`; the other
/// commands talk to a running node through its HTTP API, but for `bench`, `probe` (which
/// talk to any DHT node) and `sim` (which simulates a whole network in one process).
#[derive(Debug, Parser)]
#[command(name = "xorro", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a DHT node (the daemon) with its HTTP API.
    Node(NodeArgs),
    /// Run N nodes on 127.0.0.1 in one process, one of them serving the HTTP API.
    Testnet(TestnetArgs),
    /// Show what the node is and holds.
    Status(ClientArgs),
    /// List the contacts of the node's routing tables.
    RoutingTable(ClientArgs),
    /// Ping a DHT node (ADDR is host:port).
    Ping(PingArgs),
    /// Find the nodes closest to an id.
    FindNode(FindNodeArgs),
    /// Find peers of an info-hash (printed as they arrive).
    Peers(PeersArgs),
    /// Announce the node as a peer of an info-hash, and keep announcing it.
    Announce(AnnounceArgs),
    /// Stop announcing an info-hash.
    Unannounce(UnannounceArgs),
    /// Store a BEP 44 item: immutable by default, mutable with --mutable.
    Put(PutArgs),
    /// Fetch a BEP 44 item: immutable by its target, mutable with --mutable --key.
    Get(GetArgs),
    /// BEP 51: sample the info-hashes stored by the nodes around a target (random if none).
    Samples(SamplesArgs),
    /// Load a DHT node with queries and report how many it answers per second.
    Bench(BenchArgs),
    /// Run a trivial UDP echo server: the bound `xorro bench` compares a node with.
    BenchEcho(BenchEchoArgs),
    /// Check any DHT node against the BEPs: every query kind, BEP 44 and 51, malformed input.
    Probe(ProbeArgs),
    /// Simulate a DHT network of many Xorro nodes in virtual time, with a report and plots.
    ///
    /// Lookups, announces and puts are checked against an oracle that knows every live node;
    /// summary.json, report.md, ops.csv (every operation), run_info.json and the plots go
    /// to --out.
    Sim(SimArgs),
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `xorro node`. Every setting also comes from an environment variable and from the config
/// file; precedence: flag > environment > file > default.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// UDP port of the DHT (IPv4 and IPv6) [default: 6881].
    #[arg(long, env = "XORRO_PORT")]
    pub port: Option<u16>,
    /// Bootstrap from this host:port instead of the public routers (repeatable; in the
    /// environment, comma-separated).
    #[arg(
        long,
        value_name = "ADDR",
        env = "XORRO_BOOTSTRAP",
        value_delimiter = ','
    )]
    pub bootstrap: Vec<String>,
    /// Keep the node's identity, contacts, stored data and publications here
    /// [default: the platform data directory, e.g. ~/.local/share/xorro].
    #[arg(long, value_name = "DIR", env = "XORRO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve the HTTP API on this ip:port [default: 127.0.0.1:7881].
    #[arg(long, value_name = "ADDR", env = "XORRO_API")]
    pub api: Option<String>,
    /// Allow a non-loopback --api address. The API has no authentication and takes signing
    /// keys (POST /v1/mutable): expose it only on a network you trust.
    #[arg(long, value_name = "BOOL", env = "XORRO_API_ALLOW_REMOTE", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub api_allow_remote: Option<bool>,
    /// BEP 43: query the DHT but never answer queries.
    #[arg(long, value_name = "BOOL", env = "XORRO_READ_ONLY", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub read_only: Option<bool>,
    /// Act read-only (BEP 43) after this many seconds in which no node the node had not
    /// written to queried it: a node behind NAT or a firewall then stays out of the others'
    /// tables until it tries again, half an hour later. For the public DHT (300 is safe
    /// there); in a small or quiet network of public servers nodes would go silent. 0: off.
    /// [default: only once the address other nodes see is none of this machine's (behind
    /// NAT), after 120 s]
    #[arg(long, value_name = "SECS", env = "XORRO_DETECT_UNREACHABLE")]
    pub detect_unreachable: Option<u64>,
    /// Never contact the public bootstrap routers (they are used only when no --bootstrap is
    /// given).
    #[arg(long, value_name = "BOOL", env = "XORRO_NO_PUBLIC_BOOTSTRAP", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub no_public_bootstrap: Option<bool>,
    /// Read settings from this TOML file (keys: port, bootstrap, data_dir, api,
    /// api_allow_remote, read_only, detect_unreachable, public_bootstrap, log_format).
    #[arg(long, value_name = "FILE", env = "XORRO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format (the filter comes from RUST_LOG) [default: text].
    #[arg(long, value_enum, env = "XORRO_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// `xorro testnet`.
#[derive(Debug, Args)]
pub struct TestnetArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 20)]
    pub nodes: usize,
    /// UDP port of node 0; node i gets PORT + i. 0: any free ports.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Serve node 0's HTTP API on this ip:port.
    #[arg(
        long,
        value_name = "ADDR",
        env = "XORRO_API",
        default_value = "127.0.0.1:7881"
    )]
    pub api: String,
    /// Log format (the filter comes from RUST_LOG).
    #[arg(long, value_enum, env = "XORRO_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

/// What every client command takes.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The HTTP API of the node to talk to (host:port).
    #[arg(
        long,
        value_name = "ADDR",
        env = "XORRO_API",
        default_value = "127.0.0.1:7881"
    )]
    pub api: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `xorro ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// The node to ping (host:port).
    pub addr: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// `xorro find-node`.
#[derive(Debug, Args)]
pub struct FindNodeArgs {
    /// The target id (40 hex digits).
    pub id: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// `xorro peers`.
#[derive(Debug, Args)]
pub struct PeersArgs {
    /// The info-hash (40 hex digits).
    pub infohash: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// `xorro announce`.
#[derive(Debug, Args)]
pub struct AnnounceArgs {
    /// The info-hash (40 hex digits).
    pub infohash: String,
    /// The port peers should connect to [default: the node's DHT port (BEP 5 implied_port)].
    #[arg(long)]
    pub port: Option<u16>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// `xorro unannounce`.
#[derive(Debug, Args)]
pub struct UnannounceArgs {
    /// The info-hash (40 hex digits).
    pub infohash: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// `xorro put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The value: text, stored as one bencoded byte string.
    #[arg(required_unless_present_any = ["bencoded", "file"], conflicts_with_all = ["bencoded", "file"])]
    pub value: Option<String>,
    /// The value as hex of bencoded bytes (e.g. 69343265 for i42e).
    #[arg(long, value_name = "HEX", conflicts_with = "file")]
    pub bencoded: Option<String>,
    /// The value: the contents of FILE, stored as one bencoded byte string.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Store a mutable item signed with the key in --key-file.
    #[arg(long, requires = "key_file")]
    pub mutable: bool,
    /// The ed25519 seed (64 hex digits) to sign with; created (mode 0600) if missing.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The salt of a mutable item (text).
    #[arg(long, requires = "mutable")]
    pub salt: Option<String>,
    /// The seq of a mutable item [default: one more than the network holds].
    #[arg(long, requires = "mutable", allow_negative_numbers = true)]
    pub seq: Option<i64>,
    /// Store only if the network holds this seq (compare and swap).
    #[arg(long, requires = "mutable", allow_negative_numbers = true)]
    pub cas: Option<i64>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// `xorro get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The target of an immutable item (40 hex digits).
    #[arg(required_unless_present = "mutable", conflicts_with = "mutable")]
    pub target: Option<String>,
    /// Fetch a mutable item by its public key (--key or --key-file) and salt.
    #[arg(long)]
    pub mutable: bool,
    /// The publisher's ed25519 public key (64 hex digits).
    #[arg(long, value_name = "PUBKEYHEX", requires = "mutable")]
    pub key: Option<String>,
    /// Read the public key from this key file (as written by `put --mutable`).
    #[arg(
        long,
        value_name = "FILE",
        requires = "mutable",
        conflicts_with = "key"
    )]
    pub key_file: Option<PathBuf>,
    /// The salt of a mutable item (text).
    #[arg(long, requires = "mutable")]
    pub salt: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// `xorro samples`.
#[derive(Debug, Args)]
pub struct SamplesArgs {
    /// Where in the keyspace to sample (40 hex digits) [default: random].
    pub target: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: ClientArgs,
}

/// Which query `xorro bench` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchQuery {
    /// BEP 5 ping.
    Ping,
    /// BEP 5 find_node of a random target.
    FindNode,
    /// BEP 5 get_peers of a random info-hash.
    GetPeers,
}

/// `xorro probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The DHT node to check (host:port).
    #[arg(value_name = "HOST:PORT")]
    pub target: String,
    /// How long to wait for each answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub timeout_ms: u64,
    /// The local address to send from (default: any port, the system's choice of address).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<std::net::SocketAddr>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Fail (exit 1) on any check that did not pass, deviations and silence included; by
    /// default only on a broken check or a node that stopped answering.
    #[arg(long)]
    pub strict: bool,
}

/// `xorro sim`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    xorro sim nodes=2000 churn.enabled=true\n  \
    xorro sim --scenario crates/xorro-sim/scenarios/headline.toml nodes=10000 --out run1\n  \
    xorro sim --scenario crates/xorro-sim/scenarios/headline.toml nodes=1000000 build.mode=warm\n  \
    xorro sim --print-scenario          (every field, with its default)\n  \
    xorro sim nodes=10000 churn.enabled=true --sweep engine.lookup_attempts=2,3 --seeds 1,2 --out sweep1")]
pub struct SimArgs {
    /// Start from this scenario file (TOML) instead of the defaults.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Directory for summary.json, report.md, ops.csv, scenario.toml, run_info.json and the plots
    /// (created if missing; files of an earlier run there are replaced).
    #[arg(long, value_name = "DIR", default_value = "sim-out")]
    pub out: PathBuf,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the scenario (file and overrides applied) as TOML and exit without running it.
    #[arg(long)]
    pub print_scenario: bool,
    /// Sweep: run the scenario once for each value of a field (NAME=V1,V2,...); repeat the
    /// flag for more fields (every combination runs). Each run gets a directory in --out,
    /// and OUT/sweep.md, sweep.json and sweep.svg/png compare them. A run whose expect
    /// checks fail does not fail the sweep (the table counts the checks); one that cannot
    /// finish does (exit 1, after the others).
    #[arg(long, value_name = "NAME=V1,V2,...")]
    pub sweep: Vec<String>,
    /// Sweep: run each setting with each of these seeds (1,2,3) and average them.
    #[arg(long, value_name = "SEEDS", value_delimiter = ',')]
    pub seeds: Vec<u64>,
    /// Sweep: runs at once, one process each (default: one a core, fewer when the projected
    /// memory of that many runs is more than the system has available).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Scenario fields to change, by dotted name: nodes=100000, seed=2, link.loss=0.02,
    /// churn.enabled=true, engine.lookup_parallelism=8 (applied in order, after --scenario).
    #[arg(value_name = "NAME=VALUE")]
    pub overrides: Vec<String>,
}

/// `xorro bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The DHT node to load (host:port).
    #[arg(value_name = "HOST:PORT")]
    pub target: String,
    /// The query to send.
    #[arg(long, value_enum, default_value = "ping")]
    pub query: BenchQuery,
    /// Source sockets; on a loopback target each gets its own address (127.0.0.2, ...), so
    /// per-IP rate limits do not decide the figure.
    #[arg(long, default_value_t = 64)]
    pub sources: usize,
    /// Queries in flight per source.
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// How long to send, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub duration: f64,
    /// A query unanswered after this many milliseconds counts as timed out.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub timeout_ms: u64,
    /// The target's process id: report its CPU time (from /proc/PID/stat) and answers per
    /// CPU-second.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Threads of the generator.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `xorro bench-echo`.
#[derive(Debug, Args)]
pub struct BenchEchoArgs {
    /// The UDP address to listen on (ip:port).
    #[arg(value_name = "ADDR")]
    pub bind: String,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "xorro",
            "node",
            "--port",
            "7000",
            "--bootstrap",
            "a:1",
            "--bootstrap",
            "b:2",
            "--read-only",
            "--no-public-bootstrap=false",
        ])
        .unwrap();
        let Command::Node(n) = cli.command else {
            panic!("not node")
        };
        assert_eq!(n.port, Some(7000));
        assert_eq!(n.bootstrap, ["a:1", "b:2"]);
        assert_eq!(n.read_only, Some(true));
        assert_eq!(n.no_public_bootstrap, Some(false));

        let cli = Cli::try_parse_from([
            "xorro",
            "put",
            "--mutable",
            "--key-file",
            "k",
            "--salt",
            "s",
            "hi",
        ])
        .unwrap();
        let Command::Put(p) = cli.command else {
            panic!("not put")
        };
        assert!(p.mutable);
        assert_eq!(p.value.as_deref(), Some("hi"));
        assert!(Cli::try_parse_from(["xorro", "put", "--salt", "s", "hi"]).is_err());
        assert!(Cli::try_parse_from(["xorro", "get"]).is_err());
        assert!(Cli::try_parse_from(["xorro", "get", "--mutable", "--key", "ab"]).is_ok());
    }
}
