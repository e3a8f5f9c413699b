//! The command line: what each command takes, and the `--help` text.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::exit;

/// The text after the option list of `redlock --help`.
const AFTER_HELP: &str = "\
Nodes: --nodes or REDLOCK_NODES, comma-separated: one node of a Redis Cluster (its masters vote),
or several standalone masters (classic Redlock), e.g. redis://127.0.0.1:6379,redis://127.0.0.1:6380.
Durations: 500ms, 30s, 5m, 1h 30m. Logs: REDLOCK_LOG (error by default; warn, debug, redlock_cluster=trace), to stderr.

Exit status:
    0      success (run: the command exited 0)
    N      run: the command's own exit status, when it ended by itself
    64     bad arguments (unknown option, bad duration, empty resource, no nodes)
    69     the nodes are unavailable (too few answered to decide)
    70     internal error
    75     run: the lock was not obtained (held by another until --wait ran out, or --no-wait)
    76     run: the lock was lost while the command ran; the command was stopped
    124    run: --max-hold was reached; the command was stopped
    126    run: the command could not be started (not executable)
    127    run: the command was not found
    128+N  run: the command was killed by signal N
    health: 1 when a finding is DANGER";

/// Run a command under a Redlock-style quorum lock, inspect a lock, check the voters' health.
#[derive(Debug, Parser)]
#[command(name = "redlock", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Where the voters are and how keys are named.
    #[command(flatten)]
    pub nodes: NodeArgs,
}

/// The options every command shares.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Redis nodes, comma-separated: one node of a Redis Cluster, or several standalone masters
    #[arg(
        long,
        global = true,
        env = "REDLOCK_NODES",
        value_delimiter = ',',
        value_name = "URL,..."
    )]
    pub nodes: Vec<String>,
    /// Prefix of the lock keys; every client of a resource must use the same
    #[arg(long, global = true, default_value = "redlock:", value_name = "PREFIX")]
    pub key_prefix: String,
    /// How long one node may take to answer one request
    #[arg(long, global = true, default_value = "100ms", value_name = "DURATION", value_parser = duration)]
    pub node_timeout: Duration,
    /// Who votes: auto decides from the nodes' answers, once more than half of the listed nodes
    /// answered and agree; independent (standalone masters) or cluster (a cluster's masters)
    /// follow the same majority rule and also refuse nodes of the other kind
    #[arg(long, global = true, env = "REDLOCK_MODE", value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Decided from the nodes' answers (more than half of the listed nodes must answer).
    Auto,
    /// Standalone masters, classic Redlock.
    Independent,
    /// The masters of one Redis Cluster.
    Cluster,
}

impl From<ModeArg> for redlock_cluster::Mode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Auto => redlock_cluster::Mode::Auto,
            ModeArg::Independent => redlock_cluster::Mode::Independent,
            ModeArg::Cluster => redlock_cluster::Mode::Cluster,
        }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take the lock (waiting up to --wait), run CMD while an auto-extending lock is held, release
    /// it when CMD exits, exit with CMD's status
    ///
    /// CMD gets REDLOCK_RESOURCE, REDLOCK_TOKEN (this acquisition's token, as `redlock status`
    /// shows the holder) and, with --fencing, REDLOCK_FENCING_TOKEN (greater than every earlier
    /// holder's). SIGINT and SIGTERM sent to redlock are passed on to CMD. CMD runs in a process
    /// group of its own: when the lock is lost (extensions fail, or the validity runs out) or
    /// --max-hold is reached, the whole group gets SIGTERM, then SIGKILL after --kill-after, and
    /// redlock exits 76 (lost) or 124 (max hold). SIGHUP is passed on too. Every signal sent to
    /// CMD is followed by SIGCONT (as timeout(1) does). A terminal's Ctrl-C reaches CMD through
    /// redlock only. CMD is not in the terminal's foreground group, so it cannot read from the
    /// terminal: when stdin is a terminal, CMD's stdin is /dev/null (pipe or redirect input to
    /// give it some).
    #[command(
        after_help = "Example (crontab: at most one machine makes the report; the others \
        exit 75 at once):\n    \
        */5 * * * * REDLOCK_NODES=redis://redis-1:6379,redis://redis-2:6379,redis://redis-3:6379 \
        redlock run --no-wait --ttl 30s reports/hourly -- /usr/local/bin/make-report"
    )]
    Run(RunArgs),
    /// Who holds RESOURCE, decided by a quorum of voters: free or held, the validity left, each
    /// voter's view
    Status(StatusArgs),
    /// Probe every voter: role, persistence, eviction policy, replicas, round trip, clock rate,
    /// with findings and their fixes; exits 1 when a finding is DANGER (a readiness probe)
    Health(HealthArgs),
}

/// `redlock run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The lock's TTL: a holder that dies leaves the lock to others after at most this long;
    /// while redlock runs, the lock is extended every third of it
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = duration)]
    pub ttl: Duration,
    /// How long to wait for the lock when others hold it (0: one attempt)
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = duration)]
    pub wait: Duration,
    /// One attempt: fail at once (exit 75) when others hold the lock
    #[arg(long, conflicts_with = "wait")]
    pub no_wait: bool,
    /// Take a fencing token and export it as REDLOCK_FENCING_TOKEN (costs a second round)
    #[arg(long)]
    pub fencing: bool,
    /// Hold the lock at most this long: then CMD is stopped like on a lost lock and redlock
    /// exits 124
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub max_hold: Option<Duration>,
    /// After the lock is lost (or --max-hold is reached), how long CMD has between SIGTERM and
    /// SIGKILL
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = duration)]
    pub kill_after: Duration,
    /// The lock's name
    #[arg(value_parser = resource)]
    pub resource: String,
    /// The command and its arguments (after `--`)
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `redlock status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (one object) instead of text
    #[arg(long)]
    pub json: bool,
    /// Also read the fencing counter: the highest fencing token a quorum has recorded
    #[arg(long)]
    pub fencing: bool,
    /// The lock's name
    #[arg(value_parser = resource)]
    pub resource: String,
}

/// `redlock health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Print JSON (one object) instead of text
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    /// The arguments of this process, or the exit to take: `--help` and `--version` print and
    /// exit 0; anything clap refuses is one line on stderr and [`exit::USAGE`].
    pub fn parse_or_exit() -> Result<Cli, exit::Exit> {
        match Cli::try_parse() {
            Ok(cli) => Ok(cli),
            Err(error) => Err(exit::Exit::from_clap(&error)),
        }
    }
}

/// A duration as `humantime` reads it (`500ms`, `30s`, `5m`, `1h 30m`).
fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (write durations like 500ms, 30s, 5m)"))
}

/// A resource name: not empty, not blank.
fn resource(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("the resource name is empty".to_string());
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_take_human_units() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert!(duration("5 parsecs").is_err());
        assert!(duration("").is_err());
    }

    #[test]
    fn blank_resources_are_refused() {
        assert!(resource("").is_err());
        assert!(resource("  ").is_err());
        assert_eq!(resource("jobs/nightly"), Ok("jobs/nightly".to_string()));
    }

    #[test]
    fn run_takes_the_command_after_the_separator() {
        let cli = Cli::try_parse_from([
            "redlock",
            "run",
            "--nodes",
            "redis://127.0.0.1:1,redis://127.0.0.1:2",
            "--ttl",
            "2s",
            "job",
            "--",
            "echo",
            "--ttl",
        ])
        .unwrap();
        assert_eq!(cli.nodes.nodes.len(), 2);
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.ttl, Duration::from_secs(2));
        assert_eq!(run.command, ["echo", "--ttl"]);
        assert!(!run.no_wait);
    }

    #[test]
    fn wait_and_no_wait_exclude_each_other() {
        let refused = Cli::try_parse_from([
            "redlock",
            "run",
            "--wait",
            "1s",
            "--no-wait",
            "r",
            "--",
            "true",
        ]);
        assert!(refused.is_err());
    }
}
