//! The docker-compose cluster of `docker-compose.yml` (3 masters + 3 replicas on
//! 127.0.0.1:7000-7005, host networking only), driven by the fault-injection suite.
//!
//! [`DockerCluster::start`] brings the compose project up under the fixed project name
//! [`DOCKER_PROJECT`], waits until the cluster is healthy, and hands out control of each
//! container by port (`docker kill/start/pause/unpause`). Dropping it runs `down -v`, whatever
//! happened. Only one `DockerCluster` can exist at a time on a machine (they all use ports
//! 7000-7005): a process-wide mutex and an exclusive `flock` on [`docker_lock_path`] serialise
//! them across threads and processes. Every `docker` command and every wait is bounded.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::HarnessError;
use super::cluster::cluster_health;
use super::demo::DEMO_PORTS;
use super::info::info_field;
use super::node::IO_TIMEOUT;
use super::ports::BUS_PORT_OFFSET;
use super::raw::query_port;
use super::topology::{healthy_replicas, parse_cluster_nodes, serving_masters};
use super::wait::{Check, redis_errors_are_transient, remaining, wait_for};

/// The compose project name of every `DockerCluster` (its containers and volumes carry it).
pub const DOCKER_PROJECT: &str = "redlock-faults";
/// The image used when `REDIS_IMAGE` is unset; built with `docker/build-image.sh` if missing.
pub const LOCAL_IMAGE: &str = "redlock-redis:local";
/// The environment variable naming the Redis image (for example `redis:7.2`).
pub const REDIS_IMAGE_ENV: &str = "REDIS_IMAGE";
/// How long `up`, `down`, `restart` and the image build may take.
const SLOW_COMMAND_TIMEOUT: Duration = Duration::from_secs(180);
/// How long any other `docker` command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for another `DockerCluster` (thread or process) to finish.
const LOCK_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How long the cluster may take to form (`cluster-init`) or heal.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(60);

/// Serialises `DockerCluster`s among the threads of one process (a flag rather than a
/// `Mutex`, whose guard could not move between threads with the cluster).
static IN_PROCESS: AtomicBool = AtomicBool::new(false);

/// Holds [`IN_PROCESS`] until dropped.
#[derive(Debug)]
struct ProcessSlot;

impl Drop for ProcessSlot {
    fn drop(&mut self) {
        IN_PROCESS.store(false, Ordering::Release);
    }
}

/// The lock file that serialises `DockerCluster`s across processes:
/// `$TMPDIR/redlock-docker.lock` (`/tmp/redlock-docker.lock` usually).
#[must_use]
pub fn docker_lock_path() -> PathBuf {
    std::env::temp_dir().join("redlock-docker.lock")
}

/// Checks that the `docker` client is installed and its daemon answers (`docker info`).
///
/// # Errors
/// [`HarnessError::DockerUnavailable`] saying which of the two is missing.
pub fn docker_available() -> Result<(), HarnessError> {
    let mut info = Command::new("docker");
    info.arg("info");
    match run(info, COMMAND_TIMEOUT, "docker info") {
        Ok(_) => Ok(()),
        Err(HarnessError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(HarnessError::DockerUnavailable {
                detail: "the `docker` command is not installed (Debian: `sudo apt-get install \
                         docker.io docker-compose`)"
                    .to_owned(),
            })
        }
        Err(e) => Err(HarnessError::DockerUnavailable {
            detail: format!(
                "`docker info` failed, so no daemon answers ({e}); start one with `sudo dockerd \
                 --bridge=none --iptables=false --ip-masq=false &`"
            ),
        }),
    }
}

/// Set to `1` (CI does) to make a missing or unusable Docker fail the Docker tests instead of
/// skipping them.
pub const REQUIRE_DOCKER_ENV: &str = "REDLOCK_REQUIRE_DOCKER";

/// Set to `1` to skip the Docker tests even where Docker works (ignored under
/// [`REQUIRE_DOCKER_ENV`]).
pub const SKIP_DOCKER_ENV: &str = "REDLOCK_SKIP_DOCKER";

/// Whether the Docker test `test` should run.
///
/// `Ok(true)`: Docker answers, run it. `Ok(false)`: Docker is missing (or
/// [`SKIP_DOCKER_ENV`] is `1`); one line saying so, why, and how to run the test has been
/// written to stderr, outside the test harness's output capture so that a plain `cargo test`
/// shows it.
///
/// # Errors
/// [`HarnessError::DockerUnavailable`] when [`REQUIRE_DOCKER_ENV`] is `1` and Docker is not
/// usable: CI must never skip these tests.
pub fn docker_gate(test: &str) -> Result<bool, HarnessError> {
    let flag = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
    let required = flag(REQUIRE_DOCKER_ENV);
    let why = if !required && flag(SKIP_DOCKER_ENV) {
        format!("{SKIP_DOCKER_ENV}=1 is set: unset it")
    } else {
        match docker_available() {
            Ok(()) => return Ok(true),
            Err(error) if required => return Err(error),
            Err(HarnessError::DockerUnavailable { detail }) => detail,
            Err(error) => error.to_string(),
        }
    };
    // Written straight to the process's stderr: libtest captures only the print macros.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED Docker test {test}: {why}; then run `cargo test` again \
         ({REQUIRE_DOCKER_ENV}=1 turns this skip into a failure)"
    );
    Ok(false)
}

/// The running docker-compose cluster; `down -v` on drop.
#[derive(Debug)]
pub struct DockerCluster {
    /// The directory holding `docker-compose.yml`.
    dir: PathBuf,
    /// `docker-compose.yml` and the overrides, as `-f` arguments.
    files: Vec<PathBuf>,
    /// `["docker-compose"]` or `["docker", "compose"]`.
    compose: Vec<String>,
    image: String,
    /// Ports whose container is stopped or paused: left out of health checks.
    down: Mutex<BTreeSet<u16>>,
    /// Ports whose container is paused: unpaused before `down`.
    paused: Mutex<BTreeSet<u16>>,
    // Released after Drop has run `down -v`.
    _file_lock: File,
    _slot: ProcessSlot,
}

impl DockerCluster {
    /// Brings up `dir/docker-compose.yml` plus the `overrides` (paths relative to `dir`, for
    /// example `docker/compose.faults.yml`) as project [`DOCKER_PROJECT`] with the image of
    /// `REDIS_IMAGE` (or [`LOCAL_IMAGE`], built by `dir/docker/build-image.sh` if missing),
    /// and waits until the cluster is healthy. Waits first for any other `DockerCluster` of
    /// this machine to be dropped, and removes leftovers of an earlier run of this project.
    ///
    /// # Errors
    /// [`HarnessError::DockerUnavailable`] without a working Docker; [`HarnessError::Docker`]
    /// when a port of 7000-7005 (or its bus port) is taken by something else, or a command
    /// fails; [`HarnessError::Timeout`] if the cluster does not become healthy.
    pub fn start(dir: impl AsRef<Path>, overrides: &[&str]) -> Result<Self, HarnessError> {
        docker_available()?;
        let dir = dir.as_ref().to_owned();
        let slot = lock_in_process()?;
        let file_lock = lock_across_processes()?;
        let mut files = vec![dir.join("docker-compose.yml")];
        files.extend(overrides.iter().map(|o| dir.join(o)));
        let image = image(&dir)?;
        let cluster = Self {
            dir,
            files,
            compose: compose_program(),
            image,
            down: Mutex::new(BTreeSet::new()),
            paused: Mutex::new(BTreeSet::new()),
            _file_lock: file_lock,
            _slot: slot,
        };
        // Leftovers of a run that died before its Drop (same project, so ours to remove).
        cluster.compose_run(&["down", "-v", "--remove-orphans"], SLOW_COMMAND_TIMEOUT)?;
        check_ports_free()?;
        cluster.compose_run(&["up", "-d"], SLOW_COMMAND_TIMEOUT)?;
        cluster.wait_healthy(HEALTHY_TIMEOUT)?;
        Ok(cluster)
    }

    /// The client ports, 7000..=7005.
    #[must_use]
    pub fn ports(&self) -> Vec<u16> {
        DEMO_PORTS.collect()
    }

    /// `redis://127.0.0.1:{port}` for every node.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.ports()
            .into_iter()
            .map(|port| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// The image in use.
    #[must_use]
    pub fn image(&self) -> &str {
        &self.image
    }

    /// `docker kill` (SIGKILL) the container of `port`.
    ///
    /// # Errors
    /// [`HarnessError::Docker`] if the command fails.
    pub fn kill(&self, port: u16) -> Result<(), HarnessError> {
        self.mark_down(port);
        self.docker_on(&["kill"], port)
    }

    /// `docker stop` (SIGTERM, then SIGKILL after 10 s) the container of `port`.
    ///
    /// # Errors
    /// [`HarnessError::Docker`] if the command fails.
    pub fn stop(&self, port: u16) -> Result<(), HarnessError> {
        self.mark_down(port);
        self.docker_on(&["stop"], port)
    }

    /// `docker start` the container of `port` (its data volume is kept, so Redis reloads its
    /// AOF) and waits until it answers and has loaded its data.
    ///
    /// # Errors
    /// [`HarnessError::Docker`], or [`HarnessError::Timeout`] if it does not come up.
    pub fn start_node(&self, port: u16) -> Result<(), HarnessError> {
        self.docker_on(&["start"], port)?;
        wait_info_field(port, "persistence", ("loading", "0"), HEALTHY_TIMEOUT)?;
        set_of(&self.down).remove(&port);
        Ok(())
    }

    /// Kills the container of `port` if it runs (SIGKILL: no shutdown) and starts it again
    /// with its data volume (see [`start_node`](Self::start_node)).
    ///
    /// # Errors
    /// As [`kill`](Self::kill) and [`start_node`](Self::start_node).
    pub fn restart(&self, port: u16) -> Result<(), HarnessError> {
        if !set_of(&self.down).contains(&port) {
            self.kill(port)?;
        }
        self.start_node(port)
    }

    /// Starts the container of `port` again **without its data** (killing it first if it
    /// runs): the AOF directory and any RDB file on its data volume are deleted by a throwaway
    /// container of the same image, with no network, before `docker start`. The node's
    /// `nodes-*.conf` is kept, so it rejoins the cluster as itself, owning the same slots: the
    /// "master restarts without its data" fault.
    ///
    /// # Errors
    /// As [`kill`](Self::kill) and [`start_node`](Self::start_node), and
    /// [`HarnessError::Docker`] if the data cannot be deleted.
    pub fn restart_empty(&self, port: u16) -> Result<(), HarnessError> {
        if !set_of(&self.down).contains(&port) {
            self.kill(port)?;
        }
        let id = self.container(port)?;
        let mut wipe = Command::new("docker");
        wipe.args(["run", "--rm", "--network", "none", "--volumes-from", &id])
            .arg(&self.image)
            .args(["rm", "-rf", "/data/appendonlydir", "/data/dump.rdb"]);
        run(
            wipe,
            COMMAND_TIMEOUT,
            &format!("deleting the data of {}", service(port)),
        )?;
        self.start_node(port)
    }

    /// `docker pause` (cgroup freezer: like SIGSTOP) the container of `port`.
    ///
    /// # Errors
    /// [`HarnessError::Docker`] if the command fails.
    pub fn pause(&self, port: u16) -> Result<(), HarnessError> {
        self.mark_down(port);
        set_of(&self.paused).insert(port);
        self.docker_on(&["pause"], port)
    }

    /// `docker unpause` the container of `port`.
    ///
    /// # Errors
    /// [`HarnessError::Docker`] if the command fails.
    pub fn unpause(&self, port: u16) -> Result<(), HarnessError> {
        self.docker_on(&["unpause"], port)?;
        set_of(&self.paused).remove(&port);
        set_of(&self.down).remove(&port);
        Ok(())
    }

    /// Restarts every container (`restart`: SIGTERM, so Redis writes its AOF and
    /// `nodes.conf`, then start) and waits until the cluster is healthy.
    ///
    /// # Errors
    /// [`HarnessError::Docker`], [`HarnessError::Timeout`].
    pub fn restart_all(&self) -> Result<(), HarnessError> {
        let mut args = vec!["restart", "-t", "10"];
        let services: Vec<String> = self.ports().iter().map(|p| service(*p)).collect();
        args.extend(services.iter().map(String::as_str));
        self.compose_run(&args, SLOW_COMMAND_TIMEOUT)?;
        set_of(&self.down).clear();
        self.wait_healthy(HEALTHY_TIMEOUT)
    }

    /// The ports of the masters that serve slots, ordered by their lowest slot.
    ///
    /// # Errors
    /// [`HarnessError::Topology`] if no running node answers.
    pub fn master_ports(&self) -> Result<Vec<u16>, HarnessError> {
        let view = self.view()?;
        Ok(serving_masters(&view).iter().map(|e| e.port).collect())
    }

    /// The port of a healthy replica of the master on `master_port` (the lowest).
    ///
    /// # Errors
    /// [`HarnessError::Topology`] if there is none.
    pub fn replica_of(&self, master_port: u16) -> Result<u16, HarnessError> {
        let view = self.view()?;
        view.iter()
            .find(|e| e.port == master_port)
            .and_then(|master| healthy_replicas(&view, master).iter().map(|e| e.port).min())
            .ok_or_else(|| HarnessError::Topology {
                detail: format!("port {master_port} is not a master with a healthy replica"),
            })
    }

    /// Kills the master on `master_port` and waits until its replica reports `role:master`
    /// and the running nodes are healthy. Returns the new master's port; the killed container
    /// stays down until [`start_node`](Self::start_node).
    ///
    /// # Errors
    /// [`HarnessError::Topology`] without a replica, [`HarnessError::Docker`],
    /// [`HarnessError::Timeout`].
    pub fn kill_and_fail_over(
        &self,
        master_port: u16,
        timeout: Duration,
    ) -> Result<u16, HarnessError> {
        let start = Instant::now();
        let replica = self.replica_of(master_port)?;
        self.kill(master_port)?;
        wait_info_field(
            replica,
            "replication",
            ("role", "master"),
            remaining(start, timeout),
        )?;
        self.wait_healthy(remaining(start, timeout))?;
        Ok(replica)
    }

    /// Waits until every running, unpaused node reports `cluster_state:ok` with every slot,
    /// each replica's link is up, and all agree on the layout.
    ///
    /// # Errors
    /// [`HarnessError::Timeout`] saying what was last seen.
    pub fn wait_healthy(&self, timeout: Duration) -> Result<(), HarnessError> {
        wait_for("the docker cluster to become healthy", timeout, || {
            redis_errors_are_transient(cluster_health(self.live_ports().into_iter()))
        })
    }

    fn live_ports(&self) -> Vec<u16> {
        let down = set_of(&self.down);
        self.ports()
            .into_iter()
            .filter(|p| !down.contains(p))
            .collect()
    }

    fn view(&self) -> Result<Vec<super::topology::NodeEntry>, HarnessError> {
        let mut last_error = None;
        for port in self.live_ports() {
            match query_port(port, &["CLUSTER", "NODES"], IO_TIMEOUT) {
                Ok(text) => return Ok(parse_cluster_nodes(&text)),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| HarnessError::Topology {
            detail: "no container is running".to_owned(),
        }))
    }

    fn mark_down(&self, port: u16) {
        set_of(&self.down).insert(port);
    }

    /// Runs `docker <verb> <container of port>`.
    fn docker_on(&self, verb: &[&str], port: u16) -> Result<(), HarnessError> {
        let id = self.container(port)?;
        let mut cmd = Command::new("docker");
        cmd.args(verb).arg(&id);
        run(
            cmd,
            COMMAND_TIMEOUT,
            &format!("docker {} {}", verb.join(" "), service(port)),
        )?;
        Ok(())
    }

    /// The container id of the node on `port` (`ps -q` works with stopped containers too).
    fn container(&self, port: u16) -> Result<String, HarnessError> {
        let id = self.compose_run(&["ps", "-q", &service(port)], COMMAND_TIMEOUT)?;
        let id = id.trim();
        if id.is_empty() {
            return Err(HarnessError::Docker {
                context: format!("finding the container of {}", service(port)),
                detail: "docker-compose lists none".to_owned(),
            });
        }
        Ok(id.to_owned())
    }

    /// Runs a compose subcommand on this project; returns its stdout.
    fn compose_run(&self, args: &[&str], timeout: Duration) -> Result<String, HarnessError> {
        let mut cmd = Command::new(&self.compose[0]);
        cmd.args(&self.compose[1..])
            .arg("-p")
            .arg(DOCKER_PROJECT)
            .current_dir(&self.dir)
            .env(REDIS_IMAGE_ENV, &self.image);
        for file in &self.files {
            cmd.arg("-f").arg(file);
        }
        cmd.args(args);
        run(cmd, timeout, &format!("docker-compose {}", args.join(" ")))
    }
}

impl Drop for DockerCluster {
    fn drop(&mut self) {
        // A paused container cannot be stopped; best effort, nothing to report to here.
        let paused: Vec<u16> = set_of(&self.paused).iter().copied().collect();
        for port in paused {
            let _ = self.unpause(port);
        }
        if let Err(e) = self.compose_run(&["down", "-v", "--remove-orphans"], SLOW_COMMAND_TIMEOUT)
        {
            tracing::warn!(
                "tearing down the docker cluster failed: {e}; run `docker-compose -p \
                 {DOCKER_PROJECT} down -v` by hand"
            );
        }
    }
}

/// Waits until `INFO section` on `port` shows `field:value`.
fn wait_info_field(
    port: u16,
    section: &str,
    (field, value): (&str, &str),
    timeout: Duration,
) -> Result<(), HarnessError> {
    wait_for(
        format_args!("port {port} to report {field}:{value}"),
        timeout,
        || {
            redis_errors_are_transient(query_port(port, &["INFO", section], IO_TIMEOUT).map(
                |info| match info_field(&info, field) {
                    Some(seen) if seen == value => Check::Done(()),
                    seen => Check::NotYet(format!("{field}:{}", seen.unwrap_or("?"))),
                },
            ))
        },
    )
}

/// The compose service of a port.
fn service(port: u16) -> String {
    format!("redis-{port}")
}

fn set_of(set: &Mutex<BTreeSet<u16>>) -> MutexGuard<'_, BTreeSet<u16>> {
    // A panic while holding it cannot leave a set of ports inconsistent.
    set.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `docker-compose` (v1) if installed, else the `docker compose` plugin (v2).
fn compose_program() -> Vec<String> {
    let v1 = Command::new("docker-compose")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if v1 {
        vec!["docker-compose".to_owned()]
    } else {
        vec!["docker".to_owned(), "compose".to_owned()]
    }
}

/// `REDIS_IMAGE`, or [`LOCAL_IMAGE`] (built if missing).
fn image(dir: &Path) -> Result<String, HarnessError> {
    if let Ok(image) = std::env::var(REDIS_IMAGE_ENV)
        && !image.is_empty()
    {
        return Ok(image);
    }
    let mut inspect = Command::new("docker");
    inspect.args(["image", "inspect", LOCAL_IMAGE]);
    if run(inspect, COMMAND_TIMEOUT, "docker image inspect").is_err() {
        let mut build = Command::new(dir.join("docker/build-image.sh"));
        build.arg(LOCAL_IMAGE).current_dir(dir);
        run(build, SLOW_COMMAND_TIMEOUT, "docker/build-image.sh")?;
    }
    Ok(LOCAL_IMAGE.to_owned())
}

fn lock_in_process() -> Result<ProcessSlot, HarnessError> {
    wait_for(
        "another DockerCluster of this process to finish",
        LOCK_TIMEOUT,
        || {
            Ok(
                match IN_PROCESS.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => Check::Done(ProcessSlot),
                    Err(_) => Check::NotYet("in use".to_owned()),
                },
            )
        },
    )
}

fn lock_across_processes() -> Result<File, HarnessError> {
    let path = docker_lock_path();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| HarnessError::io(format!("opening {}", path.display()), e))?;
    wait_for(
        format_args!(
            "another process's DockerCluster ({} is locked)",
            path.display()
        ),
        LOCK_TIMEOUT,
        || match file.try_lock() {
            Ok(()) => Ok(Check::Done(())),
            Err(TryLockError::WouldBlock) => Ok(Check::NotYet("locked".to_owned())),
            Err(TryLockError::Error(e)) => {
                Err(HarnessError::io(format!("locking {}", path.display()), e))
            }
        },
    )?;
    Ok(file)
}

/// Fails unless every port 7000-7005 and its bus port can be bound on 127.0.0.1.
fn check_ports_free() -> Result<(), HarnessError> {
    for port in DEMO_PORTS.flat_map(|p| [p, p + BUS_PORT_OFFSET]) {
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(HarnessError::Docker {
                context: "checking that ports 7000-7005 and 17000-17005 are free".to_owned(),
                detail: format!(
                    "port {port} is in use: the docker cluster needs it. Stop what listens \
                     there (`ss -ltnp | grep {port}`; a cluster of your own from \
                     `docker-compose up` is stopped with `docker-compose down`)"
                ),
            });
        }
    }
    Ok(())
}

/// Runs `cmd` with a deadline (killing it when it runs out); returns its stdout, or an error
/// with its stderr when it fails.
fn run(mut cmd: Command, timeout: Duration, what: &str) -> Result<String, HarnessError> {
    let dir = tempfile_dir(what)?;
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let create = |path: &Path| {
        File::create(path).map_err(|e| HarnessError::io(format!("creating {}", path.display()), e))
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(create(&out_path)?)
        .stderr(create(&err_path)?)
        .spawn()
        .map_err(|e| HarnessError::io(format!("running {what}"), e))?;
    let status = wait_for(
        format_args!("`{what}` to finish"),
        timeout,
        || match child.try_wait() {
            Ok(Some(status)) => Ok(Check::Done(status)),
            Ok(None) => Ok(Check::NotYet("still running".to_owned())),
            Err(e) => Err(HarnessError::io(format!("waiting for {what}"), e)),
        },
    );
    let status = match status {
        Ok(status) => status,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    if status.success() {
        Ok(stdout)
    } else {
        Err(HarnessError::Docker {
            context: what.to_owned(),
            detail: format!("{status}: {}", stderr.trim()),
        })
    }
}

/// A fresh directory for one command's output files (pipes could fill up and block a child
/// we only poll).
fn tempfile_dir(what: &str) -> Result<PathBuf, HarnessError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("redlock-docker-cmd-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| HarnessError::io(format!("creating a directory for {what}"), e))?;
    Ok(dir)
}
