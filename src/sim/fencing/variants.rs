//! The broken fencing variants, run by a small hand-written client over the fenced links:
//! the eager fan-out of a round, the attempt of each variant, and its release.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use futures::stream::{FuturesUnordered, StreamExt};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use tokio::time::Instant;

use super::{DRIFT_FACTOR, FencedLink, PREFIX, RESOURCE, Variant};
use crate::engine::quorum::{drift, quorum, validity};
use crate::engine::round::votes::release;
use crate::error::NodeError;
use crate::features::fencing::fence_key;
use crate::node::FencedReply;
use crate::node::with_deadline;
use crate::sim::TTL;

/// Send one request per link, each in its own task (a sent request lands even when nobody
/// waits for its reply any more), and collect the replies until `enough` of them say yes or
/// every reply is in: the early decision of an eager client.
async fn send_all<T, F>(
    links: &[Arc<FencedLink>],
    node_timeout: Duration,
    enough: usize,
    yes: impl Fn(&T) -> bool,
    request: impl Fn(Arc<FencedLink>) -> F,
) -> Vec<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T, NodeError>> + Send + 'static,
{
    let mut pending: FuturesUnordered<_> = links
        .iter()
        .map(|link| tokio::spawn(with_deadline(node_timeout, request(link.clone()))))
        .collect();
    let mut replies = Vec::new();
    while replies.iter().filter(|r| yes(r)).count() < enough {
        match pending.next().await {
            Some(Ok(Ok(reply))) => replies.push(reply),
            Some(_) => {}
            None => break,
        }
    }
    replies
}

/// One attempt of a broken variant by the hand-written client: `Some((token, deadline))`
/// when granted. Both rounds decide as soon as a quorum said yes. A failed attempt releases
/// its keys, as the engine does.
pub(super) async fn hand_acquire(
    links: &[Arc<FencedLink>],
    variant: Variant,
    token: &str,
    node_timeout: Duration,
    rng: &mut StdRng,
) -> Option<(u64, Instant)> {
    let key = crate::keys::independent_key(PREFIX, RESOURCE.as_bytes());
    let counter = fence_key(PREFIX, &key);
    let needed = quorum(links.len());
    let allowance = drift(TTL, DRIFT_FACTOR);
    let start = Instant::now();
    let granted = |reply: &FencedReply| matches!(reply, FencedReply::Granted { .. });
    let round1 = send_all(links, node_timeout, needed, granted, |link| {
        let (key, counter, token) = (key.clone(), counter.clone(), token.to_string());
        async move {
            match variant {
                Variant::IncrMax => link.acquire_incr(&key, &counter, &token).await,
                _ => link.acquire_fenced(&key, &counter, &token, TTL).await,
            }
        }
    })
    .await;
    let counters: Vec<u64> = round1
        .iter()
        .filter_map(|reply| match reply {
            FencedReply::Granted { counter, .. } => Some(*counter),
            FencedReply::Held(_) => None,
        })
        .collect();
    let max = counters.iter().copied().max().unwrap_or(0);
    let decided = if counters.len() < needed {
        None
    } else if variant == Variant::IncrMax {
        Some(max)
    } else {
        let t = max + 1;
        // Some majority, whichever voters it holds (granters or not).
        let mut majority = links.to_vec();
        majority.shuffle(rng);
        majority.truncate(needed);
        let acks = send_all(
            &majority,
            node_timeout,
            needed,
            |ack: &bool| *ack,
            |link| {
                let counter = counter.clone();
                async move { link.commit_unchecked(&counter, t).await }
            },
        )
        .await;
        (acks.iter().filter(|a| **a).count() >= needed).then_some(t)
    };
    match decided.filter(|_| validity(TTL, start.elapsed(), allowance).is_some()) {
        Some(t) => Some((t, start + (TTL - allowance))),
        None => {
            hand_release(links, &key, token, node_timeout).await;
            None
        }
    }
}

pub(super) async fn hand_release(
    links: &[Arc<FencedLink>],
    key: &[u8],
    token: &str,
    node_timeout: Duration,
) {
    join_all(
        links
            .iter()
            .map(|link| with_deadline(node_timeout, release(link.as_ref(), key, token))),
    )
    .await;
}
