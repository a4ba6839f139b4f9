//! Bindings of `synthrank_core::chunk`.

use std::path::Path;

use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use synthrank_core::chunk::{self as core, Chunks};

use crate::errors::to_py;
use crate::pool::run_detached;
use crate::text::as_strs;

type ChunkArrays<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i32>>,
);

fn to_arrays(py: Python<'_>, chunks: Chunks) -> ChunkArrays<'_> {
    (
        PyArray1::from_vec(py, chunks.doc_index),
        PyArray1::from_vec(py, chunks.start),
        PyArray1::from_vec(py, chunks.end),
        PyArray1::from_vec(py, chunks.n_tokens),
    )
}

#[pyfunction]
#[pyo3(signature = (texts, max_tokens, overlap, threads = None))]
pub fn chunk_words(
    py: Python<'_>,
    texts: Vec<PyBackedStr>,
    max_tokens: usize,
    overlap: usize,
    threads: Option<usize>,
) -> PyResult<ChunkArrays<'_>> {
    let texts = as_strs(&texts);
    let chunks = run_detached(py, threads, || {
        core::chunk_words(&texts, max_tokens, overlap)
    })?
    .map_err(|error| to_py(py, error))?;
    Ok(to_arrays(py, chunks))
}

#[pyfunction]
#[pyo3(signature = (texts, tokenizer_path, max_tokens, overlap, threads = None))]
pub fn chunk_tokens(
    py: Python<'_>,
    texts: Vec<PyBackedStr>,
    tokenizer_path: String,
    max_tokens: usize,
    overlap: usize,
    threads: Option<usize>,
) -> PyResult<ChunkArrays<'_>> {
    let texts = as_strs(&texts);
    let chunks = run_detached(py, threads, || {
        let tokenizer = core::load_tokenizer(Path::new(&tokenizer_path))?;
        core::chunk_tokens(&texts, &tokenizer, max_tokens, overlap)
    })?
    .map_err(|error| to_py(py, error))?;
    Ok(to_arrays(py, chunks))
}
