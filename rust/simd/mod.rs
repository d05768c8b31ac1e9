//! SIMD kernels with run-time dispatch; `scalar.rs` is the reference every fast path is tested
//! against.
//!
//! Kernels that feed embeddings must give bit-identical results on every machine, so their fast
//! paths only change *how many* lanes run at once, never the order of additions, and never fuse a
//! multiply with an add (Rust does not contract `a * b + c` into an FMA on its own). The portable
//! build targets baseline x86-64 / aarch64; AVX2 and AVX-512 code is selected at run time, NEON
//! (baseline on aarch64) at compile time.

#[cfg(target_arch = "aarch64")]
mod aarch64;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Rows and columns of the similarity micro-kernel's tile.
pub const MR: usize = 6;
pub const NR: usize = 16;

/// Which instruction set the dispatched kernels use on this machine.
pub fn backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx512f() {
            return "avx512f";
        }
        if x86::has_avx2_fma() {
            return "avx2+fma";
        }
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

/// Similarity micro-kernel: `c[i][j] = Σ_k a[k·MR + i] · b[k·NR + j]` for packed, k-major panels
/// `a` (k×MR) and `b` (k×NR); `c` is an MR×NR row-major tile, overwritten (or added to, when
/// `accumulate`: the k dimension can then be processed in cache-sized chunks). Similarities are not
/// embeddings, so the fast path may fuse multiply-adds (results then differ from the scalar
/// reference by float rounding only).
#[inline]
pub fn kernel(k: usize, a: &[f32], b: &[f32], c: &mut [f32; MR * NR], accumulate: bool) {
    assert!(
        a.len() >= k * MR && b.len() >= k * NR,
        "kernel: panels too short"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx512f() {
            // SAFETY: AVX-512F support was just checked; panel sizes were asserted.
            unsafe { x86::kernel_avx512(k, a, b, c, accumulate) };
            return;
        }
        if x86::has_avx2_fma() {
            // SAFETY: AVX2 and FMA support was just checked; panel sizes were asserted.
            unsafe { x86::kernel_avx2(k, a, b, c, accumulate) };
            return;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: NEON is part of every aarch64 target; panel sizes were asserted.
        unsafe { aarch64::kernel_neon(k, a, b, c, accumulate) };
    }
    #[cfg(not(target_arch = "aarch64"))]
    kernel_portable(k, a, b, c, accumulate);
}

/// The micro-kernel in plain Rust (auto-vectorised: SSE2 on x86-64; on aarch64 only tests run it).
#[inline(always)]
#[cfg_attr(all(target_arch = "aarch64", not(test)), allow(dead_code))]
pub(crate) fn kernel_portable(
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32; MR * NR],
    accumulate: bool,
) {
    let mut acc = [[0.0f32; NR]; MR];
    if accumulate {
        for (acc_i, src) in acc.iter_mut().zip(c.chunks_exact(NR)) {
            acc_i.copy_from_slice(src);
        }
    }
    for (arow, brow) in a[..k * MR]
        .chunks_exact(MR)
        .zip(b[..k * NR].chunks_exact(NR))
    {
        let mut bv = [0.0f32; NR];
        bv.copy_from_slice(brow);
        for (acc_i, &x) in acc.iter_mut().zip(arow) {
            for (o, &y) in acc_i.iter_mut().zip(&bv) {
                *o += x * y;
            }
        }
    }
    for (dst, src) in c.chunks_exact_mut(NR).zip(&acc) {
        dst.copy_from_slice(src);
    }
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
        assert!(["avx512f", "avx2+fma", "avx2", "sse2", "neon", "scalar"].contains(&backend()));
    }

    type Kernel = fn(usize, &[f32], &[f32], &mut [f32; MR * NR], bool);

    /// Every micro-kernel this machine can run, by name (the dispatched one among them).
    fn runnable_kernels() -> Vec<(&'static str, Kernel)> {
        let mut out: Vec<(&'static str, Kernel)> =
            vec![("dispatched", kernel), ("portable", kernel_portable)];
        #[cfg(target_arch = "x86_64")]
        {
            if x86::has_avx2_fma() {
                out.push(("avx2+fma", |k, a, b, c, acc| {
                    assert!(a.len() >= k * MR && b.len() >= k * NR);
                    // SAFETY: support was checked before this entry was added; sizes asserted.
                    unsafe { x86::kernel_avx2(k, a, b, c, acc) }
                }));
            }
            if x86::has_avx512f() {
                out.push(("avx512f", |k, a, b, c, acc| {
                    assert!(a.len() >= k * MR && b.len() >= k * NR);
                    // SAFETY: support was checked before this entry was added; sizes asserted.
                    unsafe { x86::kernel_avx512(k, a, b, c, acc) }
                }));
            }
        }
        #[cfg(target_arch = "aarch64")]
        out.push(("neon", |k, a, b, c, acc| {
            assert!(a.len() >= k * MR && b.len() >= k * NR);
            // SAFETY: NEON is baseline on aarch64; sizes asserted.
            unsafe { aarch64::kernel_neon(k, a, b, c, acc) }
        }));
        out
    }

    #[test]
    fn every_runnable_kernel_matches_scalar_dot_products() {
        let kernels = runnable_kernels();
        // The backend that `simd_backend()` reports must be among the kernels tested here.
        let named: Vec<&str> = kernels.iter().map(|(name, _)| *name).collect();
        assert!(
            ["sse2", "avx2", "scalar"].contains(&backend()) || named.contains(&backend()),
            "{} not tested; tested: {named:?}",
            backend()
        );
        for k in [0usize, 1, 2, 3, 15, 16, 17, 255, 256, 257, 1023] {
            let a = random(k * MR, 3 + k as u64);
            let b = random(k * NR, 4 + k as u64);
            let mut want = [0.0f32; MR * NR];
            for i in 0..MR {
                for j in 0..NR {
                    let x: Vec<f32> = (0..k).map(|t| a[t * MR + i]).collect();
                    let y: Vec<f32> = (0..k).map(|t| b[t * NR + j]).collect();
                    want[i * NR + j] = scalar::dot(&x, &y);
                }
            }
            let tol = 1e-5 * (1.0 + k as f32).sqrt();
            for &(name, run) in &kernels {
                // Garbage in the tile must be overwritten when not accumulating.
                let mut whole = [f32::NAN; MR * NR];
                run(k, &a, &b, &mut whole, false);
                // In two chunks of k (odd and even lengths), accumulating.
                let h = k / 2 + usize::from(k % 4 == 3);
                let mut chunked = [f32::NAN; MR * NR];
                run(h, &a, &b, &mut chunked, false);
                run(k - h, &a[h * MR..], &b[h * NR..], &mut chunked, true);
                for (t, &w) in want.iter().enumerate() {
                    let (i, j) = (t / NR, t % NR);
                    assert!(
                        (whole[t] - w).abs() <= tol,
                        "{name} k={k} ({i},{j}): {} vs {w}",
                        whole[t]
                    );
                    assert!(
                        (chunked[t] - w).abs() <= tol,
                        "{name} k={k} ({i},{j}) chunked at {h}: {} vs {w}",
                        chunked[t]
                    );
                }
            }
        }
    }
}
