//! SIMD kernels with run-time dispatch; `scalar.rs` is the reference every fast path is tested
//! against.
//!
//! Kernels that feed embeddings must give bit-identical results on every machine, so their fast
//! paths only change *how many* lanes run at once, never the order of additions, and never fuse a
//! multiply with an add (Rust does not contract `a * b + c` into an FMA on its own). The portable
//! build targets baseline x86-64 / aarch64; AVX2 code is selected at run time.

pub mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Which instruction set the dispatched kernels use on this machine.
pub fn backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx2() {
            return "avx2";
        }
        "sse2"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "neon"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "scalar"
    }
}

/// `out[i*q + j] = Σ_r a[r*p + i] · b[r*q + j]` (Aᵀ B over `rows` rows), summed in f32 in row order.
/// With `upper`, only entries with j ≥ i are written (A = B for a Gram matrix); others are left as is.
pub fn gram_tn(
    a: &[f32],
    b: &[f32],
    rows: usize,
    p: usize,
    q: usize,
    upper: bool,
    out: &mut [f32],
) {
    assert!(
        a.len() >= rows * p && b.len() >= rows * q && out.len() >= p * q,
        "gram_tn: bad sizes"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx2() {
            // SAFETY: AVX2 support was just checked.
            unsafe { x86::gram_tn_avx2(a, b, rows, p, q, upper, out) };
            return;
        }
    }
    gram_tiled(a, b, rows, p, q, upper, out);
}

const TILE_I: usize = 6;
const TILE_J: usize = 16;

/// Copies columns `c0..c0+w` of the row-major `rows×cols` matrix `m` into `dst` as a `rows×w`
/// panel (zero-padded past `cols`), so that the kernel reads it sequentially.
#[inline(always)]
fn pack(m: &[f32], rows: usize, cols: usize, c0: usize, w: usize, dst: &mut Vec<f32>) {
    dst.clear();
    dst.resize(rows * w, 0.0);
    let n = w.min(cols - c0);
    for r in 0..rows {
        dst[r * w..r * w + n].copy_from_slice(&m[r * cols + c0..r * cols + c0 + n]);
    }
}

/// Register-blocked Aᵀ B: a 6×16 block of accumulators stays in registers while packed panels of
/// A and B stream by. Per entry it performs exactly the scalar reference's operations in the same
/// order (padding only feeds entries that are never written).
#[inline(always)]
pub(crate) fn gram_tiled(
    a: &[f32],
    b: &[f32],
    rows: usize,
    p: usize,
    q: usize,
    upper: bool,
    out: &mut [f32],
) {
    let mut bpanel = Vec::new();
    let mut apanels: Vec<Vec<f32>> = (0..p.div_ceil(TILE_I)).map(|_| Vec::new()).collect();
    for (ib, panel) in apanels.iter_mut().enumerate() {
        pack(a, rows, p, ib * TILE_I, TILE_I, panel);
    }
    let mut j0 = 0;
    while j0 < q {
        pack(b, rows, q, j0, TILE_J, &mut bpanel);
        for (ib, apanel) in apanels.iter().enumerate() {
            let i0 = ib * TILE_I;
            if upper && i0 >= j0 + TILE_J {
                break; // the whole block lies below the diagonal
            }
            let mut acc = [[0.0f32; TILE_J]; TILE_I];
            for (arow, brow) in apanel.chunks_exact(TILE_I).zip(bpanel.chunks_exact(TILE_J)) {
                let mut bv = [0.0f32; TILE_J];
                bv.copy_from_slice(brow);
                for (acc_i, &x) in acc.iter_mut().zip(arow) {
                    for (o, &y) in acc_i.iter_mut().zip(&bv) {
                        *o += x * y;
                    }
                }
            }
            for (ii, acc_i) in acc.iter().enumerate() {
                let i = i0 + ii;
                if i >= p {
                    break;
                }
                for (jj, &v) in acc_i.iter().enumerate() {
                    let j = j0 + jj;
                    if j < q && (!upper || j >= i) {
                        out[i * q + j] = v;
                    }
                }
            }
        }
        j0 += TILE_J;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::SplitMix64;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut r = SplitMix64::new(seed);
        (0..n)
            .map(|_| r.below(20_001) as f32 / 10_000.0 - 1.0)
            .collect()
    }

    #[test]
    fn dispatched_gram_is_bit_identical_to_the_scalar_reference() {
        for &(rows, p, q) in &[
            (0, 3, 5),
            (1, 1, 1),
            (7, 4, 16),
            (33, 15, 17),
            (64, 16, 33),
            (100, 37, 1023),
            (5, 64, 2),
        ] {
            let a = random(rows * p, 1);
            let b = random(rows * q, 2);
            for upper in [false, true] {
                if upper && p != q {
                    // a Gram matrix is square
                    let mut fast = vec![-9.0f32; p * p];
                    let mut slow = vec![-9.0f32; p * p];
                    gram_tn(&a, &a, rows, p, p, true, &mut fast);
                    scalar::gram_tn(&a, &a, rows, p, p, true, &mut slow);
                    assert_eq!(fast, slow, "rows={rows} p={p} upper");
                    continue;
                }
                let mut fast = vec![-9.0f32; p * q];
                let mut slow = vec![-9.0f32; p * q];
                let bb = if upper { &a } else { &b };
                gram_tn(&a, bb, rows, p, q, upper, &mut fast);
                scalar::gram_tn(&a, bb, rows, p, q, upper, &mut slow);
                assert_eq!(fast, slow, "rows={rows} p={p} q={q} upper={upper}");
                let mut tiled = vec![-9.0f32; p * q];
                gram_tiled(&a, bb, rows, p, q, upper, &mut tiled);
                assert_eq!(tiled, slow);
            }
        }
        assert!(["avx2", "sse2", "neon", "scalar"].contains(&backend()));
    }
}
