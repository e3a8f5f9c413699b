//! `redlock status`, `redlock health` and bad input, as a stranger would meet them: every
//! failure is one `redlock: ...` line and its documented status, quickly.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use support::{Redlock, Scratch, Voters};

/// A loopback port nothing listens on: bound, then closed again.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    port
}

#[test]
fn bad_input_is_one_line_and_a_documented_status() {
    let dir = Scratch::new("bad");
    let closed = format!("redis://127.0.0.1:{}", closed_port());
    let cases: [(&[&str], Option<&str>, i32, &str); 9] = [
        (
            &["run", "--ttl", "5parsecs", "r", "--", "true"],
            Some(&closed),
            64,
            "--ttl",
        ),
        (&["run", "", "--", "true"], Some(&closed), 64, "empty"),
        (&["status", " "], Some(&closed), 64, "empty"),
        (
            &["run", "--bogus", "r", "--", "true"],
            Some(&closed),
            64,
            "--bogus",
        ),
        (&["run", "r"], Some(&closed), 64, "CMD"),
        (
            &["run", "--wait", "1s", "--no-wait", "r", "--", "true"],
            Some(&closed),
            64,
            "--no-wait",
        ),
        (&["status", "r"], None, 64, "REDLOCK_NODES"),
        (
            &["run", "--wait", "5s", "r", "--", "true"],
            Some(&closed),
            69,
            "seeds answered",
        ),
        (&["health"], Some(&closed), 69, "seeds answered"),
    ];
    for (args, nodes, code, says) in cases {
        let ended = Redlock::spawn(&dir, args, nodes).wait();
        assert_eq!(ended.code(), Some(code), "{args:?}: {ended:?}");
        assert_eq!(
            ended.stderr.lines().count(),
            1,
            "{args:?}: one line on stderr: {:?}",
            ended.stderr
        );
        let line = ended.stderr.trim_end();
        assert!(line.starts_with("redlock: "), "{args:?}: {line}");
        assert!(
            line.contains(says),
            "{args:?}: {line:?} should mention {says:?}"
        );
        assert!(ended.stdout.is_empty(), "{args:?}: {:?}", ended.stdout);
        // Unreachable nodes are not retried for all of --wait.
        assert!(
            ended.waited < Duration::from_secs(5),
            "{args:?} took {:?}",
            ended.waited
        );
    }
}

#[test]
fn help_documents_every_command_and_exit_status() {
    let dir = Scratch::new("help");
    let help = Redlock::spawn(&dir, &["--help"], None).wait();
    assert_eq!(help.code(), Some(0));
    for needle in [
        "run",
        "status",
        "health",
        "REDLOCK_NODES",
        "Exit status",
        "64",
        "69",
        "75",
        "76",
        "124",
        "126",
        "127",
        "128+N",
    ] {
        assert!(help.stdout.contains(needle), "--help lacks {needle:?}");
    }
    let run = Redlock::spawn(&dir, &["run", "--help"], None).wait();
    for needle in [
        "--ttl",
        "--wait",
        "--no-wait",
        "--fencing",
        "--max-hold",
        "--kill-after",
        "REDLOCK_RESOURCE",
        "REDLOCK_TOKEN",
        "REDLOCK_FENCING_TOKEN",
        "SIGTERM",
        "crontab",
    ] {
        assert!(run.stdout.contains(needle), "run --help lacks {needle:?}");
    }
}

#[test]
fn status_reports_a_free_lock_as_json_and_text() {
    let voters = Voters::start();
    let dir = Scratch::new("status");
    let ended = voters
        .redlock(&dir, &["status", "--json", "nobody/holds"])
        .wait();
    assert_eq!(ended.code(), Some(0), "{ended:?}");
    let json: serde_json::Value = serde_json::from_str(&ended.stdout).expect("one JSON object");
    assert_eq!(json["resource"], "nobody/holds");
    assert_eq!(json["locked"], false);
    assert_eq!(json["holder"], serde_json::Value::Null);
    assert_eq!(json["mode"], "independent");
    assert_eq!(json["voters"], 3);
    let nodes = json["nodes"].as_array().expect("nodes");
    assert!(
        nodes
            .iter()
            .all(|n| n["error"].is_null() && n["holder"].is_null()),
        "{json}"
    );

    let text = voters.redlock(&dir, &["status", "nobody/holds"]).wait();
    assert_eq!(text.code(), Some(0));
    assert!(
        text.stdout.starts_with("nobody/holds: free\n"),
        "{:?}",
        text.stdout
    );
}

#[test]
fn health_json_parses_and_the_status_follows_the_findings() {
    let voters = Voters::start();
    let dir = Scratch::new("health");
    let ended = voters.redlock(&dir, &["health", "--json"]).wait();
    let json: serde_json::Value = serde_json::from_str(&ended.stdout).expect("one JSON object");
    let voter_list = json["voters"].as_array().expect("voters");
    assert_eq!(voter_list.len(), 3, "{json}");
    assert!(voter_list.iter().all(|v| v["role"] == "master"), "{json}");
    let danger = json["worst"] == "danger";
    assert_eq!(ended.code(), Some(if danger { 1 } else { 0 }), "{ended:?}");

    // One voter stopped: reported, still a quorum, so no "unavailable" status (with the mode
    // given: `auto` needs every node to answer before it decides).
    voters.servers.nodes()[0].pause().expect("SIGSTOP a voter");
    let text = voters
        .redlock(&dir, &["health", "--mode", "independent"])
        .wait();
    voters.servers.nodes()[0]
        .resume()
        .expect("SIGCONT the voter");
    assert_ne!(text.code(), Some(69), "{text:?}");
    assert!(text.stdout.contains("did not answer"), "{text:?}");
}
