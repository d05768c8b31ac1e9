//! Cosine similarity between rows of two matrices (the basic kernel; a SIMD, blocked version with
//! fused top-k replaces the inner loop later without changing results beyond float rounding).

use crate::error::{ensure, Result};
use crate::threads::for_each_piece;

const ROWS_PER_PIECE: usize = 16;

/// Rows scaled to unit length (norms computed in f64, so huge and tiny values neither overflow nor
/// underflow); zero rows stay zero.
fn unit_rows(x: &[f32], d: usize) -> Vec<f32> {
    let mut out = x.to_vec();
    for row in out.chunks_mut(d) {
        let big = row.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
        if big == 0.0 {
            continue;
        }
        let sq: f64 = row.iter().map(|v| (f64::from(*v) / big).powi(2)).sum();
        let inv = 1.0 / (big * sq.sqrt());
        for v in row.iter_mut() {
            *v = (f64::from(*v) * inv) as f32;
        }
    }
    out
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
    let ua = unit_rows(a, d);
    let ub = unit_rows(b, d);
    for_each_piece(out, ROWS_PER_PIECE * m, n_threads, |piece, rows| {
        for (k, orow) in rows.chunks_mut(m).enumerate() {
            let i = piece * ROWS_PER_PIECE + k;
            let ai = &ua[i * d..(i + 1) * d];
            for (j, o) in orow.iter_mut().enumerate() {
                let bj = &ub[j * d..(j + 1) * d];
                let dot: f32 = ai.iter().zip(bj).map(|(x, y)| x * y).sum();
                *o = dot.clamp(-1.0, 1.0);
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
    fn extreme_magnitudes_neither_overflow_nor_underflow() {
        let mut out = vec![0.0; 1];
        cosine_into(&[1e20, 0.0], &[1e20, 1e20], 2, &mut out, 1).unwrap();
        assert!((out[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        cosine_into(&[3e19, 4e19], &[4e19, 3e19], 2, &mut out, 1).unwrap();
        assert!((out[0] - 0.96).abs() < 1e-6);
        cosine_into(&[1e-25, 0.0], &[1e-25, 0.0], 2, &mut out, 1).unwrap();
        assert_eq!(out[0], 1.0);
        cosine_into(
            &[f32::MAX, f32::MAX],
            &[f32::MAX, -f32::MAX],
            2,
            &mut out,
            1,
        )
        .unwrap();
        assert!(out[0].abs() < 1e-6);
    }

    #[test]
    fn shape_errors() {
        let mut out = vec![0.0; 1];
        assert!(cosine_into(&[1.0, 2.0], &[1.0], 2, &mut out, 1).is_err());
        assert!(cosine_into(&[1.0, 2.0], &[1.0, 2.0], 2, &mut [0.0; 2], 1).is_err());
        assert!(cosine_into(&[], &[], 0, &mut [], 1).is_err());
    }
}
