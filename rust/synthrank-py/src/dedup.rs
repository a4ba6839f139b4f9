//! Bindings of `synthrank_core::dedup`.

use std::path::PathBuf;

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use synthrank_core::dedup::{self as core, MinHashConfig};
use synthrank_core::text::ShingleKind;
use synthrank_core::CoreError;

use crate::errors::to_py;
use crate::pool::run_detached;
use crate::text::as_strs;

fn config(
    py: Python<'_>,
    num_perm: usize,
    shingle_size: usize,
    shingle: &str,
    seed: u64,
) -> PyResult<MinHashConfig> {
    let shingle = match shingle {
        "char" => ShingleKind::Char,
        "word" => ShingleKind::Word,
        other => {
            let message = format!("expected 'char' or 'word', got {other:?}");
            return Err(to_py(
                py,
                CoreError::InvalidArgument {
                    argument: "shingle",
                    message,
                },
            ));
        }
    };
    Ok(MinHashConfig {
        num_perm,
        shingle_size,
        shingle,
        seed,
    })
}

#[pyfunction]
#[pyo3(signature = (texts, threads = None))]
pub fn exact_hashes<'py>(
    py: Python<'py>,
    texts: Vec<PyBackedStr>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<u64>>> {
    let texts = as_strs(&texts);
    let hashes = run_detached(py, threads, || core::exact_hashes(&texts))?;
    Ok(PyArray1::from_vec(py, hashes))
}

#[pyfunction]
#[pyo3(signature = (texts, num_perm, shingle_size, shingle, seed, threads = None))]
pub fn minhash_signatures<'py>(
    py: Python<'py>,
    texts: Vec<PyBackedStr>,
    num_perm: usize,
    shingle_size: usize,
    shingle: &str,
    seed: u64,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<u64>>> {
    let config = config(py, num_perm, shingle_size, shingle, seed)?;
    let texts = as_strs(&texts);
    let signatures = run_detached(py, threads, || core::minhash_signatures(&texts, &config))?
        .map_err(|error| to_py(py, error))?;
    let table = Array2::from_shape_vec((texts.len(), num_perm), signatures)
        .expect("the core returns len(texts) * num_perm values");
    Ok(table.into_pyarray(py))
}

#[pyfunction]
pub fn lsh_params(py: Python<'_>, threshold: f64, num_perm: usize) -> PyResult<(usize, usize)> {
    core::lsh_params(threshold, num_perm).map_err(|error| to_py(py, error))
}

#[pyfunction]
#[pyo3(signature = (texts, threshold, num_perm, shingle_size, shingle, seed, verify, threads = None))]
#[allow(clippy::too_many_arguments)]
pub fn near_duplicates<'py>(
    py: Python<'py>,
    texts: Vec<PyBackedStr>,
    threshold: f64,
    num_perm: usize,
    shingle_size: usize,
    shingle: &str,
    seed: u64,
    verify: bool,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let config = config(py, num_perm, shingle_size, shingle, seed)?;
    let texts = as_strs(&texts);
    let clusters = run_detached(py, threads, || {
        core::near_duplicates(&texts, threshold, &config, verify)
    })?
    .map_err(|error| to_py(py, error))?;
    Ok(PyArray1::from_vec(py, clusters))
}

/// Near-duplicate clusters of a corpus streamed in batches: `add` texts, then `clusters()`;
/// `close()` removes the scratch file of the leaders' signatures.
#[pyclass(module = "synthrank._native")]
pub struct NearDupIndex {
    inner: core::NearDupIndex,
}

#[pymethods]
impl NearDupIndex {
    #[new]
    #[pyo3(signature = (threshold, num_perm, shingle_size, shingle, seed, scratch_path))]
    fn new(
        py: Python<'_>,
        threshold: f64,
        num_perm: usize,
        shingle_size: usize,
        shingle: &str,
        seed: u64,
        scratch_path: PathBuf,
    ) -> PyResult<Self> {
        let config = config(py, num_perm, shingle_size, shingle, seed)?;
        let inner = py
            .detach(|| core::NearDupIndex::new(threshold, config, &scratch_path))
            .map_err(|error| to_py(py, error))?;
        Ok(Self { inner })
    }

    /// Adds `texts` as the next passages; returns their exact hashes (uint64).
    #[pyo3(signature = (texts, threads = None))]
    fn add<'py>(
        &mut self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let texts = as_strs(&texts);
        let inner = &mut self.inner;
        let hashes =
            run_detached(py, threads, || inner.add(&texts))?.map_err(|error| to_py(py, error))?;
        Ok(PyArray1::from_vec(py, hashes))
    }

    /// Cluster id per passage added so far (int64): the smallest index of its cluster.
    fn clusters<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_vec(py, self.inner.clusters())
    }

    /// Cluster leaders so far.
    fn leaders(&self) -> usize {
        self.inner.leaders()
    }

    fn close(&mut self) {
        self.inner.close();
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}
