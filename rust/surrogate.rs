//! The surrogate: (input, output) pairs -> sufficient statistics -> estimator -> task embedding.
//!
//! Notation: f(x) ∈ R^h is the frozen encoder's output for an input, y ∈ R^c the encoded output
//! (a one-hot or soft label row in `label` mode, the encoder's output for the output text in `text`
//! mode). Over n pairs: μ_f, μ_y the means, Σ_F = E[(f-μ_f)(f-μ_f)ᵀ], C = E[(f-μ_f)(y-μ_y)ᵀ],
//! Σ_Y = E[(y-μ_y)(y-μ_y)ᵀ].
//!
//! Ridge head (the task-specific part fitted on the pairs):
//!     W = (Σ_F + λ·(tr Σ_F / h)·I)^{-1} C                      (h×c)
//! λ is `ridge`, relative to the mean feature variance so it does not depend on the data's scale.
//!
//! `operator` (TuPaTE analogue: the fitted parameters are the embedding):
//! * text mode:  E = W, flattened row-major (h×h). Output wording matters.
//! * label mode: E = W Σ_Y⁺ Wᵀ − (tr/h)·I, the upper triangle with off-diagonal entries scaled by √2
//!   (so the Frobenius inner product is kept). Recoding the labels by any invertible map T (renaming,
//!   reordering, soft label mixing) sends W to W T and Σ_Y to Tᵀ Σ_Y T, which leaves W Σ_Y⁺ Wᵀ
//!   unchanged: only how the task partitions its inputs matters. Label rows sum to 1, so the last
//!   column is redundant and is dropped before the fit (this removes Σ_Y's exact null direction);
//!   Σ_Y⁻¹ is then computed as (Σ_Y + ε·I)⁻¹ with ε = 1e-9·tr(Σ_Y)/c (raised ×100 at a time,
//!   at most to 1e-3, only if rounding made Σ_Y indefinite), which guards against labels that
//!   never occur. Removing the trace
//!   removes the part every task shares (the finite-sample bias of a fit on noise is ∝ I), which made
//!   label-mode comparisons far sharper in our experiments.
//!
//! `fisher` (TaskEmb analogue: Fisher information is the embedding): the diagonal of the expected
//! Fisher information of per-feature gates a in the Gaussian surrogate head ŷ = Wᵀ(a ∘ f) at a = 1,
//!     F_jj = (W P Wᵀ)_jj · E[f_j²],
//! with P the inverse residual covariance (Σ_Y − CᵀW − WᵀC + WᵀΣ_F W + δ·Σ_Y)⁻¹, δ = 1e-3, in
//! label mode (invariant to label recoding as above) and P = I in text mode (isotropic noise: the
//! wording of outputs matters). Expected Fisher needs only second moments, so it is computed from the
//! same additive statistics. The vector is centred (its mean removed) before the read-out.
//!
//! A task whose outputs never vary (a single label, identical output texts, the same soft label on
//! every row) or whose inputs never vary (all identical, or all without features) is degenerate: its
//! embedding is the zero vector. "Never varies" means a variance below 1e-4 of the second moment,
//! far above the rounding noise of the f32 statistics and far below any real task's.

use crate::error::{checked_len, ensure, try_filled, CoreError, Result};
use crate::linalg::{cholesky, cholesky_solve, matmul_tn, trace};
use crate::simd::gram_tn;
use crate::sketch::{readout, Projection, MAX_FEATURES};
use crate::text::{featurize_entries, featurize_into, Scratch, SparseRow};
use crate::threads::for_each_piece;

/// Bumped whenever any number an embedding depends on changes; part of the fingerprint.
pub const SURROGATE_VERSION: u32 = 1;
/// Largest `features` (h): statistics hold h×h matrices.
pub const MAX_SURROGATE_FEATURES: usize = 2048;
const _: () = assert!(MAX_SURROGATE_FEATURES <= MAX_FEATURES);
/// Largest read-out `dim`.
pub const MAX_DIM: usize = 1 << 20;
/// Largest number of label columns in label mode.
pub const MAX_LABELS: usize = 4096;
/// Largest number of output columns c of statistics: label columns, or h in text mode. Statistics
/// hold a c×c matrix, so c is bounded before anything of that size is allocated.
pub const MAX_OUTPUTS: usize = if MAX_LABELS > MAX_SURROGATE_FEATURES {
    MAX_LABELS
} else {
    MAX_SURROGATE_FEATURES
};
/// Rows per statistics piece: fixed so results do not depend on the thread count.
const ROWS_PER_PIECE: usize = 512;
/// Variance below this fraction of the second moment counts as "never varies" (degenerate task).
const DEGENERATE_REL: f64 = 1e-4;
/// Fisher's residual precision is (R + δ·Σ_Y)⁻¹: bounded when the head fits the labels perfectly.
const FISHER_DELTA: f64 = 1e-3;
/// Texts per encoding piece handed to one thread.
const TEXTS_PER_PIECE: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Label,
    Text,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Operator,
    Fisher,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "label" => Ok(Mode::Label),
            "text" => Ok(Mode::Text),
            _ => Err(CoreError::InvalidInput(format!(
                "mode must be 'label' or 'text', got {s:?}"
            ))),
        }
    }
}

impl Method {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "operator" => Ok(Method::Operator),
            "fisher" => Ok(Method::Fisher),
            _ => Err(CoreError::InvalidInput(format!(
                "method must be 'operator' or 'fisher', got {s:?}"
            ))),
        }
    }
}

/// A validated surrogate configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub features: usize,
    pub dim: usize,
    pub seed: u64,
    pub hash_bits: u32,
    pub ridge: f64,
    pub method: Method,
}

impl Config {
    pub fn new(
        features: usize,
        dim: usize,
        seed: u64,
        hash_bits: u32,
        ridge: f64,
        method: Method,
    ) -> Result<Self> {
        ensure((1..=MAX_SURROGATE_FEATURES).contains(&features), || {
            format!("features must be in 1..={MAX_SURROGATE_FEATURES}, got {features}")
        })?;
        ensure((1..=MAX_DIM).contains(&dim), || {
            format!("dim must be in 1..={MAX_DIM}, got {dim}")
        })?;
        ensure((1..=30).contains(&hash_bits), || {
            format!("hash_bits must be in 1..=30, got {hash_bits}")
        })?;
        ensure(ridge.is_finite() && ridge > 0.0, || {
            format!("ridge must be finite and > 0, got {ridge}")
        })?;
        Ok(Self {
            features,
            dim,
            seed,
            hash_bits,
            ridge,
            method,
        })
    }
}

/// Featurizes and encodes a batch: returns an n×h row-major f32 matrix of unit (or zero) rows.
pub fn encode(
    texts: &[&str],
    pairs: Option<&[&str]>,
    namespace: u8,
    cfg: &Config,
    n_threads: usize,
) -> Result<Vec<f32>> {
    if let Some(p) = pairs {
        ensure(p.len() == texts.len(), || {
            format!(
                "text_pairs has {} items but texts has {}",
                p.len(),
                texts.len()
            )
        })?;
    }
    let h = cfg.features;
    let projection = Projection::new(cfg.seed, h);
    let mut out = try_filled(checked_len(&[texts.len(), h], "texts")?, 0.0f32, "texts")?;
    for_each_piece(
        &mut out,
        TEXTS_PER_PIECE * h,
        n_threads,
        |piece_idx, piece| {
            let mut scratch = Scratch::default();
            let first = piece_idx * TEXTS_PER_PIECE;
            for (k, dst) in piece.chunks_mut(h).enumerate() {
                let i = first + k;
                let entries = featurize_entries(
                    texts[i],
                    pairs.map(|p| p[i]),
                    namespace,
                    cfg.hash_bits,
                    &mut scratch,
                );
                projection.project(entries, dst);
            }
        },
    )?;
    Ok(out)
}

/// Featurizes a batch into CSR arrays (indptr, indices, values) over 2^hash_bits columns.
pub fn featurize_batch(
    texts: &[&str],
    pairs: Option<&[&str]>,
    namespace: u8,
    hash_bits: u32,
    n_threads: usize,
) -> Result<(Vec<u64>, Vec<u32>, Vec<f32>)> {
    ensure((1..=30).contains(&hash_bits), || {
        format!("hash_bits must be in 1..=30, got {hash_bits}")
    })?;
    if let Some(p) = pairs {
        ensure(p.len() == texts.len(), || {
            format!(
                "text_pairs has {} items but texts has {}",
                p.len(),
                texts.len()
            )
        })?;
    }
    // One (row lengths, indices, values) buffer per piece of texts, concatenated in order.
    let n_pieces = texts.len().div_ceil(TEXTS_PER_PIECE);
    let mut pieces: Vec<(Vec<u64>, SparseRow)> = vec![(Vec::new(), SparseRow::default()); n_pieces];
    for_each_piece(&mut pieces, 1, n_threads, |piece_idx, slot| {
        let (lens, acc) = &mut slot[0];
        let mut scratch = Scratch::default();
        let mut row = SparseRow::default();
        let first = piece_idx * TEXTS_PER_PIECE;
        for i in first..(first + TEXTS_PER_PIECE).min(texts.len()) {
            featurize_into(
                texts[i],
                pairs.map(|p| p[i]),
                namespace,
                hash_bits,
                &mut scratch,
                &mut row,
            );
            lens.push(row.indices.len() as u64);
            acc.indices.extend_from_slice(&row.indices);
            acc.values.extend_from_slice(&row.values);
        }
    })?;
    let nnz: usize = pieces.iter().map(|(_, r)| r.indices.len()).sum();
    let mut indptr = Vec::with_capacity(texts.len() + 1);
    let mut indices = Vec::with_capacity(nnz);
    let mut values = Vec::with_capacity(nnz);
    indptr.push(0u64);
    for (lens, r) in pieces {
        for len in lens {
            indptr.push(indptr[indptr.len() - 1] + len);
        }
        indices.extend_from_slice(&r.indices);
        values.extend_from_slice(&r.values);
    }
    Ok((indptr, indices, values))
}

/// Additive sufficient statistics of n pairs (f, y). Matrices are row-major and full (symmetric ones
/// are stored whole). Statistics of two shards merge by `add`.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub h: usize,
    pub c: usize,
    pub n: u64,
    pub sum_f: Vec<f64>,
    pub sum_y: Vec<f64>,
    pub ff: Vec<f64>,
    pub fy: Vec<f64>,
    pub yy: Vec<f64>,
}

impl Stats {
    pub fn zeros(h: usize, c: usize) -> Self {
        Self {
            h,
            c,
            n: 0,
            sum_f: vec![0.0; h],
            sum_y: vec![0.0; c],
            ff: vec![0.0; h * h],
            fy: vec![0.0; h * c],
            yy: vec![0.0; c * c],
        }
    }

    /// Checks that the arrays have the sizes h and c imply (for statistics built from outside).
    pub fn validate(&self) -> Result<()> {
        let (h, c) = (self.h, self.c);
        check_sizes(h, c)?;
        ensure(
            self.sum_f.len() == h
                && self.sum_y.len() == c
                && self.ff.len() == h * h
                && self.fy.len() == h * c
                && self.yy.len() == c * c,
            || format!("statistics arrays do not match h={h}, c={c}"),
        )?;
        let finite = [&self.sum_f, &self.sum_y, &self.ff, &self.fy, &self.yy]
            .iter()
            .all(|v| v.iter().all(|x| x.is_finite()));
        ensure(finite, || "statistics contain NaN or infinity".to_string())
    }

    /// Adds another shard's statistics (same h and c) into these.
    pub fn add(&mut self, other: &Stats) -> Result<()> {
        ensure(self.h == other.h && self.c == other.c, || {
            format!(
                "cannot merge statistics of shape (h={}, c={}) and (h={}, c={})",
                self.h, self.c, other.h, other.c
            )
        })?;
        self.n += other.n;
        for (a, b) in [
            (&mut self.sum_f, &other.sum_f),
            (&mut self.sum_y, &other.sum_y),
            (&mut self.ff, &other.ff),
            (&mut self.fy, &other.fy),
            (&mut self.yy, &other.yy),
        ] {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        Ok(())
    }

    /// Statistics of the rows of `f` (n×h) and `y` (n×c), row-major f32.
    ///
    /// Rows are cut into fixed pieces; each piece accumulates in f32 (a few hundred terms), pieces
    /// are added in f64 in piece order, so the result does not depend on `n_threads`.
    pub fn accumulate(f: &[f32], y: &[f32], h: usize, c: usize, n_threads: usize) -> Result<Stats> {
        ensure(h > 0 && f.len().is_multiple_of(h), || {
            format!("features length {} is not a multiple of h={h}", f.len())
        })?;
        check_sizes(h, c)?;
        let n = f.len() / h;
        ensure(Some(y.len()) == n.checked_mul(c), || {
            format!("outputs have {} values, expected n*c = {}*{c}", y.len(), n)
        })?;
        let mut total = Stats::zeros(h, c);
        let n_pieces = n.div_ceil(ROWS_PER_PIECE);
        // Bound the memory held in partials: process pieces in rounds of a few per thread.
        let round = (2 * crate::threads::resolve(n_threads)).max(1);
        let mut first = 0;
        while first < n_pieces {
            let count = round.min(n_pieces - first);
            let mut partials: Vec<Option<Stats>> = vec![None; count];
            for_each_piece(&mut partials, 1, n_threads, |k, slot| {
                let p = first + k;
                let lo = p * ROWS_PER_PIECE;
                let hi = (lo + ROWS_PER_PIECE).min(n);
                slot[0] = Some(piece_stats(&f[lo * h..hi * h], &y[lo * c..hi * c], h, c));
            })?;
            for s in partials.into_iter().flatten() {
                total.add(&s)?;
            }
            first += count;
        }
        total.fill_lower();
        Ok(total)
    }

    /// Mirrors the upper triangles of `ff` and `yy` (accumulation fills only the upper ones).
    fn fill_lower(&mut self) {
        for (m, k) in [(&mut self.ff, self.h), (&mut self.yy, self.c)] {
            for i in 0..k {
                for j in 0..i {
                    m[i * k + j] = m[j * k + i];
                }
            }
        }
    }
}

/// Statistics hold h×h, h×c and c×c matrices: both sizes are bounded before any is allocated.
fn check_sizes(h: usize, c: usize) -> Result<()> {
    ensure((1..=MAX_SURROGATE_FEATURES).contains(&h), || {
        format!("statistics need 1..={MAX_SURROGATE_FEATURES} feature columns, got h={h}")
    })?;
    ensure(c <= MAX_OUTPUTS, || {
        format!("statistics support at most {MAX_OUTPUTS} output columns, got c={c}")
    })
}

/// One piece's statistics; `ff` and `yy` hold only their upper triangles.
fn piece_stats(f: &[f32], y: &[f32], h: usize, c: usize) -> Stats {
    let rows = f.len() / h;
    let mut s = Stats::zeros(h, c);
    s.n = rows as u64;
    // sums
    for r in 0..rows {
        for (a, v) in s.sum_f.iter_mut().zip(&f[r * h..(r + 1) * h]) {
            *a += f64::from(*v);
        }
        for (a, v) in s.sum_y.iter_mut().zip(&y[r * c..(r + 1) * c]) {
            *a += f64::from(*v);
        }
    }
    // FᵀF (upper), FᵀY, YᵀY (upper), accumulated in f32 over the piece, then added in f64.
    let mut buf = vec![0.0f32; (h * h).max(h * c).max(c * c)];
    for (m, (a, p), (b, q), upper) in [
        (&mut s.ff, (f, h), (f, h), true),
        (&mut s.fy, (f, h), (y, c), false),
        (&mut s.yy, (y, c), (y, c), true),
    ] {
        let out = &mut buf[..p * q];
        out.fill(0.0);
        gram_tn(a, b, rows, p, q, upper, out);
        for (o, v) in m.iter_mut().zip(out.iter()) {
            *o += f64::from(*v);
        }
    }
    s
}

/// Centred moments of the statistics: (Σ_F, C, Σ_Y, E[f_j²]).
struct Moments {
    sigma_f: Vec<f64>,
    cross: Vec<f64>,
    sigma_y: Vec<f64>,
    second_f: Vec<f64>,
}

impl Moments {
    /// Removes the last output column from C and the last row and column from Σ_Y.
    fn drop_last_output(&mut self, h: usize, c: usize) {
        let k = c.saturating_sub(1);
        self.cross = (0..h)
            .flat_map(|i| (0..k).map(move |j| (i, j)))
            .map(|(i, j)| self.cross[i * c + j])
            .collect();
        self.sigma_y = (0..k)
            .flat_map(|i| (0..k).map(move |j| (i, j)))
            .map(|(i, j)| self.sigma_y[i * c + j])
            .collect();
    }
}

fn moments(s: &Stats) -> Moments {
    let (h, c) = (s.h, s.c);
    let n = s.n as f64;
    let mf: Vec<f64> = s.sum_f.iter().map(|v| v / n).collect();
    let my: Vec<f64> = s.sum_y.iter().map(|v| v / n).collect();
    let mut sigma_f = vec![0.0; h * h];
    for i in 0..h {
        for j in 0..h {
            sigma_f[i * h + j] = s.ff[i * h + j] / n - mf[i] * mf[j];
        }
    }
    let mut cross = vec![0.0; h * c];
    for i in 0..h {
        for j in 0..c {
            cross[i * c + j] = s.fy[i * c + j] / n - mf[i] * my[j];
        }
    }
    let mut sigma_y = vec![0.0; c * c];
    for i in 0..c {
        for j in 0..c {
            sigma_y[i * c + j] = s.yy[i * c + j] / n - my[i] * my[j];
        }
    }
    let second_f = (0..h).map(|j| s.ff[j * h + j] / n).collect();
    Moments {
        sigma_f,
        cross,
        sigma_y,
        second_f,
    }
}

/// Solves (S + eps·I) X = B for symmetric PSD S (k×k), B k×m; returns X.
fn ridge_solve(s: &[f64], k: usize, eps: f64, b: &[f64], m: usize) -> Result<Vec<f64>> {
    let mut a = s.to_vec();
    for i in 0..k {
        a[i * k + i] += eps;
    }
    let l = cholesky(&a, k)?;
    let mut x = b.to_vec();
    cholesky_solve(&l, k, &mut x, m);
    Ok(x)
}

/// Like `ridge_solve` with `eps = rel·scale`, for a matrix that is PSD in exact arithmetic but may
/// be slightly indefinite from rounding: `rel` starts tiny (so the result is as exact as possible)
/// and grows ×100 per failed factorization, up to 1e-3.
fn guarded_solve(s: &[f64], k: usize, scale: f64, b: &[f64], m: usize) -> Result<Vec<f64>> {
    let mut rel = 1e-9;
    loop {
        match ridge_solve(s, k, rel * scale, b, m) {
            Err(_) if rel < 1e-3 => rel *= 100.0,
            other => return other,
        }
    }
}

/// The estimator's numbers (before the read-out): see the module docs. Returns all zeros for a
/// degenerate task.
pub fn estimate(s: &Stats, mode: Mode, method: Method, ridge: f64) -> Result<Vec<f64>> {
    s.validate()?;
    let (h, c) = (s.h, s.c);
    if mode == Mode::Text {
        ensure(c == h, || {
            format!("text mode needs outputs encoded to h={h} dims, got c={c}")
        })?;
    }
    let out_len = match (method, mode) {
        (Method::Operator, Mode::Text) => h * h,
        (Method::Operator, Mode::Label) => h * (h + 1) / 2,
        (Method::Fisher, _) => h,
    };
    if s.n < 2 || c == 0 {
        return Ok(vec![0.0; out_len]);
    }
    let mut m = moments(s);
    let c = if mode == Mode::Label {
        // Label rows are distributions (they sum to 1), so the last column is an affine function of
        // the others: dropping it loses nothing and removes Σ_Y's exact null direction.
        m.drop_last_output(h, c);
        c - 1
    } else {
        c
    };
    if c == 0 {
        return Ok(vec![0.0; out_len]);
    }
    let tf = trace(&m.sigma_f, h) / h as f64;
    let ty = trace(&m.sigma_y, c) / c as f64;
    // Inputs or outputs that never vary carry no task: their variance is then only the rounding
    // noise of f32 accumulation (~1e-6 of the second moment), so compare relative to it.
    let n = s.n as f64;
    let second_y = (0..c).map(|j| s.yy[j * s.c + j]).sum::<f64>() / (c as f64 * n);
    let second_f = m.second_f.iter().sum::<f64>() / h as f64;
    let varies =
        |var: f64, second: f64| var.is_finite() && second > 0.0 && var > DEGENERATE_REL * second;
    if !varies(tf, second_f) || !varies(ty, second_y) {
        return Ok(vec![0.0; out_len]);
    }
    let w = ridge_solve(&m.sigma_f, h, ridge * tf, &m.cross, c)?; // h×c
    let result = match (method, mode) {
        (Method::Operator, Mode::Text) => w,
        (Method::Operator, Mode::Label) => {
            // X = W Σ_Y⁺ (via (Σ_Y + εI) Xᵀ = Wᵀ), M = X Wᵀ.
            let wt = transpose(&w, h, c);
            let xt = guarded_solve(&m.sigma_y, c, ty, &wt, h)?; // c×h
            let mut mm = matmul_tn(&xt, &wt, c, h, h); // (Xᵀ)ᵀ Wᵀ = X Wᵀ
            symmetrize(&mut mm, h);
            let t = trace(&mm, h) / h as f64;
            for i in 0..h {
                mm[i * h + i] -= t;
            }
            upper_triangle_scaled(&mm, h)
        }
        (Method::Fisher, _) => {
            let wp = if mode == Mode::Label {
                // δ·Σ_Y (not δ·I) keeps the regularised precision invariant to label recoding.
                let mut resid = residual_covariance(&m, &w, h, c);
                for (r, sy) in resid.iter_mut().zip(&m.sigma_y) {
                    *r += FISHER_DELTA * sy;
                }
                let wt = transpose(&w, h, c);
                transpose(&guarded_solve(&resid, c, ty, &wt, h)?, c, h) // W P, h×c
            } else {
                w.clone()
            };
            let mut v: Vec<f64> = (0..h)
                .map(|j| {
                    let d: f64 = wp[j * c..(j + 1) * c]
                        .iter()
                        .zip(&w[j * c..(j + 1) * c])
                        .map(|(a, b)| a * b)
                        .sum();
                    d * m.second_f[j]
                })
                .collect();
            let mean = v.iter().sum::<f64>() / h as f64;
            for x in &mut v {
                *x -= mean;
            }
            v
        }
    };
    ensure(result.iter().all(|x| x.is_finite()), || {
        "estimator produced non-finite values".to_string()
    })
    .map_err(|e| CoreError::Numerical(e.to_string()))?;
    Ok(result)
}

/// Residual covariance of the ridge fit: Σ_Y − CᵀW − WᵀC + WᵀΣ_F W (c×c).
fn residual_covariance(m: &Moments, w: &[f64], h: usize, c: usize) -> Vec<f64> {
    let ctw = matmul_tn(&m.cross, w, h, c, c);
    let sw = {
        // Σ_F W (h×c); Σ_F is symmetric so Σ_Fᵀ W = Σ_F W.
        matmul_tn(&m.sigma_f, w, h, h, c)
    };
    let wsw = matmul_tn(w, &sw, h, c, c);
    let mut r = m.sigma_y.clone();
    for i in 0..c {
        for j in 0..c {
            r[i * c + j] += -ctw[i * c + j] - ctw[j * c + i] + wsw[i * c + j];
        }
    }
    symmetrize(&mut r, c);
    r
}

fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; a.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
    t
}

fn symmetrize(a: &mut [f64], n: usize) {
    for i in 0..n {
        for j in 0..i {
            let v = 0.5 * (a[i * n + j] + a[j * n + i]);
            a[i * n + j] = v;
            a[j * n + i] = v;
        }
    }
}

/// Upper triangle (with diagonal) row by row, off-diagonal entries × √2: keeps Frobenius products.
fn upper_triangle_scaled(a: &[f64], n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n * (n + 1) / 2);
    for i in 0..n {
        out.push(a[i * n + i]);
        for j in i + 1..n {
            out.push(a[i * n + j] * std::f64::consts::SQRT_2);
        }
    }
    out
}

/// Statistics -> unit-norm float32 embedding of length `cfg.dim` (all zeros when degenerate).
pub fn embed(s: &Stats, mode: Mode, cfg: &Config) -> Result<Vec<f32>> {
    let values = estimate(s, mode, cfg.method, cfg.ridge)?;
    Ok(readout(&values, cfg.seed, cfg.dim))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::SplitMix64;

    fn cfg(method: Method) -> Config {
        Config::new(16, 64, 0, 18, 1.0, method).unwrap()
    }

    fn synthetic(n: usize, h: usize, c: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut r = SplitMix64::new(seed);
        let f: Vec<f32> = (0..n * h)
            .map(|_| r.below(2001) as f32 / 1000.0 - 1.0)
            .collect();
        let mut y = vec![0.0f32; n * c];
        for i in 0..n {
            // label depends on the first two features, so the task is learnable
            let score = f[i * h] + 0.5 * f[i * h + 1];
            let k = if c == 1 {
                0
            } else {
                ((score + 1.5) / 3.0 * c as f32).clamp(0.0, c as f32 - 1.0) as usize
            };
            y[i * c + k] = 1.0;
        }
        (f, y)
    }

    #[test]
    fn statistics_sizes_are_bounded_before_allocating() {
        // One row with 100,000 output columns would need a 10^10-entry c×c matrix (80 GB).
        let wide = vec![0.0f32; 100_000];
        let e = Stats::accumulate(&[1.0; 16], &wide, 16, 100_000, 1).unwrap_err();
        assert!(
            matches!(&e, CoreError::InvalidInput(m) if m.contains("c=100000")),
            "{e:?}"
        );
        assert!(Stats::accumulate(&[1.0; 4], &[1.0], 0, 1, 1).is_err());
        let mut s = Stats::zeros(4, 2);
        s.c = MAX_OUTPUTS + 1;
        assert!(s.validate().is_err());
    }

    #[test]
    fn config_validation() {
        assert!(Config::new(0, 64, 0, 18, 1.0, Method::Operator).is_err());
        assert!(Config::new(16, 0, 0, 18, 1.0, Method::Operator).is_err());
        assert!(Config::new(16, 64, 0, 0, 1.0, Method::Operator).is_err());
        assert!(Config::new(16, 64, 0, 18, 0.0, Method::Operator).is_err());
        assert!(Config::new(16, 64, 0, 18, f64::NAN, Method::Operator).is_err());
        assert!(Config::new(1 << 20, 64, 0, 18, 1.0, Method::Operator).is_err());
        assert!(Mode::parse("labels").is_err());
        assert!(Method::parse("fisher").is_ok());
    }

    #[test]
    fn stats_merge_equals_stats_of_union() {
        let (h, c) = (8, 3);
        let (f, y) = synthetic(1300, h, c, 1);
        let whole = Stats::accumulate(&f, &y, h, c, 2).unwrap();
        let mut a = Stats::accumulate(&f[..700 * h], &y[..700 * c], h, c, 1).unwrap();
        let b = Stats::accumulate(&f[700 * h..], &y[700 * c..], h, c, 3).unwrap();
        a.add(&b).unwrap();
        assert_eq!(a.n, whole.n);
        for (x, z) in [
            (&a.ff, &whole.ff),
            (&a.fy, &whole.fy),
            (&a.yy, &whole.yy),
            (&a.sum_f, &whole.sum_f),
        ] {
            for (p, q) in x.iter().zip(z.iter()) {
                assert!((p - q).abs() < 1e-3 * (1.0 + q.abs()), "{p} vs {q}");
            }
        }
        assert!(a.add(&Stats::zeros(h, c + 1)).is_err());
    }

    #[test]
    fn stats_match_naive_sums_and_ignore_thread_count() {
        let (h, c) = (5, 2);
        let (f, y) = synthetic(1100, h, c, 2);
        let s1 = Stats::accumulate(&f, &y, h, c, 1).unwrap();
        let s4 = Stats::accumulate(&f, &y, h, c, 4).unwrap();
        assert_eq!(s1, s4);
        for i in 0..h {
            for j in 0..h {
                let naive: f64 = (0..1100)
                    .map(|r| f64::from(f[r * h + i]) * f64::from(f[r * h + j]))
                    .sum();
                assert!(
                    (s1.ff[i * h + j] - naive).abs() < 1e-3,
                    "{} {}",
                    s1.ff[i * h + j],
                    naive
                );
            }
            for j in 0..c {
                let naive: f64 = (0..1100)
                    .map(|r| f64::from(f[r * h + i]) * f64::from(y[r * c + j]))
                    .sum();
                assert!((s1.fy[i * c + j] - naive).abs() < 1e-3);
            }
        }
    }

    /// Straightforward reference: build the centred matrices explicitly and solve by Gauss-Jordan.
    fn reference_ridge(f: &[f32], y: &[f32], n: usize, h: usize, c: usize, ridge: f64) -> Vec<f64> {
        let mf: Vec<f64> = (0..h)
            .map(|j| (0..n).map(|i| f64::from(f[i * h + j])).sum::<f64>() / n as f64)
            .collect();
        let my: Vec<f64> = (0..c)
            .map(|j| (0..n).map(|i| f64::from(y[i * c + j])).sum::<f64>() / n as f64)
            .collect();
        let mut a = vec![vec![0.0; h + c]; h];
        for p in 0..h {
            for q in 0..h {
                a[p][q] = (0..n)
                    .map(|i| (f64::from(f[i * h + p]) - mf[p]) * (f64::from(f[i * h + q]) - mf[q]))
                    .sum::<f64>()
                    / n as f64;
            }
            for q in 0..c {
                a[p][h + q] = (0..n)
                    .map(|i| (f64::from(f[i * h + p]) - mf[p]) * (f64::from(y[i * c + q]) - my[q]))
                    .sum::<f64>()
                    / n as f64;
            }
        }
        let t: f64 = (0..h).map(|p| a[p][p]).sum::<f64>() / h as f64;
        for (p, row) in a.iter_mut().enumerate() {
            row[p] += ridge * t;
        }
        for p in 0..h {
            let piv = a[p][p];
            for v in a[p].iter_mut() {
                *v /= piv;
            }
            for r in 0..h {
                if r != p {
                    let fac = a[r][p];
                    let prow = a[p].clone();
                    for (v, pv) in a[r].iter_mut().zip(prow) {
                        *v -= fac * pv;
                    }
                }
            }
        }
        (0..h)
            .flat_map(|p| (0..c).map(move |q| (p, q)))
            .map(|(p, q)| a[p][h + q])
            .collect()
    }

    #[test]
    fn text_operator_is_the_ridge_solution() {
        let (n, h) = (600, 6);
        let (f, _) = synthetic(n, h, 2, 3);
        // outputs: a noisy linear map of the inputs
        let g: Vec<f32> = (0..n)
            .flat_map(|i| (0..h).map(move |j| (i, j)))
            .map(|(i, j)| f[i * h + (j + 1) % h] * 0.7 + f[i * h + j] * 0.1)
            .collect();
        let s = Stats::accumulate(&f, &g, h, h, 2).unwrap();
        let w = estimate(&s, Mode::Text, Method::Operator, 0.5).unwrap();
        let r = reference_ridge(&f, &g, n, h, h, 0.5);
        for (a, b) in w.iter().zip(&r) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn label_operator_matches_reference_and_is_invariant_to_label_permutation() {
        let (n, h, c) = (800, 6, 3);
        let (f, y) = synthetic(n, h, c, 4);
        let s = Stats::accumulate(&f, &y, h, c, 1).unwrap();
        let e = estimate(&s, Mode::Label, Method::Operator, 1.0).unwrap();
        // reference: W Σ_Y⁺ Wᵀ via the between-class identity Σ_c w_c w_cᵀ / p_c for one-hot labels
        let w = reference_ridge(&f, &y, n, h, c, 1.0);
        let p: Vec<f64> = (0..c)
            .map(|k| (0..n).map(|i| f64::from(y[i * c + k])).sum::<f64>() / n as f64)
            .collect();
        let mut m = vec![0.0; h * h];
        for a in 0..h {
            for b in 0..h {
                m[a * h + b] = (0..c).map(|k| w[a * c + k] * w[b * c + k] / p[k]).sum();
            }
        }
        let t = trace(&m, h) / h as f64;
        for a in 0..h {
            m[a * h + a] -= t;
        }
        let reference = upper_triangle_scaled(&m, h);
        for (a, b) in e.iter().zip(&reference) {
            assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        }
        // permute label columns
        let perm = [2usize, 0, 1];
        let yp: Vec<f32> = (0..n)
            .flat_map(|i| perm.iter().map(move |&k| (i, k)))
            .map(|(i, k)| y[i * c + k])
            .collect();
        let sp = Stats::accumulate(&f, &yp, h, c, 1).unwrap();
        for method in [Method::Operator, Method::Fisher] {
            let a = estimate(&s, Mode::Label, method, 1.0).unwrap();
            let b = estimate(&sp, Mode::Label, method, 1.0).unwrap();
            for (x, z) in a.iter().zip(&b) {
                assert!(
                    (x - z).abs() < 1e-6 * (1.0 + x.abs()),
                    "{method:?}: {x} vs {z}"
                );
            }
        }
    }

    #[test]
    fn fisher_matches_definition() {
        let (n, h, c) = (500, 4, 2);
        let (f, y) = synthetic(n, h, c, 5);
        let s = Stats::accumulate(&f, &y, h, c, 1).unwrap();
        let v = estimate(&s, Mode::Text, Method::Fisher, 1.0);
        assert!(v.is_err(), "text mode requires c == h");
        let (g, _) = synthetic(n, h, 1, 6);
        let st = Stats::accumulate(&f, &g, h, h, 1).unwrap();
        let v = estimate(&st, Mode::Text, Method::Fisher, 1.0).unwrap();
        let w = reference_ridge(&f, &g, n, h, h, 1.0);
        let second: Vec<f64> = (0..h)
            .map(|j| (0..n).map(|i| f64::from(f[i * h + j]).powi(2)).sum::<f64>() / n as f64)
            .collect();
        let mut expect: Vec<f64> = (0..h)
            .map(|j| (0..h).map(|k| w[j * h + k].powi(2)).sum::<f64>() * second[j])
            .collect();
        let mean = expect.iter().sum::<f64>() / h as f64;
        for x in &mut expect {
            *x -= mean;
        }
        for (a, b) in v.iter().zip(&expect) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn degenerate_tasks_give_zero_embeddings() {
        let (n, h) = (100, 8);
        let (f, _) = synthetic(n, h, 1, 7);
        let y = vec![1.0f32; n]; // a single label
        let s = Stats::accumulate(&f, &y, h, 1, 1).unwrap();
        let e = embed(
            &s,
            Mode::Label,
            &Config::new(h, 32, 0, 18, 1.0, Method::Operator).unwrap(),
        )
        .unwrap();
        assert!(e.iter().all(|v| *v == 0.0));
        let zeros = vec![0.0f32; n * h];
        let (_, y2) = synthetic(n, h, 2, 8);
        let s = Stats::accumulate(&zeros, &y2, h, 2, 1).unwrap();
        assert!(estimate(&s, Mode::Label, Method::Fisher, 1.0)
            .unwrap()
            .iter()
            .all(|v| *v == 0.0));
        // identical inputs with varying labels, and the same soft label on every row
        let same_rows: Vec<f32> = (0..n).flat_map(|_| f[..h].to_vec()).collect();
        let s = Stats::accumulate(&same_rows, &y2, h, 2, 1).unwrap();
        assert!(estimate(&s, Mode::Label, Method::Operator, 1.0)
            .unwrap()
            .iter()
            .all(|v| *v == 0.0));
        let soft: Vec<f32> = (0..n).flat_map(|_| [0.3f32, 0.7]).collect();
        let s = Stats::accumulate(&f, &soft, h, 2, 1).unwrap();
        assert!(estimate(&s, Mode::Label, Method::Operator, 1.0)
            .unwrap()
            .iter()
            .all(|v| *v == 0.0));
        let one = Stats::accumulate(&f[..h], &y2[..2], h, 2, 1).unwrap();
        assert!(estimate(&one, Mode::Label, Method::Operator, 1.0)
            .unwrap()
            .iter()
            .all(|v| *v == 0.0));
    }

    #[test]
    fn embeddings_are_unit_norm_and_separate_tasks() {
        let (n, h, c) = (1000, 16, 2);
        let (f, y) = synthetic(n, h, c, 9);
        let (f2, y2) = synthetic(n, h, c, 10);
        // an unrelated task: label depends on feature 7 only
        let mut y3 = vec![0.0f32; n * c];
        for i in 0..n {
            y3[i * c + usize::from(f[i * h + 7] > 0.0)] = 1.0;
        }
        for method in [Method::Operator, Method::Fisher] {
            let cf = cfg(method);
            let e1 = embed(
                &Stats::accumulate(&f, &y, h, c, 1).unwrap(),
                Mode::Label,
                &cf,
            )
            .unwrap();
            let e2 = embed(
                &Stats::accumulate(&f2, &y2, h, c, 1).unwrap(),
                Mode::Label,
                &cf,
            )
            .unwrap();
            let e3 = embed(
                &Stats::accumulate(&f, &y3, h, c, 1).unwrap(),
                Mode::Label,
                &cf,
            )
            .unwrap();
            let dot = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| f64::from(*x) * f64::from(*y))
                    .sum::<f64>()
            };
            assert!((dot(&e1, &e1) - 1.0).abs() < 1e-5);
            assert!(
                dot(&e1, &e2) > dot(&e1, &e3) + 0.2,
                "{method:?}: {} vs {}",
                dot(&e1, &e2),
                dot(&e1, &e3)
            );
        }
    }

    #[test]
    fn encode_is_thread_count_independent_and_checks_pairs() {
        let c = Config::new(32, 64, 3, 18, 1.0, Method::Operator).unwrap();
        let texts: Vec<String> = (0..300)
            .map(|i| format!("text number {i} about things"))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let a = encode(&refs, None, 0, &c, 1).unwrap();
        let b = encode(&refs, None, 0, &c, 4).unwrap();
        assert_eq!(a, b);
        assert!(encode(&refs, Some(&refs[..3]), 0, &c, 1).is_err());
        let (indptr, indices, values) = featurize_batch(&refs, None, 0, 18, 2).unwrap();
        assert_eq!(indptr.len(), 301);
        assert_eq!(indices.len(), values.len());
    }
}
