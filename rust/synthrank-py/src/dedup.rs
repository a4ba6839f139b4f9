//! Bindings of `synthrank_core::dedup`.

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
