//! `redlock run` as a process, over three real redis-server voters: turns, `--no-wait`, a lost
//! lock, `--max-hold`, forwarded signals, the exported tokens, a command that cannot start.

mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use support::{Scratch, Voters, alive, signal, wait_for_file};

/// A child that appends `start NANOS` and `end NANOS` to `log` around a pause of `seconds`.
fn timed_child(log: &str, seconds: &str) -> String {
    format!(
        "echo \"start $(date +%s%N)\" >> {log}; sleep {seconds}; echo \"end $(date +%s%N)\" >> {log}"
    )
}

/// The `(start, end)` intervals in a log written by [`timed_child`]s (each child writes its
/// start and end lines with one append each; two children's lines may interleave).
fn intervals(log: &str) -> Vec<(u128, u128)> {
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for line in log.lines() {
        let (what, nanos) = line.split_once(' ').expect("a log line");
        let nanos: u128 = nanos.trim().parse().expect("nanoseconds");
        match what {
            "start" => starts.push(nanos),
            "end" => ends.push(nanos),
            other => panic!("unexpected log line {other:?}"),
        }
    }
    starts.sort_unstable();
    ends.sort_unstable();
    starts.into_iter().zip(ends).collect()
}

#[test]
fn a_second_run_waits_for_the_first_and_never_overlaps() {
    let voters = Voters::start();
    let dir = Scratch::new("turns");
    let log = dir.path_str("log");
    let child = timed_child(&log, "1");
    let args = [
        "run", "--ttl", "2s", "--wait", "15s", "turns", "--", "sh", "-c", &child,
    ];
    let first = voters.redlock(&dir, &args);
    wait_for_file(&dir.path("log"), Duration::from_secs(10));
    let mut second = voters.redlock(&dir, &args);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        second.running(),
        "the second run waits while the first holds the lock"
    );
    let first = first.wait();
    let second = second.wait();
    assert_eq!(first.code(), Some(0), "{first:?}");
    assert_eq!(second.code(), Some(0), "{second:?}");
    // Not a terminal: no progress line while waiting, nothing at all on stderr.
    assert_eq!(second.stderr, "", "{second:?}");
    let runs = intervals(&dir.read("log"));
    assert_eq!(runs.len(), 2, "both commands ran: {runs:?}");
    // Sorted by start: the second started only after the first ended.
    assert!(runs[0].1 <= runs[1].0, "the commands overlapped: {runs:?}");
}

#[test]
fn no_wait_fails_fast_while_another_holds_the_lock() {
    let voters = Voters::start();
    let dir = Scratch::new("nowait");
    let mark = dir.path_str("held");
    let holder_child = format!("echo held > {mark}; sleep 3");
    let mut holder = voters.redlock(
        &dir,
        &[
            "run",
            "--ttl",
            "2s",
            "busy",
            "--",
            "sh",
            "-c",
            &holder_child,
        ],
    );
    wait_for_file(&dir.path("held"), Duration::from_secs(10));
    let refused = voters
        .redlock(
            &dir,
            &["run", "--no-wait", "busy", "--", "sh", "-c", "echo ran"],
        )
        .wait();
    assert!(
        holder.running(),
        "--no-wait returned while the holder still ran"
    );
    assert_eq!(refused.code(), Some(75), "{refused:?}");
    assert!(!refused.stdout.contains("ran"), "the command must not run");
    let lines = refused.redlock_lines();
    assert_eq!(lines.len(), 1, "{refused:?}");
    assert!(lines[0].contains("not obtained"), "{lines:?}");
    assert_eq!(holder.wait().code(), Some(0));
}

#[test]
fn a_command_that_outlives_its_lock_is_stopped_and_the_status_says_lost() {
    let voters = Voters::start();
    let dir = Scratch::new("lost");
    let pid_file = dir.path_str("pid");
    // The command ignores SIGTERM (so does its `sleep`, which inherits that), so only the
    // SIGKILL after --kill-after ends it.
    let child = format!("trap '' TERM; echo $$ > {pid_file}; while :; do sleep 0.1; done");
    let run = voters.redlock(
        &dir,
        &[
            "run",
            "--ttl",
            "1s",
            "--kill-after",
            "300ms",
            "lost",
            "--",
            "sh",
            "-c",
            &child,
        ],
    );
    wait_for_file(&dir.path("pid"), Duration::from_secs(10));
    let pid: i32 = dir.read("pid").trim().parse().expect("the command's pid");
    assert!(alive(pid));
    // A forced loss: two of three voters stop answering, so no extension reaches a quorum.
    for node in &voters.servers.nodes()[..2] {
        node.pause().expect("SIGSTOP a voter");
    }
    let ended = run.wait();
    for node in &voters.servers.nodes()[..2] {
        node.resume().expect("SIGCONT a voter");
    }
    assert_eq!(ended.code(), Some(76), "{ended:?}");
    assert!(ended.stderr.contains("lock lost"), "{ended:?}");
    assert!(
        !alive(pid),
        "the command still runs after its lock was lost"
    );
}

#[test]
fn max_hold_stops_the_command() {
    let voters = Voters::start();
    let dir = Scratch::new("maxhold");
    let ended = voters
        .redlock(
            &dir,
            &[
                "run",
                "--ttl",
                "2s",
                "--max-hold",
                "300ms",
                "--kill-after",
                "300ms",
                "hold",
                "--",
                "sleep",
                "10",
            ],
        )
        .wait();
    assert_eq!(ended.code(), Some(124), "{ended:?}");
    assert!(ended.stderr.contains("--max-hold reached"), "{ended:?}");
}

#[test]
fn sigint_and_sigterm_are_forwarded_to_the_command() {
    let voters = Voters::start();
    let dir = Scratch::new("signals");
    for (name, sig, status) in [("INT", Signal::SIGINT, 7), ("TERM", Signal::SIGTERM, 8)] {
        let ready = format!("ready-{name}");
        let got = format!("got-{name}");
        let child = format!(
            "trap 'echo {name} > {got}; exit {status}' {name}; echo up > {ready}; while :; do sleep 0.1; done",
            got = dir.path_str(&got),
            ready = dir.path_str(&ready),
        );
        let run = voters.redlock(
            &dir,
            &["run", "--ttl", "2s", "sig", "--", "sh", "-c", &child],
        );
        wait_for_file(&dir.path(&ready), Duration::from_secs(10));
        signal(run.pid(), sig);
        let ended = run.wait();
        assert_eq!(ended.code(), Some(status), "SIG{name}: {ended:?}");
        assert_eq!(dir.read(&got).trim(), name, "the command got SIG{name}");
    }
    // Released on the way out: the lock is free.
    let status = voters.redlock(&dir, &["status", "--json", "sig"]).wait();
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(json["locked"], false, "{json}");
}

#[test]
fn the_exported_tokens_match_redlock_status() {
    let voters = Voters::start();
    let dir = Scratch::new("tokens");
    let env = dir.path_str("env");
    let done = dir.path_str("done");
    // Holds until the test has read the status (the `done` file), 10 s at most.
    let child = format!(
        "echo \"$REDLOCK_RESOURCE $REDLOCK_TOKEN $REDLOCK_FENCING_TOKEN\" > {env}; \
         i=0; while [ ! -e {done} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done"
    );
    let run = voters.redlock(
        &dir,
        &[
            "run",
            "--fencing",
            "--ttl",
            "2s",
            "reports/daily",
            "--",
            "sh",
            "-c",
            &child,
        ],
    );
    wait_for_file(&dir.path("env"), Duration::from_secs(10));
    let exported = dir.read("env");
    let fields: Vec<&str> = exported.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{exported:?}");
    assert_eq!(fields[0], "reports/daily");
    assert_eq!(fields[1].len(), 32, "a 128-bit token in hex: {exported:?}");
    let fencing: u64 = fields[2].parse().expect("a fencing token");

    let status = voters
        .redlock(&dir, &["status", "--json", "--fencing", "reports/daily"])
        .wait();
    assert_eq!(status.code(), Some(0), "{status:?}");
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(json["locked"], true, "{json}");
    assert_eq!(json["holder"], fields[1], "{json}");
    assert_eq!(json["fencing_token"], fencing, "{json}");
    assert_eq!(json["quorum"], 2);
    assert_eq!(json["nodes"].as_array().map(Vec::len), Some(3));
    assert!(
        json["remaining_ms"].as_u64().is_some_and(|ms| ms <= 2000),
        "{json}"
    );

    let text = voters.redlock(&dir, &["status", "reports/daily"]).wait();
    assert!(
        text.stdout.contains(&format!("held by {}", fields[1])),
        "{text:?}"
    );

    std::fs::write(dir.path("done"), "done").expect("write the done mark");
    assert_eq!(run.wait().code(), Some(0));
    // The next holder's fencing token is greater.
    let next = voters
        .redlock(
            &dir,
            &[
                "run",
                "--fencing",
                "reports/daily",
                "--",
                "sh",
                "-c",
                "echo $REDLOCK_FENCING_TOKEN",
            ],
        )
        .wait();
    let next: u64 = next.stdout.trim().parse().expect("the next fencing token");
    assert!(next > fencing, "{next} after {fencing}");
}

#[test]
fn a_command_that_cannot_start_releases_the_lock_with_127_or_126() {
    let voters = Voters::start();
    let dir = Scratch::new("notfound");
    let missing = voters
        .redlock(
            &dir,
            &["run", "nf", "--", "/nonexistent/redlock-test-command"],
        )
        .wait();
    assert_eq!(missing.code(), Some(127), "{missing:?}");
    assert_eq!(missing.redlock_lines().len(), 1, "{missing:?}");
    let not_executable = dir.path_str("not-executable");
    std::fs::write(&not_executable, "data").expect("write a plain file");
    let refused = voters
        .redlock(&dir, &["run", "nf", "--", &not_executable])
        .wait();
    assert_eq!(refused.code(), Some(126), "{refused:?}");
    // Released each time: a --no-wait run gets it at once.
    let again = voters
        .redlock(&dir, &["run", "--no-wait", "nf", "--", "true"])
        .wait();
    assert_eq!(again.code(), Some(0), "{again:?}");
}
