//! Runs core work off the GIL on a rayon pool of the caller's size.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// Runs `work` with the GIL released on a fresh pool of `threads` threads (None or 0: all cores).
/// `work` must hold no Python objects: callers copy their inputs out first.
pub fn run_detached<T, F>(py: Python<'_>, threads: Option<usize>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .map_err(|error| {
            PyRuntimeError::new_err(format!("threads: cannot start a thread pool: {error}"))
        })?;
    Ok(py.detach(|| pool.install(work)))
}
