//! Administration: where a resource's keys live, closing, voter health, the detected mode.

use std::time::Duration;

#[cfg(doc)]
use crate::config::LockConfig;
use crate::config::Mode;
use crate::engine::flight::CloseReport;
use crate::error::LockError;
use crate::input::Resource;
use crate::topology::Topology;

use super::LockManager;

impl LockManager {
    /// The voters of `resource` as `(host:port, key)` pairs, in voter order, reading the
    /// topology if needed. Useful to check where the keys live.
    ///
    /// # Errors
    /// Invalid resource, or the topology could not be read.
    pub async fn voters_of(&self, resource: &str) -> Result<Vec<(String, Vec<u8>)>, LockError> {
        self.check_open()?;
        let round = self.round(Resource::new(resource)?).await?;
        Ok(round
            .voters
            .iter()
            .map(|v| (v.node.addr().to_string(), v.key.clone()))
            .collect())
    }

    /// Wait, at most `timeout`, for this manager's background work to finish: the releases
    /// of dropped guards, the cleanups of failed or cancelled acquisitions, and the slower
    /// answers of decided rounds. Call it before the runtime stops (at the end of `main`):
    /// tasks still pending when the runtime shuts down are dropped, and their keys stay until
    /// their TTL runs out, blocking the resource for others that long.
    ///
    /// From the first call on, the manager refuses new work with [`LockError::Closed`]:
    /// acquire, extend, inspect, `is_locked`, health and new guards; a release still runs
    /// (a lock held at shutdown can still be freed, and a dropped guard's release is what
    /// `close` waits for). Calling it again is harmless: it waits for what is still running.
    ///
    /// Returns what it waited for: the background tasks running when it was called, how long
    /// it waited, and how many were still running when the time was up (none in the usual
    /// case; `Display` says it in one line).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use redlock_cluster::{LockConfig, LockManager};
    ///
    /// # async fn demo() -> Result<(), redlock_cluster::LockError> {
    /// let manager = LockManager::new(&["redis://127.0.0.1:7000"], LockConfig::new())?;
    /// // ... locks, guards ...
    /// let report = manager.close(Duration::from_secs(2)).await;
    /// eprintln!("lock manager closed: {report}");
    /// if !report.is_complete() {
    ///     eprintln!("{} releases still pending; their keys expire with their TTL", report.pending);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn close(&self, timeout: Duration) -> CloseReport {
        self.inner.flight.close(timeout).await
    }

    /// Probe every voter (the masters, in cluster mode) and report its health: role,
    /// `run_id`, version, persistence, memory policy, replicas and their lag,
    /// `cluster-require-full-coverage`, round trip, the rate of its clock against ours, and
    /// whether it is quarantined ([`LockConfig::delayed_restart`]), with findings that each
    /// carry a [`Severity`](crate::Severity) and a one-line fix. `Display` prints it as a
    /// table. Takes about [`LockConfig::clock_sample_window`] (the voters are probed at
    /// once); a voter that does not answer is reported, not an error.
    ///
    /// ```no_run
    /// # async fn demo(manager: redlock_cluster::LockManager) -> Result<(), redlock_cluster::LockError> {
    /// let report = manager.health().await?;
    /// println!("{report}");
    /// if report.worst() == Some(redlock_cluster::Severity::Danger) {
    ///     eprintln!("some voter endangers the locks; see the fixes above");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The topology could not be read.
    pub async fn health(&self) -> Result<crate::HealthReport, LockError> {
        self.check_open()?;
        let topology = self.inner.topology.get().await?;
        let voters = match topology.as_ref() {
            Topology::Independent { nodes } => nodes.clone(),
            Topology::Cluster { masters, .. } => masters.clone(),
        };
        Ok(crate::features::health::report(&self.inner.config, topology.mode(), &voters).await)
    }

    /// The detected mode (reading the topology if needed).
    ///
    /// # Errors
    /// The topology could not be read.
    pub async fn mode(&self) -> Result<Mode, LockError> {
        self.check_open()?;
        Ok(self.inner.topology.get().await?.mode())
    }
}
