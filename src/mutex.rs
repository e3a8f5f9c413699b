//! The one way this crate locks a std mutex: poison-tolerant. Every critical section is a
//! read, a push or a swap that leaves the data consistent, so a holder that panicked leaves
//! nothing half-done, and a later caller takes the data as it is rather than panicking too.
//! A std mutex, never held across an `.await`.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Lock `mutex`, ignoring poison (see the module docs).
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
