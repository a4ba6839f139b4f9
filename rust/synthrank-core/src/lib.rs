//! synthrank-core: the Python-free core of synthrank.
//!
//! Text normalisation and shingles ([`text`]), chunking into passages ([`chunk`]), seeded
//! reservoir sampling ([`sample`]), exact and near-duplicate detection ([`dedup`]) and hard-negative
//! selection ([`negatives`]). Parallel functions use rayon's current thread pool, so a caller picks
//! the thread count with `ThreadPool::install`. Every function has a pure-Python twin in
//! `python/synthrank/reference/` that returns bit-identical results.

pub mod chunk;
pub mod dedup;
pub mod error;
pub mod hash;
pub mod negatives;
pub mod rng;
pub mod sample;
pub mod text;

pub use error::{CoreError, Result};
