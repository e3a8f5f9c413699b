//! Free-port allocation that holds across threads *and* processes.
//!
//! A port is claimed by taking an exclusive `flock` on `$TMPDIR/redlock-harness-ports/<port>.lock`
//! and then checking that both the port and its cluster bus port (`port + 10000`) can be bound
//! on 127.0.0.1. The lock is held for as long as the [`PortClaim`] lives (the node keeps it, so
//! a restart gets its port back). The kernel drops the lock when the owning process dies, however
//! it dies, so there are no stale claims to clean up; the small lock files are left in place on
//! purpose (deleting a lock file someone may be opening is a race).
//!
//! Candidates are 20000..=22767: below Linux's ephemeral range (32768 and up), so outgoing
//! connections never take them, and their bus ports (30000..=32767) stay below it too and
//! never overlap a candidate.

use std::fs::{File, OpenOptions, TryLockError};
use std::hash::{BuildHasher, RandomState};
use std::net::TcpListener;
use std::path::PathBuf;

use super::HarnessError;

/// First port the harness hands out.
pub const FIRST_PORT: u16 = 20000;
/// Last port the harness hands out (its bus port, 32767, is the last below the ephemeral range).
pub const LAST_PORT: u16 = 22767;
/// Redis Cluster's bus port is the client port plus this.
pub const BUS_PORT_OFFSET: u16 = 10000;

// Bus ports stay below Linux's ephemeral range and never collide with a candidate port.
const _: () = assert!(LAST_PORT as u32 + BUS_PORT_OFFSET as u32 <= 32767);
const _: () = assert!(FIRST_PORT + BUS_PORT_OFFSET > LAST_PORT);

/// An exclusive claim on a port (and its bus port), released on drop.
#[derive(Debug)]
pub(crate) struct PortClaim {
    port: u16,
    // Held only for its lock; closing the file releases the claim.
    _lock: File,
}

impl PortClaim {
    /// Claims some free port of the harness range, starting at a random candidate so that
    /// parallel test processes rarely contend for the same file.
    pub(crate) fn any_free() -> Result<Self, HarnessError> {
        let span = u64::from(LAST_PORT - FIRST_PORT) + 1;
        let start = RandomState::new().hash_one(std::process::id()) % span;
        for step in 0..span {
            let offset = u16::try_from((start + step) % span).unwrap_or(0);
            if let Some(claim) = Self::try_claim(FIRST_PORT + offset)? {
                return Ok(claim);
            }
        }
        Err(HarnessError::NoFreePort {
            attempts: usize::try_from(span).unwrap_or(usize::MAX),
            first: FIRST_PORT,
            last: LAST_PORT,
        })
    }

    /// Claims exactly `port`, or fails with [`HarnessError::PortInUse`].
    pub(crate) fn fixed(port: u16) -> Result<Self, HarnessError> {
        Self::try_claim(port)?.ok_or(HarnessError::PortInUse { port })
    }

    /// The claimed port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    fn try_claim(port: u16) -> Result<Option<Self>, HarnessError> {
        let dir = claims_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| HarnessError::io(format!("creating {}", dir.display()), e))?;
        let path = dir.join(format!("{port}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| HarnessError::io(format!("opening {}", path.display()), e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => {
                return Err(HarnessError::io(format!("locking {}", path.display()), e));
            }
        }
        let bus_free = port.checked_add(BUS_PORT_OFFSET).is_some_and(is_bindable);
        if is_bindable(port) && bus_free {
            Ok(Some(Self { port, _lock: lock }))
        } else {
            Ok(None)
        }
    }
}

fn claims_dir() -> PathBuf {
    std::env::temp_dir().join("redlock-harness-ports")
}

fn is_bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_exclusive_and_released_on_drop() {
        let first = PortClaim::any_free().unwrap();
        let port = first.port();
        assert!((FIRST_PORT..=LAST_PORT).contains(&port));
        assert!(
            PortClaim::fixed(port).is_err(),
            "a held claim must not be granted twice"
        );
        drop(first);
        assert_eq!(PortClaim::fixed(port).unwrap().port(), port);
    }
}
