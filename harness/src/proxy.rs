//! A loopback TCP proxy in front of one server, to break the network between clients and that
//! server on purpose: latency (fixed and jittered), blackholes, connection resets, refused
//! connections, flapping links; per direction and per client group.
//!
//! A *client group* is one of the proxy's listening ports: give clients A and B group 0's
//! port and clients C and D group 1's, and a fault on group 0 cuts A and B off from the server
//! while C and D still reach it (an asymmetric partition). Every fault is bounded: it ends by
//! itself when its time is up, and earlier when its [`FaultGuard`] is dropped, so a failing test
//! cannot leave a link broken for the next one.
//!
//! The proxy runs on its own thread with its own single-threaded tokio runtime, so it works the
//! same from a plain `#[test]`, from a blocking fault thread and from inside a tokio test; its
//! control methods are synchronous. Everything binds and connects to 127.0.0.1 only.
//!
//! Why held bytes are delivered after a blackhole ends, not dropped: TCP retransmits, so a
//! request sent into a real blackhole reaches the server once the path heals. A lock request
//! that "timed out" for the client can still land late; that is exactly the case the lock's
//! cleanup has to handle, so the proxy keeps it.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use super::HarnessError;
use super::ports::PortClaim;

/// How often the proxy re-reads its faults while one is waiting (blackhole, refusal, flap).
const POLL: Duration = Duration::from_millis(5);
/// How long the proxy waits for the server when a client connects.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes read at once from either side.
const CHUNK: usize = 16 * 1024;

/// Which way the bytes a fault applies to travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: requests.
    ToServer,
    /// Server to client: replies.
    ToClient,
    /// Both ways.
    Both,
}

/// One of the two ways bytes travel through a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    ToServer,
    ToClient,
}

/// What a fault does to a client group's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every chunk of bytes is delivered `fixed` plus a uniformly random `0..=jitter` after it
    /// arrived (in order: a chunk never overtakes an earlier one).
    Delay {
        /// Added to every chunk.
        fixed: Duration,
        /// Upper bound of the random part.
        jitter: Duration,
    },
    /// Bytes are accepted and held, never delivered while the fault lasts; delivered after it
    /// ends (as TCP retransmission would). New connections are still accepted.
    Blackhole,
    /// Every open connection of the group is reset (RST to both ends) when the fault starts,
    /// and every new one as soon as it is accepted, while the fault lasts. Ignores direction.
    Reset,
    /// The group's port is closed: new connections are refused (connections the proxy has
    /// accepted keep working; any still in the kernel's backlog are reset).
    /// Ignores direction.
    Refuse,
    /// Every open connection of the group is reset every `every` while the fault lasts; new
    /// connections are accepted in between (a flapping link). Ignores direction.
    Flap {
        /// Time between two resets.
        every: Duration,
    },
}

impl Fault {
    /// Whether the fault acts on whole connections rather than on bytes in one direction.
    fn is_connection_fault(self) -> bool {
        matches!(self, Fault::Reset | Fault::Refuse | Fault::Flap { .. })
    }
}

/// A fault in force on one slot until `until`.
#[derive(Debug, Clone, Copy)]
struct Active {
    fault: Fault,
    until: Instant,
    id: u64,
}

/// The faults of one client group: one per direction for byte faults, one connection fault.
#[derive(Debug, Default, Clone, Copy)]
struct GroupFaults {
    to_server: Option<Active>,
    to_client: Option<Active>,
    connection: Option<Active>,
}

/// Which slot of a group a fault sits in.
#[derive(Debug, Clone, Copy)]
enum Slot {
    ToServer,
    ToClient,
    Connection,
}

impl GroupFaults {
    fn slot(&mut self, slot: Slot) -> &mut Option<Active> {
        match slot {
            Slot::ToServer => &mut self.to_server,
            Slot::ToClient => &mut self.to_client,
            Slot::Connection => &mut self.connection,
        }
    }
}

/// What the control side and the proxy's tasks share.
#[derive(Debug)]
struct Shared {
    groups: Mutex<Vec<GroupFaults>>,
    /// One reset epoch per group: a connection opened at epoch `e` is reset when it moves on.
    resets: Vec<watch::Sender<u64>>,
    next_id: AtomicU64,
    /// Connections accepted, per group (what the tests read to see that a group was used).
    accepted: Vec<AtomicU64>,
    /// Per group, the port rewrites applied to replies (see [`FaultProxy::translate_ports`]).
    translations: Mutex<Vec<Vec<PortRewrite>>>,
}

/// One reply rewrite: `:from` becomes `:to` (same number of digits).
#[derive(Debug, Clone)]
struct PortRewrite {
    from: Vec<u8>,
    to: Vec<u8>,
}

impl Shared {
    fn groups(&self) -> MutexGuard<'_, Vec<GroupFaults>> {
        // A panic while holding the lock cannot leave the plain data inconsistent.
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fault in force on `group`'s `slot` now, if any.
    fn current(&self, group: usize, slot: Slot) -> Option<Fault> {
        let now = Instant::now();
        let mut groups = self.groups();
        let active = groups.get_mut(group)?.slot(slot);
        match *active {
            Some(a) if now < a.until => Some(a.fault),
            Some(_) => {
                *active = None;
                None
            }
            None => None,
        }
    }

    fn byte_fault(&self, group: usize, way: Way) -> Option<Fault> {
        self.current(
            group,
            match way {
                Way::ToServer => Slot::ToServer,
                Way::ToClient => Slot::ToClient,
            },
        )
    }

    fn connection_fault(&self, group: usize) -> Option<Fault> {
        self.current(group, Slot::Connection)
    }

    fn translation(&self, group: usize) -> Vec<PortRewrite> {
        self.translations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    fn reset_group(&self, group: usize) {
        if let Some(epoch) = self.resets.get(group) {
            epoch.send_modify(|e| *e += 1);
        }
    }
}

/// A TCP proxy on 127.0.0.1 in front of one server, with one listening port per client group.
///
/// Dropping it closes every port and connection.
///
/// # Example
/// ```no_run
/// use std::time::Duration;
/// use redlock_harness::{Direction, Fault, FaultProxy, Standalone};
///
/// # fn main() -> Result<(), redlock_harness::HarnessError> {
/// let masters = Standalone::start(1)?;
/// let proxy = FaultProxy::start(masters.nodes()[0].port(), 2)?;
/// let (group_a, group_b) = (proxy.url(0), proxy.url(1));
/// // Group 0 gets no reply for up to 3 s; group 1 is untouched.
/// let cut = proxy.inject(&[0], Direction::ToClient, Fault::Blackhole, Duration::from_secs(3));
/// // ... run clients on group_a and group_b ...
/// drop(cut); // healed (it would also heal by itself after 3 s)
/// # let _ = (group_a, group_b);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    upstream: u16,
    shared: Arc<Shared>,
    // Held for the proxy's life so no other harness user takes the ports, even while a
    // refusal has them closed.
    claims: Vec<PortClaim>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `127.0.0.1:upstream_port` with `groups` client groups (at least one),
    /// each on its own free port of the harness range, all passing traffic through untouched.
    ///
    /// # Errors
    /// [`HarnessError::NoFreePort`] or [`HarnessError::Io`] if a port cannot be claimed or
    /// bound, or the proxy's thread cannot be started.
    pub fn start(upstream_port: u16, groups: usize) -> Result<Self, HarnessError> {
        let groups = groups.max(1);
        let claims = (0..groups)
            .map(|_| PortClaim::any_free())
            .collect::<Result<Vec<_>, _>>()?;
        let shared = Arc::new(Shared {
            groups: Mutex::new(vec![GroupFaults::default(); groups]),
            resets: (0..groups).map(|_| watch::channel(0).0).collect(),
            next_id: AtomicU64::new(1),
            accepted: (0..groups).map(|_| AtomicU64::new(0)).collect(),
            translations: Mutex::new(vec![Vec::new(); groups]),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| HarnessError::io("building the fault proxy's runtime", e))?;
        // Bind every port before returning, so a client may connect right away. Plain std
        // listeners here (the caller may be inside another runtime, where this one cannot
        // block_on); they join the proxy's runtime on its thread.
        let mut listeners = Vec::with_capacity(groups);
        for claim in &claims {
            let listener = bind_std(claim.port())
                .map_err(|e| HarnessError::io(format!("binding proxy port {}", claim.port()), e))?;
            listeners.push(listener);
        }
        let upstream = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, upstream_port));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let ports: Vec<u16> = claims.iter().map(PortClaim::port).collect();
        let task_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{upstream_port}"))
            .spawn(move || {
                let _inside = runtime.enter();
                for (group, (listener, port)) in listeners.into_iter().zip(ports).enumerate() {
                    // Unbound (None) if the runtime cannot take it: serve_group binds again.
                    let listener = TcpListener::from_std(listener).ok();
                    runtime.spawn(serve_group(
                        task_shared.clone(),
                        group,
                        port,
                        listener,
                        upstream,
                    ));
                }
                // Runs the groups' tasks until the proxy is dropped; dropping the runtime then
                // cancels them and closes every socket.
                let _ = runtime.block_on(stopped);
            })
            .map_err(|e| HarnessError::io("starting the fault proxy's thread", e))?;
        Ok(Self {
            upstream: upstream_port,
            shared,
            claims,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The server port behind the proxy.
    #[must_use]
    pub fn upstream_port(&self) -> u16 {
        self.upstream
    }

    /// Number of client groups.
    #[must_use]
    pub fn groups(&self) -> usize {
        self.claims.len()
    }

    /// Group `group`'s port.
    ///
    /// # Panics
    /// If `group` is out of range, like slice indexing.
    #[must_use]
    pub fn port(&self, group: usize) -> u16 {
        self.claims[group].port()
    }

    /// `redis://127.0.0.1:{port(group)}`.
    ///
    /// # Panics
    /// If `group` is out of range.
    #[must_use]
    pub fn url(&self, group: usize) -> String {
        format!("redis://127.0.0.1:{}", self.port(group))
    }

    /// How many connections group `group` has accepted so far.
    ///
    /// # Panics
    /// If `group` is out of range.
    #[must_use]
    pub fn accepted(&self, group: usize) -> u64 {
        self.shared.accepted[group].load(Ordering::SeqCst)
    }

    /// Puts `fault` on `groups` (on `direction` for byte faults; connection faults ignore it)
    /// for at most `bound`: it ends by itself then, or earlier when the returned guard is
    /// dropped. A later fault on the same group and direction replaces this one (and this
    /// guard then leaves it alone).
    ///
    /// # Panics
    /// If a group is out of range.
    #[must_use = "the fault ends when the guard is dropped"]
    pub fn inject(
        &self,
        groups: &[usize],
        direction: Direction,
        fault: Fault,
        bound: Duration,
    ) -> FaultGuard {
        let id = self.shared.next_id.fetch_add(1, Ordering::SeqCst);
        let active = Active {
            fault,
            until: Instant::now() + bound,
            id,
        };
        let mut placed = Vec::new();
        {
            let mut state = self.shared.groups();
            for &group in groups {
                assert!(group < state.len(), "no group {group}");
                let slots: &[Slot] = if fault.is_connection_fault() {
                    &[Slot::Connection]
                } else {
                    match direction {
                        Direction::ToServer => &[Slot::ToServer],
                        Direction::ToClient => &[Slot::ToClient],
                        Direction::Both => &[Slot::ToServer, Slot::ToClient],
                    }
                };
                for &slot in slots {
                    *state[group].slot(slot) = Some(active);
                    placed.push((group, slot));
                }
            }
        }
        if fault == Fault::Reset {
            for &group in groups {
                self.shared.reset_group(group);
            }
        }
        FaultGuard {
            shared: self.shared.clone(),
            placed,
            id,
        }
    }

    /// Resets every open connection of `groups` once, now (RST to both ends).
    ///
    /// # Panics
    /// If a group is out of range.
    pub fn reset_now(&self, groups: &[usize]) {
        for &group in groups {
            assert!(group < self.groups(), "no group {group}");
            self.shared.reset_group(group);
        }
    }

    /// Rewrites, in every reply to client group `group`, each port `from` written as
    /// `:from` followed by `\r` or `@` into `:to`: the address a cluster announces (`CLUSTER
    /// SHARDS`, `CLUSTER SLOTS` and `CLUSTER NODES` replies, `MOVED` and `ASK` errors). A
    /// cluster announces one port per master (group 0's, see
    /// [`Cluster::announce_through`](crate::Cluster::announce_through)); with this rule on every
    /// master's proxy, a client that came in through group `g` discovers every master at its
    /// group-`g` port and stays in its group: a per-group address translation, as a NAT in
    /// front of each client group would do. Replies only; a reply *value* that happens to
    /// look like `:from\r` (an integer equal to a proxied port) is rewritten too, which tests
    /// avoid by keeping such integers small.
    ///
    /// # Errors
    /// [`HarnessError::InvalidOptions`] if a pair's ports differ in digit count (the rewrite
    /// keeps every length, so RESP lengths stay right).
    ///
    /// # Panics
    /// If `group` is out of range.
    pub fn translate_ports(&self, group: usize, map: &[(u16, u16)]) -> Result<(), HarnessError> {
        let rewrites = map
            .iter()
            .map(|&(from, to)| {
                let (from, to) = (from.to_string(), to.to_string());
                if from.len() == to.len() {
                    Ok(PortRewrite {
                        from: from.into_bytes(),
                        to: to.into_bytes(),
                    })
                } else {
                    Err(HarnessError::InvalidOptions {
                        detail: format!(
                            "ports {from} and {to} differ in length: rewrite between ports of \
                             the same number of digits"
                        ),
                    })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.shared
            .translations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)[group] = rewrites;
        Ok(())
    }

    /// Ends every fault on every group now.
    pub fn heal(&self) {
        for group in self.shared.groups().iter_mut() {
            *group = GroupFaults::default();
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A fault in force; dropping it ends the fault (unless a later one replaced it).
#[derive(Debug)]
pub struct FaultGuard {
    shared: Arc<Shared>,
    placed: Vec<(usize, Slot)>,
    id: u64,
}

impl FaultGuard {
    /// Whether the fault is still in force on at least one of its groups (not expired, not
    /// replaced).
    #[must_use]
    pub fn is_active(&self) -> bool {
        let now = Instant::now();
        let mut groups = self.shared.groups();
        self.placed.iter().any(|&(group, slot)| {
            groups[group]
                .slot(slot)
                .is_some_and(|a| a.id == self.id && now < a.until)
        })
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        let mut groups = self.shared.groups();
        for &(group, slot) in &self.placed {
            let active = groups[group].slot(slot);
            if active.is_some_and(|a| a.id == self.id) {
                *active = None;
            }
        }
    }
}

/// [`bind`] outside any runtime: std's listeners set `SO_REUSEADDR` on Unix too.
fn bind_std(port: u16) -> std::io::Result<std::net::TcpListener> {
    let listener =
        std::net::TcpListener::bind(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Binds 127.0.0.1:`port` with `SO_REUSEADDR`, so the port can be bound again right after a
/// refusal closed it (its old connections may sit in `TIME_WAIT`).
fn bind(port: u16) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)))?;
    socket.listen(1024)
}

/// Accepts group `group`'s connections, closing the port while a refusal lasts and resetting
/// connections while a reset or flap lasts.
async fn serve_group(
    shared: Arc<Shared>,
    group: usize,
    port: u16,
    mut listener: Option<TcpListener>,
    upstream: SocketAddr,
) {
    let mut last_flap = Instant::now();
    loop {
        let fault = shared.connection_fault(group);
        if let Some(Fault::Flap { every }) = fault {
            if last_flap.elapsed() >= every {
                shared.reset_group(group);
                last_flap = Instant::now();
            }
        } else {
            last_flap = Instant::now();
        }
        if fault == Some(Fault::Refuse) {
            // Closing the listener makes the kernel refuse new connections (RST to SYN).
            listener = None;
            tokio::time::sleep(POLL).await;
            continue;
        }
        let Some(open) = listener.as_ref() else {
            match bind(port) {
                Ok(reopened) => listener = Some(reopened),
                Err(e) => {
                    tracing::warn!("fault proxy: rebinding port {port}: {e}; retrying");
                    tokio::time::sleep(POLL).await;
                }
            }
            continue;
        };
        tokio::select! {
            accepted = open.accept() => {
                let Ok((client, _)) = accepted else { continue };
                shared.accepted[group].fetch_add(1, Ordering::SeqCst);
                if shared.connection_fault(group) == Some(Fault::Reset) {
                    reset(&client);
                    continue;
                }
                tokio::spawn(relay(shared.clone(), group, client, upstream));
            }
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Drops `stream` with an RST instead of a FIN.
fn reset(stream: &TcpStream) {
    // A zero linger makes close() send RST at once; it does not block.
    let _ = stream.set_zero_linger();
}

/// Relays one client connection to the server until either side closes or the group is reset.
async fn relay(shared: Arc<Shared>, group: usize, mut client: TcpStream, upstream: SocketAddr) {
    let mut resets = shared.resets[group].subscribe();
    let _ = client.set_nodelay(true);
    let connected = tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream));
    let mut server = match connected.await {
        Ok(Ok(server)) => server,
        _ => {
            reset(&client);
            return;
        }
    };
    let _ = server.set_nodelay(true);
    let reset_seen = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(&shared, group, Way::ToServer, client_read, server_write);
        let down = pump(&shared, group, Way::ToClient, server_read, client_write);
        tokio::select! {
            _ = async { tokio::join!(up, down) } => false,
            _ = resets.changed() => true,
        }
    };
    if reset_seen {
        reset(&client);
        reset(&server);
    }
}

/// Copies one direction, applying the group's byte fault for that way: each chunk is stamped
/// with its arrival and its delay when read, and written when due and no blackhole holds it.
async fn pump(
    shared: &Shared,
    group: usize,
    way: Way,
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
) {
    let (queue, mut queued) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let mut random = RandomState::new().hash_one((group, way as u8));
    let read = async move {
        let mut buf = vec![0u8; CHUNK];
        // Reply bytes held back because a port to rewrite may straddle two reads.
        let mut carry = Vec::new();
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut bytes = std::mem::take(&mut carry);
            bytes.extend_from_slice(&buf[..n]);
            if way == Way::ToClient {
                let rewrites = shared.translation(group);
                if !rewrites.is_empty() {
                    rewrite_ports(&mut bytes, &rewrites);
                    // Every RESP reply ends with CRLF: anything else is mid-reply, and its
                    // last bytes may be the start of a port; keep them for the next read.
                    if !bytes.ends_with(b"\r\n") {
                        let keep = rewrites.iter().map(|r| r.from.len() + 2).max().unwrap_or(0);
                        carry = bytes.split_off(bytes.len().saturating_sub(keep));
                    }
                    if bytes.is_empty() {
                        continue;
                    }
                }
            }
            let delay = match shared.byte_fault(group, way) {
                Some(Fault::Delay { fixed, jitter }) => {
                    random = xorshift(random);
                    fixed + jitter.mul_f64((random % 10_001) as f64 / 10_000.0)
                }
                _ => Duration::ZERO,
            };
            if queue.send((Instant::now() + delay, bytes)).is_err() {
                break;
            }
        }
        if !carry.is_empty() {
            let _ = queue.send((Instant::now(), carry));
        }
        // Dropping `queue` lets the writer finish what is queued, then shut down.
    };
    let write = async {
        while let Some((due, bytes)) = queued.recv().await {
            tokio::time::sleep_until(due.into()).await;
            while shared.byte_fault(group, way) == Some(Fault::Blackhole) {
                tokio::time::sleep(POLL).await;
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

/// Rewrites each `:from` followed by `\r` or `@` into `:to`, in place (same lengths).
fn rewrite_ports(bytes: &mut [u8], rewrites: &[PortRewrite]) {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b':' {
            for rewrite in rewrites {
                let end = i + 1 + rewrite.from.len();
                if end < bytes.len()
                    && bytes[i + 1..end] == rewrite.from[..]
                    && matches!(bytes[end], b'\r' | b'@')
                {
                    bytes[i + 1..end].copy_from_slice(&rewrite.to);
                    break;
                }
            }
        }
        i += 1;
    }
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_rewritten_only_where_an_address_ends() {
        let rewrites = [PortRewrite {
            from: b"21234".to_vec(),
            to: b"22345".to_vec(),
        }];
        let mut reply = b"$4\r\nport\r\n:21234\r\n-MOVED 1 127.0.0.1:21234\r\n\
            127.0.0.1:21234@31234 :212345\r\n:21234x"
            .to_vec();
        rewrite_ports(&mut reply, &rewrites);
        assert_eq!(
            reply,
            b"$4\r\nport\r\n:22345\r\n-MOVED 1 127.0.0.1:22345\r\n\
            127.0.0.1:22345@31234 :212345\r\n:21234x"
                .to_vec()
        );
    }

    #[test]
    fn a_guard_ends_only_its_own_fault_and_faults_expire() {
        let shared = Shared {
            groups: Mutex::new(vec![GroupFaults::default(); 2]),
            resets: (0..2).map(|_| watch::channel(0).0).collect(),
            next_id: AtomicU64::new(1),
            accepted: (0..2).map(|_| AtomicU64::new(0)).collect(),
            translations: Mutex::new(vec![Vec::new(); 2]),
        };
        let shared = Arc::new(shared);
        let proxy_like = |fault, bound| {
            let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
            shared.groups()[0].to_client = Some(Active {
                fault,
                until: Instant::now() + bound,
                id,
            });
            FaultGuard {
                shared: shared.clone(),
                placed: vec![(0, Slot::ToClient)],
                id,
            }
        };
        let first = proxy_like(Fault::Blackhole, Duration::from_secs(60));
        assert_eq!(shared.byte_fault(0, Way::ToClient), Some(Fault::Blackhole));
        assert_eq!(shared.byte_fault(0, Way::ToServer), None);
        assert_eq!(shared.byte_fault(1, Way::ToClient), None);
        let second = proxy_like(Fault::Refuse, Duration::from_secs(60));
        drop(first); // replaced: must not end the second
        assert!(second.is_active());
        drop(second);
        assert_eq!(shared.byte_fault(0, Way::ToClient), None);
        let expired = proxy_like(Fault::Blackhole, Duration::ZERO);
        assert!(!expired.is_active());
        assert_eq!(shared.byte_fault(0, Way::ToClient), None);
    }
}
