//! Tests of `health`.

use tokio::time::Instant;

use super::*;
use crate::config::LockConfig;
use crate::server::ServerFacts;

fn context(mode: Mode) -> Context {
    Context::of(&LockConfig::new(), mode)
}

fn severities(findings: &[Finding]) -> Vec<Severity> {
    findings.iter().map(|f| f.severity).collect()
}

/// Samples of a server whose clock runs at `rate`, every `gap`, each with round trip
/// `rtt`, the server reading its clock mid-trip.
fn samples(rate: f64, gap: Duration, rtt: Duration, n: usize) -> Vec<Sample> {
    let start = Instant::now();
    let epoch = Duration::from_secs(1_700_000_000);
    (0..n)
        .map(|i| {
            let sent = start + gap * u32::try_from(i).unwrap();
            let local = (sent + rtt / 2).duration_since(start);
            Sample {
                sent,
                received: sent + rtt,
                server: epoch + local.mul_f64(rate),
            }
        })
        .collect()
}

#[test]
fn the_clock_rate_and_its_bounds() {
    let ms = Duration::from_millis;
    let fast = clock_rate(&samples(1.1, ms(50), ms(1), 5)).unwrap();
    assert!((fast.rate - 1.1).abs() < 1e-6, "{fast:?}");
    assert!(fast.low < 1.1 && fast.high > 1.1, "{fast:?}");
    // Two 1 ms round trips over the 200 ms between first and last sample: about +-0.5 %.
    assert!(fast.low > 1.09 && fast.high < 1.11, "{fast:?}");
    let same = clock_rate(&samples(1.0, ms(50), ms(1), 5)).unwrap();
    assert!((same.rate - 1.0).abs() < 1e-6 && same.low < 1.0 && same.high > 1.0);
    // Too few samples, or round trips longer than the gaps: nothing to say.
    assert!(clock_rate(&samples(1.0, ms(50), ms(1), 1)).is_none());
    assert!(clock_rate(&samples(1.0, ms(1), ms(5), 2)).is_none());
    // One slow sample does not spoil the estimate: the quickest of each half is used.
    let mut noisy = samples(1.1, ms(50), ms(1), 5);
    noisy[4].received += ms(40);
    let rate = clock_rate(&noisy).unwrap();
    assert!((rate.rate - 1.1).abs() < 1e-6, "{rate:?}");
    assert_eq!(median_rtt(&noisy), Some(ms(1)));
}

#[test]
fn a_fast_clock_beyond_the_drift_factor_is_a_danger() {
    let ms = Duration::from_millis;
    let judge = |rate: f64, rtt: Duration| {
        let clock = clock_rate(&samples(rate, ms(50), rtt, 5)).unwrap();
        severities(&assess(
            &context(Mode::Independent),
            None,
            None,
            None,
            Some(&clock),
            None,
        ))
    };
    assert_eq!(judge(1.10, ms(1)), [Severity::Danger]);
    assert_eq!(judge(1.005, ms(1)), [], "within the 1 % drift factor");
    assert_eq!(judge(0.90, ms(1)), [Severity::Info], "slow is safe");
    // 3 % fast, but round trips of 10 ms leave it uncertain: no alarm, a hint.
    assert_eq!(judge(1.03, ms(10)), [Severity::Info]);
}

#[test]
fn findings_from_the_facts_each_with_a_fix() {
    let healthy = ServerFacts::simulated("a");
    let findings = assess(
        &context(Mode::Independent),
        Some(&healthy),
        None,
        Some(Duration::from_millis(1)),
        None,
        None,
    );
    assert!(findings.is_empty(), "{findings:?}");

    let mut risky = healthy.clone();
    risky.maxmemory = 1 << 20;
    risky.maxmemory_policy = "allkeys-lru".into();
    risky.aof_enabled = false;
    risky.replicas = vec![("127.0.0.1:7003".into(), Some(Duration::from_secs(3)))];
    risky.require_full_coverage = Some(true);
    let findings = assess(
        &context(Mode::Cluster),
        Some(&risky),
        None,
        Some(Duration::from_millis(80)),
        None,
        None,
    );
    assert_eq!(
        severities(&findings),
        [
            Severity::Danger,
            Severity::Danger,
            Severity::Warning,
            Severity::Warning,
            Severity::Warning
        ],
        "{findings:#?}"
    );
    assert!(findings[0].fix.contains("noeviction"), "{findings:#?}");
    assert!(
        findings[1].fix.contains("appendfsync always"),
        "{findings:#?}"
    );
    assert!(findings.iter().all(|f| !f.fix.is_empty()));
    // With delayed restarts, missing persistence is covered: information only.
    let covered = Context {
        delayed_restart: Some(Duration::from_secs(30)),
        ..context(Mode::Independent)
    };
    let mut volatile = healthy.clone();
    volatile.aof_enabled = false;
    let findings = assess(&covered, Some(&volatile), None, None, None, None);
    assert_eq!(severities(&findings), [Severity::Info], "{findings:?}");
    // Unknown fsync (CONFIG refused) is a warning; everysec too.
    volatile.aof_enabled = true;
    volatile.appendfsync = None;
    let context = context(Mode::Independent);
    let findings = assess(&context, Some(&volatile), None, None, None, None);
    assert!(findings[0].message.contains("unknown"), "{findings:?}");
    volatile.appendfsync = Some("everysec".into());
    let findings = assess(&context, Some(&volatile), None, None, None, None);
    assert_eq!(severities(&findings), [Severity::Warning]);
    // A voter that did not answer.
    let down = NodeError::Timeout(Duration::from_secs(1));
    let findings = assess(&context, None, Some(&down), None, None, None);
    assert_eq!(severities(&findings), [Severity::Warning]);
}

/// A voter for the spread findings, with its clock offset.
fn voter_with_offset(addr: &str, seconds: f64) -> VoterHealth {
    VoterHealth {
        addr: addr.into(),
        error: None,
        role: None,
        run_id: None,
        redis_version: None,
        uptime: None,
        appendonly: None,
        appendfsync: None,
        maxmemory: None,
        maxmemory_policy: None,
        connected_replicas: None,
        replicas: Vec::new(),
        cluster_require_full_coverage: None,
        rtt: None,
        clock_rate: None,
        clock_offset: Some(ClockOffset {
            seconds,
            uncertainty: Duration::from_millis(1),
        }),
        quarantined_for: None,
        findings: Vec::new(),
    }
}

#[test]
fn the_clock_offset_comes_from_the_quickest_sample() {
    let ms = Duration::from_millis;
    // The server's clock (epoch 1_700_000_000 s at the first send) is 250 ms ahead of a wall
    // clock that read 1_700_000_000 s - 250 ms at the first send.
    let taken = samples(1.0, ms(50), ms(2), 5);
    let first = taken[0].sent;
    let wall = Duration::from_secs(1_700_000_000) - ms(250);
    let offset = offset::clock_offset(&taken, |at| wall + at.duration_since(first)).unwrap();
    assert!((offset.seconds - 0.250).abs() < 1e-6, "{offset:?}");
    assert_eq!(offset.uncertainty, ms(1));
    assert!(offset::clock_offset(&[], |_| wall).is_none());
}

#[test]
fn the_clock_spread_counts_the_uncertainties() {
    let ms = Duration::from_millis;
    let a = ClockOffset {
        seconds: -0.1,
        uncertainty: ms(1),
    };
    let b = ClockOffset {
        seconds: 0.2,
        uncertainty: ms(2),
    };
    let spread = offset::clock_spread([a, b].iter()).unwrap();
    assert!((spread.as_secs_f64() - 0.303).abs() < 1e-9, "{spread:?}");
    assert_eq!(offset::clock_spread([a].iter()), None);
}

/// With fencing on, voter clocks as far apart as the quarantine (or the retention) are a
/// danger, half as far a warning, on the voter farthest from the others; without fencing,
/// nothing.
#[test]
fn clocks_apart_by_the_quarantine_endanger_fencing_tokens() {
    let config = LockConfig::new()
        .fencing(true)
        .delayed_restart(Duration::from_secs(2));
    let fenced = Context::of(&config, Mode::Independent);
    let judge = |context: &Context, spread_ms: u64| {
        let mut voters = vec![
            voter_with_offset("a", 0.0),
            voter_with_offset("b", 0.01),
            voter_with_offset("c", spread_ms as f64 / 1000.0),
        ];
        let spread = Some(Duration::from_millis(spread_ms));
        offset::spread_findings(context, spread, &mut voters);
        voters
            .iter()
            .map(|v| severities(&v.findings))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        judge(&fenced, 2500),
        [vec![], vec![], vec![Severity::Danger]]
    );
    assert_eq!(
        judge(&fenced, 1200),
        [vec![], vec![], vec![Severity::Warning]]
    );
    assert_eq!(judge(&fenced, 500), [vec![], vec![], vec![]]);
    let plain = Context::of(&LockConfig::new(), Mode::Independent);
    assert_eq!(judge(&plain, 2500), [vec![], vec![], vec![]]);
}
