//! The redis.conf the harness writes for each node.
//!
//! The container configs in `redis-conf/` are written by hand for people to read; a unit test
//! below checks that they and this generator agree on every directive they share, so the two
//! cannot drift apart silently.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::binary::ServerBinary;
use super::clock::Clock;
use super::tls::TlsFiles;

/// How one node is configured (its port and directory are given when rendering).
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    /// `appendonly yes` with `appendfsync always`, so a restart reloads every acknowledged write.
    pub(crate) appendonly: bool,
    /// Cluster mode settings; `None` for a standalone master.
    pub(crate) cluster: Option<ClusterTimings>,
    /// Serve TLS too, on a second port, with these certificates; `None`: plain only.
    pub(crate) tls: Option<TlsFiles>,
    /// Which server program runs.
    pub(crate) binary: ServerBinary,
    /// How its clock runs.
    pub(crate) clock: Clock,
}

/// The cluster-mode settings that tests vary.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClusterTimings {
    /// `cluster-node-timeout`.
    pub(crate) node_timeout: Duration,
    /// `cluster-replica-validity-factor` (0: a replica may always fail over).
    pub(crate) replica_validity_factor: u32,
}

impl NodeConfig {
    /// The config file text for a node on `port` keeping its files in `dir`.
    pub(crate) fn render(&self, port: u16, dir: &Path) -> String {
        let mut conf = String::from("# Written by redlock_harness on every start.\n");
        let mut line = |key: &str, value: &str| {
            // Writing to a String cannot fail.
            let _ = writeln!(conf, "{key} {value}");
        };
        line("port", &port.to_string());
        // Loopback only; protected-mode stays at its default.
        line("bind", "127.0.0.1");
        line("dir", &quote(&dir.to_string_lossy()));
        line("logfile", "redis.log");
        // No RDB snapshots: persistence is the AOF or nothing, so tests know which one they get.
        line("save", "\"\"");
        line("appendonly", yes_no(self.appendonly));
        line("appendfsync", "always");
        if let Some(cluster) = self.cluster {
            // A new replica's full sync would otherwise wait 5 s for more replicas to batch.
            line("repl-diskless-sync-delay", "0");
            line("cluster-enabled", "yes");
            line("cluster-config-file", "nodes.conf");
            line(
                "cluster-node-timeout",
                &cluster.node_timeout.as_millis().to_string(),
            );
            line(
                "cluster-replica-validity-factor",
                &cluster.replica_validity_factor.to_string(),
            );
        }
        conf
    }
}

fn yes_no(flag: bool) -> &'static str {
    if flag { "yes" } else { "no" }
}

/// Quotes a value the way redis.conf's parser (`sdssplitargs`) reads it back.
pub(crate) fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::ClusterOptions;

    fn directives(text: &str) -> HashMap<String, String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect()
    }

    #[test]
    fn shipped_container_configs_agree_with_the_generator() {
        let config = ClusterOptions::default().node_config();
        for port in 7000..=7005u16 {
            // redis-conf/ sits at the workspace root, one above this crate.
            let path = format!(
                "{}/../redis-conf/redis-{port}.conf",
                env!("CARGO_MANIFEST_DIR")
            );
            let shipped = directives(&std::fs::read_to_string(&path).unwrap());
            let generated = directives(&config.render(port, Path::new("/data")));
            for key in [
                "port",
                "bind",
                "cluster-enabled",
                "cluster-node-timeout",
                "appendonly",
            ] {
                assert_eq!(shipped.get(key), generated.get(key), "{path}: {key}");
            }
            assert_eq!(shipped["dir"], "/data", "{path}");
            assert_eq!(shipped["cluster-config-file"], format!("nodes-{port}.conf"));
            assert!(!shipped.contains_key("protected-mode"), "{path}");
        }
    }

    #[test]
    fn standalone_config_has_no_cluster_lines_and_quotes_the_dir() {
        let config = NodeConfig {
            appendonly: true,
            cluster: None,
            tls: None,
            binary: ServerBinary::Default,
            clock: Clock::Real,
        };
        let text = config.render(20001, Path::new("/tmp/a \"b\""));
        assert!(!text.contains("cluster-"));
        assert!(text.contains("dir \"/tmp/a \\\"b\\\"\"\n"));
        assert!(text.contains("appendonly yes\nappendfsync always\n"));
    }
}
