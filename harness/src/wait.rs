//! Bounded polling: every wait in the harness goes through [`wait_for`].

use std::fmt::Display;
use std::time::{Duration, Instant};

use super::HarnessError;

/// How often a condition is polled. Short, because cluster state changes are what tests time.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// The outcome of one poll.
pub(crate) enum Check<T> {
    /// The condition holds; the wait returns this value.
    Done(T),
    /// Not yet; the text says what was seen, for the timeout message.
    NotYet(String),
}

/// Polls `check` until it is done, fails hard, or `timeout` runs out.
pub(crate) fn wait_for<T>(
    what: impl Display,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Check<T>, HarnessError>,
) -> Result<T, HarnessError> {
    let start = Instant::now();
    loop {
        let last_seen = match check()? {
            Check::Done(value) => return Ok(value),
            Check::NotYet(seen) => seen,
        };
        if start.elapsed() >= timeout {
            return Err(HarnessError::Timeout {
                what: what.to_string(),
                waited: start.elapsed(),
                last_seen,
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// What is left of `timeout` since `start` (zero when spent).
pub(crate) fn remaining(start: Instant, timeout: Duration) -> Duration {
    timeout.saturating_sub(start.elapsed())
}

/// Treats a failed Redis command as "not yet" (a node may be busy or restarting), keeping
/// every other error fatal.
pub(crate) fn redis_errors_are_transient<T>(
    result: Result<Check<T>, HarnessError>,
) -> Result<Check<T>, HarnessError> {
    match result {
        Err(e @ HarnessError::Redis { .. }) => Ok(Check::NotYet(e.to_string())),
        other => other,
    }
}
