//! x86-64 fast paths, chosen at run time.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::{MR, NR};

pub fn has_avx2() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
}

pub fn has_avx2_fma() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| has_avx2() && std::arch::is_x86_feature_detected!("fma"))
}

/// `super::gram_tiled` compiled with AVX2 enabled (same operations, wider lanes).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub unsafe fn gram_tn_avx2(
    a: &[f32],
    b: &[f32],
    rows: usize,
    p: usize,
    q: usize,
    upper: bool,
    out: &mut [f32],
) {
    super::gram_tiled(a, b, rows, p, q, upper, out);
}

/// The 6×16 micro-kernel: `c[i][j] = Σ_k a[k][i] · b[k][j]` over packed panels (`a`: k×6, `b`:
/// k×16, both k-major), with 12 AVX2 accumulators and fused multiply-adds; `c` is a 6×16 row-major
/// tile, overwritten, or added to when `accumulate`.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a` holds at least `k*MR` and `b` at least `k*NR` floats.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn kernel_avx2(
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32; MR * NR],
    accumulate: bool,
) {
    debug_assert!(a.len() >= k * MR && b.len() >= k * NR);
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    if accumulate {
        for (i, acc_i) in acc.iter_mut().enumerate() {
            acc_i[0] = _mm256_loadu_ps(c.as_ptr().add(i * NR));
            acc_i[1] = _mm256_loadu_ps(c.as_ptr().add(i * NR + 8));
        }
    }
    let pa = a.as_ptr();
    let pb = b.as_ptr();
    for kk in 0..k {
        // SAFETY: kk < k and the panels hold k rows (checked above in debug builds; guaranteed by
        // the packing code that sizes them).
        let b0 = _mm256_loadu_ps(pb.add(kk * NR));
        let b1 = _mm256_loadu_ps(pb.add(kk * NR + 8));
        let arow = pa.add(kk * MR);
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let x = _mm256_broadcast_ss(&*arow.add(i));
            acc_i[0] = _mm256_fmadd_ps(x, b0, acc_i[0]);
            acc_i[1] = _mm256_fmadd_ps(x, b1, acc_i[1]);
        }
    }
    let pc = c.as_mut_ptr();
    for (i, acc_i) in acc.iter().enumerate() {
        _mm256_storeu_ps(pc.add(i * NR), acc_i[0]);
        _mm256_storeu_ps(pc.add(i * NR + 8), acc_i[1]);
    }
}

pub fn has_avx512f() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
}

/// The 6×16 micro-kernel with AVX-512F: one 16-lane register per tile row. Six accumulators
/// alone cannot hide the FMA latency, so even and odd k use separate accumulator sets (12 chains)
/// that are added at the end; `c` is a 6×16 row-major tile, overwritten, or added to when
/// `accumulate`.
///
/// # Safety
/// The CPU must support AVX-512F; `a` holds at least `k*MR` and `b` at least `k*NR` floats.
#[target_feature(enable = "avx512f")]
pub unsafe fn kernel_avx512(
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32; MR * NR],
    accumulate: bool,
) {
    debug_assert!(a.len() >= k * MR && b.len() >= k * NR);
    let mut even = [_mm512_setzero_ps(); MR];
    let mut odd = [_mm512_setzero_ps(); MR];
    if accumulate {
        for (i, acc) in even.iter_mut().enumerate() {
            *acc = _mm512_loadu_ps(c.as_ptr().add(i * NR));
        }
    }
    let pa = a.as_ptr();
    let pb = b.as_ptr();
    let mut kk = 0;
    while kk + 2 <= k {
        // SAFETY: kk + 1 < k and the panels hold k rows.
        let b0 = _mm512_loadu_ps(pb.add(kk * NR));
        let b1 = _mm512_loadu_ps(pb.add((kk + 1) * NR));
        let a0 = pa.add(kk * MR);
        let a1 = pa.add((kk + 1) * MR);
        for i in 0..MR {
            even[i] = _mm512_fmadd_ps(_mm512_set1_ps(*a0.add(i)), b0, even[i]);
            odd[i] = _mm512_fmadd_ps(_mm512_set1_ps(*a1.add(i)), b1, odd[i]);
        }
        kk += 2;
    }
    if kk < k {
        let b0 = _mm512_loadu_ps(pb.add(kk * NR));
        let a0 = pa.add(kk * MR);
        for (i, acc) in even.iter_mut().enumerate() {
            *acc = _mm512_fmadd_ps(_mm512_set1_ps(*a0.add(i)), b0, *acc);
        }
    }
    let pc = c.as_mut_ptr();
    for (i, (e, o)) in even.iter().zip(&odd).enumerate() {
        _mm512_storeu_ps(pc.add(i * NR), _mm512_add_ps(*e, *o));
    }
}
