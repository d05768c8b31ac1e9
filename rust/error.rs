//! The one error type of the core. `py.rs` maps each variant to a Python exception class.
//!
//! Sizes that come from the caller (row counts, `k`, `dim`, ...) are multiplied with
//! [`checked_len`] and allocated with [`try_filled`], never with `vec![x; n]`: an allocation that
//! fails aborts the process (Rust's allocation-failure handler does not unwind), and an overflowing
//! product either panics or wraps to a wrong size. Both become a [`CoreError::OutOfMemory`] here.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// A parameter or input the caller can fix (bad size, length mismatch, out of range).
    InvalidInput(String),
    /// The numbers could not be computed (for example a matrix that is not positive definite).
    Numerical(String),
    /// A buffer the request needs could not be allocated (or its size overflows `usize`).
    OutOfMemory(String),
    /// A worker panicked: a bug in the core, reported instead of tearing the process down.
    Internal(String),
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::InvalidInput(m)
            | CoreError::Numerical(m)
            | CoreError::OutOfMemory(m)
            | CoreError::Internal(m) => f.write_str(m),
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

/// The product of `dims` (the length of a buffer of that shape), or `OutOfMemory` naming `what`
/// when it does not fit in `usize`.
pub fn checked_len(dims: &[usize], what: &str) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            CoreError::OutOfMemory(format!(
                "{what}: a buffer of shape {dims:?} is too large to address"
            ))
        })
}

/// A vector of `len` copies of `value`, or `OutOfMemory` naming `what` (with the size asked for)
/// when the allocation fails, instead of aborting.
pub fn try_filled<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    v.try_reserve_exact(len).map_err(|_| {
        CoreError::OutOfMemory(format!(
            "{what}: cannot allocate {len} values ({:.3} GB)",
            bytes as f64 / 1e9
        ))
    })?;
    v.resize(len, value);
    Ok(v)
}

/// A copy of `src`, allocated fallibly (see [`try_filled`]).
pub fn try_copy<T: Clone>(src: &[T], what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(src.len()).map_err(|_| {
        CoreError::OutOfMemory(format!(
            "{what}: cannot allocate a copy of {} values",
            src.len()
        ))
    })?;
    v.extend_from_slice(src);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_that_overflow_or_cannot_be_allocated_are_errors_not_aborts() {
        assert_eq!(checked_len(&[3, 4, 5], "x"), Ok(60));
        assert_eq!(checked_len(&[], "x"), Ok(1));
        let e = checked_len(&[1 << 40, 1 << 40], "top_k").unwrap_err();
        assert!(matches!(&e, CoreError::OutOfMemory(m) if m.contains("top_k")));
        // 2^61 f64 = 16 EiB: more than any address space; must fail cleanly, not abort.
        let e = try_filled(1usize << 61, 0.0f64, "out").unwrap_err();
        assert!(matches!(&e, CoreError::OutOfMemory(m) if m.contains("out")));
        assert!(try_filled(usize::MAX, 0u8, "out").is_err());
        assert_eq!(try_filled(3, 7u8, "out").unwrap(), vec![7, 7, 7]);
        assert_eq!(try_copy(&[1, 2], "c").unwrap(), vec![1, 2]);
    }
}
