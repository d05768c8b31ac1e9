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

/// Byte classes of the featurizer's tokenizer (see `text.rs`).
pub const CLASS_SEP: u8 = 0;
pub const CLASS_WORD: u8 = 1;
pub const CLASS_PUNCT: u8 = 2;
pub const CLASS_NON_ASCII: u8 = 3;

/// Reference for `simd::classify`: ASCII-lowercases `src` into `lower` and writes each byte's class
/// into `class` (separator: ASCII whitespace or control, i.e. ≤ 0x20 or 0x7F; word: [0-9A-Za-z];
/// punctuation: any other ASCII byte; non-ASCII: ≥ 0x80, copied unchanged). Returns true when
/// every byte is ASCII.
pub fn classify(src: &[u8], lower: &mut [u8], class: &mut [u8]) -> bool {
    let mut ascii = true;
    for ((&b, l), c) in src.iter().zip(lower.iter_mut()).zip(class.iter_mut()) {
        *l = b.to_ascii_lowercase();
        *c = if b >= 0x80 {
            ascii = false;
            CLASS_NON_ASCII
        } else if b <= 0x20 || b == 0x7f {
            CLASS_SEP
        } else if b.is_ascii_alphanumeric() {
            CLASS_WORD
        } else {
            CLASS_PUNCT
        };
    }
    ascii
}

/// Reference for `simd::ngram_windows`: for every i < n, `out[k][i]` =
/// `fmix64(fnv1a(seed, bytes[i..i + 3 + k]))`, k = 0, 1, 2 (the 3-, 4- and 5-byte windows).
pub fn ngram_windows(seed: u64, bytes: &[u8], n: usize, out: [&mut [u64]; 3]) {
    use crate::hash::{fmix64, FNV_PRIME};
    let [h3, h4, h5] = out;
    for i in 0..n {
        let mut st = seed;
        for (k, &b) in bytes[i..i + 5].iter().enumerate() {
            st = (st ^ u64::from(b)).wrapping_mul(FNV_PRIME);
            match k {
                2 => h3[i] = fmix64(st),
                3 => h4[i] = fmix64(st),
                4 => h5[i] = fmix64(st),
                _ => {}
            }
        }
    }
}
