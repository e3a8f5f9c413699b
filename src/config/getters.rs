//! The getters of `LockConfig`: the values in use, for the manager and its rounds.

use std::time::Duration;

use super::{LockConfig, Mode};
use crate::retry::RetryPolicy;

impl LockConfig {
    /// Whether fencing tokens are on.
    pub fn fencing_enabled(&self) -> bool {
        self.fencing
    }

    /// The fencing counters' retention in use.
    pub(crate) fn fencing_retention_value(&self) -> Duration {
        self.fencing_retention
    }

    /// The retry policy in use.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The drift factor in use.
    pub(crate) fn drift_factor_value(&self) -> f64 {
        self.drift_factor
    }

    /// The per-node timeout in use.
    pub(crate) fn node_timeout_value(&self) -> Duration {
        self.node_timeout
    }

    /// The connect timeout in use.
    pub(crate) fn connect_timeout_value(&self) -> Duration {
        self.connect_timeout
    }

    /// The key prefix in use.
    pub(crate) fn key_prefix_str(&self) -> &str {
        &self.key_prefix
    }

    /// The number of cluster voters in use.
    pub(crate) fn voter_count(&self) -> usize {
        self.cluster_voters
    }

    /// The mode in use.
    pub(crate) fn mode_value(&self) -> Mode {
        self.mode
    }
}
