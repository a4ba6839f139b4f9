//! Bindings of `synthrank_core::chunk`.

use std::path::PathBuf;

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

/// A `tokenizer.json` parsed once; `chunk` splits batches of texts into windows of its tokens.
#[pyclass(module = "synthrank._native", frozen)]
pub struct Chunker {
    inner: core::Chunker,
}

#[pymethods]
impl Chunker {
    #[new]
    fn new(py: Python<'_>, tokenizer_path: PathBuf) -> PyResult<Self> {
        let inner = py
            .detach(|| core::Chunker::from_file(&tokenizer_path))
            .map_err(|error| to_py(py, error))?;
        Ok(Self { inner })
    }

    #[pyo3(signature = (texts, max_tokens, overlap, threads = None))]
    fn chunk<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<PyBackedStr>,
        max_tokens: usize,
        overlap: usize,
        threads: Option<usize>,
    ) -> PyResult<ChunkArrays<'py>> {
        let texts = as_strs(&texts);
        let chunks = run_detached(py, threads, || {
            self.inner.chunk(&texts, max_tokens, overlap)
        })?
        .map_err(|error| to_py(py, error))?;
        Ok(to_arrays(py, chunks))
    }
}
