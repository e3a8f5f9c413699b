//! `redlock`: run a command under a Redlock-style quorum lock (`redlock run`), read who holds a
//! lock (`redlock status`), check the voters' health (`redlock health`).
//!
//! Every failure is one line on stderr and a documented exit status (`exit`, and `redlock
//! --help`); nothing panics and every network wait has a deadline (the library's).
//!
//! # Layout
//! - `args`: the command line (clap), its `--help` text and the duration parser.
//! - `exit`: the exit statuses and how errors map to them.
//! - `run`: `redlock run`: the acquisition loop, then `child`: the command, its signals, and
//!   stopping it when the lock is lost; `progress`: the waiting line on a terminal.
//! - `status`, `health`: the two read-only commands, as text or JSON.

mod args;
mod child;
mod exit;
mod health;
mod progress;
mod run;
mod status;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use redlock_cluster::{LockConfig, LockManager};

use args::{Cli, Command, NodeArgs};
use exit::Exit;

/// How long, at the end, background releases (a cancelled acquisition's cleanup, a lost lock's
/// keys) may take before redlock exits anyway; their keys then expire with their TTL.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let cli = match Cli::parse_or_exit() {
        Ok(cli) => cli,
        Err(exit) => return exit.report(),
    };
    init_logs();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            return Exit::fail(exit::INTERNAL, format!("cannot start the runtime: {error}"))
                .report();
        }
    };
    runtime.block_on(dispatch(cli)).report()
}

/// Logs to stderr, filtered by `REDLOCK_LOG` (`EnvFilter` syntax); errors only by default.
/// The library's warnings (a voter without persistence, voters sharing a master) come once per
/// connection, several times a run: `redlock health` reports the same with their fixes, and
/// `REDLOCK_LOG=warn` shows them here.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REDLOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

async fn dispatch(cli: Cli) -> Exit {
    let fencing = match &cli.command {
        Command::Run(run) => run.fencing,
        Command::Status(status) => status.fencing,
        Command::Health(_) => false,
    };
    let manager = match manager(&cli.nodes, fencing) {
        Ok(manager) => manager,
        Err(exit) => return exit,
    };
    let exit = match cli.command {
        Command::Run(args) => run::run(&manager, args).await,
        Command::Status(args) => status::status(&manager, &args).await,
        Command::Health(args) => health::health(&manager, &args).await,
    };
    // Background releases still running (a cancelled attempt's cleanup, a lost lock's keys)
    // would otherwise be dropped with the runtime, leaving their keys until the TTL.
    let report = manager.close(CLOSE_TIMEOUT).await;
    if !report.is_complete() {
        exit::say(&format!(
            "{} background releases still pending at exit; their keys expire with their TTL",
            report.pending
        ));
    }
    exit
}

fn manager(nodes: &NodeArgs, fencing: bool) -> Result<LockManager, Exit> {
    let urls: Vec<&str> = nodes
        .nodes
        .iter()
        .map(|url| url.trim())
        .filter(|url| !url.is_empty())
        .collect();
    if urls.is_empty() {
        return Err(Exit::fail(
            exit::USAGE,
            "no nodes: pass --nodes URL,... or set REDLOCK_NODES (see redlock --help)",
        ));
    }
    let config = LockConfig::new()
        .key_prefix(nodes.key_prefix.clone())
        .node_timeout(nodes.node_timeout)
        .mode(nodes.mode.into())
        .fencing(fencing);
    LockManager::new(&urls, config).map_err(|e| Exit::from_lock_error(&e))
}
