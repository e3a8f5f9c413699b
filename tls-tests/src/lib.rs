//! Nothing here: this crate exists for its tests (`tests/`), which lock over TLS redis-servers
//! with redlock-cluster's `tls` feature on. See `Cargo.toml` for why it is a crate of its own.
//!
//! Run them alone with `cargo test -p redlock-tls-tests`.
