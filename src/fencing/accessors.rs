//! The fencing-token accessors of the lock handles that wrap a [`Lock`].

use crate::distributed_lock::RedisDistributedLock;
use crate::guard::LockGuard;
use crate::lock::Lock;

impl LockGuard {
    /// The lock's fencing token ([`Lock::fencing_token`]); `None` unless the manager has
    /// fencing on. Extensions keep it.
    pub fn fencing_token(&self) -> Option<u64> {
        self.current().fencing_token()
    }
}

impl RedisDistributedLock {
    /// The fencing token of this handle's current acquisition ([`Lock::fencing_token`]):
    /// `None` when the handle holds nothing or its manager has fencing off. Send it with every
    /// write to the protected resource.
    pub fn fencing_token(&self) -> Option<u64> {
        self.lock().and_then(Lock::fencing_token)
    }
}
