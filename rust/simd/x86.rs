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

pub fn has_avx512bw() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| has_avx512f() && std::arch::is_x86_feature_detected!("avx512bw"))
}

pub fn has_avx512dq() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| has_avx512f() && std::arch::is_x86_feature_detected!("avx512dq"))
}

// -- featurization ------------------------------------------------------------------------------

use super::scalar::{CLASS_PUNCT, CLASS_WORD};
use crate::hash::FNV_PRIME;

const _: () = assert!(FNV_PRIME == (1 << 40) + 0x1b3);
const FMIX_C1: u64 = 0xff51_afd7_ed55_8ccd;
const FMIX_C2: u64 = 0xc4ce_b9fe_1a85_ec53;

/// 32 bytes: (lowercased, class, non-ASCII mask) as in `scalar::classify`.
#[inline]
#[target_feature(enable = "avx2")]
fn classify32(b: __m256i) -> (__m256i, __m256i, __m256i) {
    let set = |v: u8| _mm256_set1_epi8(v as i8);
    // Signed compares: bytes ≥ 0x80 are negative, so they fall outside every ASCII range below.
    let within = |x: __m256i, lo: u8, hi: u8| {
        _mm256_and_si256(
            _mm256_cmpgt_epi8(x, set(lo - 1)),
            _mm256_cmpgt_epi8(set(hi + 1), x),
        )
    };
    let upper = within(b, b'A', b'Z');
    let lower = _mm256_add_epi8(b, _mm256_and_si256(upper, set(0x20)));
    let word = _mm256_or_si256(within(lower, b'a', b'z'), within(b, b'0', b'9'));
    let neg = _mm256_cmpgt_epi8(_mm256_setzero_si256(), b);
    let sep = _mm256_or_si256(
        _mm256_andnot_si256(neg, _mm256_cmpgt_epi8(set(0x21), b)),
        _mm256_cmpeq_epi8(b, set(0x7f)),
    );
    let other = _mm256_andnot_si256(_mm256_or_si256(word, sep), set(CLASS_PUNCT));
    let class = _mm256_or_si256(
        _mm256_or_si256(_mm256_and_si256(word, set(CLASS_WORD)), other),
        _mm256_and_si256(neg, set(1)),
    );
    (lower, class, neg)
}

/// `scalar::classify` with AVX2, 32 bytes at a time; the last (partial) block is recomputed as an
/// overlapping full block, or staged through a zero-padded buffer when the input is shorter.
///
/// # Safety
/// The CPU must support AVX2; `lower` and `class` are at least as long as `src`.
#[target_feature(enable = "avx2")]
pub unsafe fn classify_avx2(src: &[u8], lower: &mut [u8], class: &mut [u8]) -> bool {
    const W: usize = 32;
    let n = src.len();
    debug_assert!(lower.len() >= n && class.len() >= n);
    if n < W {
        let mut buf = [0u8; W];
        let (mut l, mut c) = ([0u8; W], [0u8; W]);
        buf[..n].copy_from_slice(src);
        let ascii = classify_avx2(&buf, &mut l, &mut c);
        lower[..n].copy_from_slice(&l[..n]);
        class[..n].copy_from_slice(&c[..n]);
        return ascii;
    }
    let mut neg_any = _mm256_setzero_si256();
    let mut i = 0;
    loop {
        let at = i.min(n - W);
        // SAFETY: at + W <= n and every slice holds at least n bytes.
        unsafe {
            let b = _mm256_loadu_si256(src.as_ptr().add(at).cast());
            let (l, c, neg) = classify32(b);
            _mm256_storeu_si256(lower.as_mut_ptr().add(at).cast(), l);
            _mm256_storeu_si256(class.as_mut_ptr().add(at).cast(), c);
            neg_any = _mm256_or_si256(neg_any, neg);
        }
        if at + W >= n {
            break;
        }
        i += W;
    }
    _mm256_movemask_epi8(neg_any) == 0
}

/// `scalar::classify` with AVX-512BW, 64 bytes at a time (masked loads and stores for the tail).
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512BW; `lower` and `class` are at least as long as `src`.
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn classify_avx512(src: &[u8], lower: &mut [u8], class: &mut [u8]) -> bool {
    const W: usize = 64;
    let n = src.len();
    debug_assert!(lower.len() >= n && class.len() >= n);
    let set = |v: u8| _mm512_set1_epi8(v as i8);
    let mut neg_any: __mmask64 = 0;
    let mut i = 0;
    while i < n {
        let m: __mmask64 = if n - i >= W {
            !0
        } else {
            (1u64 << (n - i)) - 1
        };
        // SAFETY: the mask covers only bytes i..n, inside every slice.
        unsafe {
            let b = _mm512_maskz_loadu_epi8(m, src.as_ptr().add(i).cast());
            let within = |x: __m512i, lo: u8, hi: u8| {
                _mm512_cmpge_epu8_mask(x, set(lo)) & _mm512_cmple_epu8_mask(x, set(hi))
            };
            let upper = within(b, b'A', b'Z');
            let l = _mm512_mask_add_epi8(b, upper, b, set(0x20));
            let word = within(l, b'a', b'z') | within(b, b'0', b'9');
            let neg = _mm512_movepi8_mask(b);
            let sep = _mm512_cmple_epu8_mask(b, set(0x20)) | _mm512_cmpeq_epi8_mask(b, set(0x7f));
            let other = !(word | sep);
            let c = _mm512_or_si512(
                _mm512_or_si512(
                    _mm512_maskz_mov_epi8(word, set(CLASS_WORD)),
                    _mm512_maskz_mov_epi8(other, set(CLASS_PUNCT)),
                ),
                _mm512_maskz_mov_epi8(neg, set(1)),
            );
            _mm512_mask_storeu_epi8(lower.as_mut_ptr().add(i).cast(), m, l);
            _mm512_mask_storeu_epi8(class.as_mut_ptr().add(i).cast(), m, c);
            neg_any |= neg & m;
        }
        i += W;
    }
    neg_any == 0
}

/// x · c mod 2⁶⁴ per 64-bit lane from 32×32→64 products (AVX2 has no 64-bit multiply).
#[inline]
#[target_feature(enable = "avx2")]
fn mul64_avx2(x: __m256i, c: u64) -> __m256i {
    let lo = _mm256_set1_epi64x((c & 0xffff_ffff) as i64);
    let hi = _mm256_set1_epi64x((c >> 32) as i64);
    let cross = _mm256_add_epi64(
        _mm256_mul_epu32(x, hi),
        _mm256_mul_epu32(_mm256_srli_epi64::<32>(x), lo),
    );
    _mm256_add_epi64(_mm256_mul_epu32(x, lo), _mm256_slli_epi64::<32>(cross))
}

#[inline]
#[target_feature(enable = "avx2")]
fn fmix_avx2(mut k: __m256i) -> __m256i {
    k = _mm256_xor_si256(k, _mm256_srli_epi64::<33>(k));
    k = mul64_avx2(k, FMIX_C1);
    k = _mm256_xor_si256(k, _mm256_srli_epi64::<33>(k));
    k = mul64_avx2(k, FMIX_C2);
    _mm256_xor_si256(k, _mm256_srli_epi64::<33>(k))
}

/// `scalar::ngram_windows` with AVX2: 4 window starts per vector. The FNV prime is 2⁴⁰ + 0x1b3, so
/// x · prime = (x << 40) + x · 0x1b3, and 0x1b3 fits in 32 bits.
///
/// # Safety
/// The CPU must support AVX2; `bytes` holds n + `super::WINDOW_SLACK` bytes and each output
/// n + `super::WINDOW_OUT_SLACK` values.
#[target_feature(enable = "avx2")]
pub unsafe fn ngram_windows_avx2(seed: u64, bytes: &[u8], n: usize, out: [&mut [u64]; 3]) {
    const L: usize = 4;
    let p = bytes.as_ptr();
    let small = _mm256_set1_epi64x(0x1b3);
    let mut i = 0;
    while i < n {
        let mut st = _mm256_set1_epi64x(seed as i64);
        for k in 0..5 {
            // SAFETY: i < n and k <= 4, so the 4 bytes end by n + 7 <= n + WINDOW_SLACK.
            let four = unsafe { p.add(i + k).cast::<i32>().read_unaligned() };
            let b = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(four));
            st = _mm256_xor_si256(st, b);
            let x_small = _mm256_add_epi64(
                _mm256_mul_epu32(st, small),
                _mm256_slli_epi64::<32>(_mm256_mul_epu32(_mm256_srli_epi64::<32>(st), small)),
            );
            st = _mm256_add_epi64(_mm256_slli_epi64::<40>(st), x_small);
            if k >= 2 {
                // SAFETY: i + L <= n + WINDOW_OUT_SLACK.
                unsafe {
                    _mm256_storeu_si256(out[k - 2].as_mut_ptr().add(i).cast(), fmix_avx2(st))
                };
            }
        }
        i += L;
    }
}

#[inline]
#[target_feature(enable = "avx512f,avx512dq")]
fn fmix_avx512(mut k: __m512i) -> __m512i {
    k = _mm512_xor_si512(k, _mm512_srli_epi64::<33>(k));
    k = _mm512_mullo_epi64(k, _mm512_set1_epi64(FMIX_C1 as i64));
    k = _mm512_xor_si512(k, _mm512_srli_epi64::<33>(k));
    k = _mm512_mullo_epi64(k, _mm512_set1_epi64(FMIX_C2 as i64));
    _mm512_xor_si512(k, _mm512_srli_epi64::<33>(k))
}

/// `scalar::ngram_windows` with AVX-512 (F + DQ for the 64-bit multiply): 8 window starts per vector.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512DQ; `bytes` holds n + `super::WINDOW_SLACK` bytes and
/// each output n + `super::WINDOW_OUT_SLACK` values.
#[target_feature(enable = "avx512f,avx512dq")]
pub unsafe fn ngram_windows_avx512(seed: u64, bytes: &[u8], n: usize, out: [&mut [u64]; 3]) {
    const L: usize = 8;
    let p = bytes.as_ptr();
    let small = _mm512_set1_epi64(0x1b3);
    let mut i = 0;
    while i < n {
        let mut st = _mm512_set1_epi64(seed as i64);
        for k in 0..5 {
            // SAFETY: i < n and k <= 4, so the 8 bytes end by n + 11 <= n + WINDOW_SLACK.
            let eight = unsafe { _mm_loadl_epi64(p.add(i + k).cast()) };
            st = _mm512_xor_si512(st, _mm512_cvtepu8_epi64(eight));
            st = _mm512_add_epi64(_mm512_slli_epi64::<40>(st), _mm512_mullo_epi64(st, small));
            if k >= 2 {
                // SAFETY: i + L <= n + WINDOW_OUT_SLACK.
                unsafe {
                    _mm512_storeu_si512(out[k - 2].as_mut_ptr().add(i).cast(), fmix_avx512(st))
                };
            }
        }
        i += L;
    }
}
