//! aarch64 fast paths. Advanced SIMD (NEON) is part of the aarch64 baseline (every
//! `aarch64-*` Rust target enables it), so the kernel is chosen at compile time.

use core::arch::aarch64::*;

use super::{MR, NR};

// The kernel below spells out 6 rows (a quad and a pair of A) and 4 quads of B.
const _: () = assert!(MR == 6 && NR == 16);

/// The 6×16 micro-kernel: `c[i][j] = Σ_k a[k][i] · b[k][j]` over packed panels (`a`: k×6, `b`:
/// k×16, both k-major), with 24 NEON accumulators (6 rows × 4 quads) and fused multiply-adds by
/// lane, so a row of A is loaded once (a quad and a pair) instead of broadcast element by element;
/// `c` is a 6×16 row-major tile, overwritten, or added to when `accumulate`.
///
/// # Safety
/// `a` holds at least `k*MR` and `b` at least `k*NR` floats.
#[target_feature(enable = "neon")]
pub unsafe fn kernel_neon(
    k: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32; MR * NR],
    accumulate: bool,
) {
    debug_assert!(a.len() >= k * MR && b.len() >= k * NR);
    let pc = c.as_mut_ptr();
    let mut acc = [[vdupq_n_f32(0.0); 4]; MR];
    if accumulate {
        for (i, acc_i) in acc.iter_mut().enumerate() {
            for (q, v) in acc_i.iter_mut().enumerate() {
                // SAFETY: i < MR and q < 4, so the 4 floats lie inside the MR×NR tile.
                *v = unsafe { vld1q_f32(pc.add(i * NR + 4 * q)) };
            }
        }
    }
    let pa = a.as_ptr();
    let pb = b.as_ptr();
    for kk in 0..k {
        // SAFETY: kk < k and the caller guarantees k rows in each panel.
        let (bq, a03, a45) = unsafe {
            let brow = pb.add(kk * NR);
            let arow = pa.add(kk * MR);
            (
                [
                    vld1q_f32(brow),
                    vld1q_f32(brow.add(4)),
                    vld1q_f32(brow.add(8)),
                    vld1q_f32(brow.add(12)),
                ],
                vld1q_f32(arow),       // a[k][0..4]
                vld1_f32(arow.add(4)), // a[k][4..6]
            )
        };
        for (q, &bv) in bq.iter().enumerate() {
            acc[0][q] = vfmaq_laneq_f32::<0>(acc[0][q], bv, a03);
            acc[1][q] = vfmaq_laneq_f32::<1>(acc[1][q], bv, a03);
            acc[2][q] = vfmaq_laneq_f32::<2>(acc[2][q], bv, a03);
            acc[3][q] = vfmaq_laneq_f32::<3>(acc[3][q], bv, a03);
            acc[4][q] = vfmaq_lane_f32::<0>(acc[4][q], bv, a45);
            acc[5][q] = vfmaq_lane_f32::<1>(acc[5][q], bv, a45);
        }
    }
    for (i, acc_i) in acc.iter().enumerate() {
        for (q, &v) in acc_i.iter().enumerate() {
            // SAFETY: as for the loads above.
            unsafe { vst1q_f32(pc.add(i * NR + 4 * q), v) };
        }
    }
}
