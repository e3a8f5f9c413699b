//! Node data directories, and cleanup of what a crashed test process left behind.
//!
//! Each node gets `$TMPDIR/redlock-harness/<pid>-<n>/`, holding its redis.conf, AOF, nodes.conf
//! and logs, plus two harness files:
//! - `owner.lock`, locked (`flock`) by the live [`WorkDir`] for its whole life. The kernel drops
//!   that lock when the owning process dies, even by SIGKILL, so "lock is free" reliably means
//!   "owner gone", across processes and pid namespaces.
//! - `server.pid`, `<pid> <port>` of the redis-server child.
//!
//! Drop kills the server and removes the directory. When a test process dies before its
//! destructors run, its servers keep running as orphans; the first harness use in any later
//! process (once per process) sweeps them: for every directory whose `owner.lock` it can
//! lock, it sends SIGKILL to the recorded pid if `/proc/<pid>/cmdline` still shows a
//! `redis-server` on the recorded port (so a recycled pid is never hit), then removes the
//! directory. Directories still being created (no `owner.lock` yet) are left alone.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use super::HarnessError;
use super::node::send_signal;

const LOCK_FILE: &str = "owner.lock";
const SERVER_PID_FILE: &str = "server.pid";

/// A node's private directory, removed on drop.
#[derive(Debug)]
pub(crate) struct WorkDir {
    path: PathBuf,
    // Held for its lock only: see the module docs.
    _owner: File,
}

impl WorkDir {
    /// Creates a fresh directory (sweeping dead owners' leftovers first, once per process).
    pub(crate) fn create() -> Result<Self, HarnessError> {
        static SWEEP: Once = Once::new();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let root = root();
        SWEEP.call_once(|| sweep_orphans(&root));
        std::fs::create_dir_all(&root)
            .map_err(|e| HarnessError::io(format!("creating {}", root.display()), e))?;
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = root.join(format!("{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Self::claim(path),
                // Left by an earlier process with our pid: try the next number.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(HarnessError::io(format!("creating {}", path.display()), e));
                }
            }
        }
    }

    fn claim(path: PathBuf) -> Result<Self, HarnessError> {
        // Lock under a temporary name, then rename: a sweeper only ever sees a locked owner.lock.
        let temp = path.join("owner.lock.new");
        let io_err = |e| HarnessError::io(format!("creating {}", temp.display()), e);
        let owner = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&temp)
            .map_err(io_err)?;
        owner.lock().map_err(io_err)?;
        std::fs::rename(&temp, path.join(LOCK_FILE)).map_err(io_err)?;
        Ok(Self {
            path,
            _owner: owner,
        })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records the server's pid so a later sweep can kill it if this process dies abruptly.
    pub(crate) fn record_server(&self, pid: u32, port: u16) -> Result<(), HarnessError> {
        let file = self.path.join(SERVER_PID_FILE);
        std::fs::write(&file, format!("{pid} {port}\n"))
            .map_err(|e| HarnessError::io(format!("writing {}", file.display()), e))
    }

    /// The last `lines` lines of the server's log and stderr, for error messages.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        ["redis.log", "stderr.log"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(self.path.join(name)).ok())
            .map(|text| {
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            })
            .filter(|tail| !tail.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Removes everything but the config, the logs, the harness files and (when `keep_nodes_conf`)
    /// the cluster's nodes.conf: the node comes back without its data.
    pub(crate) fn wipe_data(&self, keep_nodes_conf: bool) -> Result<(), HarnessError> {
        let keep = [
            "redis.conf",
            "redis.log",
            "stderr.log",
            LOCK_FILE,
            SERVER_PID_FILE,
        ];
        let io_err = |e| HarnessError::io(format!("wiping {}", self.path.display()), e);
        for entry in std::fs::read_dir(&self.path).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if keep.contains(&name.as_ref()) || (keep_nodes_conf && name == "nodes.conf") {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(io_err)?;
            } else {
                std::fs::remove_file(&path).map_err(io_err)?;
            }
        }
        Ok(())
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        // Best effort: a leftover directory is swept by the next harness start.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn root() -> PathBuf {
    std::env::temp_dir().join("redlock-harness")
}

/// Best effort, never fails: what cannot be swept now is tried again next time.
fn sweep_orphans(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for dir in entries.flatten().map(|entry| entry.path()) {
        let Ok(lock) = File::open(dir.join(LOCK_FILE)) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue; // Owner alive (or another sweeper is here).
        }
        if let Some((pid, port)) = std::fs::read_to_string(dir.join(SERVER_PID_FILE))
            .ok()
            .and_then(|text| parse_server_pid(&text))
            && is_redis_server_on(pid, port)
        {
            let _ = send_signal("KILL", pid);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn parse_server_pid(text: &str) -> Option<(u32, u16)> {
    let mut words = text.split_whitespace();
    Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
}

/// Whether `pid` is still a redis-server serving `port` (Redis sets its title to
/// `redis-server 127.0.0.1:<port> [cluster]`). Without `/proc` the answer is no: better an
/// orphan than a wrong kill.
fn is_redis_server_on(pid: u32, port: u16) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| {
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains("redis-server") && cmdline.contains(&format!(":{port}"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_pid_files() {
        assert_eq!(parse_server_pid("123 20001\n"), Some((123, 20001)));
        assert_eq!(parse_server_pid("123"), None);
        assert_eq!(parse_server_pid("x 1"), None);
    }

    #[test]
    fn a_live_work_dir_is_not_swept_and_is_removed_on_drop() {
        let dir = WorkDir::create().unwrap();
        let path = dir.path().to_owned();
        sweep_orphans(&root());
        assert!(path.join(LOCK_FILE).exists(), "a live directory was swept");
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn an_abandoned_work_dir_is_swept() {
        let dir = WorkDir::create().unwrap();
        let path = dir.path().to_owned();
        // Simulate a dead owner: forget the lock by leaking nothing but releasing the flock.
        dir._owner.unlock().unwrap();
        sweep_orphans(&root());
        assert!(!path.exists(), "an unlocked directory was not swept");
        drop(dir);
    }
}
