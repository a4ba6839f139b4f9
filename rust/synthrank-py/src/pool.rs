//! Runs core work off the GIL on rayon pools built once and reused by every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use rayon::ThreadPool;

/// One pool per explicit thread count, kept for the life of the process: building a pool spawns
/// its threads, which cost more than a small batch's work.
static POOLS: OnceLock<Mutex<HashMap<usize, Arc<ThreadPool>>>> = OnceLock::new();

fn pool_of(threads: usize) -> PyResult<Arc<ThreadPool>> {
    let mut pools = POOLS
        .get_or_init(Mutex::default)
        .lock()
        // a panic while the map was held cannot have left it half-updated: insert is the last step
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(pool) = pools.get(&threads) {
        return Ok(Arc::clone(pool));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |index| format!("synthrank-{threads}-{index}"))
        .build()
        .map_err(|error| {
            PyRuntimeError::new_err(format!("threads: cannot start {threads} threads: {error}"))
        })?;
    let pool = Arc::new(pool);
    pools.insert(threads, Arc::clone(&pool));
    Ok(pool)
}

/// Runs `work` with the GIL released: on rayon's global pool (all cores, or RAYON_NUM_THREADS)
/// when `threads` is None or 0, else on the cached pool of exactly `threads` threads.
/// `work` must hold no Python objects: callers copy their inputs out first.
pub fn run_detached<T, F>(py: Python<'_>, threads: Option<usize>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    match threads {
        None | Some(0) => Ok(py.detach(work)),
        Some(threads) => {
            let pool = pool_of(threads)?;
            Ok(py.detach(|| pool.install(work)))
        }
    }
}
