//! The one place where core errors become Python exceptions (classes of `synthrank.errors`).

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use synthrank_core::CoreError;

pub fn to_py(py: Python<'_>, error: CoreError) -> PyErr {
    let class = match error {
        CoreError::InvalidArgument { .. } => "InvalidArgumentError",
        CoreError::TokenizerNotFound { .. } | CoreError::Tokenizer { .. } => "TokenizerError",
        CoreError::Io { .. } => return PyOSError::new_err(error.to_string()),
    };
    let raised = py
        .import("synthrank.errors")
        .and_then(|module| module.getattr(class))
        .and_then(|exception| exception.call1((error.to_string(),)));
    match raised {
        Ok(instance) => PyErr::from_value(instance),
        Err(import_error) => import_error,
    }
}
