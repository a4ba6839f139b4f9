//! Bindings of `synthrank_core::text`.

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use synthrank_core::text as core;

use crate::errors::to_py;
use crate::pool::run_detached;

pub fn as_strs(texts: &[PyBackedStr]) -> Vec<&str> {
    texts.iter().map(|text| &**text).collect()
}

#[pyfunction]
#[pyo3(signature = (texts, threads = None))]
pub fn normalize(
    py: Python<'_>,
    texts: Vec<PyBackedStr>,
    threads: Option<usize>,
) -> PyResult<Vec<String>> {
    let texts = as_strs(&texts);
    run_detached(py, threads, || core::normalize(&texts))
}

#[pyfunction]
#[pyo3(signature = (texts, threads = None))]
pub fn word_tokens(
    py: Python<'_>,
    texts: Vec<PyBackedStr>,
    threads: Option<usize>,
) -> PyResult<Vec<Vec<String>>> {
    let texts = as_strs(&texts);
    run_detached(py, threads, || core::word_tokens(&texts))
}

#[pyfunction]
pub fn char_shingles(py: Python<'_>, text: &str, n: usize) -> PyResult<Vec<String>> {
    core::char_shingles(text, n).map_err(|error| to_py(py, error))
}

#[pyfunction]
pub fn word_shingles(py: Python<'_>, text: &str, n: usize) -> PyResult<Vec<String>> {
    core::word_shingles(text, n).map_err(|error| to_py(py, error))
}

#[pyfunction]
#[pyo3(signature = (texts, threads = None))]
pub fn fnv1a64<'py>(
    py: Python<'py>,
    texts: Vec<PyBackedStr>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray1<u64>>> {
    let texts = as_strs(&texts);
    let hashes = run_detached(py, threads, || core::fnv1a64_texts(&texts))?;
    Ok(PyArray1::from_vec(py, hashes))
}
