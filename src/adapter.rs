//! The Redis adapter: every line of redis-rs code behind the voter port (`node`), with one
//! connection lifecycle and one script registry.
//!
//! - `redis_node`: the real voter over one multiplexed connection (`connection`), its
//!   connections for acknowledged writes (`acked`), the fencing scripts' calls and replies
//!   (`fenced`), the lock scripts' replies (`replies`) and the registry of nodes by address
//!   (`seeds`).
//! - `scripts`: the one registry of Lua scripts, preloaded on connect.
//! - `cluster_replies`: parsers of `CLUSTER SHARDS` / `CLUSTER SLOTS`.
//! - `redis_node::facts`: reading a server's facts (`INFO`, `CONFIG GET`).

pub(crate) mod cluster_replies;
pub(crate) mod redis_node;
pub(crate) mod scripts;
