//! The demo binary end to end, on a throwaway cluster (`REDLOCK_DEMO_THROWAWAY=1`), so CI never
//! depends on, nor touches, a cluster on 127.0.0.1:7000-7005.

use std::process::Command;

#[test]
fn demo_binary_runs_every_demo_ok() {
    let output = Command::new(env!("CARGO_BIN_EXE_redlock-demo"))
        .env("REDLOCK_DEMO_THROWAWAY", "1")
        .output()
        .expect("run the demo binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("REDLOCK_DEMO_THROWAWAY=1: started a throwaway"));
    for demo in ["lock_contention", "concurrent_workers", "lock_guard"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("SUMMARY {demo}:")))
            .unwrap_or_else(|| panic!("no summary line for {demo}:\n{stdout}"));
        assert!(line.ends_with(" OK"), "{line}");
    }
    assert!(stdout.contains("overlaps=0"));
    assert!(stdout.contains("ran_once=12 duplicates=0"));
    // On a throwaway cluster the lost-signal part runs instead of being skipped.
    assert!(stdout.contains("lost_signal_after="), "{stdout}");
    assert!(stdout.contains("all 3 demos OK"));
}
