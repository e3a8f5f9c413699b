//! Skewed server clocks under libfaketime, on Valkey (a libc-malloc build; Debian's jemalloc
//! redis-server hangs under libfaketime). Skipped with one line on stderr where Valkey or
//! libfaketime is missing (`REDLOCK_REQUIRE_VALKEY=1` fails instead).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redlock_harness::{Clock, HarnessError, NodeOptions, ServerBinary, Standalone, valkey_gate};

fn server_time(masters: &Standalone) -> f64 {
    let mut con = masters.nodes()[0].connection().unwrap();
    let (secs, micros): (String, String) = redis::cmd("TIME").query(&mut con).unwrap();
    secs.parse::<f64>().unwrap() + micros.parse::<f64>().unwrap() / 1e6
}

fn real_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn valkey(clock: Clock) -> Standalone {
    Standalone::start_each(&[NodeOptions::default()
        .binary(ServerBinary::Valkey)
        .clock(clock)
        .appendonly(false)])
    .expect("valkey-server under libfaketime")
}

#[test]
fn a_fast_clock_runs_fast_and_expires_keys_early() {
    if !valkey_gate("a_fast_clock_runs_fast_and_expires_keys_early", true).unwrap() {
        return;
    }
    let masters = valkey(Clock::rate(2.0));
    let version = ServerBinary::Valkey.version().unwrap();
    assert!(version.contains("malloc=libc"), "{version}");
    let (server_start, real_start) = (server_time(&masters), Instant::now());
    let mut con = masters.nodes()[0].connection().unwrap();
    let () = redis::cmd("SET")
        .arg("clock:k")
        .arg(1)
        .arg("PX")
        .arg(2000)
        .query(&mut con)
        .unwrap();
    std::thread::sleep(Duration::from_millis(1300));
    let exists: i64 = redis::cmd("EXISTS").arg("clock:k").query(&mut con).unwrap();
    let server_elapsed = server_time(&masters) - server_start;
    let real_elapsed = real_start.elapsed().as_secs_f64();
    // At x2, 1.3 s of real time is 2.6 s on the server: the 2 s key is gone.
    assert_eq!(exists, 0, "a PX 2000 key outlived 1.3 s at x2");
    assert!(
        server_elapsed > real_elapsed * 1.5,
        "server clock advanced {server_elapsed:.2} s in {real_elapsed:.2} s"
    );
}

#[test]
fn a_clock_jumps_when_told_and_a_real_clock_refuses() {
    if !valkey_gate("a_clock_jumps_when_told_and_a_real_clock_refuses", true).unwrap() {
        return;
    }
    let masters = valkey(Clock::rate(1.0));
    assert!((server_time(&masters) - real_time()).abs() < 5.0);
    let node = &masters.nodes()[0];
    node.set_clock(node.clock().jumped(Duration::from_secs(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while server_time(&masters) - real_time() < 90.0 {
        assert!(Instant::now() < deadline, "the clock did not jump");
        std::thread::sleep(Duration::from_millis(100));
    }
    let plain = Standalone::start_each(&[NodeOptions::default()
        .binary(ServerBinary::Valkey)
        .appendonly(false)])
    .unwrap();
    assert!(matches!(
        plain.nodes()[0].set_clock(Clock::rate(2.0)),
        Err(HarnessError::ClockNotFaked { .. })
    ));
}
