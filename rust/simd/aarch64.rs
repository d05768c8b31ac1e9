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

// -- featurization ------------------------------------------------------------------------------

use super::scalar::{CLASS_PUNCT, CLASS_WORD};
use crate::hash::FNV_PRIME;

const _: () = assert!(FNV_PRIME == (1 << 40) + 0x1b3);
const FMIX_C1: u64 = 0xff51_afd7_ed55_8ccd;
const FMIX_C2: u64 = 0xc4ce_b9fe_1a85_ec53;

/// `scalar::classify` with NEON, 16 bytes at a time; the last partial block is recomputed as an
/// overlapping full block, or staged through a zero-padded buffer when the input is shorter.
///
/// # Safety
/// `lower` and `class` are at least as long as `src`.
#[target_feature(enable = "neon")]
pub unsafe fn classify_neon(src: &[u8], lower: &mut [u8], class: &mut [u8]) -> bool {
    const W: usize = 16;
    let n = src.len();
    debug_assert!(lower.len() >= n && class.len() >= n);
    if n < W {
        let mut buf = [0u8; W];
        let (mut l, mut c) = ([0u8; W], [0u8; W]);
        buf[..n].copy_from_slice(src);
        // SAFETY: the staging buffers hold W bytes each.
        let ascii = unsafe { classify_neon(&buf, &mut l, &mut c) };
        lower[..n].copy_from_slice(&l[..n]);
        class[..n].copy_from_slice(&c[..n]);
        return ascii;
    }
    let within = |x: uint8x16_t, lo: u8, hi: u8| {
        vandq_u8(vcgeq_u8(x, vdupq_n_u8(lo)), vcleq_u8(x, vdupq_n_u8(hi)))
    };
    let mut neg_any = vdupq_n_u8(0);
    let mut i = 0;
    loop {
        let at = i.min(n - W);
        // SAFETY: at + W <= n and every slice holds at least n bytes.
        unsafe {
            let b = vld1q_u8(src.as_ptr().add(at));
            let upper = within(b, b'A', b'Z');
            let l = vaddq_u8(b, vandq_u8(upper, vdupq_n_u8(0x20)));
            let word = vorrq_u8(within(l, b'a', b'z'), within(b, b'0', b'9'));
            let neg = vcgeq_u8(b, vdupq_n_u8(0x80));
            let sep = vorrq_u8(vcleq_u8(b, vdupq_n_u8(0x20)), vceqq_u8(b, vdupq_n_u8(0x7f)));
            let other = vbicq_u8(vdupq_n_u8(CLASS_PUNCT), vorrq_u8(word, sep));
            let c = vorrq_u8(
                vorrq_u8(vandq_u8(word, vdupq_n_u8(CLASS_WORD)), other),
                vandq_u8(neg, vdupq_n_u8(1)),
            );
            vst1q_u8(lower.as_mut_ptr().add(at), l);
            vst1q_u8(class.as_mut_ptr().add(at), c);
            neg_any = vorrq_u8(neg_any, neg);
        }
        if at + W >= n {
            break;
        }
        i += W;
    }
    vmaxvq_u8(neg_any) == 0
}

/// x · c mod 2⁶⁴ per 64-bit lane from 32×32→64 products (NEON has no 64-bit multiply).
#[inline]
#[target_feature(enable = "neon")]
fn mul64_neon(x: uint64x2_t, c: u64) -> uint64x2_t {
    let lo = vmovn_u64(x);
    let hi = vshrn_n_u64::<32>(x);
    let clo = vdup_n_u32(c as u32);
    let chi = vdup_n_u32((c >> 32) as u32);
    let cross = vaddq_u64(vmull_u32(hi, clo), vmull_u32(lo, chi));
    vaddq_u64(vmull_u32(lo, clo), vshlq_n_u64::<32>(cross))
}

#[inline]
#[target_feature(enable = "neon")]
fn fmix_neon(mut k: uint64x2_t) -> uint64x2_t {
    k = veorq_u64(k, vshrq_n_u64::<33>(k));
    k = mul64_neon(k, FMIX_C1);
    k = veorq_u64(k, vshrq_n_u64::<33>(k));
    k = mul64_neon(k, FMIX_C2);
    veorq_u64(k, vshrq_n_u64::<33>(k))
}

/// `scalar::ngram_windows` with NEON: two registers of 2 window starts each (4 starts per step).
///
/// # Safety
/// `bytes` holds n + `super::WINDOW_SLACK` bytes and each output n + `super::WINDOW_OUT_SLACK`.
#[target_feature(enable = "neon")]
pub unsafe fn ngram_windows_neon(seed: u64, bytes: &[u8], n: usize, out: [&mut [u64]; 3]) {
    const L: usize = 4;
    let p = bytes.as_ptr();
    let [h3, h4, h5] = out;
    let outs = [h3.as_mut_ptr(), h4.as_mut_ptr(), h5.as_mut_ptr()];
    let mut i = 0;
    while i < n {
        let mut a = vdupq_n_u64(seed);
        let mut b = vdupq_n_u64(seed);
        for k in 0..5 {
            // SAFETY: i < n and k <= 4, so the 4 bytes end by n + 7 <= n + WINDOW_SLACK.
            let four = unsafe { p.add(i + k).cast::<u32>().read_unaligned() };
            let four = vreinterpret_u8_u32(vdup_n_u32(four));
            let wide = vmovl_u16(vget_low_u16(vmovl_u8(four))); // bytes 0..4 as u32
            a = veorq_u64(a, vmovl_u32(vget_low_u32(wide)));
            b = veorq_u64(b, vmovl_high_u32(wide));
            a = vaddq_u64(vshlq_n_u64::<40>(a), mul64_neon(a, 0x1b3));
            b = vaddq_u64(vshlq_n_u64::<40>(b), mul64_neon(b, 0x1b3));
            if k >= 2 {
                // SAFETY: i + L <= n + WINDOW_OUT_SLACK.
                unsafe {
                    vst1q_u64(outs[k - 2].add(i), fmix_neon(a));
                    vst1q_u64(outs[k - 2].add(i + 2), fmix_neon(b));
                }
            }
        }
        i += L;
    }
}
