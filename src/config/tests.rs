//! The `LockConfig` builder, validation and getters, unit-tested.

use super::*;

#[test]
fn ttl_bounds() {
    let c = LockConfig::new();
    assert!(c.check_ttl(Duration::ZERO).is_err());
    assert!(c.check_ttl(Duration::from_micros(999)).is_err());
    assert!(c.check_ttl(Duration::from_millis(2)).is_err());
    assert_eq!(
        c.check_ttl(Duration::from_micros(10_500)).unwrap(),
        Duration::from_millis(10)
    );
    assert!(c.check_ttl(MAX_TTL).is_ok());
    assert!(c.check_ttl(MAX_TTL + Duration::from_millis(1)).is_err());
    assert!(c.check_ttl(Duration::MAX).is_err());
    assert!(c.check_ttl(Duration::from_millis(u64::MAX)).is_err());
}

#[test]
fn config_bounds() {
    assert!(LockConfig::new().validate().is_ok());
    assert!(LockConfig::new().drift_factor(0.5).validate().is_err());
    assert!(LockConfig::new().drift_factor(-0.1).validate().is_err());
    assert!(LockConfig::new().drift_factor(f64::NAN).validate().is_err());
    assert!(
        LockConfig::new()
            .node_timeout(Duration::ZERO)
            .validate()
            .is_err()
    );
    assert!(LockConfig::new().cluster_voters(0).validate().is_err());
    assert!(LockConfig::new().key_prefix("a{").validate().is_err());
    let delayed = LockConfig::new().delayed_restart(Duration::from_secs(10));
    assert!(delayed.validate().is_ok());
    assert!(delayed.check_ttl(Duration::from_secs(10)).is_ok());
    assert!(delayed.check_ttl(Duration::from_secs(11)).is_err());
    assert!(
        LockConfig::new()
            .delayed_restart(Duration::ZERO)
            .validate()
            .is_err()
    );
    assert!(
        LockConfig::new()
            .clock_sample_window(Duration::from_millis(1))
            .validate()
            .is_err()
    );
    let ms = Duration::from_millis;
    assert!(LockConfig::new().replica_acks(1, ms(50)).validate().is_ok());
    assert!(
        LockConfig::new()
            .replica_acks(1, ms(100))
            .validate()
            .is_err()
    );
    assert!(
        LockConfig::new()
            .replica_acks(0, ms(500))
            .validate()
            .is_ok()
    );
    // The fenced acquire and commit are acknowledged like the plain votes.
    let both = LockConfig::new().replica_acks(1, ms(50)).fencing(true);
    assert!(both.validate().is_ok());
    let short = LockConfig::new()
        .fencing(true)
        .fencing_retention(Duration::from_millis(999));
    assert!(short.validate().is_err());
}
