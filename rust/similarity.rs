//! Cosine similarity between rows of two matrices (the basic kernel; a SIMD, blocked version with
//! fused top-k replaces the inner loop later without changing results beyond float rounding).

use crate::error::{ensure, Result};
use crate::threads::for_each_piece;

const ROWS_PER_PIECE: usize = 16;

fn inv_norms(x: &[f32], d: usize) -> Vec<f32> {
    x.chunks(d)
        .map(|r| {
            let sq: f64 = r.iter().map(|v| f64::from(*v) * f64::from(*v)).sum();
            if sq > 0.0 {
                (1.0 / sq.sqrt()) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// Cosine similarities S (n×m) between rows of `a` (n×d) and `b` (m×d), written into `out`.
/// A zero row has similarity 0 with everything (cosine is undefined there; 0 keeps NaN out).
pub fn cosine_into(
    a: &[f32],
    b: &[f32],
    d: usize,
    out: &mut [f32],
    n_threads: usize,
) -> Result<()> {
    ensure(d > 0, || {
        "vectors must have at least one dimension".to_string()
    })?;
    ensure(a.len() % d == 0 && b.len() % d == 0, || {
        format!("inputs are not multiples of d={d}")
    })?;
    let (n, m) = (a.len() / d, b.len() / d);
    ensure(out.len() == n * m, || {
        format!("out has {} entries, expected {n}x{m}", out.len())
    })?;
    if m == 0 {
        return Ok(());
    }
    let na = inv_norms(a, d);
    let nb = inv_norms(b, d);
    for_each_piece(out, ROWS_PER_PIECE * m, n_threads, |piece, rows| {
        for (k, orow) in rows.chunks_mut(m).enumerate() {
            let i = piece * ROWS_PER_PIECE + k;
            let ai = &a[i * d..(i + 1) * d];
            for (j, o) in orow.iter_mut().enumerate() {
                let bj = &b[j * d..(j + 1) * d];
                let dot: f32 = ai.iter().zip(bj).map(|(x, y)| x * y).sum();
                *o = (dot * na[i] * nb[j]).clamp(-1.0, 1.0);
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_basics() {
        let a = [1.0, 0.0, 0.0, 2.0, 0.0, 0.0];
        let b = [3.0, 0.0, 1.0, 1.0];
        let mut out = vec![0.0; 6];
        cosine_into(&a, &b, 2, &mut out, 2).unwrap();
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert_eq!(out[0], 1.0);
        assert!((out[1] - s).abs() < 1e-6);
        assert_eq!(out[2], 0.0);
        assert!((out[3] - s).abs() < 1e-6);
        assert_eq!(&out[4..], &[0.0, 0.0]); // a zero row is similar to nothing
    }

    #[test]
    fn shape_errors() {
        let mut out = vec![0.0; 1];
        assert!(cosine_into(&[1.0, 2.0], &[1.0], 2, &mut out, 1).is_err());
        assert!(cosine_into(&[1.0, 2.0], &[1.0, 2.0], 2, &mut [0.0; 2], 1).is_err());
        assert!(cosine_into(&[], &[], 0, &mut [], 1).is_err());
    }
}
