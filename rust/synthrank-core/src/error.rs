//! The one error type of the core; the Python binding maps each variant once.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CoreError {
    /// An argument is out of range or inconsistent with another; `argument` names it.
    #[error("{argument}: {message}")]
    InvalidArgument {
        argument: &'static str,
        message: String,
    },
    /// The tokenizer file does not exist.
    #[error("tokenizer: no tokenizer file at {path}")]
    TokenizerNotFound { path: String },
    /// The tokenizer file exists but cannot be loaded, or a text cannot be encoded.
    #[error("tokenizer: {path}: {message}")]
    Tokenizer { path: String, message: String },
    /// A scratch file cannot be created, written or read.
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

pub type Result<T> = std::result::Result<T, CoreError>;

pub(crate) fn invalid(argument: &'static str, message: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument {
        argument,
        message: message.into(),
    }
}
