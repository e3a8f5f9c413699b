//! The checks of `LockConfig`: every value in range, and TTLs against the drift allowance
//! and the delayed-restart quarantine.

use std::time::Duration;

use super::{LockConfig, MAX_TTL};
use crate::error::LockError;
use crate::input::Ttl;
use crate::keys::{check_cluster_voters, check_prefix};

impl LockConfig {
    /// Check every value.
    ///
    /// # Errors
    /// [`LockError::InvalidConfig`] naming the first value out of range.
    pub fn validate(&self) -> Result<(), LockError> {
        if !(self.drift_factor.is_finite() && (0.0..0.5).contains(&self.drift_factor)) {
            return Err(LockError::InvalidConfig(format!(
                "drift factor must be in [0, 0.5), got {}",
                self.drift_factor
            )));
        }
        if self.node_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(LockError::InvalidConfig(
                "node and connect timeouts must be greater than zero".into(),
            ));
        }
        if self.max_rounds_in_flight == 0 {
            return Err(LockError::InvalidConfig(
                "max_rounds_in_flight must be at least 1".into(),
            ));
        }
        check_cluster_voters(self.cluster_voters)?;
        if self.fencing_retention < Duration::from_secs(1) {
            return Err(LockError::InvalidConfig(format!(
                "fencing_retention must be at least 1 s (longer than any clock offset between \
                 voters), got {:?}",
                self.fencing_retention
            )));
        }
        if let Some(acks) = &self.replica_acks {
            acks.validate(self.node_timeout)?;
        }
        if let Some(max_ttl) = self.delayed_restart
            && !(Duration::from_millis(1)..=MAX_TTL).contains(&max_ttl)
        {
            return Err(LockError::InvalidConfig(format!(
                "delayed_restart's longest TTL must be between 1 ms and {MAX_TTL:?}, got \
                 {max_ttl:?}"
            )));
        }
        if !(Duration::from_millis(10)..=Duration::from_secs(60))
            .contains(&self.clock_sample_window)
        {
            return Err(LockError::InvalidConfig(format!(
                "clock_sample_window must be between 10 ms and 60 s, got {:?}",
                self.clock_sample_window
            )));
        }
        #[cfg(feature = "tls")]
        if let Some(ca) = &self.tls_root_ca {
            ca.validate()?;
        }
        check_prefix(&self.key_prefix)
    }

    /// Check a TTL and round it down to whole milliseconds (the precision of `PX`).
    ///
    /// # Errors
    /// [`LockError::InvalidTtl`] when the TTL is under 1 ms, over [`MAX_TTL`], or not longer
    /// than its drift allowance (no validity could ever be left).
    pub fn check_ttl(&self, ttl: Duration) -> Result<Duration, LockError> {
        self.ttl(ttl).map(Ttl::get)
    }

    /// [`LockConfig::check_ttl`], as the checked type; also refuses a TTL longer than the
    /// longest TTL of [`LockConfig::delayed_restart`], whose quarantine would not cover it.
    pub(crate) fn ttl(&self, ttl: Duration) -> Result<Ttl, LockError> {
        let checked = Ttl::new(ttl, self.drift_factor)?;
        match self.delayed_restart {
            Some(max_ttl) if checked.get() > max_ttl => Err(LockError::InvalidTtl {
                ttl,
                reason: format!(
                    "longer than the longest TTL given to LockConfig::delayed_restart \
                     ({max_ttl:?}): a voter's quarantine after a restart would not cover it; \
                     raise that setting on every client, or use a shorter TTL"
                ),
            }),
            _ => Ok(checked),
        }
    }
}
