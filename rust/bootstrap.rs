//! Kernels of the drift bootstrap (`taskspace.drift`): the read-out of many low-rank estimates.
//!
//! A bootstrap round of a label-mode drift check needs the `operator` estimate
//! E = M − (tr M / h)·I with M = X Yᵀ (X = W Σ_Y⁻¹ and Y = W, both h×c with c small) read out to
//! `dim` numbers, four times per round. Forming M (h×h) and scattering it costs far more than the
//! c multiply-adds each entry needs, so `sketch_triangles` computes each upper-triangle entry on the
//! fly and adds it straight into its read-out position. The positions and weights (sign, and √2 for
//! off-diagonal entries) are the read-out's own (see `sketch.rs`), passed in by the caller, so this
//! kernel does not restate the read-out's hashing.
//!
//! `solve_spd_batch` solves the rounds' ridge systems (Σ_F + λI) W = C, one symmetric positive
//! definite h×h matrix per round: a right-looking Cholesky (A = UᵀU) whose inner loops are axpys
//! over contiguous rows (they vectorise; the dot-product form in `linalg.rs` is bound by the latency
//! of its single accumulator), then forward and back substitution for the c right-hand sides.

use crate::error::{checked_len, ensure, try_copy, try_filled, CoreError, Result};
use crate::threads::for_each_piece;

/// Reads out `r` matrices E_k = X_k Y_kᵀ − (tr(X_k Y_kᵀ)/h)·I through a triangle map.
///
/// `x` and `y` hold r stacked h×c row-major matrices. Entry (i, j), i ≤ j, the t-th of the upper
/// triangle in row-major order, adds `weight[t]·E_ij` to `out[k·dim + pos[t]]`. Returns the r×dim
/// row-major result (not normalised). Rows are independent and summed in a fixed order, so the
/// result does not depend on `n_threads` (0 = all cores).
#[allow(clippy::too_many_arguments)]
pub fn sketch_triangles(
    x: &[f64],
    y: &[f64],
    r: usize,
    h: usize,
    c: usize,
    pos: &[u32],
    weight: &[f64],
    dim: usize,
    n_threads: usize,
) -> Result<Vec<f64>> {
    ensure(h > 0 && c > 0 && dim > 0, || {
        format!("h, c and dim must be positive, got h={h}, c={c}, dim={dim}")
    })?;
    ensure(dim <= crate::surrogate::MAX_DIM, || {
        format!(
            "dim must be at most {}, got {dim}",
            crate::surrogate::MAX_DIM
        )
    })?;
    // Products in checked arithmetic: a wrapped product could match a short input.
    let hc = checked_len(&[r, h, c], "x")?;
    let tri = checked_len(&[h, h.saturating_add(1)], "pos")? / 2;
    ensure(x.len() == hc && y.len() == hc, || {
        format!(
            "x and y must hold r*h*c = {hc} values, got {} and {}",
            x.len(),
            y.len()
        )
    })?;
    ensure(pos.len() == tri && weight.len() == tri, || {
        format!(
            "pos and weight must have h(h+1)/2 = {tri} entries, got {} and {}",
            pos.len(),
            weight.len()
        )
    })?;
    ensure(pos.iter().all(|&p| (p as usize) < dim), || {
        format!("every position must be below dim={dim}")
    })?;
    let mut out = try_filled(checked_len(&[r, dim], "dim")?, 0.0f64, "dim")?;
    for_each_piece(&mut out, dim, n_threads, |k, acc| {
        let xk = &x[k * h * c..(k + 1) * h * c];
        let yk = &y[k * h * c..(k + 1) * h * c];
        let dot = |i: usize, j: usize| -> f64 {
            xk[i * c..(i + 1) * c]
                .iter()
                .zip(&yk[j * c..(j + 1) * c])
                .map(|(a, b)| a * b)
                .sum()
        };
        let shift = (0..h).map(|i| dot(i, i)).sum::<f64>() / h as f64;
        let mut t = 0;
        if c == 1 {
            // Two labels (one column once the redundant one is dropped): plain products.
            for (i, &xi) in xk.iter().enumerate() {
                for (j, &yj) in yk.iter().enumerate().skip(i) {
                    let v = xi * yj - if i == j { shift } else { 0.0 };
                    acc[pos[t] as usize] += weight[t] * v;
                    t += 1;
                }
            }
            return;
        }
        for i in 0..h {
            for j in i..h {
                let mut v = dot(i, j);
                if i == j {
                    v -= shift;
                }
                acc[pos[t] as usize] += weight[t] * v;
                t += 1;
            }
        }
    })?;
    Ok(out)
}

/// Solves A_k X_k = B_k for r stacked symmetric positive definite h×h matrices `a` and h×m
/// right-hand sides `b` (row-major); returns the r stacked X_k. Only the upper triangle of each A_k
/// is read. Rows are independent, so the result does not depend on `n_threads`.
pub fn solve_spd_batch(
    a: &[f64],
    b: &[f64],
    r: usize,
    h: usize,
    m: usize,
    n_threads: usize,
) -> Result<Vec<f64>> {
    ensure(h > 0 && m > 0, || {
        format!("h and m must be positive, got h={h}, m={m}")
    })?;
    let (hh, hm) = (checked_len(&[r, h, h], "a")?, checked_len(&[r, h, m], "b")?);
    ensure(a.len() == hh && b.len() == hm, || {
        format!(
            "a must hold r*h*h = {hh} and b r*h*m = {hm} values, got {} and {}",
            a.len(),
            b.len()
        )
    })?;
    let mut out = try_copy(b, "b")?;
    let mut failed = try_filled(r, false, "a")?;
    let mut pieces: Vec<(&mut [f64], &mut bool)> =
        out.chunks_mut(h * m).zip(failed.iter_mut()).collect();
    for_each_piece(&mut pieces, 1, n_threads, |k, slot| {
        let (x, bad) = &mut slot[0];
        let mut u = a[k * h * h..(k + 1) * h * h].to_vec();
        if cholesky_upper(&mut u, h) {
            substitute(&u, h, x, m);
        } else {
            **bad = true;
        }
    })?;
    if let Some(k) = failed.iter().position(|&f| f) {
        return Err(CoreError::Numerical(format!(
            "matrix {k} is not positive definite"
        )));
    }
    Ok(out)
}

/// [`cholesky_upper_generic`], compiled for AVX2 when the CPU has it. The inner loop is an
/// element-wise axpy (a multiply, then a subtraction; never fused), so both paths give identical
/// bits whatever the vector width.
fn cholesky_upper(a: &mut [f64], h: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support was just checked.
            return unsafe { cholesky_upper_avx2(a, h) };
        }
    }
    cholesky_upper_generic(a, h)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn cholesky_upper_avx2(a: &mut [f64], h: usize) -> bool {
    cholesky_upper_generic(a, h)
}

/// Overwrites the upper triangle of `a` (h×h, symmetric) with the Cholesky factor U (A = UᵀU);
/// false if `a` is not positive definite. Right-looking: after row j of U is final, every later
/// row i loses U_ji · (row j of U from column i on), an axpy over contiguous memory.
///
/// Rows are finalised in panels of four and the later rows then take the panel's four updates in
/// one pass (each element still loses the four products one after the other, in row order, so the
/// bits are those of one row at a time): a quarter of the memory traffic over the trailing matrix,
/// which is what bounds this loop.
#[inline(always)]
fn cholesky_upper_generic(a: &mut [f64], h: usize) -> bool {
    const PANEL: usize = 4;
    let mut j0 = 0;
    while j0 < h {
        let end = (j0 + PANEL).min(h);
        // The panel's own rows, one at a time (each also updates the panel rows below it).
        for j in j0..end {
            let (head, tail) = a.split_at_mut((j + 1) * h);
            let row_j = &mut head[j * h..];
            let d = row_j[j];
            if d.is_nan() || d <= 0.0 {
                return false;
            }
            let u = d.sqrt();
            row_j[j] = u;
            let inv = 1.0 / u;
            row_j[j + 1..].iter_mut().for_each(|v| *v *= inv);
            let row_j = &row_j[..];
            let last = if end - j0 == PANEL { end } else { h };
            for i in j + 1..last {
                axpy_sub(
                    &mut tail[(i - j - 1) * h + i..(i - j) * h],
                    row_j[i],
                    &row_j[i..],
                );
            }
        }
        if end - j0 == PANEL {
            let (head, tail) = a.split_at_mut(end * h);
            let p = &head[j0 * h..];
            let (p0, p1, p2, p3) = (&p[..h], &p[h..2 * h], &p[2 * h..3 * h], &p[3 * h..4 * h]);
            for i in end..h {
                let row_i = &mut tail[(i - end) * h + i..(i - end + 1) * h];
                let (f0, f1, f2, f3) = (p0[i], p1[i], p2[i], p3[i]);
                for ((((x, y0), y1), y2), y3) in row_i
                    .iter_mut()
                    .zip(&p0[i..])
                    .zip(&p1[i..])
                    .zip(&p2[i..])
                    .zip(&p3[i..])
                {
                    let mut v = *x;
                    v -= f0 * y0;
                    v -= f1 * y1;
                    v -= f2 * y2;
                    v -= f3 * y3;
                    *x = v;
                }
            }
        }
        j0 = end;
    }
    true
}

/// x -= f · y, element by element (a multiply, then a subtraction: never fused).
#[inline(always)]
fn axpy_sub(x: &mut [f64], f: f64, y: &[f64]) {
    if f == 0.0 {
        return;
    }
    for (v, w) in x.iter_mut().zip(y) {
        *v -= f * w;
    }
}

/// Solves UᵀU X = B in place (B: h×m row-major) given the upper factor U in `u`.
fn substitute(u: &[f64], h: usize, x: &mut [f64], m: usize) {
    // Uᵀ Y = B: once row q of Y is final, later rows lose U_qi · Y_q.
    for q in 0..h {
        let (head, tail) = x.split_at_mut((q + 1) * m);
        let row_q = &mut head[q * m..];
        let inv = 1.0 / u[q * h + q];
        row_q.iter_mut().for_each(|v| *v *= inv);
        for i in q + 1..h {
            let f = u[q * h + i];
            for (v, y) in tail[(i - q - 1) * m..(i - q) * m]
                .iter_mut()
                .zip(row_q.iter())
            {
                *v -= f * y;
            }
        }
    }
    // U X = Y, from the last row up.
    for i in (0..h).rev() {
        let (head, tail) = x.split_at_mut((i + 1) * m);
        let row = &mut head[i * m..];
        for q in i + 1..h {
            let f = u[i * h + q];
            for (v, y) in row.iter_mut().zip(&tail[(q - i - 1) * m..(q - i) * m]) {
                *v -= f * y;
            }
        }
        let inv = 1.0 / u[i * h + i];
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::SplitMix64;

    fn random(n: usize, seed: u64) -> Vec<f64> {
        let mut r = SplitMix64::new(seed);
        (0..n)
            .map(|_| r.below(2001) as f64 / 1000.0 - 1.0)
            .collect()
    }

    /// Forms E in full and scatters its triangle: the obvious way.
    fn reference(
        x: &[f64],
        y: &[f64],
        h: usize,
        c: usize,
        pos: &[u32],
        w: &[f64],
        dim: usize,
    ) -> Vec<f64> {
        let mut m = vec![0.0; h * h];
        for i in 0..h {
            for j in 0..h {
                m[i * h + j] = (0..c).map(|a| x[i * c + a] * y[j * c + a]).sum();
            }
        }
        let tr = (0..h).map(|i| m[i * h + i]).sum::<f64>() / h as f64;
        let mut out = vec![0.0; dim];
        let mut t = 0;
        for i in 0..h {
            for j in i..h {
                let v = m[i * h + j] - if i == j { tr } else { 0.0 };
                out[pos[t] as usize] += w[t] * v;
                t += 1;
            }
        }
        out
    }

    #[test]
    fn user_sizes_that_cannot_fit_are_errors_not_aborts() {
        use crate::error::CoreError;
        let (x, pos, w) = (vec![0.5; 2], vec![0u32; 1], vec![1.0; 1]);
        // A dim of 2^61 read-outs (16 EiB) is refused before anything is allocated.
        match sketch_triangles(&x, &x, 2, 1, 1, &pos, &w, 1 << 61, 1) {
            Err(CoreError::InvalidInput(m)) => assert!(m.contains("dim"), "{m}"),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
        // r·h·c that wraps around usize must not match a short input.
        let big = 1usize << 32;
        assert!(sketch_triangles(&[], &[], big, big, 1, &[], &[], 1, 1).is_err());
        assert!(solve_spd_batch(&[], &[], big, big, 1, 1).is_err());
    }

    #[test]
    fn matches_the_full_matrix_and_any_thread_count() {
        for c in [1, 2] {
            check_against_reference(c);
        }
    }

    fn check_against_reference(c: usize) {
        let (r, h, dim) = (3, 7, 11);
        let tri = h * (h + 1) / 2;
        let x = random(r * h * c, 1);
        let y = random(r * h * c, 2);
        let mut g = SplitMix64::new(3);
        let pos: Vec<u32> = (0..tri).map(|_| g.below(dim as u64) as u32).collect();
        let w = random(tri, 4);
        let one = sketch_triangles(&x, &y, r, h, c, &pos, &w, dim, 1).unwrap();
        let many = sketch_triangles(&x, &y, r, h, c, &pos, &w, dim, 4).unwrap();
        assert_eq!(one, many);
        for k in 0..r {
            let want = reference(
                &x[k * h * c..(k + 1) * h * c],
                &y[k * h * c..(k + 1) * h * c],
                h,
                c,
                &pos,
                &w,
                dim,
            );
            for (a, b) in one[k * dim..(k + 1) * dim].iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{a} vs {b}");
            }
        }
    }

    /// The unblocked right-looking factorisation, one row at a time.
    fn cholesky_rows(a: &mut [f64], h: usize) {
        for j in 0..h {
            let u = a[j * h + j].sqrt();
            a[j * h + j] = u;
            for q in j + 1..h {
                a[j * h + q] *= 1.0 / u;
            }
            for i in j + 1..h {
                let f = a[j * h + i];
                for q in i..h {
                    a[i * h + q] -= f * a[j * h + q];
                }
            }
        }
    }

    #[test]
    fn panels_give_the_bits_of_one_row_at_a_time() {
        for h in [1, 2, 3, 4, 5, 7, 8, 9, 31, 64, 67] {
            let g = random(h * h, h as u64);
            let mut a = vec![0.0; h * h];
            for i in 0..h {
                for j in 0..h {
                    let v: f64 = (0..h).map(|q| g[i * h + q] * g[j * h + q]).sum();
                    a[i * h + j] = v + if i == j { 1.0 } else { 0.0 };
                }
            }
            let (mut blocked, mut rows) = (a.clone(), a);
            assert!(cholesky_upper(&mut blocked, h));
            cholesky_rows(&mut rows, h);
            for i in 0..h {
                for j in i..h {
                    assert_eq!(
                        blocked[i * h + j].to_bits(),
                        rows[i * h + j].to_bits(),
                        "h={h} ({i},{j})"
                    );
                }
            }
        }
    }

    #[test]
    fn solves_spd_systems() {
        let (r, h, m) = (3, 9, 2);
        let mut a = Vec::new();
        for k in 0..r {
            // G Gᵀ + I is symmetric positive definite
            let g = random(h * h, 10 + k as u64);
            for i in 0..h {
                for j in 0..h {
                    let v: f64 = (0..h).map(|q| g[i * h + q] * g[j * h + q]).sum();
                    a.push(v + if i == j { 1.0 } else { 0.0 });
                }
            }
        }
        let b = random(r * h * m, 5);
        let x = solve_spd_batch(&a, &b, r, h, m, 2).unwrap();
        assert_eq!(x, solve_spd_batch(&a, &b, r, h, m, 1).unwrap());
        for k in 0..r {
            for i in 0..h {
                for c in 0..m {
                    let ax: f64 = (0..h)
                        .map(|j| a[k * h * h + i * h + j] * x[k * h * m + j * m + c])
                        .sum();
                    assert!((ax - b[k * h * m + i * m + c]).abs() < 1e-9);
                }
            }
        }
        let mut bad = a.clone();
        bad[h * h] = -1.0; // matrix 1 gets a negative first pivot
        assert!(solve_spd_batch(&bad, &b, r, h, m, 1).is_err());
        assert!(solve_spd_batch(&a, &b[1..], r, h, m, 1).is_err());
    }

    #[test]
    fn rejects_bad_sizes_and_positions() {
        let x = vec![0.0; 6];
        assert!(sketch_triangles(&x, &x, 1, 3, 2, &[0; 6], &[1.0; 6], 4, 1).is_ok());
        assert!(sketch_triangles(&x, &x, 2, 3, 2, &[0; 6], &[1.0; 6], 4, 1).is_err());
        assert!(sketch_triangles(&x, &x, 1, 3, 2, &[0; 5], &[1.0; 6], 4, 1).is_err());
        assert!(sketch_triangles(&x, &x, 1, 3, 2, &[4; 6], &[1.0; 6], 4, 1).is_err());
        assert!(sketch_triangles(&x, &x, 1, 3, 2, &[0; 6], &[1.0; 6], 0, 1).is_err());
        assert_eq!(
            sketch_triangles(&[], &[], 0, 3, 2, &[0; 6], &[1.0; 6], 4, 1).unwrap(),
            Vec::<f64>::new()
        );
    }
}
