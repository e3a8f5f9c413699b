//! One `redis-server` child process in its own directory.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::HarnessError;
use super::clock::{Clock, SPEC_FILE, faketime_env, write_spec};
use super::config::NodeConfig;
use super::info::info_field;
use super::ports::PortClaim;
use super::raw::{connect_port, query_port};
use super::wait::{Check, wait_for};
use super::workdir::WorkDir;

/// How long a start or restart may take until the node answers PING and has loaded its data.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect, read and write timeout of [`RedisServer::connection`].
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a start is retried on a fresh port when the chosen one turns out to be taken.
const START_ATTEMPTS: usize = 5;

/// One `redis-server` child process on 127.0.0.1, in its own temporary directory.
///
/// The node owns its port (claimed for its whole life, so [`restart`](Self::restart) gets it
/// back) and its directory. Dropping it resumes it if paused, kills it with SIGKILL, reaps it
/// and removes the directory; see the [module docs](super) for what happens when the test
/// process itself dies.
#[derive(Debug)]
pub struct RedisServer {
    config: NodeConfig,
    /// The clock now (the config's at start; [`set_clock`](Self::set_clock) changes it).
    clock: Mutex<Clock>,
    server: Mutex<Option<Child>>,
    paused: AtomicBool,
    // Dropped after the server is killed (see Drop), then releases the port.
    workdir: WorkDir,
    claim: PortClaim,
    /// The TLS port's claim, when the config serves TLS.
    tls_claim: Option<PortClaim>,
}

impl RedisServer {
    /// Starts a node on a free port of the harness range, retrying on another port when the
    /// server reports "Address already in use" (another program took the port meanwhile).
    pub(crate) fn start_on_free_port(config: &NodeConfig) -> Result<Self, HarnessError> {
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start(config.clone(), PortClaim::any_free()?) {
                Err(e) if e.is_port_in_use() => last_error = Some(e),
                other => return other,
            }
        }
        Err(last_error.unwrap_or(HarnessError::NoFreePort {
            attempts: START_ATTEMPTS,
            first: super::ports::FIRST_PORT,
            last: super::ports::LAST_PORT,
        }))
    }

    /// Starts a node on exactly `port`.
    pub(crate) fn start_on_port(port: u16, config: &NodeConfig) -> Result<Self, HarnessError> {
        Self::start(config.clone(), PortClaim::fixed(port)?)
    }

    fn start(config: NodeConfig, claim: PortClaim) -> Result<Self, HarnessError> {
        let tls_claim = match config.tls {
            Some(_) => Some(PortClaim::any_free()?),
            None => None,
        };
        let node = Self {
            clock: Mutex::new(config.clock),
            config,
            server: Mutex::new(None),
            paused: AtomicBool::new(false),
            workdir: WorkDir::create()?,
            claim,
            tls_claim,
        };
        // On error `node` is dropped here, which kills whatever was started.
        node.spawn()?;
        Ok(node)
    }

    /// The client port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.claim.port()
    }

    /// `redis://127.0.0.1:{port}`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    /// The TLS port, when the node serves TLS (see [`crate::TlsFiles`]).
    #[must_use]
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_claim.as_ref().map(PortClaim::port)
    }

    /// `rediss://127.0.0.1:{tls_port}`, when the node serves TLS.
    #[must_use]
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port()
            .map(|port| format!("rediss://127.0.0.1:{port}"))
    }

    /// The node's directory (config, AOF, nodes.conf, `redis.log`): look here when a test fails.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.workdir.path()
    }

    /// The server's pid, `None` when it is not running.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        let mut server = self.server();
        reap_if_exited(&mut server);
        server.as_ref().map(Child::id)
    }

    /// Whether the server process is alive (a paused server is running).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// Whether [`pause`](Self::pause) was called without a later [`resume`](Self::resume).
    #[must_use]
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Kills the server with SIGKILL (no shutdown, no final fsync) and reaps it. Does nothing
    /// when it is not running.
    ///
    /// # Errors
    /// [`HarnessError::Io`] if the process cannot be signalled or reaped.
    pub fn kill(&mut self) -> Result<(), HarnessError> {
        let Some(mut child) = self.server().take() else {
            return Ok(());
        };
        self.paused.store(false, Ordering::SeqCst);
        let port = self.port();
        let io_err = |e| HarnessError::io(format!("killing redis-server on port {port}"), e);
        // SIGKILL also ends a stopped process; an already exited child is just reaped.
        if child.try_wait().map_err(io_err)?.is_none() {
            child.kill().map_err(io_err)?;
        }
        child.wait().map_err(io_err)?;
        Ok(())
    }

    /// Stops the server with SIGSTOP: it keeps its sockets but answers nothing (clients time
    /// out), as in a long GC pause or a frozen VM.
    ///
    /// # Errors
    /// [`HarnessError::NotRunning`], or [`HarnessError::Signal`] if `kill -STOP` fails.
    pub fn pause(&self) -> Result<(), HarnessError> {
        send_signal("STOP", self.running_pid()?)?;
        self.paused.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Continues a paused server with SIGCONT.
    ///
    /// # Errors
    /// [`HarnessError::NotRunning`], or [`HarnessError::Signal`] if `kill -CONT` fails.
    pub fn resume(&self) -> Result<(), HarnessError> {
        send_signal("CONT", self.running_pid()?)?;
        self.paused.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Kills the server if it runs, then starts it again on the same port and directory and
    /// waits until it answers PING and has finished loading: the AOF (with `appendfsync
    /// always`) is replayed, so every acknowledged write is back. A cluster node rejoins with
    /// its old identity from `nodes.conf`.
    ///
    /// # Errors
    /// As [`kill`](Self::kill), plus start errors such as [`HarnessError::ServerExited`] or
    /// [`HarnessError::Timeout`].
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.kill()?;
        self.spawn()
    }

    /// Like [`restart`](Self::restart) but wipes the data first (AOF, RDB, everything but the
    /// config and logs): the node comes back empty, as after a disk loss. In cluster mode
    /// `nodes.conf` is kept, so the node rejoins with its node id, epoch and slots: a master
    /// then serves its slots with no keys (until the cluster demotes it, if a replica was
    /// promoted meanwhile), which is exactly the data-loss case Redlock cannot survive.
    ///
    /// # Errors
    /// As [`restart`](Self::restart), plus [`HarnessError::Io`] if the wipe fails.
    pub fn restart_empty(&mut self) -> Result<(), HarnessError> {
        self.kill()?;
        self.workdir.wipe_data(self.config.cluster.is_some())?;
        self.spawn()
    }

    /// The node's clock as last set (at start, or by [`set_clock`](Self::set_clock)).
    #[must_use]
    pub fn clock(&self) -> Clock {
        *self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the clock of a node started on a [`Clock::Faked`] while it runs (an offset
    /// jump at this moment, or a new rate); it takes effect within a second (libfaketime
    /// re-reads its spec file once a second). A restart keeps the new clock.
    ///
    /// # Errors
    /// [`HarnessError::ClockNotFaked`] if the node started on the real clock (it has no
    /// libfaketime to tell), [`HarnessError::Io`] if the spec cannot be written.
    pub fn set_clock(&self, clock: Clock) -> Result<(), HarnessError> {
        let (Clock::Faked { .. }, Some(spec)) = (self.clock(), clock.spec()) else {
            return Err(HarnessError::ClockNotFaked { port: self.port() });
        };
        write_spec(&self.dir().join(SPEC_FILE), &spec)?;
        *self.clock.lock().unwrap_or_else(PoisonError::into_inner) = clock;
        Ok(())
    }

    /// A new synchronous connection with [`IO_TIMEOUT`] for connect, reads and writes.
    ///
    /// # Errors
    /// [`HarnessError::Redis`] if the node cannot be reached in time.
    pub fn connection(&self) -> Result<redis::Connection, HarnessError> {
        self.connection_with_timeout(IO_TIMEOUT)
    }

    /// A new synchronous connection with `timeout` for connect, reads and writes (a short one
    /// shows a paused node as unresponsive quickly).
    ///
    /// # Errors
    /// [`HarnessError::Redis`] if the node cannot be reached in time.
    pub fn connection_with_timeout(
        &self,
        timeout: Duration,
    ) -> Result<redis::Connection, HarnessError> {
        connect_port(self.port(), timeout)
    }

    /// Runs one command that answers with a (bulk) string, on a fresh connection.
    pub(crate) fn query_string(&self, args: &[&str]) -> Result<String, HarnessError> {
        self.query_string_with_timeout(args, IO_TIMEOUT)
    }

    fn query_string_with_timeout(
        &self,
        args: &[&str],
        timeout: Duration,
    ) -> Result<String, HarnessError> {
        query_port(self.port(), args, timeout)
    }

    /// Writes the config, starts the server and waits until it is ready.
    fn spawn(&self) -> Result<(), HarnessError> {
        let dir = self.dir();
        let conf = dir.join("redis.conf");
        let port = self.port();
        let io_err = |what: &str, e| HarnessError::io(format!("{what} in {}", dir.display()), e);
        let mut text = self.config.render(port, dir);
        if let (Some(tls), Some(tls_port)) = (&self.config.tls, self.tls_port()) {
            // Readiness below still goes through the plain port: redis-server opens all its
            // listeners before it serves any, so a PING there means the TLS port is up too.
            text.push_str(&tls.install(dir, tls_port)?);
        }
        std::fs::write(&conf, text).map_err(|e| io_err("writing redis.conf", e))?;
        let stderr =
            File::create(dir.join("stderr.log")).map_err(|e| io_err("creating stderr.log", e))?;
        let child = Command::new(self.config.binary.path()?)
            .envs(faketime_env(self.clock(), dir)?)
            .arg(&conf)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| io_err("starting redis-server", e))?;
        let pid = child.id();
        *self.server() = Some(child);
        self.workdir.record_server(pid, port)?;
        self.wait_ready()
    }

    fn wait_ready(&self) -> Result<(), HarnessError> {
        let port = self.port();
        wait_for(
            format_args!("redis-server on port {port} to start"),
            START_TIMEOUT,
            || {
                if let Some(status) = self.exit_status()? {
                    return Err(HarnessError::ServerExited {
                        port,
                        status,
                        dir: self.dir().to_owned(),
                        log_tail: self.workdir.log_tail(15),
                    });
                }
                let loading = self.query_string_with_timeout(
                    &["INFO", "persistence"],
                    Duration::from_millis(250),
                );
                Ok(match loading {
                    Ok(info) if info_field(&info, "loading") == Some("0") => Check::Done(()),
                    Ok(_) => Check::NotYet("loading its data".to_owned()),
                    Err(e) => Check::NotYet(e.to_string()),
                })
            },
        )
    }

    /// `Some(status)` (and forgets the child) if the server has exited.
    fn exit_status(&self) -> Result<Option<String>, HarnessError> {
        let mut server = self.server();
        let Some(child) = server.as_mut() else {
            return Ok(Some("not started".to_owned()));
        };
        let status = child.try_wait().map_err(|e| {
            HarnessError::io(format!("checking redis-server on port {}", self.port()), e)
        })?;
        if status.is_some() {
            *server = None;
        }
        Ok(status.map(|s| s.to_string()))
    }

    fn running_pid(&self) -> Result<u32, HarnessError> {
        self.pid()
            .ok_or(HarnessError::NotRunning { port: self.port() })
    }

    fn server(&self) -> MutexGuard<'_, Option<Child>> {
        // A panic while holding this lock cannot leave the Option inconsistent.
        self.server.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.is_paused() {
            let _ = self.resume();
        }
        // Best effort: nothing to report to in a destructor; a survivor is swept later.
        let _ = self.kill();
    }
}

fn reap_if_exited(server: &mut Option<Child>) {
    if let Some(child) = server.as_mut()
        && !matches!(child.try_wait(), Ok(None))
    {
        *server = None;
    }
}

/// Sends `signal` (a name such as `STOP`) with the `kill` command, to avoid `unsafe` libc calls.
pub(crate) fn send_signal(signal: &'static str, pid: u32) -> Result<(), HarnessError> {
    let output = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::Signal {
            signal,
            pid,
            detail: e.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(HarnessError::Signal {
            signal,
            pid,
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
