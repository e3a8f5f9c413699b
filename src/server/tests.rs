//! The parse of `INFO` and the admission rule, unit-tested on hand-written facts.

use super::*;
use crate::config::{LockConfig, Mode};
use crate::error::NodeError;

const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\n\
                    uptime_in_seconds:42\r\n\r\n# Memory\r\nmaxmemory:10485760\r\n\
                    maxmemory_policy:volatile-ttl\r\n\r\n# Persistence\r\naof_enabled:1\r\n\
                    \r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
                    slave0:ip=127.0.0.1,port=7003,state=online,offset=42,lag=1\r\n\
                    slave1:ip=::1,port=7004,state=wait_bgsave,offset=0\r\n\r\n# Cluster\r\ncluster_enabled:0\r\n";

#[test]
fn parses_the_facts_of_one_info_reply() {
    let facts = ServerFacts::parse(INFO, Instant::now()).unwrap();
    assert_eq!(facts.run_id, "abc123");
    assert!(!facts.cluster_enabled);
    assert_eq!(facts.maxmemory, 10_485_760);
    assert_eq!(facts.maxmemory_policy, "volatile-ttl");
    assert_eq!(facts.role, "master");
    assert_eq!(facts.uptime, Duration::from_secs(42));
    assert_eq!(facts.redis_version, "7.0.15");
    assert!(facts.aof_enabled);
    assert!(facts.can_evict());
    assert_eq!(facts.connected_replicas, 2);
    assert_eq!(
        facts.replicas,
        [
            ("127.0.0.1:7003".to_string(), Some(Duration::from_secs(1))),
            ("::1:7004".to_string(), None)
        ]
    );
    assert_eq!(facts.appendfsync, None, "not in INFO: read with CONFIG GET");
    assert!(
        !facts.persists_every_write(),
        "unknown fsync is not durable"
    );
    let now = Instant::now();
    let cluster = ServerFacts::parse(&INFO.replace("cluster_enabled:0", "cluster_enabled:1"), now);
    assert!(cluster.unwrap().cluster_enabled);
    assert!(ServerFacts::parse("# Server\r\nredis_version:7.0.0\r\n", now).is_err());
}

#[test]
fn eviction_needs_a_limit_and_an_evicting_policy() {
    let mut facts = ServerFacts::simulated("a");
    assert!(!facts.can_evict());
    facts.maxmemory_policy = "allkeys-lru".into();
    assert!(!facts.can_evict(), "no maxmemory, nothing is evicted");
    facts.maxmemory = 1 << 20;
    assert!(facts.can_evict());
    facts.maxmemory_policy = "noeviction".into();
    assert!(!facts.can_evict());
}

#[test]
fn one_server_votes_once_and_cluster_nodes_never_as_independent() {
    let a = ServerFacts::simulated("a");
    let b = ServerFacts::simulated("b");
    let mut c = ServerFacts::simulated("c");
    c.cluster_enabled = true;
    let facts = [Some(a.clone()), Some(a.clone()), Some(b), None, Some(c)];
    let plain = LockConfig::new().refuse_evicting_voters(false);
    let refusing = LockConfig::new();
    let refused: Vec<bool> = admit(Mode::Independent, &plain, &facts)
        .iter()
        .map(Option::is_some)
        .collect();
    assert_eq!(refused, [false, true, false, true, true]);
    // In cluster mode a cluster node votes; the duplicate still does not.
    let refused: Vec<bool> = admit(Mode::Cluster, &plain, &facts)
        .iter()
        .map(Option::is_some)
        .collect();
    assert_eq!(refused, [false, true, false, true, false]);
    let mut evicting = a;
    evicting.maxmemory = 1 << 20;
    evicting.maxmemory_policy = "volatile-ttl".into();
    let facts = [Some(evicting)];
    assert!(admit(Mode::Independent, &plain, &facts)[0].is_none());
    let refused = admit(Mode::Independent, &refusing, &facts);
    assert!(
        matches!(&refused[0], Some(NodeError::Refused(why)) if why.contains("noeviction")),
        "{refused:?}"
    );
}
