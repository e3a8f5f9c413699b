//! What the demos share: the cluster they run on, the runtime, elapsed-time stamps and the
//! closing `SUMMARY` line. Used by every demo and by `main.rs`.

use std::error::Error;
use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use redlock_harness::{Cluster, ClusterOptions, DemoCluster, HarnessError, demo_cluster};

/// Set to `1` to always start a throwaway cluster, even when one answers on 7000-7005 (CI uses
/// it so that it never depends on, nor touches, a developer's cluster).
pub const THROWAWAY_ENV: &str = "REDLOCK_DEMO_THROWAWAY";

/// What every demo's `run` returns.
pub type DemoResult = Result<Summary, Box<dyn Error>>;

/// The cluster on 127.0.0.1:7000-7005 if one answers (unless [`THROWAWAY_ENV`] is `1`),
/// otherwise a throwaway 3 + 3 cluster on free ports, stopped when dropped. Says which.
pub fn cluster() -> Result<DemoCluster, HarnessError> {
    let forced = std::env::var_os(THROWAWAY_ENV).is_some_and(|v| v == "1");
    let demo = if forced {
        Cluster::start(ClusterOptions::default()).map(DemoCluster::Throwaway)?
    } else {
        demo_cluster()?
    };
    match &demo {
        DemoCluster::Existing(_) => {
            println!("using the existing Redis Cluster on 127.0.0.1:7000-7005")
        }
        DemoCluster::Throwaway(cluster) => println!(
            "{}started a throwaway 3 masters + 3 replicas cluster at {} (stopped at exit)",
            if forced {
                format!("{THROWAWAY_ENV}=1: ")
            } else {
                "no cluster answers on 127.0.0.1:7000, so ".to_string()
            },
            cluster.seed_url()
        ),
    }
    Ok(demo)
}

/// The cluster's seed URLs and, for a throwaway cluster only, the cluster itself (the only
/// kind a demo may kill nodes of).
pub fn parts(demo: &mut DemoCluster) -> (Vec<String>, Option<&mut Cluster>) {
    let urls = demo.seed_urls();
    match demo {
        DemoCluster::Throwaway(cluster) => (urls, Some(cluster)),
        _ => (urls, None),
    }
}

/// The runtime of the demos: a current-thread runtime is plenty for I/O-bound clients, and
/// needs no tokio feature beyond what the library uses.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Time since the demo started (the first stamp), as `[  1.234s]`.
pub fn stamp() -> String {
    static START: OnceLock<Instant> = OnceLock::new();
    let elapsed = START.get_or_init(Instant::now).elapsed();
    format!("[{:>7.3}s]", elapsed.as_secs_f64())
}

/// Prints one event line: time stamp, who, what.
pub fn say(who: &str, what: impl fmt::Display) {
    println!("{} {who:<10} {what}", stamp());
}

/// Seconds with millisecond precision, for event lines.
pub fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// A demo's closing line: `SUMMARY name: key=value ... OK` (or `FAILED`).
#[derive(Debug)]
pub struct Summary {
    demo: &'static str,
    fields: Vec<(&'static str, String)>,
    ok: bool,
}

impl Summary {
    /// A summary that is OK until a check fails.
    pub fn new(demo: &'static str) -> Self {
        Summary {
            demo,
            fields: Vec::new(),
            ok: true,
        }
    }

    /// Adds `key=value`.
    pub fn field(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.fields.push((key, value.to_string()));
        self
    }

    /// Fails the summary unless `holds`, printing what did not hold.
    pub fn check(mut self, holds: bool, what: &str) -> Self {
        if !holds {
            eprintln!("{} CHECK FAILED in {}: {what}", stamp(), self.demo);
            self.ok = false;
        }
        self
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SUMMARY {}:", self.demo)?;
        for (key, value) in &self.fields {
            write!(f, " {key}={value}")?;
        }
        f.write_str(if self.ok { " OK" } else { " FAILED" })
    }
}

/// How long a demo's clients wait for their background releases when they finish
/// (`LockManager::close`).
pub const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
