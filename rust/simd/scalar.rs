//! Scalar reference kernels: the definition every SIMD path must match.

/// Reference for `simd::gram_tn`: one entry at a time, rows in order, f32 accumulation.
pub fn gram_tn(
    a: &[f32],
    b: &[f32],
    rows: usize,
    p: usize,
    q: usize,
    upper: bool,
    out: &mut [f32],
) {
    for i in 0..p {
        for j in 0..q {
            if upper && j < i {
                continue;
            }
            let mut s = 0.0f32;
            for r in 0..rows {
                s += a[r * p + i] * b[r * q + j];
            }
            out[i * q + j] = s;
        }
    }
}

/// Reference dot product: sequential f32 accumulation.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        s += x * y;
    }
    s
}
