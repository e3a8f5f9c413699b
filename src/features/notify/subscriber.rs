//! The subscriber connections: one RESP3 pub/sub connection per voter, the (un)subscribe
//! calls made in the background, and the push handler that passes release notices on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{PushInfo, PushKind, Value};

use super::Shared;
use crate::mutex::lock;

/// Where a channel stands on a subscriber connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subscription {
    /// A background task is (un)subscribing it.
    Syncing,
    /// The server confirmed the subscription on the current connection.
    Active,
}

/// The pub/sub connection of one voter, shared by all waiters of the manager.
pub(super) struct Subscriber {
    addr: String,
    /// The voter's connection settings, with RESP3 (push messages on a multiplexed
    /// connection).
    info: redis::ConnectionInfo,
    shared: Weak<Shared>,
    /// The connection, tagged with its generation. A tokio mutex, held across the
    /// (un)subscribe calls so that they reach the server in the order they were decided; only
    /// background tasks wait for it, never a waiter.
    link: tokio::sync::Mutex<Option<(u64, MultiplexedConnection)>>,
    channels: Mutex<Channels>,
}

#[derive(Default)]
struct Channels {
    /// Generation of the current connection; a disconnect bumps it.
    generation: u64,
    state: HashMap<Vec<u8>, Subscription>,
}

impl Subscriber {
    pub(super) fn new(addr: String, info: redis::ConnectionInfo, shared: Weak<Shared>) -> Self {
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        Subscriber {
            addr,
            info: info.set_redis_settings(settings),
            shared,
            link: tokio::sync::Mutex::new(None),
            channels: Mutex::new(Channels::default()),
        }
    }

    /// Start a background sync of `channel` unless it is active or already syncing.
    pub(super) fn ensure(self: &Arc<Self>, channel: &[u8], timeout: Duration) {
        {
            let mut channels = lock(&self.channels);
            let wanted = self
                .shared
                .upgrade()
                .is_some_and(|s| s.wants(&self.addr, channel));
            match channels.state.get(channel) {
                Some(Subscription::Syncing) => return,
                Some(Subscription::Active) if wanted => return,
                None if !wanted => return,
                _ => {}
            }
            channels
                .state
                .insert(channel.to_vec(), Subscription::Syncing);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            lock(&self.channels).state.remove(channel);
            return;
        };
        let subscriber = self.clone();
        let channel = channel.to_vec();
        runtime.spawn(async move {
            let synced = tokio::time::timeout(timeout, subscriber.sync(&channel)).await;
            if !matches!(synced, Ok(Ok(()))) {
                tracing::debug!(
                    node = subscriber.addr,
                    ?synced,
                    "release notices unavailable; waiters poll"
                );
                lock(&subscriber.channels).state.remove(&channel);
                *subscriber.link.lock().await = None;
            }
        });
    }

    /// Subscribe to or unsubscribe from `channel`, whichever the queues want now.
    async fn sync(&self, channel: &[u8]) -> redis::RedisResult<()> {
        let mut link = self.link.lock().await;
        let wanted = self
            .shared
            .upgrade()
            .is_some_and(|s| s.wants(&self.addr, channel));
        let generation = lock(&self.channels).generation;
        if link.as_ref().is_some_and(|(g, _)| *g != generation) {
            // Disconnected since: its subscriptions are gone with it.
            *link = None;
        }
        let mut conn = match link.as_ref() {
            Some((_, conn)) => conn.clone(),
            None if !wanted => {
                lock(&self.channels).state.remove(channel);
                return Ok(());
            }
            None => {
                let conn = self.open(generation).await?;
                *link = Some((generation, conn.clone()));
                conn
            }
        };
        let command = if wanted { "SSUBSCRIBE" } else { "SUNSUBSCRIBE" };
        // One channel per command: one confirmation, which redis-rs takes as the reply.
        let reply: Value = redis::cmd(command)
            .arg(channel)
            .query_async(&mut conn)
            .await?;
        if let Value::ServerError(error) = reply {
            return Err(redis::RedisError::from(error));
        }
        let mut channels = lock(&self.channels);
        if wanted && channels.generation == generation {
            channels
                .state
                .insert(channel.to_vec(), Subscription::Active);
        } else {
            channels.state.remove(channel);
        }
        Ok(())
    }

    /// Open the RESP3 connection whose push messages feed the notifier.
    async fn open(&self, generation: u64) -> redis::RedisResult<MultiplexedConnection> {
        #[cfg(feature = "tls")]
        if matches!(self.info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
            // As for the voting connection: rustls needs a process-level provider first.
            crate::tls::ensure_crypto_provider();
        }
        let client = redis::Client::open(self.info.clone())?;
        let shared = self.shared.clone();
        let addr = self.addr.clone();
        let timeout = shared.upgrade().map(|s| s.timeout);
        let on_push = move |push: PushInfo| -> Result<(), std::convert::Infallible> {
            if let Some(shared) = shared.upgrade() {
                on_push(&shared, &addr, generation, push);
            }
            Ok(())
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_push_sender(on_push);
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }
}

/// A push message from the subscriber connection of `addr` (generation `generation`).
fn on_push(shared: &Shared, addr: &str, generation: u64, push: PushInfo) {
    match push.kind {
        PushKind::SMessage => {
            if let [Value::BulkString(channel), Value::BulkString(token)] = push.data.as_slice() {
                shared.on_notice(addr, channel, &String::from_utf8_lossy(token));
            }
        }
        PushKind::Disconnection => {
            if let Some(subscriber) = shared.subscriber(addr) {
                let mut channels = lock(&subscriber.channels);
                if channels.generation == generation {
                    channels.generation += 1;
                    channels.state.clear();
                }
            }
        }
        // The server drops a shard channel whose slot moved away: resubscribe on next wait.
        PushKind::SUnsubscribe => {
            if let (Some(subscriber), Some(Value::BulkString(channel))) =
                (shared.subscriber(addr), push.data.first())
            {
                let mut channels = lock(&subscriber.channels);
                if channels.state.get(channel.as_slice()) == Some(&Subscription::Active) {
                    channels.state.remove(channel.as_slice());
                }
            }
        }
        _ => {}
    }
}
