//! Bindings of `synthrank_core::sample`.

use std::collections::HashMap;

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use synthrank_core::sample as core;

fn copy_mask(eligible: Option<PyReadonlyArray1<'_, bool>>) -> PyResult<Option<Vec<bool>>> {
    eligible
        .map(|mask| Ok(mask.as_slice()?.to_vec()))
        .transpose()
}

fn check_mask(py: Python<'_>, mask: &Option<Vec<bool>>, n: usize) -> PyResult<()> {
    match mask {
        Some(mask) if mask.len() != n => Err(crate::errors::to_py(
            py,
            synthrank_core::CoreError::InvalidArgument {
                argument: "eligible",
                message: format!("length {} does not match {n} items", mask.len()),
            },
        )),
        _ => Ok(()),
    }
}

#[pyfunction]
#[pyo3(signature = (n, k, seed, eligible = None))]
pub fn sample_uniform<'py>(
    py: Python<'py>,
    n: usize,
    k: usize,
    seed: u64,
    eligible: Option<PyReadonlyArray1<'py, bool>>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let mask = copy_mask(eligible)?;
    check_mask(py, &mask, n)?;
    let chosen = py.detach(|| core::sample_uniform(n, k, seed, mask.as_deref()));
    Ok(PyArray1::from_vec(py, chosen))
}

#[pyfunction]
#[pyo3(signature = (strata, default_quota, quota_strata, quota_values, seed, eligible = None))]
pub fn sample_stratified<'py>(
    py: Python<'py>,
    strata: PyReadonlyArray1<'py, i64>,
    default_quota: usize,
    quota_strata: PyReadonlyArray1<'py, i64>,
    quota_values: PyReadonlyArray1<'py, i64>,
    seed: u64,
    eligible: Option<PyReadonlyArray1<'py, bool>>,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    let strata = strata.as_slice()?.to_vec();
    let quotas: HashMap<i64, usize> = quota_strata
        .as_slice()?
        .iter()
        .zip(quota_values.as_slice()?)
        .map(|(&stratum, &quota)| (stratum, quota.max(0) as usize))
        .collect();
    let mask = copy_mask(eligible)?;
    check_mask(py, &mask, strata.len())?;
    let chosen = py
        .detach(|| core::sample_stratified(&strata, default_quota, &quotas, seed, mask.as_deref()));
    Ok(PyArray1::from_vec(py, chosen))
}

#[pyfunction]
#[pyo3(signature = (lengths, min_length = None, max_length = None))]
pub fn length_mask<'py>(
    py: Python<'py>,
    lengths: PyReadonlyArray1<'py, i64>,
    min_length: Option<i64>,
    max_length: Option<i64>,
) -> PyResult<Bound<'py, PyArray1<bool>>> {
    let mask = core::length_mask(lengths.as_slice()?, min_length, max_length);
    Ok(PyArray1::from_vec(py, mask))
}

/// A streaming reservoir sampler: `extend` with batches of ids, then `result()`.
#[pyclass(module = "synthrank._native")]
pub struct Reservoir {
    inner: core::Reservoir,
}

#[pymethods]
impl Reservoir {
    #[new]
    fn new(k: usize, seed: u64) -> Self {
        Self {
            inner: core::Reservoir::new(k, seed),
        }
    }

    fn extend(&mut self, ids: PyReadonlyArray1<'_, i64>) -> PyResult<()> {
        self.inner.extend(ids.as_slice()?);
        Ok(())
    }

    fn result<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_vec(py, self.inner.result())
    }
}
