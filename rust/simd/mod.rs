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

/// Bytes `ngram_windows` may read past `n` (the caller pads its buffer with them).
pub const WINDOW_SLACK: usize = 16;
/// Values each output of `ngram_windows` must hold past `n` (fast paths store whole vectors).
pub const WINDOW_OUT_SLACK: usize = 8;

/// ASCII-lowercases `src` into `lower` and classifies each byte into `class` (see
/// `scalar::classify`, the reference); returns true when every byte is ASCII.
pub fn classify(src: &[u8], lower: &mut [u8], class: &mut [u8]) -> bool {
    let n = src.len();
    let (lower, class) = (&mut lower[..n], &mut class[..n]);
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx512bw() {
            // SAFETY: AVX-512F/BW support was just checked; the slices have length n.
            return unsafe { x86::classify_avx512(src, lower, class) };
        }
        if x86::has_avx2() {
            // SAFETY: AVX2 support was just checked; the slices have length n.
            return unsafe { x86::classify_avx2(src, lower, class) };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: NEON is part of every aarch64 target; the slices have length n.
        return unsafe { aarch64::classify_neon(src, lower, class) };
    }
    #[allow(unreachable_code)]
    scalar::classify(src, lower, class)
}

/// Hashes of every 3-, 4- and 5-byte window of `bytes[..n]` (see `scalar::ngram_windows`, the
/// reference): `out[k][i]` = `fmix64(fnv1a(seed, bytes[i..i + 3 + k]))`. Windows that run past `n`
/// read the caller's padding. `bytes` must hold `n + WINDOW_SLACK` bytes and each output
/// `n + WINDOW_OUT_SLACK` values (values past `n` are unspecified).
pub fn ngram_windows(seed: u64, bytes: &[u8], n: usize, out: [&mut [u64]; 3]) {
    assert!(
        bytes.len() >= n + WINDOW_SLACK && out.iter().all(|o| o.len() >= n + WINDOW_OUT_SLACK),
        "ngram_windows: buffers too short"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx512dq() {
            // SAFETY: AVX-512F/DQ support was just checked; sizes were asserted.
            unsafe { x86::ngram_windows_avx512(seed, bytes, n, out) };
            return;
        }
        if x86::has_avx2() {
            // SAFETY: AVX2 support was just checked; sizes were asserted.
            unsafe { x86::ngram_windows_avx2(seed, bytes, n, out) };
            return;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: NEON is part of every aarch64 target; sizes were asserted.
        unsafe { aarch64::ngram_windows_neon(seed, bytes, n, out) };
        return;
    }
    #[allow(unreachable_code)]
    scalar::ngram_windows(seed, bytes, n, out)
}

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

    type Classify = fn(&[u8], &mut [u8], &mut [u8]) -> bool;
    type Windows = fn(u64, &[u8], usize, [&mut [u64]; 3]);

    /// Every featurization kernel this machine can run, by name (the dispatched ones among them).
    fn runnable_text_kernels() -> Vec<(&'static str, Classify, Windows)> {
        let mut out: Vec<(&'static str, Classify, Windows)> = vec![
            ("dispatched", classify, ngram_windows),
            ("scalar", scalar::classify, scalar::ngram_windows),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            if x86::has_avx2() {
                out.push((
                    "avx2",
                    // SAFETY: support was checked before this entry was added; the tests pass
                    // slices of the sizes the kernels require.
                    |s, l, c| unsafe { x86::classify_avx2(s, l, c) },
                    |seed, b, n, o| unsafe { x86::ngram_windows_avx2(seed, b, n, o) },
                ));
            }
            if x86::has_avx512bw() && x86::has_avx512dq() {
                out.push((
                    "avx512",
                    // SAFETY: as above.
                    |s, l, c| unsafe { x86::classify_avx512(s, l, c) },
                    |seed, b, n, o| unsafe { x86::ngram_windows_avx512(seed, b, n, o) },
                ));
            }
        }
        #[cfg(target_arch = "aarch64")]
        out.push((
            "neon",
            // SAFETY: NEON is baseline on aarch64; the tests pass slices of the required sizes.
            |s, l, c| unsafe { aarch64::classify_neon(s, l, c) },
            |seed, b, n, o| unsafe { aarch64::ngram_windows_neon(seed, b, n, o) },
        ));
        out
    }

    /// Texts of many lengths (0, 1, around every vector width), ASCII and not.
    fn sample_bytes() -> Vec<Vec<u8>> {
        let mut r = SplitMix64::new(11);
        let alphabet: Vec<u8> = (0u8..=255).collect();
        let mut out = Vec::new();
        for len in (0..=70).chain([127, 128, 129, 200, 1000]) {
            // ASCII only, mostly letters and spaces
            let ascii: Vec<u8> = (0..len)
                .map(|_| b" aZ9,.\t\x7f\x00Hello World!~@["[r.below(24) as usize])
                .collect();
            out.push(ascii);
            // any byte (non-ASCII included): classification is per byte
            let any: Vec<u8> = (0..len).map(|_| alphabet[r.below(256) as usize]).collect();
            out.push(any);
            // real UTF-8 with a non-ASCII character at a random place
            let mut s: Vec<u8> = (0..len).map(|_| b"abc XYZ"[r.below(7) as usize]).collect();
            if len > 0 {
                let at = r.below(len as u64) as usize;
                s.truncate(at);
                s.extend_from_slice("é日🙂".as_bytes());
            }
            out.push(s);
        }
        out
    }

    #[test]
    fn every_featurization_kernel_matches_the_scalar_reference() {
        let kernels = runnable_text_kernels();
        let named: Vec<&str> = kernels.iter().map(|k| k.0).collect();
        #[cfg(target_arch = "x86_64")]
        if x86::has_avx2() {
            assert!(named.contains(&"avx2"));
        }
        #[cfg(target_arch = "aarch64")]
        assert!(named.contains(&"neon"));
        for text in sample_bytes() {
            let n = text.len();
            let (mut l0, mut c0) = (vec![0u8; n], vec![0u8; n]);
            let ascii0 = scalar::classify(&text, &mut l0, &mut c0);
            assert_eq!(ascii0, text.is_ascii());
            let mut padded = text.clone();
            padded.resize(n + WINDOW_SLACK, 0);
            let mut want = vec![vec![0u64; n + WINDOW_OUT_SLACK]; 3];
            {
                let [a, b, c] = &mut want[..] else {
                    unreachable!()
                };
                scalar::ngram_windows(7, &padded, n, [a, b, c]);
            }
            for &(name, cls, win) in &kernels {
                let (mut l, mut c) = (vec![0xAAu8; n], vec![0xAAu8; n]);
                assert_eq!(cls(&text, &mut l, &mut c), ascii0, "{name} len={n}");
                assert_eq!(l, l0, "{name} lowercase len={n}");
                assert_eq!(c, c0, "{name} classes len={n}");
                let mut got = vec![vec![0u64; n + WINDOW_OUT_SLACK]; 3];
                {
                    let [a, b, c] = &mut got[..] else {
                        unreachable!()
                    };
                    win(7, &padded, n, [a, b, c]);
                }
                for k in 0..3 {
                    assert_eq!(got[k][..n], want[k][..n], "{name} windows k={k} len={n}");
                }
            }
        }
        // the reference itself: the hash of each window is hash64 with a seeded prefix
        let text = b"hello world, x";
        let mut padded = text.to_vec();
        padded.resize(text.len() + WINDOW_SLACK, 0);
        let mut o = vec![vec![0u64; text.len() + WINDOW_OUT_SLACK]; 3];
        let [a, b, c] = &mut o[..] else {
            unreachable!()
        };
        let seed = crate::hash::fnv1a_extend(crate::hash::FNV_OFFSET, &[0, 3]);
        scalar::ngram_windows(seed, &padded, text.len(), [a, b, c]);
        assert_eq!(a[1], crate::hash::hash64(&[0, 3, b'e', b'l', b'l']));
        assert_eq!(
            c[6],
            crate::hash::hash64(&[0, 3, b'w', b'o', b'r', b'l', b'd'])
        );
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
