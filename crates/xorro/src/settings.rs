//! Validated settings of `xorro node` and `xorro testnet`, merged from the command line, the
//! environment, a TOML config file and the defaults, in that order of precedence.
//!
//! clap already puts a flag before its environment variable (`XORRO_PORT` ...); the file and
//! the defaults are merged here, and everything is checked once, before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::error::Exit;
use crate::flags::{LogFormat, NodeArgs, TestnetArgs};
use crate::parse;

/// Where the HTTP API listens unless told otherwise.
pub const DEFAULT_API: &str = "127.0.0.1:7881";

/// The name of the node's database inside its data directory.
pub const DB_FILE: &str = "xorro.redb";

/// The settings a config file may hold (the same names as the flags, `_` for `-`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `--port`.
    pub port: Option<u16>,
    /// `--bootstrap`.
    pub bootstrap: Option<Vec<String>>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--api`.
    pub api: Option<String>,
    /// `--api-allow-remote`.
    pub api_allow_remote: Option<bool>,
    /// `--read-only`.
    pub read_only: Option<bool>,
    /// `--detect-unreachable`.
    pub detect_unreachable: Option<u64>,
    /// The opposite of `--no-public-bootstrap`.
    pub public_bootstrap: Option<bool>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}

impl FileConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            let msg = e.message().to_owned();
            Exit::usage(format!("config file {}: {msg}", path.display()))
        })
    }
}

/// The least `--detect-unreachable` (seconds). Simulated with every node reachable
/// (docs/SIMULATION.md), a minute made 0.9 % of the nodes take themselves for unreachable,
/// two minutes 0.05 %, five minutes none.
pub const MIN_DETECT_UNREACHABLE: u64 = 120;

/// What `xorro node` runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSettings {
    /// UDP port (IPv4 and IPv6).
    pub port: u16,
    /// Bootstrap addresses (host:port); empty: the public routers, if allowed.
    pub bootstrap: Vec<String>,
    /// Whether the public routers may be used (only when `bootstrap` is empty).
    pub public_bootstrap: bool,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Where the HTTP API listens.
    pub api: SocketAddr,
    /// BEP 43 read-only.
    pub read_only: bool,
    /// Act read-only after this long without a query from a stranger: `Some(zero)` never,
    /// not even behind NAT; `None` the engine's default (only once the node finds itself
    /// behind NAT, after `Config::detect_unreachable_behind_nat`).
    pub detect_unreachable: Option<std::time::Duration>,
    /// The log format.
    pub log_format: LogFormat,
}

impl NodeSettings {
    /// Merges flags (which clap has merged with the environment) over the config file named
    /// by `--config` over the defaults, and validates the result.
    pub fn from_args(args: &NodeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Self::merge(args, file, dirs::data_dir())
    }

    /// The merge itself; `platform_data` is the platform's data directory, if any.
    pub fn merge(
        args: &NodeArgs,
        file: FileConfig,
        platform_data: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let port = args.port.or(file.port).unwrap_or(xorro_node::DEFAULT_PORT);
        let bootstrap = if args.bootstrap.is_empty() {
            file.bootstrap.unwrap_or_default()
        } else {
            args.bootstrap.clone()
        };
        let bootstrap = bootstrap
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse::host_port("--bootstrap", s).map_err(Exit::usage))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let public_bootstrap = match args.no_public_bootstrap {
            Some(no) => !no,
            None => file.public_bootstrap.unwrap_or(true),
        };
        let data_dir = match args.data_dir.clone().or(file.data_dir) {
            Some(d) => d,
            None => platform_data.map(|d| d.join("xorro")).ok_or_else(|| {
                Exit::usage("this platform has no data directory for xorro: pass --data-dir (or XORRO_DATA_DIR)")
            })?,
        };
        let api = args
            .api
            .clone()
            .or(file.api)
            .unwrap_or_else(|| DEFAULT_API.to_owned());
        let api = parse::socket_addr("--api", &api).map_err(Exit::usage)?;
        let allow_remote = args
            .api_allow_remote
            .or(file.api_allow_remote)
            .unwrap_or(false);
        if !api.ip().is_loopback() && !allow_remote {
            return Err(Exit {
                code: crate::error::Code::Usage,
                message: format!("--api {api} is not a loopback address"),
                hint: Some(
                    "the HTTP API has no authentication and accepts signing keys; keep it on 127.0.0.1 \
                     or pass --api-allow-remote if the network is trusted"
                        .to_owned(),
                ),
            }
            .into());
        }
        let detect_unreachable = args.detect_unreachable.or(file.detect_unreachable);
        if let Some(detect_unreachable @ 1..MIN_DETECT_UNREACHABLE) = detect_unreachable {
            return Err(Exit {
                code: crate::error::Code::Usage,
                message: format!(
                    "--detect-unreachable {detect_unreachable}: at least {MIN_DETECT_UNREACHABLE} seconds, or 0 for off"
                ),
                hint: Some(
                    "a reachable node may hear from no stranger for its first minute; 300 is safe on the public DHT"
                        .to_owned(),
                ),
            }
            .into());
        }
        Ok(NodeSettings {
            port,
            public_bootstrap: public_bootstrap && bootstrap.is_empty(),
            bootstrap,
            data_dir,
            api,
            read_only: args.read_only.or(file.read_only).unwrap_or(false),
            detect_unreachable: detect_unreachable.map(std::time::Duration::from_secs),
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
        })
    }
}

/// What `xorro testnet` runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct TestnetSettings {
    /// How many nodes.
    pub nodes: usize,
    /// The UDP port of node 0 (node i: `port + i`); 0 for any.
    pub port: u16,
    /// Where node 0's HTTP API listens.
    pub api: SocketAddr,
    /// The log format.
    pub log_format: LogFormat,
}

/// Most nodes a testnet runs (each has its own socket and task).
pub const TESTNET_NODES_MAX: usize = 2000;

impl TestnetSettings {
    /// Validates the flags.
    pub fn from_args(args: &TestnetArgs) -> anyhow::Result<Self> {
        if args.nodes == 0 || args.nodes > TESTNET_NODES_MAX {
            return Err(Exit::usage(format!(
                "--nodes must be 1 to {TESTNET_NODES_MAX}, got {}",
                args.nodes
            )));
        }
        if args.port != 0 && usize::from(args.port) + args.nodes - 1 > usize::from(u16::MAX) {
            return Err(Exit::usage(format!(
                "--port {} leaves no room for {} nodes (ports {} to {} needed)",
                args.port,
                args.nodes,
                args.port,
                usize::from(args.port) + args.nodes - 1
            )));
        }
        let api = parse::socket_addr("--api", &args.api).map_err(Exit::usage)?;
        if !api.ip().is_loopback() {
            return Err(Exit::usage(format!(
                "--api {api} must be a loopback address for a testnet"
            )));
        }
        Ok(TestnetSettings {
            nodes: args.nodes,
            port: args.port,
            api,
            log_format: args.log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::error::{Code, classify};
    use crate::flags::{Cli, Command};

    fn node_args(argv: &[&str]) -> NodeArgs {
        let mut full = vec!["xorro", "node"];
        full.extend_from_slice(argv);
        match Cli::try_parse_from(full).unwrap().command {
            Command::Node(n) => n,
            _ => unreachable!(),
        }
    }

    fn file(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults() {
        let s = NodeSettings::merge(&node_args(&[]), FileConfig::default(), Some("/data".into()))
            .unwrap();
        assert_eq!(s.port, 6881);
        assert!(s.bootstrap.is_empty());
        assert!(s.public_bootstrap);
        assert_eq!(s.data_dir, PathBuf::from("/data/xorro"));
        assert_eq!(s.api.to_string(), DEFAULT_API);
        assert!(!s.read_only);
        assert_eq!(s.detect_unreachable, None, "the engine's: only behind NAT");
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn detect_unreachable_is_off_or_at_least_two_minutes() {
        let secs = std::time::Duration::from_secs;
        let s = NodeSettings::merge(
            &node_args(&["--detect-unreachable", "300"]),
            file("detect_unreachable = 600\n"),
            Some("/d".into()),
        )
        .unwrap();
        assert_eq!(s.detect_unreachable, Some(secs(300)), "the flag wins");
        let s = NodeSettings::merge(
            &node_args(&[]),
            file("detect_unreachable = 600\n"),
            Some("/d".into()),
        )
        .unwrap();
        assert_eq!(s.detect_unreachable, Some(secs(600)));
        let s = NodeSettings::merge(
            &node_args(&["--detect-unreachable", "0"]),
            FileConfig::default(),
            Some("/d".into()),
        )
        .unwrap();
        assert_eq!(s.detect_unreachable, Some(secs(0)), "off, even behind NAT");
        let e = NodeSettings::merge(
            &node_args(&["--detect-unreachable", "30"]),
            FileConfig::default(),
            Some("/d".into()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least 120 seconds"), "{e}");
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let f = "port = 7000\nbootstrap = [\"10.0.0.1:6881\"]\ndata_dir = \"/f\"\napi = \"127.0.0.1:9000\"\n\
                 read_only = true\nlog_format = \"json\"\n";
        let s = NodeSettings::merge(&node_args(&[]), file(f), None).unwrap();
        assert_eq!(s.port, 7000);
        assert_eq!(s.bootstrap, ["10.0.0.1:6881"]);
        assert!(
            !s.public_bootstrap,
            "a bootstrap list turns the public routers off"
        );
        assert_eq!(s.data_dir, PathBuf::from("/f"));
        assert_eq!(s.api.port(), 9000);
        assert!(s.read_only);
        assert_eq!(s.log_format, LogFormat::Json);

        let args = node_args(&[
            "--port",
            "8000",
            "--bootstrap",
            "127.0.0.1:1",
            "--data-dir",
            "/x",
            "--read-only=false",
        ]);
        let s = NodeSettings::merge(&args, file(f), None).unwrap();
        assert_eq!(s.port, 8000);
        assert_eq!(s.bootstrap, ["127.0.0.1:1"]);
        assert_eq!(s.data_dir, PathBuf::from("/x"));
        assert!(!s.read_only);
    }

    #[test]
    fn public_bootstrap_only_without_a_list_and_unless_refused() {
        let s = NodeSettings::merge(
            &node_args(&["--no-public-bootstrap"]),
            FileConfig::default(),
            Some("/d".into()),
        );
        assert!(!s.unwrap().public_bootstrap);
        let s = NodeSettings::merge(
            &node_args(&[]),
            file("public_bootstrap = false"),
            Some("/d".into()),
        );
        assert!(!s.unwrap().public_bootstrap);
    }

    #[test]
    fn bad_settings_are_usage_errors() {
        let e = NodeSettings::merge(
            &node_args(&["--bootstrap", "nohost"]),
            FileConfig::default(),
            Some("/d".into()),
        );
        assert_eq!(classify(&e.unwrap_err()).0, Code::Usage);
        let e = NodeSettings::merge(
            &node_args(&["--api", "0.0.0.0:7881"]),
            FileConfig::default(),
            Some("/d".into()),
        );
        let e = e.unwrap_err();
        assert_eq!(classify(&e).0, Code::Usage);
        assert!(classify(&e).1.is_some());
        let ok = NodeSettings::merge(
            &node_args(&["--api", "0.0.0.0:7881", "--api-allow-remote"]),
            FileConfig::default(),
            Some("/d".into()),
        );
        assert!(ok.is_ok());
        let e = NodeSettings::merge(&node_args(&[]), FileConfig::default(), None);
        assert_eq!(classify(&e.unwrap_err()).0, Code::Usage);
        assert!(
            toml::from_str::<FileConfig>("prot = 1").is_err(),
            "unknown keys are refused"
        );
    }
}
