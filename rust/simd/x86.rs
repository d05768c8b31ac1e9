//! x86-64 fast paths, compiled for AVX2 and chosen at run time.

use std::sync::OnceLock;

pub fn has_avx2() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| std::arch::is_x86_feature_detected!("avx2"))
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
