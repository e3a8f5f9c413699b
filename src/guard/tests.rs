//! `GuardOptions` validation and `LockGuard`'s thread safety, unit-tested.

use super::*;

#[test]
fn options_are_checked() {
    assert!(GuardOptions::new().validate().is_ok());
    for fraction in [0.0, 1.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
        assert!(
            GuardOptions::new()
                .extend_fraction(fraction)
                .validate()
                .is_err(),
            "{fraction}"
        );
    }
    assert!(
        GuardOptions::new()
            .max_hold(Duration::ZERO)
            .validate()
            .is_err()
    );
}

#[test]
fn guard_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<LockGuard>();
}
