//! What the CLI tests share: the `redlock` binary run as a process with a deadline, three real
//! redis-server voters from the harness, a scratch directory per test.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redlock_harness::Standalone;

/// How long any one `redlock` process may run in a test before it is killed and the test fails.
pub const PROCESS_LIMIT: Duration = Duration::from_secs(20);

/// Three independent masters, and their URLs as `--nodes` takes them.
pub struct Voters {
    pub servers: Standalone,
    pub nodes: String,
}

impl Voters {
    pub fn start() -> Voters {
        let servers = Standalone::start(3).expect("start 3 redis-server voters");
        let nodes = servers.urls().join(",");
        Voters { servers, nodes }
    }

    /// `redlock ARGS` with `REDLOCK_NODES` naming these voters.
    pub fn redlock(&self, dir: &Scratch, args: &[&str]) -> Redlock {
        Redlock::spawn(dir, args, Some(&self.nodes))
    }
}

impl Drop for Voters {
    fn drop(&mut self) {
        // The harness resumes and kills them on drop too; resume first so none stays stopped
        // even for a moment if a test failed while they were paused.
        for node in self.servers.nodes() {
            if node.is_paused() {
                let _ = node.resume();
            }
        }
    }
}

/// A directory of its own for one test (the children's marks, redlock's stdout and stderr),
/// removed at the end.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "redlock-cli-test-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn path_str(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One `redlock` process; its stdout and stderr go to files in the scratch directory.
pub struct Redlock {
    pub child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// How a `redlock` process ended.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// How long `wait` waited.
    pub waited: Duration,
}

impl Ended {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The stderr lines that redlock itself wrote (`redlock: ...`).
    pub fn redlock_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|line| line.starts_with("redlock: "))
            .collect()
    }
}

impl Redlock {
    /// `redlock ARGS` with `REDLOCK_NODES` set to `nodes` (or removed).
    pub fn spawn(dir: &Scratch, args: &[&str], nodes: Option<&str>) -> Redlock {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let stdout = dir.path(&format!("redlock-{n}.out"));
        let stderr = dir.path(&format!("redlock-{n}.err"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_redlock"));
        command
            .args(args)
            .current_dir(&dir.dir)
            .env_remove("REDLOCK_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        match nodes {
            Some(nodes) => command.env("REDLOCK_NODES", nodes),
            None => command.env_remove("REDLOCK_NODES"),
        };
        let child = command.spawn().expect("start redlock");
        Redlock {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits i32")
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for it to end, at most [`PROCESS_LIMIT`]; kill it and fail the test past that.
    pub fn wait(mut self) -> Ended {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Ended {
                    status,
                    stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
                    stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
                    waited: start.elapsed(),
                };
            }
            if start.elapsed() > PROCESS_LIMIT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "redlock still ran after {PROCESS_LIMIT:?}; stderr: {}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Redlock {
    fn drop(&mut self) {
        // A test that failed midway leaves no redlock behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Wait (at most `limit`) until `path` exists and is not empty.
pub fn wait_for_file(path: &Path, limit: Duration) {
    let start = Instant::now();
    while std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
        assert!(
            start.elapsed() < limit,
            "{} did not appear within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Send `signal` to process `pid`.
pub fn signal(pid: i32, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("send a signal");
}

/// Whether process `pid` exists (a zombie counts as gone: it runs nothing).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
