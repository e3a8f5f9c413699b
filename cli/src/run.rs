//! `redlock run`: take the lock (waiting up to `--wait`), then run the command under it (see
//! `child`) and release it when the command exits.

use std::time::Duration;

use redlock_cluster::{GuardOptions, LockGuard, LockManager, RetryPolicy};
use tokio::time::Instant;

use crate::args::RunArgs;
use crate::child::{self, Signals};
use crate::exit::{self, Exit};
use crate::progress::{Progress, waiting_line};

/// The longest pause between two attempts: a released lock is seen at most this late.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How many attempts in a row may fail for want of a quorum (nodes down, unreachable) before
/// redlock gives up with [`exit::UNAVAILABLE`], even if `--wait` has time left: as many as the
/// library's default retry policy makes.
const UNAVAILABLE_ATTEMPTS: u32 = 3;
/// The first pause between attempts (then doubled, with full jitter, up to [`MAX_BACKOFF`]).
const BASE_BACKOFF: Duration = Duration::from_millis(50);

/// Run `args.command` under the lock on `args.resource`.
pub async fn run(manager: &LockManager, args: RunArgs) -> Exit {
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(exit) => return exit,
    };
    let guard = match acquire(manager, &args, &mut signals).await {
        Ok(guard) => guard,
        Err(exit) => return exit,
    };
    child::run_under(guard, &args, &mut signals).await
}

/// One attempt after another until the lock is taken or `--wait` runs out (or the nodes failed
/// [`UNAVAILABLE_ATTEMPTS`] times in a row). Each attempt is a
/// single round ([`RetryPolicy::once`]); between attempts a quorum read says who holds the lock
/// (for the terminal's progress line, and to retry just after the holder's key expires).
/// A signal (SIGINT, SIGTERM, SIGHUP) while waiting stops the wait: exit 128 + the signal.
async fn acquire(
    manager: &LockManager,
    args: &RunArgs,
    signals: &mut Signals,
) -> Result<LockGuard, Exit> {
    let resource = args.resource.as_str();
    let mut options = GuardOptions::new()
        .auto_extend(true)
        .retry(RetryPolicy::once());
    if let Some(limit) = args.max_hold {
        options = options.max_hold(limit);
    }
    let wait = if args.no_wait {
        Duration::ZERO
    } else {
        args.wait
    };
    let start = Instant::now();
    let deadline = start + wait;
    let backoff = RetryPolicy::new()
        .base_delay(BASE_BACKOFF)
        .max_delay(MAX_BACKOFF);
    let mut progress = Progress::on_terminal();
    let mut holder = None;
    let mut unavailable = 0;
    for attempt in 0u32.. {
        let failure = tokio::select! {
            outcome = manager.lock_guard(resource, args.ttl, options.clone()) => match outcome {
                Ok(Some(guard)) => return Ok(guard),
                Ok(None) => {
                    unavailable = 0;
                    None
                }
                Err(error) if error.is_retryable() => {
                    unavailable += 1;
                    if unavailable >= UNAVAILABLE_ATTEMPTS {
                        return Err(Exit::from_lock_error(&error));
                    }
                    Some(Exit::from_lock_error(&error))
                }
                Err(error) => return Err(Exit::from_lock_error(&error)),
            },
            signal = signals.recv() => return Err(interrupted(signal)),
        };
        // Who holds it: for the progress line, the final message and the next attempt's time.
        // A failed read only costs the hint.
        let info = tokio::select! {
            info = manager.inspect(resource, None) => info.ok(),
            signal = signals.recv() => return Err(interrupted(signal)),
        };
        if let Some(info) = &info {
            holder = info.holder.clone().map(|token| (token, info.remaining));
        }
        let now = Instant::now();
        if now >= deadline {
            progress.clear();
            return Err(failure.unwrap_or_else(|| not_obtained(resource, &holder, wait)));
        }
        let (token, left) = holder.clone().unzip();
        progress.show(&waiting_line(
            resource,
            token.as_deref(),
            left.flatten(),
            now - start,
            wait,
        ));
        let delay = backoff.delay(attempt, left.flatten()).min(deadline - now);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            signal = signals.recv() => return Err(interrupted(signal)),
        }
    }
    // `0u32..` ends only after u32::MAX attempts, which `--wait` cannot reach.
    Err(not_obtained(resource, &holder, wait))
}

/// The failure of a wait that ran out while others held the lock.
fn not_obtained(
    resource: &str,
    holder: &Option<(String, Option<Duration>)>,
    wait: Duration,
) -> Exit {
    let by = match holder {
        Some((token, Some(left))) if *left != Duration::MAX => {
            format!(" by {token} ({:.1}s left)", left.as_secs_f64())
        }
        Some((token, _)) => format!(" by {token}"),
        None => String::new(),
    };
    let waited = if wait.is_zero() {
        "(--no-wait)".to_string()
    } else {
        format!("after waiting {}", humantime::format_duration(wait))
    };
    Exit::fail(
        exit::NOT_OBTAINED,
        format!("lock {resource:?} not obtained {waited}: it is held{by}"),
    )
}

/// The exit of a wait stopped by a signal: 128 + its number, as a shell reports it.
fn interrupted(signal: i32) -> Exit {
    let code = u8::try_from(128 + signal).unwrap_or(exit::INTERNAL);
    Exit::fail(
        code,
        format!("interrupted by signal {signal} while waiting for the lock"),
    )
}
