//! taskspace core: the surrogate that turns (input, output) pairs into task embeddings.
//!
//! Pure Rust, covered by `cargo test` without Python; `py.rs` (feature `python`) is the only file
//! that knows about Python and numpy.

pub mod bootstrap;
pub mod error;
pub mod hash;
pub mod linalg;
pub mod simd;
pub mod similarity;
pub mod sketch;
pub mod surrogate;
pub mod text;
pub mod threads;

#[cfg(feature = "python")]
mod py;
