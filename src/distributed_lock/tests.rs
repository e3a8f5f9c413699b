//! The `RedisDistributedLock` facade, unit-tested.

use super::*;

fn new(nodes: &[&str], resource: &str, ttl: Duration) -> Result<RedisDistributedLock, LockError> {
    RedisDistributedLock::new(
        nodes.iter().map(|s| s.to_string()).collect(),
        resource.to_string(),
        ttl,
    )
}

const NODE: &str = "redis://127.0.0.1:7000";

#[test]
fn handle_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RedisDistributedLock>();
}

#[test]
fn construction_checks_input_without_connecting() {
    let lock = new(&[NODE], "r", Duration::from_micros(1_500_700)).unwrap();
    assert_eq!(lock.ttl(), Duration::from_millis(1500));
    assert_eq!(lock.resource(), "r");
    assert!(matches!(
        new(&[NODE], "", Duration::from_secs(1)),
        Err(LockError::InvalidResource(_))
    ));
    for ttl in [
        Duration::ZERO,
        Duration::from_millis(2),
        Duration::from_secs(100 * 24 * 3600),
        Duration::MAX,
    ] {
        assert!(matches!(
            new(&[NODE], "r", ttl),
            Err(LockError::InvalidTtl { .. })
        ));
    }
    for nodes in [&[][..], &["localhost:6379"], &["redis://"], &[NODE, NODE]] {
        assert!(matches!(
            new(nodes, "r", Duration::from_secs(1)),
            Err(LockError::InvalidUrl { .. })
        ));
    }
}
