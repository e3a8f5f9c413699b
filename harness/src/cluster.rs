//! A Redis Cluster of masters and replicas, formed by hand so that its layout is known.

use std::time::{Duration, Instant};

use super::HarnessError;
use super::binary::ServerBinary;
use super::clock::Clock;
use super::config::{ClusterTimings, NodeConfig};
use super::info::info_field;
use super::node::{IO_TIMEOUT, RedisServer};
use super::raw::query_port;
use super::topology::{
    NodeEntry, SLOTS, even_slot_ranges, healthy_replicas, parse_cluster_nodes, serving_masters,
    settled_signature,
};
use super::wait::{Check, redis_errors_are_transient, remaining, wait_for};

/// How long forming a cluster (meet, replicate, settle) may take.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// How a [`Cluster`] is built. Start from [`Default`] or [`ClusterOptions::fast_failover`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    masters: usize,
    replicas_per_master: usize,
    node_timeout: Duration,
    replica_validity_factor: u32,
    appendonly: bool,
    binary: ServerBinary,
    /// Nodes (by index) whose clock is not the real one.
    clocks: Vec<(usize, Clock)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            masters: 3,
            replicas_per_master: 1,
            node_timeout: Duration::from_millis(5000),
            replica_validity_factor: 10,
            appendonly: true,
            binary: ServerBinary::Default,
            clocks: Vec::new(),
        }
    }
}

impl ClusterOptions {
    /// Options for failover tests: `cluster-node-timeout 1000` and validity factor 0, so a
    /// replica takes over about two seconds after its master dies.
    #[must_use]
    pub fn fast_failover() -> Self {
        Self::default()
            .node_timeout(Duration::from_millis(1000))
            .replica_validity_factor(0)
    }

    /// Number of masters. Defaults to 3.
    #[must_use]
    pub fn masters(mut self, masters: usize) -> Self {
        self.masters = masters;
        self
    }

    /// Replicas of each master. Defaults to 1.
    #[must_use]
    pub fn replicas_per_master(mut self, replicas: usize) -> Self {
        self.replicas_per_master = replicas;
        self
    }

    /// `cluster-node-timeout`: how long a node may be unreachable before it is suspected.
    /// Defaults to 5000 ms (Redis's default).
    #[must_use]
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.node_timeout = timeout;
        self
    }

    /// `cluster-replica-validity-factor`: 0 lets a replica fail over however long it was
    /// disconnected (failover tests want that). Defaults to 10 (Redis's default).
    #[must_use]
    pub fn replica_validity_factor(mut self, factor: u32) -> Self {
        self.replica_validity_factor = factor;
        self
    }

    /// `appendonly yes` (with `appendfsync always`). Defaults to true.
    #[must_use]
    pub fn appendonly(mut self, appendonly: bool) -> Self {
        self.appendonly = appendonly;
        self
    }

    /// The server program of every node. Defaults to [`ServerBinary::Default`].
    #[must_use]
    pub fn binary(mut self, binary: ServerBinary) -> Self {
        self.binary = binary;
        self
    }

    /// Runs node `index` (see [`Cluster`] for the layout: masters first) on `clock`.
    /// Defaults to the real clock for every node.
    #[must_use]
    pub fn clock(mut self, index: usize, clock: Clock) -> Self {
        self.clocks.retain(|(i, _)| *i != index);
        self.clocks.push((index, clock));
        self
    }

    /// Total number of nodes: masters times (1 + replicas per master).
    #[must_use]
    pub fn node_count(&self) -> usize {
        self.masters * (1 + self.replicas_per_master)
    }

    /// The config of every node but those given their own clock.
    pub(crate) fn node_config(&self) -> NodeConfig {
        NodeConfig {
            appendonly: self.appendonly,
            cluster: Some(ClusterTimings {
                node_timeout: self.node_timeout,
                replica_validity_factor: self.replica_validity_factor,
            }),
            tls: None,
            binary: self.binary.clone(),
            clock: Clock::Real,
        }
    }

    /// The config of node `index`.
    fn node_config_of(&self, index: usize) -> NodeConfig {
        let mut config = self.node_config();
        if let Some((_, clock)) = self.clocks.iter().find(|(i, _)| *i == index) {
            config.clock = *clock;
        }
        config
    }

    fn validate(&self) -> Result<(), HarnessError> {
        if self.masters == 0 || self.masters > usize::from(SLOTS) {
            return Err(HarnessError::InvalidOptions {
                detail: format!("{} masters: use 1 to 16384", self.masters),
            });
        }
        Ok(())
    }
}

/// A running Redis Cluster on 127.0.0.1 with a known layout.
///
/// Nodes `0..M` start as the masters, master `i` owning [`even_slot_ranges`]`(M)[i]` (what
/// `redis-cli --cluster create` gives); the next nodes are replicas, replica `k` of master `i`
/// at index `M + k*M + i` (so with one replica each, master `i`'s replica is `M + i`). After
/// failovers the roles move: ask [`master_indices`](Self::master_indices) and
/// [`replica_of`](Self::replica_of), which query the cluster itself.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<RedisServer>,
    /// Ports the cluster announces instead of a node's own (see
    /// [`announce_through`](Self::announce_through)): `(announced, node index)`.
    announced: Vec<(u16, usize)>,
}

impl Cluster {
    /// Starts and forms a cluster on free ports, then waits until it is healthy.
    ///
    /// # Errors
    /// Node start errors, [`HarnessError::InvalidOptions`], or [`HarnessError::Timeout`] if
    /// the cluster does not form within [`FORM_TIMEOUT`]. Started nodes are stopped again.
    pub fn start(opts: ClusterOptions) -> Result<Self, HarnessError> {
        opts.validate()?;
        let nodes = (0..opts.node_count())
            .map(|i| RedisServer::start_on_free_port(&opts.node_config_of(i)))
            .collect::<Result<_, _>>()?;
        Self::form(nodes, &opts)
    }

    /// Like [`start`](Self::start) on exactly these ports (e.g. 7000..=7005 for the demo), one
    /// per node; their bus ports (`port + 10000`) must be free too.
    ///
    /// # Errors
    /// [`HarnessError::InvalidOptions`] if the number of ports is not
    /// [`ClusterOptions::node_count`], [`HarnessError::PortInUse`], and as [`start`](Self::start).
    pub fn start_on_ports(ports: &[u16], opts: ClusterOptions) -> Result<Self, HarnessError> {
        opts.validate()?;
        if ports.len() != opts.node_count() {
            return Err(HarnessError::InvalidOptions {
                detail: format!(
                    "{} ports given for {} nodes ({} masters x (1 + {} replicas)): pass one \
                     port per node",
                    ports.len(),
                    opts.node_count(),
                    opts.masters,
                    opts.replicas_per_master
                ),
            });
        }
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, &port)| RedisServer::start_on_port(port, &opts.node_config_of(i)))
            .collect::<Result<_, _>>()?;
        Self::form(nodes, &opts)
    }

    /// Assigns slots, introduces the nodes, attaches the replicas and waits until healthy.
    fn form(nodes: Vec<RedisServer>, opts: &ClusterOptions) -> Result<Self, HarnessError> {
        let start = Instant::now();
        let cluster = Self {
            nodes,
            announced: Vec::new(),
        };
        let masters = opts.masters;
        let mut ids = Vec::with_capacity(cluster.nodes.len());
        for (i, node) in cluster.nodes.iter().enumerate() {
            ids.push(node.query_string(&["CLUSTER", "MYID"])?);
            // Distinct epochs up front spare the cluster its epoch-collision rounds.
            node.query_string(&["CLUSTER", "SET-CONFIG-EPOCH", &(i + 1).to_string()])?;
        }
        for (node, range) in cluster.nodes.iter().zip(even_slot_ranges(masters)) {
            let (first, last) = (range.start().to_string(), range.end().to_string());
            node.query_string(&["CLUSTER", "ADDSLOTSRANGE", &first, &last])?;
        }
        let seed = &cluster.nodes[0];
        for node in &cluster.nodes[1..] {
            seed.query_string(&["CLUSTER", "MEET", "127.0.0.1", &node.port().to_string()])?;
        }
        let total = cluster.nodes.len();
        wait_for(
            format_args!("all {total} nodes to know each other"),
            remaining(start, FORM_TIMEOUT),
            || redis_errors_are_transient(cluster.all_know_each_other(total)),
        )?;
        for (index, node) in cluster.nodes.iter().enumerate().skip(masters) {
            let master_id = &ids[(index - masters) % masters];
            node.query_string(&["CLUSTER", "REPLICATE", master_id])?;
        }
        cluster.wait_healthy(remaining(start, FORM_TIMEOUT))?;
        Ok(cluster)
    }

    fn all_know_each_other(&self, total: usize) -> Result<Check<()>, HarnessError> {
        for node in &self.nodes {
            let view = parse_cluster_nodes(&node.query_string(&["CLUSTER", "NODES"])?);
            let known = view.iter().filter(|e| !e.is_unsettled()).count();
            if known < total {
                return Ok(Check::NotYet(format!(
                    "port {} knows {known} of {total}",
                    node.port()
                )));
            }
        }
        Ok(Check::Done(()))
    }

    /// URL of node 0, a good seed for clients.
    #[must_use]
    pub fn seed_url(&self) -> String {
        self.nodes[0].url()
    }

    /// The URLs of all nodes, in node order.
    #[must_use]
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes, in node order.
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Node `i`, to kill, pause or restart it.
    ///
    /// # Panics
    /// If `i` is out of range, like slice indexing.
    pub fn node_mut(&mut self, i: usize) -> &mut RedisServer {
        &mut self.nodes[i]
    }

    /// The indices of the current masters that serve slots (nodes the cluster marks as failed
    /// are left out), ordered by their lowest slot, as the cluster itself reports them.
    ///
    /// # Errors
    /// [`HarnessError::Topology`] if no node answers or the view names unknown nodes.
    pub fn master_indices(&self) -> Result<Vec<usize>, HarnessError> {
        let view = self.view()?;
        serving_masters(&view)
            .into_iter()
            .map(|entry| self.index_of(entry))
            .collect()
    }

    /// The index of a replica of the master at `master_index` (the lowest index among its
    /// replicas that the cluster does not mark as failed).
    ///
    /// # Errors
    /// [`HarnessError::Topology`] if that node has no healthy replica.
    pub fn replica_of(&self, master_index: usize) -> Result<usize, HarnessError> {
        let view = self.view()?;
        let port = self.port_of(master_index)?;
        let master = view.iter().find(|e| e.port == port).ok_or_else(|| {
            topology(format!(
                "node {master_index} (port {port}) is not in the cluster"
            ))
        })?;
        let mut replicas = healthy_replicas(&view, master)
            .into_iter()
            .map(|e| self.index_of(e))
            .collect::<Result<Vec<_>, _>>()?;
        replicas.sort_unstable();
        replicas.first().copied().ok_or_else(|| {
            topology(format!(
                "node {master_index} (port {port}) has no healthy replica"
            ))
        })
    }

    /// The index of the node that serves `slot`, per the cluster's view.
    ///
    /// # Errors
    /// [`HarnessError::Topology`] if no node owns the slot or no node answers.
    pub fn index_of_slot_owner(&self, slot: u16) -> Result<usize, HarnessError> {
        let view = self.view()?;
        let owner = view
            .iter()
            .find(|e| e.is_master() && e.owns(slot))
            .ok_or_else(|| topology(format!("no master owns slot {slot}")))?;
        self.index_of(owner)
    }

    /// Waits until every running, unpaused node reports `cluster_state:ok` with all 16384
    /// slots ok, every replica among them has `master_link_status:up`, and all of them agree
    /// on who owns which slots and who replicates whom.
    ///
    /// # Errors
    /// [`HarnessError::Timeout`] saying what was last seen.
    pub fn wait_healthy(&self, timeout: Duration) -> Result<(), HarnessError> {
        wait_for("the cluster to become healthy", timeout, || {
            redis_errors_are_transient(self.health())
        })
    }

    fn health(&self) -> Result<Check<()>, HarnessError> {
        cluster_health(self.live_nodes().map(RedisServer::port))
    }

    /// Kills the master at `master_index` with SIGKILL and waits until its replica reports
    /// `role:master` and `cluster_state:ok`, then until the whole cluster is healthy again.
    /// Returns the new master's index. The killed node stays down: [`RedisServer::restart`]
    /// brings it back as a replica of the new master.
    ///
    /// # Errors
    /// [`HarnessError::Topology`] if it has no replica, [`HarnessError::Timeout`].
    pub fn kill_and_fail_over(
        &mut self,
        master_index: usize,
        timeout: Duration,
    ) -> Result<usize, HarnessError> {
        self.fail_over(master_index, Trigger::Kill, timeout)
    }

    /// Runs `CLUSTER FAILOVER` on the master's replica (a coordinated switch, no data lost)
    /// and waits until the roles have swapped and the cluster is healthy. Returns the new
    /// master's index; the old master is its replica now.
    ///
    /// # Errors
    /// [`HarnessError::Topology`] if it has no replica, [`HarnessError::Redis`],
    /// [`HarnessError::Timeout`].
    pub fn failover_graceful(
        &mut self,
        master_index: usize,
        timeout: Duration,
    ) -> Result<usize, HarnessError> {
        self.fail_over(master_index, Trigger::Coordinated, timeout)
    }

    /// Triggers a failover of the master at `master_index` and waits until its replica has
    /// taken over; a coordinated one also waits until the old master is a replica.
    fn fail_over(
        &mut self,
        master_index: usize,
        trigger: Trigger,
        timeout: Duration,
    ) -> Result<usize, HarnessError> {
        let start = Instant::now();
        let replica = self.replica_of(master_index)?;
        let demoted = match trigger {
            Trigger::Kill => {
                self.node_mut(master_index).kill()?;
                None
            }
            Trigger::Coordinated => {
                self.nodes[replica].query_string(&["CLUSTER", "FAILOVER"])?;
                Some(master_index)
            }
        };
        self.wait_promoted(replica, demoted, start, timeout)
    }

    fn wait_promoted(
        &self,
        replica: usize,
        demoted: Option<usize>,
        start: Instant,
        timeout: Duration,
    ) -> Result<usize, HarnessError> {
        let node = &self.nodes[replica];
        wait_for(
            format_args!("node {replica} (port {}) to become master", node.port()),
            remaining(start, timeout),
            || {
                let role = node.query_string(&["INFO", "replication"]);
                let state = node.query_string(&["CLUSTER", "INFO"]);
                let promoted = role.as_deref().ok().and_then(|i| info_field(i, "role"))
                    == Some("master")
                    && state
                        .as_deref()
                        .ok()
                        .and_then(|i| info_field(i, "cluster_state"))
                        == Some("ok");
                let old_demoted = demoted.is_none_or(|old| {
                    self.nodes[old]
                        .query_string(&["INFO", "replication"])
                        .is_ok_and(|i| info_field(&i, "role") == Some("slave"))
                });
                Ok(if promoted && old_demoted {
                    Check::Done(())
                } else {
                    Check::NotYet(format!(
                        "promoted: {promoted}, old master demoted: {old_demoted}"
                    ))
                })
            },
        )?;
        self.wait_healthy(remaining(start, timeout))?;
        Ok(replica)
    }

    /// Makes the cluster announce `port` on 127.0.0.1 for node `index` instead of the node's
    /// own port (`cluster-announce-ip 127.0.0.1`, `cluster-announce-port port`), and waits
    /// until every node's view says so. Clients that discover the masters (`CLUSTER SHARDS`,
    /// `CLUSTER SLOTS`, `MOVED`) then reach that node at `port`: a [`crate::FaultProxy`] in
    /// front of it puts it behind a breakable link. The cluster bus keeps the node's own bus
    /// port (so the proxy's faults never look like a node failure to the cluster), while its
    /// replicas follow the announced address and replicate through the proxy too.
    ///
    /// # Errors
    /// [`HarnessError::Redis`] if the node refuses the setting, [`HarnessError::Timeout`] if
    /// the change does not spread within [`FORM_TIMEOUT`].
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn announce_through(&mut self, index: usize, port: u16) -> Result<(), HarnessError> {
        let node = &self.nodes[index];
        node.query_string(&["CONFIG", "SET", "cluster-announce-ip", "127.0.0.1"])?;
        node.query_string(&["CONFIG", "SET", "cluster-announce-port", &port.to_string()])?;
        self.announced.retain(|&(_, i)| i != index);
        self.announced.push((port, index));
        let total = self.nodes.len();
        wait_for(
            format_args!("every node to see node {index} at port {port}"),
            FORM_TIMEOUT,
            || {
                let mut seen = 0;
                for node in self.live_nodes() {
                    let view = parse_cluster_nodes(&node.query_string(&["CLUSTER", "NODES"])?);
                    if view.iter().any(|e| e.port == port) {
                        seen += 1;
                    }
                }
                Ok(if seen == total {
                    Check::Done(())
                } else {
                    Check::NotYet(format!("{seen} of {total} nodes see port {port}"))
                })
            },
        )?;
        self.wait_healthy(FORM_TIMEOUT)
    }

    /// Running nodes that can answer (not paused).
    fn live_nodes(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes
            .iter()
            .filter(|n| n.is_running() && !n.is_paused())
    }

    /// The view of the first live node that answers `CLUSTER NODES`.
    fn view(&self) -> Result<Vec<NodeEntry>, HarnessError> {
        let mut last_error = None;
        for node in self.live_nodes() {
            match node.query_string(&["CLUSTER", "NODES"]) {
                Ok(text) => return Ok(parse_cluster_nodes(&text)),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| topology("no node is running".to_owned())))
    }

    fn index_of(&self, entry: &NodeEntry) -> Result<usize, HarnessError> {
        let announced = self
            .announced
            .iter()
            .find(|&&(port, _)| port == entry.port)
            .map(|&(_, index)| index);
        announced
            .or_else(|| self.nodes.iter().position(|n| n.port() == entry.port))
            .ok_or_else(|| {
                topology(format!(
                    "the cluster names port {}, not one of ours",
                    entry.port
                ))
            })
    }

    /// The port the cluster names for node `index`: the announced one, else its own.
    fn port_of(&self, index: usize) -> Result<u16, HarnessError> {
        if let Some(&(port, _)) = self.announced.iter().find(|&&(_, i)| i == index) {
            return Ok(port);
        }
        self.nodes.get(index).map(RedisServer::port).ok_or_else(|| {
            topology(format!(
                "no node {index}: the cluster has {}",
                self.nodes.len()
            ))
        })
    }
}

/// How [`Cluster::fail_over`] makes a replica take over.
enum Trigger {
    /// SIGKILL the master; the cluster notices after its node timeout.
    Kill,
    /// `CLUSTER FAILOVER` on the replica: a coordinated switch, no data lost.
    Coordinated,
}

/// Whether the cluster nodes on `ports` are healthy: each reports `cluster_state:ok` with
/// every slot ok, each replica's link is up, and all agree on who owns which slots and who
/// replicates whom.
pub(crate) fn cluster_health(ports: impl Iterator<Item = u16>) -> Result<Check<()>, HarnessError> {
    let mut first_signature = None;
    for port in ports {
        if let Some(problem) = node_health_problem(port)? {
            return Ok(Check::NotYet(problem));
        }
        let view = parse_cluster_nodes(&query_port(port, &["CLUSTER", "NODES"], IO_TIMEOUT)?);
        let signature = settled_signature(&view);
        match &first_signature {
            None => first_signature = Some(signature),
            Some(first) if *first != signature => {
                return Ok(Check::NotYet(format!(
                    "views differ: {first:?} vs port {port}: {signature:?}"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(Check::Done(()))
}

/// What keeps one node from being healthy, if anything.
fn node_health_problem(port: u16) -> Result<Option<String>, HarnessError> {
    let info = query_port(port, &["CLUSTER", "INFO"], IO_TIMEOUT)?;
    if info_field(&info, "cluster_state") != Some("ok") {
        return Ok(Some(format!("port {port}: cluster_state is not ok")));
    }
    if info_field(&info, "cluster_slots_ok") != Some(&SLOTS.to_string()) {
        return Ok(Some(format!("port {port}: not all slots ok")));
    }
    let replication = query_port(port, &["INFO", "replication"], IO_TIMEOUT)?;
    if info_field(&replication, "role") == Some("slave")
        && info_field(&replication, "master_link_status") != Some("up")
    {
        return Ok(Some(format!("port {port}: replica link not up")));
    }
    Ok(None)
}

fn topology(detail: String) -> HarnessError {
    HarnessError::Topology { detail }
}
