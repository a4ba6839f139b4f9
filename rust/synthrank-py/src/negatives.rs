//! Bindings of `synthrank_core::negatives`.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use synthrank_core::negatives::{self as core, Candidates, NegativeOptions, Sampling, COUNT_NAMES};
use synthrank_core::CoreError;

use crate::errors::to_py;
use crate::pool::run_detached;

type Selection<'py> = (
    Bound<'py, PyArray2<i64>>,
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<bool>>,
    Vec<(&'static str, u64)>,
);

fn slice2<'a, T: numpy::Element>(array: &'a PyReadonlyArray2<'_, T>) -> PyResult<&'a [T]> {
    Ok(array.as_slice()?)
}

fn slice1<'a, T: numpy::Element>(
    array: &'a Option<PyReadonlyArray1<'_, T>>,
) -> PyResult<Option<&'a [T]>> {
    array.as_ref().map(|a| Ok(a.as_slice()?)).transpose()
}

fn table<T: numpy::Element>(
    py: Python<'_>,
    rows: usize,
    cols: usize,
    values: Vec<T>,
) -> Bound<'_, PyArray2<T>> {
    Array2::from_shape_vec((rows, cols), values)
        .expect("the core returns n_queries * num_negatives values")
        .into_pyarray(py)
}

#[pyfunction]
#[pyo3(signature = (
    cand_ids, cand_scores, pos_ids, num_negatives, pos_scores, labels, doc_hashes, cluster_ids,
    range_min, range_max, absolute_margin, relative_margin, max_score, sampling, seed,
    relevant_min_label, negative_max_label, allow_unjudged, threads = None
))]
#[allow(clippy::too_many_arguments)]
pub fn select_negatives<'py>(
    py: Python<'py>,
    cand_ids: PyReadonlyArray2<'py, i64>,
    cand_scores: PyReadonlyArray2<'py, f32>,
    pos_ids: PyReadonlyArray2<'py, i64>,
    num_negatives: usize,
    pos_scores: Option<PyReadonlyArray2<'py, f32>>,
    labels: Option<PyReadonlyArray2<'py, f32>>,
    doc_hashes: Option<PyReadonlyArray1<'py, u64>>,
    cluster_ids: Option<PyReadonlyArray1<'py, i64>>,
    range_min: usize,
    range_max: Option<usize>,
    absolute_margin: Option<f64>,
    relative_margin: Option<f64>,
    max_score: Option<f64>,
    sampling: &str,
    seed: u64,
    relevant_min_label: f64,
    negative_max_label: f64,
    allow_unjudged: bool,
    threads: Option<usize>,
) -> PyResult<Selection<'py>> {
    let sampling = match sampling {
        "top" => Sampling::Top,
        "random" => Sampling::Random,
        other => {
            let message = format!("expected 'top' or 'random', got {other:?}");
            return Err(to_py(
                py,
                CoreError::InvalidArgument {
                    argument: "sampling",
                    message,
                },
            ));
        }
    };
    let n_queries = cand_ids.shape()[0];
    if pos_ids.shape()[0] != n_queries {
        let message = format!("{} rows but cand_ids has {n_queries}", pos_ids.shape()[0]);
        return Err(to_py(
            py,
            CoreError::InvalidArgument {
                argument: "pos_ids",
                message,
            },
        ));
    }
    // The tables are large (queries x candidates), so the work reads them in place: the read-only
    // borrows last the whole call, and, as with any NumPy function that releases the GIL, the
    // caller must not write to them from another thread meanwhile.
    let cand_ids = slice2(&cand_ids)?;
    let cand_scores = slice2(&cand_scores)?;
    let pos_ids = slice2(&pos_ids)?;
    let pos_scores = pos_scores.as_ref().map(slice2).transpose()?;
    let labels = labels.as_ref().map(slice2).transpose()?;
    let doc_hashes = slice1(&doc_hashes)?;
    let cluster_ids = slice1(&cluster_ids)?;
    let options = NegativeOptions {
        num_negatives,
        range_min,
        range_max,
        absolute_margin,
        relative_margin,
        max_score,
        sampling,
        seed,
        relevant_min_label,
        negative_max_label,
        allow_unjudged,
    };
    let selection = run_detached(py, threads, || {
        let candidates = Candidates {
            n_queries,
            cand_ids,
            cand_scores,
            pos_ids,
            pos_scores,
            labels,
            doc_hashes,
            cluster_ids,
        };
        core::select_negatives(&candidates, &options)
    })?
    .map_err(|error| to_py(py, error))?;
    let counts = COUNT_NAMES.iter().copied().zip(selection.counts).collect();
    Ok((
        table(py, n_queries, num_negatives, selection.neg_ids),
        table(py, n_queries, num_negatives, selection.neg_scores),
        table(py, n_queries, num_negatives, selection.neg_judged),
        counts,
    ))
}
