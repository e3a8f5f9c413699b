//! `redlock-cluster`: runs the three demos (`examples/lock_contention.rs`,
//! `examples/concurrent_workers.rs`, `examples/lock_guard.rs`) one after the other.
//!
//! ```sh
//! cargo run --release
//! ```
//!
//! It uses the Redis Cluster on 127.0.0.1:7000-7005 when one answers (`docker-compose up -d`),
//! otherwise it starts a throwaway 3 masters + 3 replicas cluster on free ports through the
//! harness and stops it at the end. `REDLOCK_DEMO_THROWAWAY=1` forces the throwaway cluster.
//! The exit status is non-zero when a demo fails or its summary is not OK, or when
//! `redis-server` is missing (the message says how to install it).
//!
//! The demos are the example files themselves, included as modules, so the code exists once.
// Each example is a standalone program that declares `mod common;` (the shared helpers), so
// including them here compiles `examples/common/mod.rs` once per demo: written once, built
// a few times, which is what this lint flags.
#![allow(clippy::duplicate_mod)]

use std::error::Error;
use std::fmt::Display;
use std::process::ExitCode;

#[path = "../examples/common/mod.rs"]
mod common;
#[path = "../examples/concurrent_workers.rs"]
mod concurrent_workers;
#[path = "../examples/lock_contention.rs"]
mod lock_contention;
#[path = "../examples/lock_guard.rs"]
mod lock_guard;

fn main() -> ExitCode {
    let mut demo = match common::cluster() {
        Ok(demo) => demo,
        Err(error) => {
            eprintln!("error: cannot get a Redis Cluster for the demos: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (urls, throwaway) = common::parts(&mut demo);
    let runtime = match common::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let results: Vec<(&str, Result<String, String>)> = runtime.block_on(async {
        // lock_guard runs last: on a throwaway cluster it kills two masters.
        vec![
            (
                "lock_contention",
                line(lock_contention::run(&urls, None).await),
            ),
            (
                "concurrent_workers",
                line(concurrent_workers::run(&urls, None).await),
            ),
            ("lock_guard", line(lock_guard::run(&urls, throwaway).await)),
        ]
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
    if failed == 0 {
        println!("all {} demos OK", results.len());
        ExitCode::SUCCESS
    } else {
        println!("{failed} of {} demos FAILED", results.len());
        ExitCode::FAILURE
    }
}

/// A demo's outcome as its summary line (which ends in ` OK` when every check held).
fn line(result: Result<impl Display, Box<dyn Error>>) -> Result<String, String> {
    result.map(|s| s.to_string()).map_err(|e| e.to_string())
}
