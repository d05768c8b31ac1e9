//! Python bindings: the only file that knows about pyo3 and numpy.
//!
//! Thin by design: the Python package validates and coerces inputs (contiguous float32 arrays, lists
//! of str, sizes) and gives the friendly messages; these functions copy what they need, release the
//! GIL around the work and map `CoreError` to the package's exception classes.
//!
//! Nothing a Python caller passes may abort or panic the interpreter: integer arguments out of
//! range are `InvalidInputError` (not `OverflowError`), the kernels size their buffers with checked,
//! fallible allocation (`MemoryError` when a request cannot fit), and every function body runs under
//! [`guard`], which turns a panic that still happens (a bug) into a `TaskspaceError` instead of
//! pyo3's `PanicException` (a `BaseException` that `except Exception` misses).

use std::panic::{catch_unwind, AssertUnwindSafe};

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::{PyMemoryError, PyOverflowError, PyValueError};
use pyo3::prelude::*;

use crate::bootstrap;
use crate::error::CoreError;
use crate::similarity::{self, cosine_into, cosine_self_into};
use crate::surrogate::{self, Config, Method, Mode, Stats};
use crate::{hash, text};

pyo3::create_exception!(
    _core,
    TaskspaceError,
    PyValueError,
    "Base class of taskspace's errors."
);
pyo3::create_exception!(
    _core,
    InvalidInputError,
    TaskspaceError,
    "An input or parameter is invalid."
);
pyo3::create_exception!(
    _core,
    NumericalError,
    TaskspaceError,
    "A quantity could not be computed."
);

fn to_py(e: CoreError) -> PyErr {
    match e {
        CoreError::InvalidInput(m) => InvalidInputError::new_err(m),
        CoreError::Numerical(m) => NumericalError::new_err(m),
        CoreError::OutOfMemory(m) => PyMemoryError::new_err(m),
        CoreError::Internal(m) => TaskspaceError::new_err(m),
    }
}

/// Runs a binding's body; a panic (a bug: bad input gives errors) becomes a `TaskspaceError`.
fn guard<T>(name: &str, body: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        Err(TaskspaceError::new_err(format!(
            "internal error in taskspace._core.{name} (a bug in taskspace, please report it): {}",
            crate::threads::panic_message(payload.as_ref())
        )))
    })
}

/// An unsigned integer argument. Out of range (negative or too large) is an `InvalidInputError`
/// stating the range; pyo3 adds a note naming the argument.
struct Int<T>(T);

macro_rules! int_argument {
    ($($t:ty),*) => {$(
        impl<'a, 'py> FromPyObject<'a, 'py> for Int<$t> {
            type Error = PyErr;

            fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
                match obj.extract::<$t>() {
                    Ok(v) => Ok(Int(v)),
                    Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
                        Err(InvalidInputError::new_err(format!(
                            "integer out of range: must be in 0..={}",
                            <$t>::MAX
                        )))
                    }
                    Err(e) => Err(e),
                }
            }
        }
    )*};
}

int_argument!(u8, u32, u64, usize);

fn slice<'a, T: numpy::Element, D: numpy::ndarray::Dimension>(
    a: &'a numpy::PyReadonlyArray<'_, T, D>,
) -> PyResult<&'a [T]> {
    a.as_slice()
        .map_err(|_| InvalidInputError::new_err("array must be C-contiguous"))
}

/// A fallibly allocated copy of a C-contiguous array.
fn copy<T: numpy::Element + Clone>(a: &PyReadonlyArray1<'_, T>, what: &str) -> PyResult<Vec<T>> {
    crate::error::try_copy(slice(a)?, what).map_err(to_py)
}

/// The surrogate's numeric core for one validated configuration.
#[pyclass(module = "taskspace._core", frozen)]
struct SurrogateCore {
    cfg: Config,
}

/// `texts` (and `pairs`) as string slices.
fn str_refs(texts: &[String]) -> Vec<&str> {
    texts.iter().map(String::as_str).collect()
}

#[pymethods]
impl SurrogateCore {
    #[new]
    #[pyo3(signature = (*, features, dim, seed, hash_bits, ridge, method))]
    fn new(
        features: Int<usize>,
        dim: Int<usize>,
        seed: Int<u64>,
        hash_bits: Int<u32>,
        ridge: f64,
        method: &str,
    ) -> PyResult<Self> {
        guard("SurrogateCore", || {
            let method = Method::parse(method).map_err(to_py)?;
            let cfg = Config::new(features.0, dim.0, seed.0, hash_bits.0, ridge, method)
                .map_err(to_py)?;
            Ok(Self { cfg })
        })
    }

    /// Featurizes and encodes texts (and optional second texts) to an (n, features) float32 array.
    #[pyo3(signature = (texts, text_pairs, namespace, n_threads))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        text_pairs: Option<Vec<String>>,
        namespace: Int<u8>,
        n_threads: Int<usize>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        guard("SurrogateCore.encode", || {
            let cfg = self.cfg.clone();
            let out = py
                .detach(|| {
                    let prefs = text_pairs.as_deref().map(str_refs);
                    surrogate::encode(
                        &str_refs(&texts),
                        prefs.as_deref(),
                        namespace.0,
                        &cfg,
                        n_threads.0,
                    )
                })
                .map_err(to_py)?;
            Ok(PyArray1::from_vec(py, out))
        })
    }

    /// Sufficient statistics of (features (n, h), outputs (n, c)) as a tuple
    /// (n, sum_f, sum_y, ff, fy, yy) of flat float64 arrays.
    #[pyo3(signature = (features, outputs, n_threads))]
    #[allow(clippy::type_complexity)]
    fn stats<'py>(
        &self,
        py: Python<'py>,
        features: PyReadonlyArray2<'py, f32>,
        outputs: PyReadonlyArray2<'py, f32>,
        n_threads: Int<usize>,
    ) -> PyResult<(u64, [Bound<'py, PyArray1<f64>>; 5])> {
        guard("SurrogateCore.stats", || {
            let (h, c) = (features.shape()[1], outputs.shape()[1]);
            if h != self.cfg.features {
                return Err(InvalidInputError::new_err(format!(
                    "features have {h} columns, the surrogate has {}",
                    self.cfg.features
                )));
            }
            let f = slice(&features)?;
            let y = slice(&outputs)?;
            let s = py
                .detach(|| Stats::accumulate(f, y, h, c, n_threads.0))
                .map_err(to_py)?;
            Ok((
                s.n,
                [
                    PyArray1::from_vec(py, s.sum_f),
                    PyArray1::from_vec(py, s.sum_y),
                    PyArray1::from_vec(py, s.ff),
                    PyArray1::from_vec(py, s.fy),
                    PyArray1::from_vec(py, s.yy),
                ],
            ))
        })
    }

    /// Task embedding (float32, length dim) from sufficient statistics.
    #[pyo3(signature = (n, sum_f, sum_y, ff, fy, yy, mode))]
    #[allow(clippy::too_many_arguments)]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        n: Int<u64>,
        sum_f: PyReadonlyArray1<'py, f64>,
        sum_y: PyReadonlyArray1<'py, f64>,
        ff: PyReadonlyArray1<'py, f64>,
        fy: PyReadonlyArray1<'py, f64>,
        yy: PyReadonlyArray1<'py, f64>,
        mode: &str,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        guard("SurrogateCore.embed", || {
            let mode = Mode::parse(mode).map_err(to_py)?;
            let (h, c) = (sum_f.len(), sum_y.len());
            if h != self.cfg.features {
                return Err(InvalidInputError::new_err(format!(
                    "statistics have h={h}, the surrogate has features={}",
                    self.cfg.features
                )));
            }
            if c > surrogate::MAX_OUTPUTS {
                return Err(InvalidInputError::new_err(format!(
                    "statistics have c={c} output columns, at most {} are supported",
                    surrogate::MAX_OUTPUTS
                )));
            }
            let stats = Stats {
                h,
                c,
                n: n.0,
                sum_f: copy(&sum_f, "sum_f")?,
                sum_y: copy(&sum_y, "sum_y")?,
                ff: copy(&ff, "ff")?,
                fy: copy(&fy, "fy")?,
                yy: copy(&yy, "yy")?,
            };
            let cfg = self.cfg.clone();
            let v = py
                .detach(|| surrogate::embed(&stats, mode, &cfg))
                .map_err(to_py)?;
            Ok(PyArray1::from_vec(py, v))
        })
    }
}

/// The specified 64-bit hash (FNV-1a 64 + MurmurHash3 fmix64) of a byte string.
#[pyfunction]
fn hash64(data: &[u8]) -> PyResult<u64> {
    guard("hash64", || Ok(hash::hash64(data)))
}

/// Which SIMD instruction set the dispatched kernels use on this machine ("avx2", "sse2", "neon", ...).
#[pyfunction]
fn simd_backend() -> PyResult<&'static str> {
    guard("simd_backend", || Ok(crate::simd::backend()))
}

/// The featurizer's tokens of a text.
#[pyfunction]
fn tokens(text: &str) -> PyResult<Vec<String>> {
    guard("tokens", || Ok(text::tokens(text)))
}

/// Hashed n-gram features of texts as CSR arrays (indptr u64, indices u32, values f32).
#[pyfunction]
#[pyo3(signature = (texts, text_pairs, namespace, hash_bits, n_threads))]
#[allow(clippy::type_complexity)]
fn featurize<'py>(
    py: Python<'py>,
    texts: Vec<String>,
    text_pairs: Option<Vec<String>>,
    namespace: Int<u8>,
    hash_bits: Int<u32>,
    n_threads: Int<usize>,
) -> PyResult<(
    Bound<'py, PyArray1<u64>>,
    Bound<'py, PyArray1<u32>>,
    Bound<'py, PyArray1<f32>>,
)> {
    guard("featurize", || {
        let (indptr, indices, values) = py
            .detach(|| {
                let prefs = text_pairs.as_deref().map(str_refs);
                surrogate::featurize_batch(
                    &str_refs(&texts),
                    prefs.as_deref(),
                    namespace.0,
                    hash_bits.0,
                    n_threads.0,
                )
            })
            .map_err(to_py)?;
        Ok((
            PyArray1::from_vec(py, indptr),
            PyArray1::from_vec(py, indices),
            PyArray1::from_vec(py, values),
        ))
    })
}

/// The featurization benchmark's limit-style baseline: hashes every 4-byte window of each text into
/// a checksum (see `text::scan_windows4`); not part of the surrogate.
#[pyfunction]
#[pyo3(signature = (texts,))]
fn scan_windows4(py: Python<'_>, texts: Vec<String>) -> PyResult<u64> {
    guard("scan_windows4", || {
        Ok(py.detach(|| {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            text::scan_windows4(&refs)
        }))
    })
}

fn writable<'py>(
    out: &'py Bound<'py, numpy::PyArray2<f32>>,
) -> PyResult<numpy::PyReadwriteArray2<'py, f32>> {
    out.try_readwrite()
        .map_err(|_| InvalidInputError::new_err("out is not writeable (or is borrowed elsewhere)"))
}

/// Raises unless `b` has `d` columns.
fn same_dim(d: usize, b: &[usize]) -> PyResult<()> {
    if b[1] != d {
        return Err(InvalidInputError::new_err(format!(
            "dimension mismatch: {d} vs {}",
            b[1]
        )));
    }
    Ok(())
}

/// Cosine similarities of the rows of a (n, d) and b (m, d), written into out (n, m); all float32.
/// With b None, the rows of a are compared with each other (upper triangle computed, then mirrored).
#[pyfunction]
#[pyo3(signature = (a, b, out, n_threads))]
fn cosine<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f32>,
    b: Option<PyReadonlyArray2<'py, f32>>,
    out: Bound<'py, numpy::PyArray2<f32>>,
    n_threads: Int<usize>,
) -> PyResult<()> {
    guard("cosine", || {
        let d = a.shape()[1];
        let sa = slice(&a)?;
        let mut w = writable(&out)?;
        let so = w
            .as_slice_mut()
            .map_err(|_| InvalidInputError::new_err("out must be C-contiguous"))?;
        match b {
            Some(b) => {
                same_dim(d, b.shape())?;
                let sb = slice(&b)?;
                py.detach(|| cosine_into(sa, sb, d, so, n_threads.0))
                    .map_err(to_py)
            }
            None => py
                .detach(|| cosine_self_into(sa, d, so, n_threads.0))
                .map_err(to_py),
        }
    })
}

/// Fused top-k cosine search: (ids int64, scores float32), both flat (n*k), best first.
#[pyfunction]
#[pyo3(signature = (a, b, k, exclude_self, n_threads))]
#[allow(clippy::type_complexity)]
fn top_k<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f32>,
    b: Option<PyReadonlyArray2<'py, f32>>,
    k: Int<usize>,
    exclude_self: bool,
    n_threads: Int<usize>,
) -> PyResult<(Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<f32>>)> {
    guard("top_k", || {
        let d = a.shape()[1];
        if let Some(b) = &b {
            same_dim(d, b.shape())?;
        }
        let sa = slice(&a)?;
        let sb = match &b {
            Some(b) => Some(slice(b)?),
            None => None,
        };
        let (ids, scores) = py
            .detach(|| similarity::top_k(sa, sb, d, k.0, exclude_self, n_threads.0))
            .map_err(to_py)?;
        Ok((PyArray1::from_vec(py, ids), PyArray1::from_vec(py, scores)))
    })
}

/// All pairs with cosine >= threshold: (i int64, j int64, score float32); rows of a numbered from
/// row_offset; with upper_only, a is the block of b starting at row_offset and only j > i is kept.
#[pyfunction]
#[pyo3(signature = (a, b, threshold, row_offset, upper_only, n_threads))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn pairs_above<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f32>,
    b: PyReadonlyArray2<'py, f32>,
    threshold: f32,
    row_offset: Int<usize>,
    upper_only: bool,
    n_threads: Int<usize>,
) -> PyResult<(
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<f32>>,
)> {
    guard("pairs_above", || {
        let d = a.shape()[1];
        same_dim(d, b.shape())?;
        let (sa, sb) = (slice(&a)?, slice(&b)?);
        let (is, js, ss) = py
            .detach(|| {
                similarity::pairs_above(sa, sb, d, threshold, row_offset.0, upper_only, n_threads.0)
            })
            .map_err(to_py)?;
        Ok((
            PyArray1::from_vec(py, is),
            PyArray1::from_vec(py, js),
            PyArray1::from_vec(py, ss),
        ))
    })
}

/// Read-outs (flat r*dim float64) of r low-rank estimates X_k Y_kᵀ − (tr/h)·I through a triangle
/// map (see `bootstrap.rs`); x and y are (r, h, c) float64.
#[pyfunction]
#[pyo3(signature = (x, y, pos, weight, dim, n_threads))]
fn sketch_triangles<'py>(
    py: Python<'py>,
    x: numpy::PyReadonlyArray3<'py, f64>,
    y: numpy::PyReadonlyArray3<'py, f64>,
    pos: PyReadonlyArray1<'py, u32>,
    weight: PyReadonlyArray1<'py, f64>,
    dim: Int<usize>,
    n_threads: Int<usize>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    guard("sketch_triangles", || {
        let (r, h, c) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        if y.shape() != x.shape() {
            return Err(InvalidInputError::new_err(format!(
                "x and y must have the same shape, got {:?} and {:?}",
                x.shape(),
                y.shape()
            )));
        }
        let (sx, sy, sp, sw) = (slice(&x)?, slice(&y)?, slice(&pos)?, slice(&weight)?);
        let out = py
            .detach(|| bootstrap::sketch_triangles(sx, sy, r, h, c, sp, sw, dim.0, n_threads.0))
            .map_err(to_py)?;
        Ok(PyArray1::from_vec(py, out))
    })
}

/// Solutions (flat r*h*m float64) of r symmetric positive definite systems A_k X_k = B_k; a is
/// (r, h, h), b (r, h, m), float64 (see `bootstrap.rs`).
#[pyfunction]
#[pyo3(signature = (a, b, n_threads))]
fn solve_spd_batch<'py>(
    py: Python<'py>,
    a: numpy::PyReadonlyArray3<'py, f64>,
    b: numpy::PyReadonlyArray3<'py, f64>,
    n_threads: Int<usize>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    guard("solve_spd_batch", || {
        let (r, h, m) = (b.shape()[0], b.shape()[1], b.shape()[2]);
        if a.shape() != [r, h, h] {
            return Err(InvalidInputError::new_err(format!(
                "a must have shape ({r}, {h}, {h}), got {:?}",
                a.shape()
            )));
        }
        let (sa, sb) = (slice(&a)?, slice(&b)?);
        let out = py
            .detach(|| bootstrap::solve_spd_batch(sa, sb, r, h, m, n_threads.0))
            .map_err(to_py)?;
        Ok(PyArray1::from_vec(py, out))
    })
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("SURROGATE_VERSION", surrogate::SURROGATE_VERSION)?;
    m.add("MAX_FEATURES", surrogate::MAX_SURROGATE_FEATURES)?;
    m.add("MAX_DIM", surrogate::MAX_DIM)?;
    m.add("MAX_LABELS", surrogate::MAX_LABELS)?;
    m.add("NS_TEXT", text::NS_TEXT)?;
    m.add("NS_OUTPUT", text::NS_OUTPUT)?;
    m.add(
        "build_profile",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    m.add("TaskspaceError", py.get_type::<TaskspaceError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add("NumericalError", py.get_type::<NumericalError>())?;
    m.add_class::<SurrogateCore>()?;
    m.add_function(wrap_pyfunction!(hash64, m)?)?;
    m.add_function(wrap_pyfunction!(tokens, m)?)?;
    m.add_function(wrap_pyfunction!(simd_backend, m)?)?;
    m.add_function(wrap_pyfunction!(featurize, m)?)?;
    m.add_function(wrap_pyfunction!(scan_windows4, m)?)?;
    m.add_function(wrap_pyfunction!(cosine, m)?)?;
    m.add_function(wrap_pyfunction!(top_k, m)?)?;
    m.add_function(wrap_pyfunction!(pairs_above, m)?)?;
    m.add_function(wrap_pyfunction!(sketch_triangles, m)?)?;
    m.add_function(wrap_pyfunction!(solve_spd_batch, m)?)?;
    Ok(())
}
