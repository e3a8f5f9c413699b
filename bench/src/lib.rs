//! Benchmarks of `redlock-cluster`; see `benches/`.
