//! Small dense f64 linear algebra on row-major matrices: exactly what the estimators need.
//!
//! Plain loops in a fixed order: the same inputs give bit-identical outputs on every machine (no
//! runtime-dispatched FMA, no threads).

use crate::error::{CoreError, Result};

/// Cholesky factor L (lower triangular, row-major n×n) of a symmetric positive definite `a`.
pub fn cholesky(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let lj = j * n;
        let mut d = a[lj + j];
        for k in 0..j {
            d -= l[lj + k] * l[lj + k];
        }
        if d.is_nan() || d <= 0.0 {
            return Err(CoreError::Numerical(format!(
                "matrix is not positive definite (pivot {j} = {d:e}); increase `ridge`"
            )));
        }
        let djj = d.sqrt();
        l[lj + j] = djj;
        for i in j + 1..n {
            let li = i * n;
            let mut s = a[li + j];
            for k in 0..j {
                s -= l[li + k] * l[lj + k];
            }
            l[li + j] = s / djj;
        }
    }
    Ok(l)
}

/// Solves (L Lᵀ) X = B for X (n×m, row-major), given the Cholesky factor L; B is overwritten by X.
pub fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64], m: usize) {
    // Forward: L Y = B, row by row (each step is an axpy over the m right-hand sides).
    for i in 0..n {
        let (done, rest) = b.split_at_mut(i * m);
        let row = &mut rest[..m];
        for k in 0..i {
            let f = l[i * n + k];
            if f != 0.0 {
                let yk = &done[k * m..(k + 1) * m];
                for (r, y) in row.iter_mut().zip(yk) {
                    *r -= f * y;
                }
            }
        }
        let inv = 1.0 / l[i * n + i];
        for r in row.iter_mut() {
            *r *= inv;
        }
    }
    // Backward: Lᵀ X = Y.
    for i in (0..n).rev() {
        let (head, tail) = b.split_at_mut((i + 1) * m);
        let row = &mut head[i * m..];
        for k in i + 1..n {
            let f = l[k * n + i];
            if f != 0.0 {
                let xk = &tail[(k - i - 1) * m..(k - i) * m];
                for (r, x) in row.iter_mut().zip(xk) {
                    *r -= f * x;
                }
            }
        }
        let inv = 1.0 / l[i * n + i];
        for r in row.iter_mut() {
            *r *= inv;
        }
    }
}

/// C = A Bᵀ for A (n×k) and B (m×k), row-major; C is n×m.
pub fn matmul_nt(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * m];
    for i in 0..n {
        let ai = &a[i * k..(i + 1) * k];
        for j in 0..m {
            let bj = &b[j * k..(j + 1) * k];
            c[i * m + j] = ai.iter().zip(bj).map(|(x, y)| x * y).sum();
        }
    }
    c
}

/// C = Aᵀ B for A (k×n) and B (k×m), row-major; C is n×m.
pub fn matmul_tn(a: &[f64], b: &[f64], k: usize, n: usize, m: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * m];
    for r in 0..k {
        let ar = &a[r * n..(r + 1) * n];
        let br = &b[r * m..(r + 1) * m];
        for (i, &x) in ar.iter().enumerate() {
            if x != 0.0 {
                let ci = &mut c[i * m..(i + 1) * m];
                for (cv, y) in ci.iter_mut().zip(br) {
                    *cv += x * y;
                }
            }
        }
    }
    c
}

/// Trace of a square n×n matrix.
pub fn trace(a: &[f64], n: usize) -> f64 {
    (0..n).map(|i| a[i * n + i]).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::SplitMix64;

    fn random(n: usize, m: usize, seed: u64) -> Vec<f64> {
        let mut r = SplitMix64::new(seed);
        (0..n * m)
            .map(|_| r.below(2001) as f64 / 1000.0 - 1.0)
            .collect()
    }

    fn spd(n: usize, seed: u64) -> Vec<f64> {
        let x = random(n + 3, n, seed);
        let mut a = matmul_tn(&x, &x, n + 3, n, n);
        for i in 0..n {
            a[i * n + i] += 0.1;
        }
        a
    }

    #[test]
    fn cholesky_reconstructs() {
        for n in [1, 2, 5, 17] {
            let a = spd(n, n as u64);
            let l = cholesky(&a, n).unwrap();
            let back = matmul_nt(&l, &l, n, n, n);
            for (x, y) in a.iter().zip(&back) {
                assert!((x - y).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn solve_matches_definition() {
        let n = 9;
        let m = 4;
        let a = spd(n, 1);
        let b = random(n, m, 2);
        let l = cholesky(&a, n).unwrap();
        let mut x = b.clone();
        cholesky_solve(&l, n, &mut x, m);
        // A X == B
        for i in 0..n {
            for j in 0..m {
                let s: f64 = (0..n).map(|k| a[i * n + k] * x[k * m + j]).sum();
                assert!((s - b[i * m + j]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn not_positive_definite_is_an_error() {
        let a = vec![1.0, 2.0, 2.0, 1.0];
        assert!(matches!(cholesky(&a, 2), Err(CoreError::Numerical(_))));
        let nan = vec![f64::NAN];
        assert!(cholesky(&nan, 1).is_err());
    }

    #[test]
    fn matmuls_agree() {
        let a = random(3, 4, 5);
        let b = random(3, 2, 6);
        let tn = matmul_tn(&a, &b, 3, 4, 2);
        // transpose a to 4x3 and b to 2x3, then A^T B = at * (bt)^T
        let at: Vec<f64> = (0..4)
            .flat_map(|i| (0..3).map(move |r| (i, r)))
            .map(|(i, r)| a[r * 4 + i])
            .collect();
        let bt: Vec<f64> = (0..2)
            .flat_map(|j| (0..3).map(move |r| (j, r)))
            .map(|(j, r)| b[r * 2 + j])
            .collect();
        let nt = matmul_nt(&at, &bt, 4, 3, 2);
        for (x, y) in tn.iter().zip(&nt) {
            assert!((x - y).abs() < 1e-12);
        }
        assert_eq!(trace(&[1.0, 2.0, 3.0, 4.0], 2), 5.0);
    }
}
