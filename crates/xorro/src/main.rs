//! The `xorro` command: the DHT node, its client commands, the testnet and the simulator.

use std::process::ExitCode;

use clap::Parser;

/// Xorro: a Kademlia DHT that speaks the BitTorrent Mainline protocol.
#[derive(Debug, Parser)]
#[command(name = "xorro", version, about, long_about = None)]
struct Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    ExitCode::SUCCESS
}
