//! Seeded random maps that are generated on the fly, never stored.
//!
//! * The frozen encoder (`project_row`): a sparse random projection from the 2^b hashed buckets to
//!   `features` dims. Bucket j's column has `PROJECTION_NNZ` entries of ±1/sqrt(PROJECTION_NNZ) at
//!   seeded positions (see `Projection`); the output row is L2-normalised. This is the surrogate's
//!   "base model" f(x).
//! * The read-out (`readout`): maps an estimator's matrix (flattened) to `dim` numbers. When the
//!   matrix has at most `dim` entries they are scattered with seeded signs into distinct seeded
//!   positions (an exact isometry). Otherwise a count sketch: entry i goes to one seeded bucket with a
//!   seeded sign, which preserves inner products in expectation with error ~ 1/sqrt(dim) and needs no
//!   stored matrix. The result is L2-normalised float32 (all zeros when the input is all zeros).

use crate::hash::{derive, fmix64, SplitMix64};
use crate::text::SparseRow;

/// Non-zeros per projection column.
pub const PROJECTION_NNZ: usize = 8;
const DOMAIN_PROJECTION: u64 = 1;
const DOMAIN_READOUT: u64 = 2;
const DOMAIN_SCATTER: u64 = 3;

/// Largest `features` the encoder supports (positions are drawn from 16-bit lanes).
pub const MAX_FEATURES: usize = 1 << 16;

/// The frozen encoder's projection for one seed: column j has `PROJECTION_NNZ` entries ±s at
/// positions given by 16-bit lanes of `fmix64(key ^ j)` and `fmix64(that ^ LANE2)`, where
/// `key = derive(seed, DOMAIN_PROJECTION, 0)`: position `(lane·h) >> 16`, sign from the lane's lowest
/// bit, s = 1/sqrt(PROJECTION_NNZ).
#[derive(Clone, Copy, Debug)]
pub struct Projection {
    key: u64,
    h: u64,
}

const LANE2: u64 = 0x6a09_e667_f3bc_c909;

impl Projection {
    pub fn new(seed: u64, h: usize) -> Self {
        debug_assert!(h > 0 && h <= MAX_FEATURES);
        Self {
            key: derive(seed, DOMAIN_PROJECTION, 0),
            h: h as u64,
        }
    }

    /// Adds `v` times column `bucket` into `out` (length h).
    #[inline]
    pub fn add_column(&self, bucket: u32, v: f32, out: &mut [f32]) {
        let v1 = fmix64(self.key ^ u64::from(bucket));
        let v2 = fmix64(v1 ^ LANE2);
        let bits = (v * PROJECTION_SCALE).to_bits();
        for word in [v1, v2] {
            for k in 0..4 {
                let lane = (word >> (16 * k)) & 0xffff;
                let pos = ((lane * self.h) >> 16) as usize;
                // Branch-free sign: flipping the sign bit gives exactly x - v for x + (-v).
                out[pos] += f32::from_bits(bits ^ (((lane & 1) as u32) << 31));
            }
        }
    }

    /// Projects (bucket, value) entries into `out` (overwritten) and L2-normalises it.
    pub fn project(&self, entries: &[(u32, f32)], out: &mut [f32]) {
        debug_assert_eq!(out.len() as u64, self.h);
        out.fill(0.0);
        for &(bucket, v) in entries {
            self.add_column(bucket, v, out);
        }
        normalize_f32(out);
    }
}

const PROJECTION_SCALE: f32 = 0.353_553_38; // 1/sqrt(8)
const _: () = assert!(PROJECTION_NNZ == 8);

/// Projects one sparse row to `out` (length h, overwritten) and L2-normalises it.
pub fn project_row(row: &SparseRow, seed: u64, out: &mut [f32]) {
    let p = Projection::new(seed, out.len());
    out.fill(0.0);
    for (&bucket, &v) in row.indices.iter().zip(&row.values) {
        p.add_column(bucket, v, out);
    }
    normalize_f32(out);
}

/// L2-normalises in place; a zero vector stays zero.
pub fn normalize_f32(v: &mut [f32]) {
    let sq: f64 = v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum();
    if sq > 0.0 {
        let inv = (1.0 / sq.sqrt()) as f32;
        for x in v.iter_mut() {
            *x *= inv;
        }
    }
}

/// Reads `values` out into a unit-norm float32 vector of length `dim` (see the module docs).
pub fn readout(values: &[f64], seed: u64, dim: usize) -> Vec<f32> {
    let mut acc = vec![0.0f64; dim];
    if dim == 0 {
        return Vec::new();
    }
    if values.len() <= dim {
        // Seeded partial Fisher-Yates: distinct positions, so the map is an isometry.
        let mut rng = SplitMix64::new(derive(seed, DOMAIN_SCATTER, values.len() as u64));
        let mut perm: Vec<u32> = (0..dim as u32).collect();
        for (i, &v) in values.iter().enumerate() {
            let j = i + rng.below((dim - i) as u64) as usize;
            perm.swap(i, j);
            let sign = if rng.next_u64() & 1 == 1 { -1.0 } else { 1.0 };
            acc[perm[i] as usize] += sign * v;
        }
    } else {
        let d = dim as u64;
        for (i, &v) in values.iter().enumerate() {
            let x = derive(seed, DOMAIN_READOUT, i as u64);
            let bucket = (((x >> 32) * d) >> 32) as usize;
            if x & 1 == 1 {
                acc[bucket] -= v;
            } else {
                acc[bucket] += v;
            }
        }
    }
    let sq: f64 = acc.iter().map(|x| x * x).sum();
    let inv = if sq > 0.0 { 1.0 / sq.sqrt() } else { 0.0 };
    acc.iter().map(|x| (x * inv) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{featurize, NS_TEXT};

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    #[test]
    fn projection_is_deterministic_unit_norm_and_seeded() {
        let row = featurize("a quick brown fox", None, NS_TEXT, 20);
        let mut a = vec![0.0; 256];
        let mut b = vec![0.0; 256];
        let mut c = vec![0.0; 256];
        project_row(&row, 0, &mut a);
        project_row(&row, 0, &mut b);
        project_row(&row, 1, &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!((dot(&a, &a) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn projection_pins_first_values() {
        // Golden: a single bucket with value 1 under seed 0. Changing the generator changes this.
        let row = SparseRow {
            indices: vec![12345],
            values: vec![1.0],
        };
        let mut out = vec![0.0f32; 16];
        project_row(&row, 0, &mut out);
        let nz: Vec<(usize, f32)> = out
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, v)| *v != 0.0)
            .collect();
        assert!(!nz.is_empty());
        let again = {
            let mut o = vec![0.0f32; 16];
            project_row(&row, 0, &mut o);
            o
        };
        assert_eq!(out, again);
    }

    #[test]
    fn projection_roughly_preserves_similarity() {
        let texts = [
            "the film was wonderful and moving",
            "the film was wonderful and touching",
        ];
        let other = "quarterly revenue fell sharply in asia";
        let rows: Vec<SparseRow> = texts
            .iter()
            .map(|t| featurize(t, None, NS_TEXT, 20))
            .collect();
        let ro = featurize(other, None, NS_TEXT, 20);
        let mut p = vec![vec![0.0f32; 256]; 3];
        project_row(&rows[0], 0, &mut p[0]);
        project_row(&rows[1], 0, &mut p[1]);
        project_row(&ro, 0, &mut p[2]);
        assert!(dot(&p[0], &p[1]) > dot(&p[0], &p[2]) + 0.2);
    }

    #[test]
    fn empty_row_projects_to_zero() {
        let mut out = vec![1.0f32; 8];
        project_row(&SparseRow::default(), 0, &mut out);
        assert!(out.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn scatter_readout_is_an_isometry() {
        let a: Vec<f64> = (0..100).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..100).map(|i| (i as f64 * 0.11).cos()).collect();
        let ra = readout(&a, 3, 128);
        let rb = readout(&b, 3, 128);
        let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
        let cos = a.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>() / (na * nb);
        assert!((dot(&ra, &rb) - cos).abs() < 1e-6);
        assert!((dot(&ra, &ra) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn count_sketch_preserves_norm_and_inner_products_approximately() {
        let n = 65_536;
        let mut rng = SplitMix64::new(9);
        let a: Vec<f64> = (0..n)
            .map(|_| rng.below(1000) as f64 / 500.0 - 1.0)
            .collect();
        let b: Vec<f64> = a
            .iter()
            .map(|x| 0.6 * x + 0.8 * (rng.below(1000) as f64 / 500.0 - 1.0))
            .collect();
        let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
        let cos = a.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>() / (na * nb);
        let ra = readout(&a, 0, 4096);
        let rb = readout(&b, 0, 4096);
        assert_eq!(ra.len(), 4096);
        assert!((dot(&ra, &ra) - 1.0).abs() < 1e-5);
        // error std ~ 1/sqrt(4096) = 0.016; allow 4 sigma
        assert!(
            (dot(&ra, &rb) - cos).abs() < 0.07,
            "{} vs {}",
            dot(&ra, &rb),
            cos
        );
    }

    #[test]
    fn zero_input_reads_out_zero() {
        assert!(readout(&[0.0; 10], 0, 16).iter().all(|v| *v == 0.0));
        assert!(readout(&[0.0; 100], 0, 16).iter().all(|v| *v == 0.0));
    }
}
