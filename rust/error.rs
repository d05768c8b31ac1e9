//! The one error type of the core. `py.rs` maps each variant to a Python exception class.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// A parameter or input the caller can fix (bad size, length mismatch, out of range).
    InvalidInput(String),
    /// The numbers could not be computed (for example a matrix that is not positive definite).
    Numerical(String),
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::InvalidInput(m) | CoreError::Numerical(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CoreError {}

pub type Result<T> = std::result::Result<T, CoreError>;

/// Returns `InvalidInput(msg)` unless `cond` holds.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(CoreError::InvalidInput(msg()))
    }
}
