//! The cached topology view and its refresh, unit-tested.

use std::sync::atomic::AtomicUsize;

use futures::future::join_all;

use super::*;

use crate::error::NodeError;
use crate::node::{Node, NodeResult, ScriptCall, ScriptReply, SharedNode, SlotRange};
use crate::server::ServerFacts;

/// A standalone seed whose connection opens after `delay`, or fails after it.
#[derive(Debug)]
struct SlowSeed {
    delay: Duration,
    fail: bool,
    connects: AtomicUsize,
}

impl Node for SlowSeed {
    fn addr(&self) -> &str {
        "127.0.0.1:1"
    }
    fn connect(&self) -> NodeResult<'_, ()> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            if self.fail {
                Err(NodeError::Io("down".into()))
            } else {
                Ok(())
            }
        })
    }
    fn run<'a>(&'a self, _: ScriptCall<'a>) -> NodeResult<'a, ScriptReply> {
        Box::pin(async { Ok((redis::Value::Int(1), None)) })
    }
    fn cluster_shards(&self) -> NodeResult<'_, Vec<SlotRange>> {
        Box::pin(async { Err(NodeError::Server("standalone".into())) })
    }
    fn cluster_slots(&self) -> NodeResult<'_, Vec<SlotRange>> {
        Box::pin(async { Err(NodeError::Server("standalone".into())) })
    }
    fn facts(&self) -> Option<std::sync::Arc<ServerFacts>> {
        Some(std::sync::Arc::new(ServerFacts::simulated("slow-seed")))
    }
}

#[derive(Debug)]
struct OneSeed(Vec<SharedNode>);

impl Seeds for OneSeed {
    fn seeds(&self) -> &[SharedNode] {
        &self.0
    }
    fn master(&self, _: &dyn Node, _: &str, _: u16) -> SharedNode {
        self.0[0].clone()
    }
}

fn cache(delay: Duration, fail: bool) -> (Arc<TopologyCache>, Arc<SlowSeed>) {
    let seed = Arc::new(SlowSeed {
        delay,
        fail,
        connects: AtomicUsize::new(0),
    });
    let cache = TopologyCache::new(
        Box::new(OneSeed(vec![seed.clone() as SharedNode])),
        Mode::Auto,
        Duration::from_secs(1),
    );
    (Arc::new(cache), seed)
}

/// Five concurrent first uses against a seed that never answers: one read, one shared
/// error, every caller done one node timeout (here 1 s) after the start (before: 1, 2, 3, 4,
/// 5 s).
#[tokio::test(start_paused = true)]
async fn concurrent_first_reads_share_one_read_and_its_error() {
    let (cache, seed) = cache(Duration::from_secs(60), false);
    let start = Instant::now();
    let results = join_all((0..5).map(|_| {
        let cache = cache.clone();
        async move {
            let result = cache.get().await;
            (result, start.elapsed())
        }
    }))
    .await;
    assert_eq!(seed.connects.load(Ordering::SeqCst), 1);
    for (result, took) in results {
        assert!(matches!(result, Err(LockError::SeedsUnavailable { .. })));
        assert_eq!(took, Duration::from_secs(1));
    }
    // The error was not cached: the next use reads again.
    assert!(cache.get().await.is_err());
    assert_eq!(seed.connects.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_first_caller_does_not_cancel_the_read() {
    let (cache, seed) = cache(Duration::from_millis(300), false);
    let gave_up = tokio::time::timeout(Duration::from_millis(100), cache.get()).await;
    assert!(gave_up.is_err());
    let start = Instant::now();
    assert!(cache.get().await.is_ok());
    // Joined the read already in flight: done 200 ms later, with no second read.
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    assert_eq!(seed.connects.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn refreshes_asked_for_together_share_one_read() {
    let (cache, seed) = cache(Duration::from_millis(50), false);
    let first = cache.get().await.expect("first read");
    let refreshed = join_all((0..4).map(|_| cache.refresh_now(&first))).await;
    assert_eq!(seed.connects.load(Ordering::SeqCst), 2);
    let views: Vec<Arc<Topology>> = refreshed.into_iter().flatten().collect();
    assert_eq!(views.len(), 4);
    assert!(views.iter().all(|v| Arc::ptr_eq(v, &views[0])));
    assert!(!Arc::ptr_eq(&views[0], &first));
    // A caller that failed on the old view gets the newer one without another read.
    let again = cache.refresh_now(&first).await.expect("newer view");
    assert!(Arc::ptr_eq(&again, &views[0]));
    assert_eq!(seed.connects.load(Ordering::SeqCst), 2);
    // Settled with nothing stale and nothing running: the current view at once.
    assert!(Arc::ptr_eq(
        &cache.settled().await.expect("view"),
        &views[0]
    ));
    cache.mark_stale();
    assert!(!Arc::ptr_eq(
        &cache.settled().await.expect("view"),
        &views[0]
    ));
    assert_eq!(seed.connects.load(Ordering::SeqCst), 3);
}

/// A cluster view whose master and seed both fail: the refresh fails, the last view
/// stays and is marked stale again.
#[tokio::test(start_paused = true)]
async fn a_failed_refresh_keeps_the_last_view() {
    let failing: SharedNode = Arc::new(SlowSeed {
        delay: Duration::from_millis(10),
        fail: true,
        connects: AtomicUsize::new(0),
    });
    let broken = Arc::new(TopologyCache::new(
        Box::new(OneSeed(vec![failing.clone()])),
        Mode::Auto,
        Duration::from_secs(1),
    ));
    let last = Arc::new(Topology::Cluster {
        masters: vec![failing],
        slots: vec![(0, 16383, 0)],
    });
    *locked(&broken.current) = Some(last.clone());
    assert!(broken.refresh_now(&last).await.is_err());
    assert!(broken.stale.load(Ordering::Acquire));
    assert!(Arc::ptr_eq(&broken.get().await.expect("last view"), &last));
}
