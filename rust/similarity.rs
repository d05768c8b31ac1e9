//! Cosine similarity at scale: blocked all-pairs, a symmetric fast path, fused top-k and a
//! threshold search, all on one register-blocked GEMM micro-kernel (`simd::kernel`).
//!
//! Rows are first scaled to unit length (norms in f64, so huge or tiny values neither overflow nor
//! underflow; a zero row stays zero and has similarity 0 with everything). B is then packed once
//! into k-major panels of `NR` rows; each worker packs `MC` rows of A at a time and sweeps the B
//! panels, so a B panel stays in L1 while the A block's panels reuse it. Top-k and threshold search
//! consume the scores block by block and never hold the N×M matrix: memory is O((N+M)·d + N·k).
//! Work is split into fixed row blocks; results do not depend on the thread count.

use crate::error::{checked_len, ensure, try_copy, try_filled, CoreError, Result};
use crate::simd::{kernel, MR, NR};
use crate::threads::for_each_piece;

/// Rows of A per worker block (a multiple of MR).
const MC: usize = 8 * MR;
/// Columns of scores produced per pass in top-k / threshold search (a multiple of NR).
const NC: usize = 64 * NR;

/// Scales one row to unit length in place (norm in f64, after dividing by the largest magnitude,
/// so huge or tiny values neither overflow nor underflow); a zero row stays zero.
fn normalize_row(row: &mut [f32]) {
    let big = row.iter().fold(0.0f64, |m, v| m.max(f64::from(v.abs())));
    if big == 0.0 {
        return;
    }
    let scale = 1.0 / big;
    let sq: f64 = row.iter().map(|v| (f64::from(*v) * scale).powi(2)).sum();
    let inv = scale / sq.sqrt();
    for v in row.iter_mut() {
        *v = (f64::from(*v) * inv) as f32;
    }
}

/// Dot product with 8 independent partial sums, so the compiler can keep them in one SIMD register.
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for t in 0..8 {
            acc[t] += x[t] * y[t];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Rows scaled to unit length; zero rows stay zero.
fn unit_rows(x: &[f32], d: usize) -> Result<Vec<f32>> {
    let mut out = try_copy(x, "unit rows")?;
    for row in out.chunks_mut(d) {
        normalize_row(row);
    }
    Ok(out)
}

/// Copies rows `r0..r0+w` (fewer at the end, zero-padded) of the row-major `x` (·×d) into `dst` as a
/// k-major panel: `dst[k*w + t] = x[(r0+t)*d + k]`.
fn pack_panel(x: &[f32], d: usize, r0: usize, w: usize, n_rows: usize, dst: &mut [f32]) {
    dst[..d * w].fill(0.0);
    for t in 0..w.min(n_rows.saturating_sub(r0)) {
        let row = &x[(r0 + t) * d..(r0 + t + 1) * d];
        for (k, &v) in row.iter().enumerate() {
            dst[k * w + t] = v;
        }
    }
}

/// Unit rows of B packed into ceil(m/NR) panels of d×NR.
struct PackedB {
    d: usize,
    m: usize,
    panels: Vec<f32>,
}

impl PackedB {
    fn new(b_unit: &[f32], d: usize, n_threads: usize) -> Result<Self> {
        let m = b_unit.len() / d;
        let n_panels = m.div_ceil(NR);
        let mut panels = try_filled(checked_len(&[n_panels, d, NR], "b")?, 0.0f32, "b")?;
        for_each_piece(&mut panels, 16 * d * NR, n_threads, |piece, chunk| {
            for (q, dst) in chunk.chunks_mut(d * NR).enumerate() {
                pack_panel(b_unit, d, (piece * 16 + q) * NR, NR, m, dst);
            }
        })?;
        Ok(Self { d, m, panels })
    }

    fn n_panels(&self) -> usize {
        self.m.div_ceil(NR)
    }

    fn panel(&self, p: usize) -> &[f32] {
        &self.panels[p * self.d * NR..(p + 1) * self.d * NR]
    }
}

/// A packed block of up to MC rows of A.
struct PackedA {
    rows: usize,
    panels: Vec<f32>,
}

impl PackedA {
    fn new(a_unit: &[f32], d: usize, r0: usize, n: usize) -> Self {
        let rows = MC.min(n - r0);
        let n_panels = rows.div_ceil(MR);
        let mut panels = vec![0.0f32; n_panels * d * MR];
        for (p, dst) in panels.chunks_mut(d * MR).enumerate() {
            pack_panel(a_unit, d, r0 + p * MR, MR, r0 + rows, dst);
        }
        Self { rows, panels }
    }
}

/// Depth of one pass over the vectors' dimensions: a B panel chunk (KC×NR floats, 16 KB) stays in
/// L1 while the A block's panels (MC×KC) stay in L2, whatever d is.
const KC: usize = 256;

/// B panels handled together in one sweep over the dimensions: their tiles (PG·MC·NR floats,
/// 48 KB) and the A block's current KC slice (48 KB) stay in L2.
const PG: usize = 16;

/// Scores of the A block against B panels `p0..p1`, written to `out` (A-block rows × `ld`, the
/// block's column 0 being panel p0's first column). Only valid rows/columns are written.
fn block_scores(a: &PackedA, b: &PackedB, p0: usize, p1: usize, out: &mut [f32], ld: usize) {
    let d = b.d;
    let n_ap = a.rows.div_ceil(MR);
    let mut tiles = vec![[0.0f32; MR * NR]; n_ap * PG];
    let mut g0 = p0;
    while g0 < p1 {
        let g1 = (g0 + PG).min(p1);
        let mut k0 = 0;
        while k0 < d {
            let kc = KC.min(d - k0);
            for p in g0..g1 {
                let bp = &b.panel(p)[k0 * NR..(k0 + kc) * NR];
                for ip in 0..n_ap {
                    let ap = &a.panels[ip * d * MR + k0 * MR..ip * d * MR + (k0 + kc) * MR];
                    kernel(kc, ap, bp, &mut tiles[(p - g0) * n_ap + ip], k0 > 0);
                }
            }
            k0 += kc;
        }
        for p in g0..g1 {
            let c0 = (p - p0) * NR;
            let cols = NR.min(b.m - p * NR);
            for ip in 0..n_ap {
                let tile = &tiles[(p - g0) * n_ap + ip];
                for ii in 0..MR.min(a.rows - ip * MR) {
                    let dst = &mut out[(ip * MR + ii) * ld + c0..(ip * MR + ii) * ld + c0 + cols];
                    for (o, &v) in dst.iter_mut().zip(&tile[ii * NR..ii * NR + cols]) {
                        *o = v.clamp(-1.0, 1.0);
                    }
                }
            }
        }
        g0 = g1;
    }
}

fn check_shapes(a: &[f32], b: &[f32], d: usize) -> Result<(usize, usize)> {
    ensure(d > 0, || {
        "vectors must have at least one dimension".to_string()
    })?;
    ensure(
        a.len().is_multiple_of(d) && b.len().is_multiple_of(d),
        || format!("inputs are not multiples of d={d}"),
    )?;
    ensure(
        a.len() / d < u32::MAX as usize && b.len() / d < u32::MAX as usize,
        || "more than 2^32 - 1 rows".to_string(),
    )?;
    Ok((a.len() / d, b.len() / d))
}

/// At most this many query rows take the direct path: packing all of B costs more than it saves.
const FEW_QUERIES: usize = 16;

/// Scores of a few unit query rows `ua` (n×d) against the raw rows of `b`, column-major: entry
/// `j*n + i` is cos(a_i, b_j). Each B row is scaled into a small buffer (norm in f64, as in
/// `unit_rows`) instead of copying and packing all of B.
fn few_query_scores(
    ua: &[f32],
    b: &[f32],
    d: usize,
    n: usize,
    n_threads: usize,
) -> Result<Vec<f32>> {
    let m = b.len() / d;
    let mut scores = try_filled(checked_len(&[m, n], "scores")?, 0.0f32, "scores")?;
    for_each_piece(&mut scores, 256 * n, n_threads, |piece, chunk| {
        let mut row = vec![0.0f32; d];
        for (k, dst) in chunk.chunks_mut(n).enumerate() {
            let j = piece * 256 + k;
            row.copy_from_slice(&b[j * d..(j + 1) * d]);
            normalize_row(&mut row);
            for (i, o) in dst.iter_mut().enumerate() {
                *o = dot_lanes(&ua[i * d..(i + 1) * d], &row).clamp(-1.0, 1.0);
            }
        }
    })?;
    Ok(scores)
}

/// Cosine similarities S (n×m) between rows of `a` (n×d) and `b` (m×d), written into `out`.
/// A zero row has similarity 0 with everything (cosine is undefined there; 0 keeps NaN out).
pub fn cosine_into(
    a: &[f32],
    b: &[f32],
    d: usize,
    out: &mut [f32],
    n_threads: usize,
) -> Result<()> {
    let (n, m) = check_shapes(a, b, d)?;
    ensure(Some(out.len()) == n.checked_mul(m), || {
        format!("out has {} entries, expected {n}x{m}", out.len())
    })?;
    if n == 0 || m == 0 {
        return Ok(());
    }
    let ua = unit_rows(a, d)?;
    if n <= FEW_QUERIES {
        let scores = few_query_scores(&ua, b, d, n, n_threads)?;
        for (j, col) in scores.chunks(n).enumerate() {
            for (i, &v) in col.iter().enumerate() {
                out[i * m + j] = v;
            }
        }
        return Ok(());
    }
    let pb = PackedB::new(&unit_rows(b, d)?, d, n_threads)?;
    // Sweep B in column groups small enough to stay in the last-level cache while every A block
    // passes over them; otherwise a large B (m·d·4 bytes beyond the cache) is streamed from memory
    // once per A block and the kernel starves.
    let group = group_panels(d);
    let mut g0 = 0;
    while g0 < pb.n_panels() {
        let g1 = (g0 + group).min(pb.n_panels());
        for_each_piece(out, MC * m, n_threads, |piece, rows| {
            let pa = PackedA::new(&ua, d, piece * MC, n);
            block_scores(&pa, &pb, g0, g1, &mut rows[g0 * NR..], m);
        })?;
        g0 = g1;
    }
    Ok(())
}

/// Bytes of packed B per column group (tests use a small budget so that they cross groups).
#[cfg(not(test))]
const GROUP_BYTES: usize = 4 << 20;
#[cfg(test)]
const GROUP_BYTES: usize = 64 << 10;

/// B panels per column group.
fn group_panels(d: usize) -> usize {
    (GROUP_BYTES / (d * NR * 4)).max(1)
}

/// Cosine similarities of the rows of `a` (n×d) with each other: only blocks on or above the
/// diagonal are computed, the rest is mirrored.
pub fn cosine_self_into(a: &[f32], d: usize, out: &mut [f32], n_threads: usize) -> Result<()> {
    let (n, _) = check_shapes(a, a, d)?;
    ensure(Some(out.len()) == n.checked_mul(n), || {
        format!("out has {} entries, expected {n}x{n}", out.len())
    })?;
    if n == 0 {
        return Ok(());
    }
    let ua = unit_rows(a, d)?;
    let pb = PackedB::new(&ua, d, n_threads)?;
    let group = group_panels(d);
    let mut g0 = 0;
    while g0 < pb.n_panels() {
        let g1 = (g0 + group).min(pb.n_panels());
        for_each_piece(out, MC * n, n_threads, |piece, rows| {
            let r0 = piece * MC;
            let p0 = (r0 / NR).max(g0); // first panel on or right of this block's diagonal
            if p0 < g1 {
                let pa = PackedA::new(&ua, d, r0, n);
                block_scores(&pa, &pb, p0, g1, &mut rows[p0 * NR..], n);
            }
        })?;
        g0 = g1;
    }
    mirror_upper(out, n, n_threads)
}

/// Copies the upper triangle onto the lower one, tile by tile (cache-friendly transposes).
fn mirror_upper(out: &mut [f32], n: usize, n_threads: usize) -> Result<()> {
    const T: usize = 64;
    // Rows i of tile-row `bi` read out[j][i] for j < i, which lie in earlier tile-rows' upper part;
    // those entries are never written here (only j < i of the own rows are), so reads and writes
    // are disjoint. Raw pointers let workers share the matrix.
    struct Shared(*mut f32);
    // SAFETY: workers write disjoint ranges (their own rows' lower part) and read only upper
    // entries, which no worker writes.
    unsafe impl Sync for Shared {}
    let shared = Shared(out.as_mut_ptr());
    let shared = &shared;
    let mut blocks: Vec<usize> = (0..n.div_ceil(T)).collect();
    for_each_piece(&mut blocks, 1, n_threads, |_, bi| {
        let i0 = bi[0] * T;
        let ptr = shared.0;
        for j0 in (0..=i0).step_by(T) {
            for i in i0..(i0 + T).min(n) {
                for j in j0..(j0 + T).min(i) {
                    // SAFETY: i, j < n; (i, j) with j < i is written only by this worker; (j, i)
                    // with j < i is in the upper triangle, which nobody writes.
                    unsafe { *ptr.add(i * n + j) = *ptr.add(j * n + i) };
                }
            }
        }
    })
}

/// The k best (score, column) of one row so far: scores above `floor` are buffered, and the buffer
/// is cut back to the best k when it reaches 2k. Ties go to the smaller column (columns arrive in
/// increasing order, and a later equal score never beats the current k-th).
struct RowTopK {
    k: usize,
    floor: f32,
    buf: Vec<(f32, u32)>,
}

fn better(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

impl RowTopK {
    /// `cap` bounds the buffer's initial room (the number of candidates), whatever `k` is.
    fn new(k: usize, cap: usize) -> Self {
        Self {
            k,
            floor: f32::NEG_INFINITY,
            buf: Vec::with_capacity(k.min(cap).saturating_mul(2).saturating_add(1)),
        }
    }

    #[inline]
    fn offer(&mut self, score: f32, col: u32) {
        if score > self.floor || (self.buf.len() < self.k && score >= self.floor) {
            self.buf.push((score, col));
            if self.buf.len() >= 2 * self.k {
                self.shrink();
            }
        }
    }

    /// Offers `row[t]` as column `c0 + t` for every t (except column `skip`). Chunks whose maximum
    /// cannot enter the top k are skipped with one vectorised comparison.
    fn offer_row(&mut self, row: &[f32], c0: usize, skip: Option<usize>) {
        const W: usize = 16;
        for (q, chunk) in row.chunks(W).enumerate() {
            if self.buf.len() >= self.k {
                let best = chunk.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                if best <= self.floor {
                    continue;
                }
            }
            for (t, &s) in chunk.iter().enumerate() {
                let col = c0 + q * W + t;
                if Some(col) != skip {
                    self.offer(s, col as u32);
                }
            }
        }
    }

    fn shrink(&mut self) {
        if self.buf.len() > self.k {
            self.buf.select_nth_unstable_by(self.k - 1, better);
            self.buf.truncate(self.k);
            self.floor = self.buf.iter().map(|e| e.0).fold(f32::INFINITY, f32::min);
        }
    }

    fn finish(mut self, ids: &mut [i64], scores: &mut [f32]) {
        self.buf.sort_unstable_by(better);
        self.buf.truncate(self.k);
        for (t, (id, sc)) in ids.iter_mut().zip(scores.iter_mut()).enumerate() {
            match self.buf.get(t) {
                Some(&(s, c)) => {
                    *id = i64::from(c);
                    *sc = s;
                }
                None => {
                    *id = -1;
                    *sc = f32::NEG_INFINITY;
                }
            }
        }
    }
}

/// For each row of `a`, the `k` most similar rows of `b` (or of `a` itself when `b` is `None`,
/// optionally excluding the row itself): ids (n×k, -1 padded) and scores (n×k, -inf padded),
/// best first, ties to the smaller id. Never materialises the n×m matrix.
pub fn top_k(
    a: &[f32],
    b: Option<&[f32]>,
    d: usize,
    k: usize,
    exclude_self: bool,
    n_threads: usize,
) -> Result<(Vec<i64>, Vec<f32>)> {
    let (n, m) = check_shapes(a, b.unwrap_or(a), d)?;
    ensure(k > 0, || "k must be >= 1".to_string())?;
    // More columns than candidates would be pure padding: callers clamp k (taskspace.similarity
    // does), so a larger k is refused before n·k is allocated and filled.
    ensure(k <= m.max(1), || {
        format!("k={k} is more than the {m} candidate rows; clamp it")
    })?;
    // The result alone is n·k ids and scores: size it (and fail cleanly) before any work.
    let len = checked_len(&[n, k], "top_k")?;
    let mut ids = try_filled(len, -1i64, "top_k")?;
    let mut scores = try_filled(len, f32::NEG_INFINITY, "top_k")?;
    let skip_self = exclude_self && b.is_none();
    let ua = unit_rows(a, d)?;
    if n <= FEW_QUERIES && n > 0 && m > 0 {
        let few = few_query_scores(&ua, b.unwrap_or(a), d, n, n_threads)?;
        for i in 0..n {
            let mut top = RowTopK::new(k, m);
            for j in 0..m {
                if !(skip_self && j == i) {
                    top.offer(few[j * n + i], j as u32);
                }
            }
            top.finish(
                &mut ids[i * k..(i + 1) * k],
                &mut scores[i * k..(i + 1) * k],
            );
        }
        return Ok((ids, scores));
    }
    let ub_owned;
    let ub: &[f32] = match b {
        Some(b) => {
            ub_owned = unit_rows(b, d)?;
            &ub_owned
        }
        None => &ua,
    };
    let pb = PackedB::new(ub, d, n_threads)?;
    if n == 0 || m == 0 {
        return Ok((ids, scores));
    }
    // Each worker fills its block's rows of the result in place.
    let mut blocks: Vec<(&mut [i64], &mut [f32])> = ids
        .chunks_mut(MC.saturating_mul(k))
        .zip(scores.chunks_mut(MC.saturating_mul(k)))
        .collect();
    for_each_piece(&mut blocks, 1, n_threads, |bi, slot| {
        let (bids, bscores) = &mut slot[0];
        let r0 = bi * MC;
        let pa = PackedA::new(&ua, d, r0, n);
        let mut tops: Vec<RowTopK> = (0..pa.rows).map(|_| RowTopK::new(k, m)).collect();
        let mut buf = vec![0.0f32; MC * NC];
        let panels_per_pass = NC / NR;
        let mut p0 = 0;
        while p0 < pb.n_panels() {
            let p1 = (p0 + panels_per_pass).min(pb.n_panels());
            block_scores(&pa, &pb, p0, p1, &mut buf, NC);
            let c0 = p0 * NR;
            let cols = (p1 * NR).min(m) - c0;
            for (r, top) in tops.iter_mut().enumerate() {
                let row = &buf[r * NC..r * NC + cols];
                let own = if skip_self { Some(r0 + r) } else { None };
                top.offer_row(row, c0, own);
            }
            p0 = p1;
        }
        for (r, top) in tops.into_iter().enumerate() {
            top.finish(
                &mut bids[r * k..(r + 1) * k],
                &mut bscores[r * k..(r + 1) * k],
            );
        }
    })?;
    Ok((ids, scores))
}

/// All pairs (i, j, score) with cosine ≥ `threshold` between rows of `a` and rows of `b`. Rows of
/// `a` are numbered from `row_offset`, so a caller can stream `a` in blocks. With `upper_only`, `a`
/// is a block of `b` itself (row i of `a` is row `row_offset + i` of `b`) and only pairs with j > i
/// are returned, each unordered pair once. Ordered by i, then j.
pub fn pairs_above(
    a: &[f32],
    b: &[f32],
    d: usize,
    threshold: f32,
    row_offset: usize,
    upper_only: bool,
    n_threads: usize,
) -> Result<(Vec<i64>, Vec<i64>, Vec<f32>)> {
    let (n, m) = check_shapes(a, b, d)?;
    ensure(!threshold.is_nan(), || "threshold is NaN".to_string())?;
    if n == 0 || m == 0 {
        return Ok((Vec::new(), Vec::new(), Vec::new()));
    }
    let ua = unit_rows(a, d)?;
    let pb = PackedB::new(&unit_rows(b, d)?, d, n_threads)?;
    // Per block: its pairs, and whether they outgrew memory (the count is up to the threshold, so
    // every growth is fallible: an allocation failure must be an error, not an abort).
    type Found = (usize, Vec<i64>, Vec<i64>, Vec<f32>, bool);
    let mut blocks: Vec<Found> = (0..n.div_ceil(MC))
        .map(|i| (i, Vec::new(), Vec::new(), Vec::new(), false))
        .collect();
    for_each_piece(&mut blocks, 1, n_threads, |_, slot| {
        let (bi, is, js, ss, oom) = &mut slot[0];
        let r0 = *bi * MC;
        let first_row = row_offset + r0; // global index of this block's first row
        let pa = PackedA::new(&ua, d, r0, n);
        let mut buf = vec![0.0f32; MC * NC];
        let panels_per_pass = NC / NR;
        // With upper_only, panels left of this block's diagonal hold only pairs j < i: skip them.
        let mut p0 = if upper_only {
            (first_row / NR).min(pb.n_panels())
        } else {
            0
        };
        let mut found: Vec<Vec<(i64, f32)>> = vec![Vec::new(); pa.rows];
        while p0 < pb.n_panels() {
            let p1 = (p0 + panels_per_pass).min(pb.n_panels());
            block_scores(&pa, &pb, p0, p1, &mut buf, NC);
            let c0 = p0 * NR;
            let cols = (p1 * NR).min(m) - c0;
            for (r, hits) in found.iter_mut().enumerate() {
                if hits.try_reserve(cols).is_err() {
                    *oom = true;
                    return;
                }
                for (t, &s) in buf[r * NC..r * NC + cols].iter().enumerate() {
                    let col = c0 + t;
                    if s >= threshold && (!upper_only || col > first_row + r) {
                        hits.push((col as i64, s));
                    }
                }
            }
            p0 = p1;
        }
        let count: usize = found.iter().map(Vec::len).sum();
        if is.try_reserve_exact(count).is_err()
            || js.try_reserve_exact(count).is_err()
            || ss.try_reserve_exact(count).is_err()
        {
            *oom = true;
            return;
        }
        for (r, hits) in found.into_iter().enumerate() {
            for (j, s) in hits {
                is.push((first_row + r) as i64);
                js.push(j);
                ss.push(s);
            }
        }
    })?;
    let total: usize = blocks.iter().map(|b| b.1.len()).sum();
    let too_many = || {
        CoreError::OutOfMemory(format!(
            "pairs_above: the pairs with cosine >= {threshold} do not fit in memory; raise the \
             threshold or pass fewer rows at a time"
        ))
    };
    if blocks.iter().any(|b| b.4) {
        return Err(too_many());
    }
    let (mut is, mut js, mut ss) = (Vec::new(), Vec::new(), Vec::new());
    if is.try_reserve_exact(total).is_err()
        || js.try_reserve_exact(total).is_err()
        || ss.try_reserve_exact(total).is_err()
    {
        return Err(too_many());
    }
    for (_, bi, bj, bs, _) in blocks {
        is.extend(bi);
        js.extend(bj);
        ss.extend(bs);
    }
    Ok((is, js, ss))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::SplitMix64;
    use crate::simd::scalar;

    fn random(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut r = SplitMix64::new(seed);
        (0..n * d)
            .map(|_| r.below(20_001) as f32 / 10_000.0 - 1.0)
            .collect()
    }

    fn reference(a: &[f32], b: &[f32], d: usize) -> Vec<f32> {
        let (ua, ub) = (unit_rows(a, d).unwrap(), unit_rows(b, d).unwrap());
        let (n, m) = (a.len() / d, b.len() / d);
        let mut out = vec![0.0; n * m];
        for i in 0..n {
            for j in 0..m {
                out[i * m + j] =
                    scalar::dot(&ua[i * d..(i + 1) * d], &ub[j * d..(j + 1) * d]).clamp(-1.0, 1.0);
            }
        }
        out
    }

    #[test]
    fn cosine_matches_reference_for_awkward_shapes() {
        for &(n, m, d) in &[
            (1, 1, 1),
            (7, 5, 3),
            (MC + 1, NR + 1, 17),
            (50, 33, 16),
            (13, 100, 15),
            (3, 2, 1023),
        ] {
            let a = random(n, d, 1);
            let b = random(m, d, 2);
            for threads in [1, 3] {
                let mut out = vec![9.0; n * m];
                cosine_into(&a, &b, d, &mut out, threads).unwrap();
                for (x, y) in out.iter().zip(reference(&a, &b, d)) {
                    assert!((x - y).abs() < 2e-5, "n={n} m={m} d={d}: {x} vs {y}");
                }
            }
            let mut sym = vec![9.0; n * n];
            cosine_self_into(&a, d, &mut sym, 2).unwrap();
            let want = reference(&a, &a, d);
            for i in 0..n {
                for j in 0..n {
                    assert!((sym[i * n + j] - want[i * n + j]).abs() < 2e-5);
                    assert_eq!(sym[i * n + j], sym[j * n + i], "mirror");
                }
            }
        }
    }

    #[test]
    fn basics_zero_rows_and_extremes() {
        let a = [1.0, 0.0, 0.0, 2.0, 0.0, 0.0];
        let b = [3.0, 0.0, 1.0, 1.0];
        let mut out = vec![0.0; 6];
        cosine_into(&a, &b, 2, &mut out, 2).unwrap();
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert!((out[0] - 1.0).abs() < 1e-6 && (out[1] - s).abs() < 1e-6);
        assert!(out[2].abs() < 1e-6 && (out[3] - s).abs() < 1e-6);
        assert_eq!(&out[4..], &[0.0, 0.0]); // a zero row is similar to nothing
        let mut one = vec![0.0; 1];
        cosine_into(&[1e20, 0.0], &[1e20, 1e20], 2, &mut one, 1).unwrap();
        assert!((one[0] - s).abs() < 1e-6);
        cosine_into(&[1e-25, 0.0], &[1e-25, 0.0], 2, &mut one, 1).unwrap();
        assert!((one[0] - 1.0).abs() < 1e-6);
        cosine_into(
            &[f32::MAX, f32::MAX],
            &[f32::MAX, -f32::MAX],
            2,
            &mut one,
            1,
        )
        .unwrap();
        assert!(one[0].abs() < 1e-6);
    }

    #[test]
    fn shape_errors() {
        let mut out = vec![0.0; 1];
        assert!(cosine_into(&[1.0, 2.0], &[1.0], 2, &mut out, 1).is_err());
        assert!(cosine_into(&[1.0, 2.0], &[1.0, 2.0], 2, &mut [0.0; 2], 1).is_err());
        assert!(cosine_into(&[], &[], 0, &mut [], 1).is_err());
        assert!(top_k(&[1.0], None, 1, 0, false, 1).is_err());
        assert!(pairs_above(&[1.0], &[1.0], 1, f32::NAN, 0, false, 1).is_err());
    }

    #[test]
    fn huge_k_is_an_error_never_an_abort() {
        use crate::error::CoreError;
        let a = random(100, 4, 8);
        for k in [101, 1usize << 31, 1usize << 62, usize::MAX] {
            for threads in [1, 2] {
                match top_k(&a, None, 4, k, false, threads) {
                    Err(CoreError::InvalidInput(m)) => assert!(m.contains("candidate"), "{m}"),
                    other => panic!("k={k}: expected InvalidInput, got {:?}", other.map(|_| ())),
                }
            }
        }
        // k = all candidates with exclude_self: the last column is padding.
        let (ids, scores) = top_k(&a[..20], None, 4, 5, true, 2).unwrap();
        assert!((0..5).all(|i| ids[i * 5 + 4] == -1 && scores[i * 5 + 4] == f32::NEG_INFINITY));
        assert!((0..5).all(|i| ids[i * 5..i * 5 + 4].iter().all(|&j| j >= 0)));
    }

    fn full_sort_topk(
        s: &[f32],
        n: usize,
        m: usize,
        k: usize,
        skip_self: bool,
    ) -> Vec<Vec<(i64, f32)>> {
        (0..n)
            .map(|i| {
                let mut row: Vec<(f32, u32)> = (0..m)
                    .filter(|&j| !(skip_self && j == i))
                    .map(|j| (s[i * m + j], j as u32))
                    .collect();
                row.sort_by(better);
                row.into_iter()
                    .take(k)
                    .map(|(x, j)| (i64::from(j), x))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn top_k_equals_full_sort() {
        for &(n, m, d, k) in &[
            (1, 1, 3, 1),
            (10, 7, 5, 3),
            (MC + 3, 2 * NC + 5, 8, 10),
            (30, 30, 4, 30),
        ] {
            let a = random(n, d, 3);
            let b = random(m, d, 4);
            let mut s = vec![0.0; n * m];
            cosine_into(&a, &b, d, &mut s, 1).unwrap();
            let want = full_sort_topk(&s, n, m, k, false);
            for threads in [1, 2] {
                let (ids, scores) = top_k(&a, Some(&b), d, k, false, threads).unwrap();
                for i in 0..n {
                    for t in 0..k {
                        match want[i].get(t) {
                            Some(&(j, x)) => {
                                assert_eq!(ids[i * k + t], j, "row {i} rank {t}");
                                assert_eq!(scores[i * k + t], x);
                            }
                            None => {
                                assert_eq!(ids[i * k + t], -1);
                                assert_eq!(scores[i * k + t], f32::NEG_INFINITY);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn top_k_self_excludes_self_and_breaks_ties_by_id() {
        let n = 70;
        let d = 6;
        let mut a = random(n, d, 5);
        // duplicate rows: equal scores must come out in id order
        let first: Vec<f32> = a[..d].to_vec();
        a[10 * d..11 * d].copy_from_slice(&first);
        a[40 * d..41 * d].copy_from_slice(&first);
        let mut s = vec![0.0; n * n];
        cosine_self_into(&a, d, &mut s, 1).unwrap();
        let (ids, _) = top_k(&a, None, d, 5, true, 2).unwrap();
        let want = full_sort_topk(&s, n, n, 5, true);
        for i in 0..n {
            assert!(!ids[i * 5..(i + 1) * 5].contains(&(i as i64)));
            let got: Vec<i64> = ids[i * 5..(i + 1) * 5].to_vec();
            let exp: Vec<i64> = want[i].iter().map(|e| e.0).collect();
            assert_eq!(got, exp, "row {i}");
        }
        assert_eq!(&ids[0..2], &[10, 40]);
    }

    #[test]
    fn pairs_above_matches_a_scan() {
        let (n, m, d) = (MC + 7, 3 * NR + 2, 4);
        let a = random(n, d, 6);
        let b = random(m, d, 7);
        let mut s = vec![0.0; n * m];
        cosine_into(&a, &b, d, &mut s, 1).unwrap();
        let (is, js, ss) = pairs_above(&a, &b, d, 0.5, 100, false, 2).unwrap();
        let want: Vec<(i64, i64)> = (0..n)
            .flat_map(|i| (0..m).map(move |j| (i, j)))
            .filter(|&(i, j)| s[i * m + j] >= 0.5)
            .map(|(i, j)| (i as i64 + 100, j as i64))
            .collect();
        let got: Vec<(i64, i64)> = is.iter().copied().zip(js.iter().copied()).collect();
        assert_eq!(got, want);
        assert!(ss.iter().all(|&x| x >= 0.5));
        let (is, js, _) = pairs_above(&a, &a, d, 0.3, 0, true, 1).unwrap();
        assert!(is.iter().zip(&js).all(|(i, j)| i < j));
        // streaming a in two blocks gives the same pairs
        let split = 20;
        let (i1, j1, _) = pairs_above(&a[..split * d], &a, d, 0.3, 0, true, 1).unwrap();
        let (i2, j2, _) = pairs_above(&a[split * d..], &a, d, 0.3, split, true, 2).unwrap();
        let joined: Vec<(i64, i64)> = i1
            .into_iter()
            .chain(i2)
            .zip(j1.into_iter().chain(j2))
            .collect();
        let whole: Vec<(i64, i64)> = is.iter().copied().zip(js.iter().copied()).collect();
        assert_eq!(joined, whole);
        let mut ss_self = vec![0.0; n * n];
        cosine_self_into(&a, d, &mut ss_self, 1).unwrap();
        let expect = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .filter(|&(i, j)| ss_self[i * n + j] >= 0.3)
            .count();
        assert_eq!(is.len(), expect);
    }
}
