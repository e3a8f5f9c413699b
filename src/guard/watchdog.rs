//! The guard's watchdog task: extends the lock on schedule (retrying failed extensions while
//! validity lasts), and raises the lost signal when the lock can no longer be kept.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{GuardOptions, LostReason, State};
use crate::engine::quorum::drift;
use crate::lock::Lock;
use crate::manager::LockManager;
use crate::retry::RetryPolicy;

/// The watchdog's step between retries of a failed extension: a retry waits one step plus a
/// random time of up to 1, 2, 4, then 5 steps.
const RETRY_STEP: Duration = Duration::from_millis(10);

/// The watchdog: sleeps until the next extension (with auto-extension), the deadline or the
/// maximum hold time, whichever comes first, and raises the lost signal when the lock can no
/// longer be kept.
///
/// An extension (with its retries) races the validity deadline and the hold end: whatever
/// round is in flight, the lost signal fires when the deadline passes, not when the round
/// ends. The abandoned round is dropped; a late `PEXPIRE` it sent can only lengthen our own
/// keys, and the release that follows a loss deletes them.
pub(super) async fn watchdog(
    manager: LockManager,
    state: Arc<watch::Sender<State>>,
    options: GuardOptions,
) {
    let hold_end = options
        .max_hold
        .and_then(|limit| tokio::time::Instant::now().checked_add(limit));
    let reason = loop {
        let lock = state.borrow().lock.duplicate();
        let ttl = lock.ttl();
        // The deadline is `start + ttl - drift`, so this is `start + ttl * fraction - drift`:
        // the extension interval counted from when the last acquire or extend started.
        let mut wake = lock.deadline;
        if options.auto_extend {
            let before_deadline = ttl.mul_f64(1.0 - options.extend_fraction);
            wake = wake.checked_sub(before_deadline).unwrap_or(wake);
        }
        if let Some(end) = hold_end {
            wake = wake.min(end);
        }
        tokio::time::sleep_until(wake).await;

        if let (Some(end), Some(limit)) = (hold_end, options.max_hold)
            && tokio::time::Instant::now() >= end
        {
            break LostReason::MaxHold(limit);
        }
        if !lock.is_valid() {
            break LostReason::Expired;
        }
        if !options.auto_extend {
            continue;
        }
        let cutoff = hold_end.map_or(lock.deadline, |end| end.min(lock.deadline));
        // Cut off at the deadline (or the hold end) whatever round is in flight; the checks
        // at the top of the loop then name the reason.
        let Ok(kept) = tokio::time::timeout_at(cutoff, keep(&manager, &lock, ttl)).await else {
            continue;
        };
        match kept {
            Ok(extended) => state.send_modify(|s| s.lock = extended),
            Err(reason) => break reason,
        }
    };
    tracing::debug!(%reason, "guard lost its lock");
    state.send_modify(|s| s.lost = Some(reason.clone()));
    if matches!(reason, LostReason::MaxHold(_)) {
        // Still valid until its deadline, and the holder may still be in its critical
        // section: left to expire (or to an explicit release).
        return;
    }
    // Lost: whatever keys are left (a late extension may even have lengthened some) are ours
    // and no use to anyone; free them for the next holder. Still in this task, so an explicit
    // release or a drop of the guard (which abort it) take over.
    let mut lock = state.borrow().lock.duplicate();
    match manager.release(&mut lock).await {
        Ok(held) => tracing::debug!(resource = lock.resource(), held, "lost lock released"),
        Err(error) => tracing::debug!(
            resource = lock.resource(),
            %error,
            "lost lock's release failed; the keys expire with their TTL"
        ),
    }
}

/// Extend `lock` to `ttl`, retrying a failed extension (refused, or too few voters answered)
/// with a short jittered backoff, on the refreshed topology when the failure asked for one,
/// for as long as the validity left allows one more round. Returns the extended lock, or why
/// it could not be kept.
async fn keep(manager: &LockManager, lock: &Lock, ttl: Duration) -> Result<Lock, LostReason> {
    let config = manager.config();
    // The worst case of one extension round: every vote waits out the node timeout, and the
    // result must still leave validity after the drift allowance.
    let round = config
        .node_timeout_value()
        .saturating_add(drift(ttl, config.drift_factor_value()));
    let backoff = RetryPolicy::new()
        .base_delay(RETRY_STEP)
        .max_delay(RETRY_STEP * 5);
    let mut retry = 0;
    loop {
        let mut extended = lock.duplicate();
        let failure = match manager.extend(&mut extended, ttl).await {
            Ok(true) => return Ok(extended),
            Ok(false) if !lock.is_valid() => return Err(LostReason::Expired),
            Ok(false) => LostReason::ExtendRefused,
            Err(error) if error.is_invalid_input() => return Err(LostReason::ExtendFailed(error)),
            Err(error) => LostReason::ExtendFailed(error),
        };
        let delay = RETRY_STEP.saturating_add(backoff.delay(retry, None));
        let Some(spare) = lock.remaining().checked_sub(delay.saturating_add(round)) else {
            return Err(failure);
        };
        tracing::debug!(
            resource = lock.resource(),
            retry,
            ?delay,
            reason = %failure,
            "extension failed; retrying while validity lasts"
        );
        tokio::time::sleep(delay).await;
        // A redirect or a lost cluster voter asked for a refresh: run the retry on it.
        manager.settle_topology(spare).await;
        if lock.remaining() <= round {
            return Err(failure);
        }
        retry = retry.saturating_add(1);
    }
}
