//! What each node runs: one Lua script per operation, every write conditional on the token.
//!
//! The scripts live in `src/scripts/*.lua`. Each is compiled into one [`redis::Script`] once
//! per process; `invoke_async` sends `EVALSHA` and reloads the script on `NOSCRIPT` (after a
//! `SCRIPT FLUSH` or a restart), and [`Scripts::preload`] loads all of them when a connection
//! opens, so that the first lock costs one round trip.

use std::sync::LazyLock;

/// The lock scripts, and the fencing scripts (`fencing`): the fenced acquire, its commit,
/// and the counter read.
pub(crate) struct Scripts {
    pub(crate) acquire: redis::Script,
    pub(crate) extend: redis::Script,
    pub(crate) release: redis::Script,
    pub(crate) inspect: redis::Script,
    pub(crate) fence_acquire: redis::Script,
    pub(crate) fence_commit: redis::Script,
    pub(crate) fence_read: redis::Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    acquire: redis::Script::new(include_str!("scripts/acquire.lua")),
    extend: redis::Script::new(include_str!("scripts/extend.lua")),
    release: redis::Script::new(include_str!("scripts/release.lua")),
    inspect: redis::Script::new(include_str!("scripts/inspect.lua")),
    fence_acquire: redis::Script::new(include_str!("scripts/acquire_fenced.lua")),
    fence_commit: redis::Script::new(include_str!("scripts/fence_commit.lua")),
    fence_read: redis::Script::new(include_str!("scripts/fence_read.lua")),
});

impl Scripts {
    /// `SCRIPT LOAD` every script; the loads are pipelined on the multiplexed connection.
    /// Loaded scripts also keep a node's calls in the order they were sent: a `NOSCRIPT`
    /// retry would run a script after a later call (a fenced commit after its acquire).
    pub(crate) async fn preload(
        &self,
        conn: &redis::aio::MultiplexedConnection,
    ) -> redis::RedisResult<()> {
        let all = [
            &self.acquire,
            &self.extend,
            &self.release,
            &self.inspect,
            &self.fence_acquire,
            &self.fence_commit,
            &self.fence_read,
        ];
        let loads = all.map(|script| {
            let mut conn = conn.clone();
            async move { script.load_async(&mut conn).await }
        });
        futures::future::try_join_all(loads).await.map(|_| ())
    }
}

/// A TTL as the scripts take it: whole milliseconds, in decimal.
pub(crate) fn ttl_millis(ttl: std::time::Duration) -> Vec<u8> {
    ttl.as_millis().to_string().into_bytes()
}
