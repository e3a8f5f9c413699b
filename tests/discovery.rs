//! The topology cache against a real, stopped `redis-server`: the first topology read is
//! single-flight, so concurrent first operations share one read and its error.

use std::time::Duration;

use futures::future::join_all;
use redlock_cluster::{LockConfig, LockManager};
use redlock_harness::Standalone;
use tokio::time::Instant;

/// Issue 8 item 7: five concurrent acquires on a fresh manager whose only seed is stopped
/// (SIGSTOP). They share one topology read: all five fail together after about one node
/// timeout (the bound of every seed's answer since issue 14; one connect timeout before).
/// Before the fix each waited for the previous one's read and then read again: they
/// finished 1, 2, 3, 4 and 5 s after the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_acquires_share_one_topology_read() {
    let servers = Standalone::start(1).expect("1 master");
    let connect_timeout = Duration::from_secs(1);
    let node_timeout = Duration::from_millis(200);
    let manager = LockManager::new(
        &servers.urls(),
        LockConfig::new()
            .connect_timeout(connect_timeout)
            .node_timeout(node_timeout),
    )
    .expect("manager");
    tokio::task::block_in_place(|| servers.nodes()[0].pause().expect("pause"));
    let start = Instant::now();
    let finished = join_all((0..5).map(|i| {
        let manager = manager.clone();
        tokio::spawn(async move {
            let result = manager
                .try_acquire(&format!("topology/first-{i}"), Duration::from_secs(5))
                .await;
            (result, start.elapsed())
        })
    }))
    .await;
    tokio::task::block_in_place(|| servers.nodes()[0].resume().expect("resume"));
    let mut times = Vec::new();
    for joined in finished {
        let (result, took) = joined.expect("task");
        let error = result.expect_err("no node answered the topology read");
        assert!(error.is_unavailable(), "{error}");
        times.push(took);
    }
    times.sort();
    eprintln!("finished after {times:?}");
    let (first, last) = (times[0], times[times.len() - 1]);
    assert!(first >= node_timeout / 2, "{first:?}");
    assert!(
        last - first < Duration::from_millis(150),
        "the callers queued: {times:?}"
    );
    // No caller waits for the connect timeout: the seed's answer is bounded by the node
    // timeout, and its connection goes on opening in the background.
    assert!(last < connect_timeout, "{times:?}");
}
