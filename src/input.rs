//! Input checks, in one place and once per public call: node URLs, resource names and TTLs.
//! A checked value travels as a newtype ([`Resource`], [`Ttl`]), so the retries and rounds
//! below a public call never check it again. (The key prefix and voter count are checked once,
//! by [`LockConfig::validate`](crate::LockConfig::validate) when the manager is built.)

use std::time::Duration;

use redis::IntoConnectionInfo;

use crate::adapter::redis_node::addr_string;
use crate::config::MAX_TTL;
use crate::engine::quorum::{drift, validity};
use crate::error::LockError;
use crate::lock::Lock;

/// The longest resource name accepted, in bytes.
pub const MAX_RESOURCE_LEN: usize = 4096;

/// Parse and check node URLs: `redis://` or `rediss://`, each address once.
pub(crate) fn parse_urls<S: AsRef<str>>(
    urls: &[S],
) -> Result<Vec<redis::ConnectionInfo>, LockError> {
    if urls.is_empty() {
        return Err(LockError::InvalidUrl {
            url: String::new(),
            reason: "at least one node URL is needed".into(),
        });
    }
    let mut seen = Vec::new();
    urls.iter()
        .map(|url| {
            let url = url.as_ref();
            let invalid = |reason: String| LockError::InvalidUrl {
                url: url.to_string(),
                reason,
            };
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid(
                    "expected redis://[user:password@]host:port or rediss://...".into(),
                ));
            }
            let info = url
                .into_connection_info()
                .map_err(|e| invalid(e.to_string()))?;
            if !info.addr().is_supported() {
                return Err(invalid(
                    "TLS (rediss://) needs the crate feature `tls`".into(),
                ));
            }
            let addr = addr_string(info.addr());
            if seen.contains(&addr) {
                return Err(invalid(format!(
                    "{addr} is listed twice; each voter must be a different master"
                )));
            }
            seen.push(addr);
            Ok(info)
        })
        .collect()
}

/// A resource name that was checked: not empty, at most [`MAX_RESOURCE_LEN`] bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resource<'a>(&'a str);

impl<'a> Resource<'a> {
    /// Check a resource name.
    pub(crate) fn new(name: &'a str) -> Result<Self, LockError> {
        if name.is_empty() {
            return Err(LockError::InvalidResource(
                "the resource name must not be empty".into(),
            ));
        }
        if name.len() > MAX_RESOURCE_LEN {
            return Err(LockError::InvalidResource(format!(
                "the resource name is {} bytes; at most {MAX_RESOURCE_LEN} are accepted",
                name.len()
            )));
        }
        Ok(Resource(name))
    }

    /// The resource of a lock: it was checked when the lock was acquired (only an acquire
    /// round builds a [`Lock`]).
    pub(crate) fn of(lock: &'a Lock) -> Self {
        Resource(&lock.resource)
    }

    /// The name.
    pub(crate) fn as_str(self) -> &'a str {
        self.0
    }
}

/// A TTL that was checked and rounded down to whole milliseconds (the precision of `PX`):
/// at least 1 ms, at most [`MAX_TTL`], and longer than its drift allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ttl(Duration);

impl Ttl {
    /// Check `ttl` against the limits and the drift allowance of `drift_factor`.
    pub(crate) fn new(ttl: Duration, drift_factor: f64) -> Result<Self, LockError> {
        let invalid = |reason: String| LockError::InvalidTtl { ttl, reason };
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            return Err(invalid("the TTL must be at least 1 ms".into()));
        }
        if ttl > MAX_TTL {
            return Err(invalid(format!(
                "the TTL may be at most {MAX_TTL:?}; hold longer with an auto-extending guard"
            )));
        }
        let ttl = Duration::from_millis(millis);
        let allowance = drift(ttl, drift_factor);
        if validity(ttl, Duration::ZERO, allowance).is_none() {
            return Err(invalid(format!(
                "the TTL must be longer than its clock-drift allowance of {allowance:?} \
                 (ttl * {drift_factor} + 2 ms)"
            )));
        }
        Ok(Ttl(ttl))
    }

    /// The TTL.
    pub(crate) fn get(self) -> Duration {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(parse_urls::<&str>(&[]).is_err());
        assert!(parse_urls(&["127.0.0.1:6379"]).is_err());
        assert!(parse_urls(&["redis://127.0.0.1:6379", "redis://127.0.0.1:6379/1"]).is_err());
        let parsed = parse_urls(&["redis://127.0.0.1:6379", "redis://127.0.0.1:6380"]);
        assert_eq!(parsed.map(|urls| urls.len()).ok(), Some(2));
    }

    #[test]
    fn resource_names_are_checked() {
        assert!(Resource::new("").is_err());
        assert!(Resource::new(&"r".repeat(MAX_RESOURCE_LEN + 1)).is_err());
        let name = "r".repeat(MAX_RESOURCE_LEN);
        assert_eq!(
            Resource::new(&name).map(Resource::as_str).ok(),
            Some(&*name)
        );
    }
}
