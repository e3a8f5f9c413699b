//! `redlock-demo`: the three demos of `redlock-cluster`, one after the other, or the ones named.
//!
//! ```sh
//! cargo run --release                       # all three, from the workspace root
//! cargo run --release -- lock_guard         # one of them
//! cargo run --release -- --list             # their names
//! ```
//!
//! - `lock_contention` (`lock_contention.rs`): clients compete for one lock; no two holding
//!   intervals overlap.
//! - `concurrent_workers` (`concurrent_workers.rs`): workers share tasks; each runs once.
//! - `lock_guard` (`lock_guard.rs`): RAII release, the auto-extending watchdog, the lost signal.
//!
//! It uses the Redis Cluster on 127.0.0.1:7000-7005 when one answers (`docker-compose up -d`),
//! otherwise it starts a throwaway 3 masters + 3 replicas cluster on free ports through the
//! harness and stops it at the end. `REDLOCK_DEMO_THROWAWAY=1` forces the throwaway cluster.
//! The exit status is non-zero when a demo fails or its summary is not OK, when a name is
//! unknown, or when `redis-server` is missing (the message says how to install it).

mod common;
mod concurrent_workers;
mod lock_contention;
mod lock_guard;

use std::error::Error;
use std::fmt::Display;
use std::process::ExitCode;

use common::DemoResult;
use redlock_harness::Cluster;

/// The demos, in the order they run. `lock_guard` runs last: on a throwaway cluster it kills
/// two masters.
const DEMOS: [&str; 3] = ["lock_contention", "concurrent_workers", "lock_guard"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list" || a == "-l") {
        for name in DEMOS {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    if let Some(unknown) = args.iter().find(|a| !DEMOS.contains(&a.as_str())) {
        eprintln!(
            "error: unknown demo {unknown:?}; the demos are {}",
            DEMOS.join(", ")
        );
        return ExitCode::FAILURE;
    }
    let selected: Vec<&str> = DEMOS
        .into_iter()
        .filter(|name| args.is_empty() || args.iter().any(|a| a == name))
        .collect();

    let mut demo = match common::cluster() {
        Ok(demo) => demo,
        Err(error) => {
            eprintln!("error: cannot get a Redis Cluster for the demos: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (urls, mut throwaway) = common::parts(&mut demo);
    let runtime = match common::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let results: Vec<(&str, Result<String, String>)> = runtime.block_on(async {
        let mut results = Vec::new();
        for name in &selected {
            let outcome = run(name, &urls, throwaway.as_deref_mut()).await;
            results.push((*name, line(outcome)));
        }
        results
    });
    drop(runtime);
    // Stops a throwaway cluster (kills its servers, deletes their directories).
    drop(demo);

    println!();
    let mut failed = 0;
    for (name, result) in &results {
        match result {
            Ok(line) => {
                println!("{line}");
                failed += usize::from(!line.ends_with(" OK"));
            }
            Err(error) => {
                println!("SUMMARY {name}: error: {error} FAILED");
                failed += 1;
            }
        }
    }
    let noun = if results.len() == 1 { "demo" } else { "demos" };
    if failed == 0 {
        println!("all {} {noun} OK", results.len());
        ExitCode::SUCCESS
    } else {
        println!("{failed} of {} {noun} FAILED", results.len());
        ExitCode::FAILURE
    }
}

/// Runs the demo called `name`.
async fn run(name: &str, urls: &[String], throwaway: Option<&mut Cluster>) -> DemoResult {
    match name {
        "lock_contention" => lock_contention::run(urls, None).await,
        "concurrent_workers" => concurrent_workers::run(urls, None).await,
        _ => lock_guard::run(urls, throwaway).await,
    }
}

/// A demo's outcome as its summary line (which ends in ` OK` when every check held).
fn line(result: Result<impl Display, Box<dyn Error>>) -> Result<String, String> {
    result.map(|s| s.to_string()).map_err(|e| e.to_string())
}
