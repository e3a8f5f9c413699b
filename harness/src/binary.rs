//! Finding the `redis-server` binary.

use std::ffi::OsStr;
use std::path::PathBuf;

use super::HarnessError;

/// Environment variable that, when set, names the `redis-server` binary to use.
pub const REDIS_SERVER_BIN_ENV: &str = "REDIS_SERVER_BIN";

/// The `redis-server` binary the harness runs: `$REDIS_SERVER_BIN` if set, else the first
/// `redis-server` on `PATH`.
///
/// # Errors
/// [`HarnessError::RedisServerBinInvalid`] when `REDIS_SERVER_BIN` names no file,
/// [`HarnessError::RedisServerNotFound`] (with install instructions) when `PATH` has none.
pub fn redis_server_path() -> Result<PathBuf, HarnessError> {
    find_redis_server(
        std::env::var_os(REDIS_SERVER_BIN_ENV).as_deref(),
        std::env::var_os("PATH").as_deref(),
    )
}

/// The pure part of [`redis_server_path`]: the same lookup with the values of
/// `REDIS_SERVER_BIN` and `PATH` passed in, so it can be tested without touching the
/// process environment.
///
/// # Errors
/// As [`redis_server_path`].
pub fn find_redis_server(
    redis_server_bin: Option<&OsStr>,
    path: Option<&OsStr>,
) -> Result<PathBuf, HarnessError> {
    if let Some(bin) = redis_server_bin.filter(|bin| !bin.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(HarnessError::RedisServerBinInvalid { path: bin })
        };
    }
    path.into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
        .ok_or(HarnessError::RedisServerNotFound)
}
