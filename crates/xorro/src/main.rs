//! The `xorro` command: the DHT node (`xorro node`), a local test network (`xorro testnet`),
//! the client commands that talk to a running node's HTTP API, a load generator
//! (`xorro bench`), a conformance checker for any DHT node (`xorro probe`) and the network
//! simulator (`xorro sim`).
//!
//! As in ripgrep, `main` parses the arguments, hands validated settings to the command, and
//! is the one place that prints an error: the chain of causes on one line, then a hint when
//! there is one. Exit codes (see [`error::Code`]): 0 ok, 1 the operation failed or found
//! nothing, 2 usage error, 3 no daemon answers.
//!
//! Output goes through `outln!`, which returns the write's error instead of panicking as
//! `println!` does: when the reader of a pipe goes away (`xorro probe --json | head`), the
//! command stops at its next line and exits 0 without a message, as ripgrep does.

/// `println!` that returns the `io::Result` of the write (a closed pipe is an error to
/// propagate, not a panic).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod api;
mod bench;
mod client;
mod daemon;
mod error;
mod flags;
mod keyfile;
mod logging;
mod parse;
mod probe;
mod settings;
mod sim;
mod testnet;

use std::process::ExitCode;

use clap::Parser;

use crate::flags::{Cli, Command};

fn main() -> ExitCode {
    // clap prints its own usage errors and exits with code 2.
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if closed_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let (code, hint) = error::classify(&err);
            eprintln!("error: {}", error::one_line(&err));
            if let Some(hint) = hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(code as u8)
        }
    }
}

/// Whether `err` comes from writing to a pipe whose reader has gone.
fn closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Node(a) => daemon::run(settings::NodeSettings::from_args(&a)?),
        Command::Testnet(a) => testnet::run(settings::TestnetSettings::from_args(&a)?),
        Command::Bench(a) => bench::run(bench::BenchSettings::from_args(&a)?),
        Command::BenchEcho(a) => bench::echo_server(&a),
        Command::Probe(a) => probe::run(&a),
        Command::Sim(a) => sim::run(&a),
        Command::Status(a) => client::status(&a),
        Command::RoutingTable(a) => client::routing_table(&a),
        Command::Ping(a) => client::ping(&a),
        Command::FindNode(a) => client::find_node(&a),
        Command::Peers(a) => client::peers(&a),
        Command::Announce(a) => client::announce(&a),
        Command::Unannounce(a) => client::unannounce(&a),
        Command::Put(a) => client::put(&a),
        Command::Get(a) => client::get(&a),
        Command::Samples(a) => client::samples(&a),
    }
}
