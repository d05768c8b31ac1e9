"""Drift: is the API model still the one we measured?

:func:`drift` compares a model's outputs on the same probe texts at two times (a stored *baseline*
and a fresh *current* run) through their model task embeddings (MTEs):

* **shift** = 1 - cos(MTE(baseline), MTE(current)), both on the same texts (a paired comparison),
  and its **bootstrap interval** over the probe texts (percentile, level 1 - ``alpha``);
* the **noise floor**: the shift between two *halves of the pooled answers* - for every group of
  texts, one run's answers go to one side and the other run's to the other side, at random - and
  its bootstrap interval. If the model has not changed, the two runs' answers to a text are
  exchangeable, so this is the shift two runs of an unchanged model show (0 for a deterministic
  model, the sampling noise for one that samples); if it has changed, the random exchange
  scrambles the systematic difference away;
* ``drifted`` is True when the shift's interval and the noise floor's interval are disjoint. If
  the model has not changed, shift and noise floor have the same distribution, so disjoint
  intervals contradict "unchanged" - usually the shift lies above; it lies *below* when both runs
  answer consistently but differently (mixing two consistent but different tasks makes an
  incoherent one, whose halves lie far apart). Requiring the whole intervals to separate is
  deliberately conservative, so an unchanged model (even one that samples its answers) is rarely
  flagged.

Why not the shift between two halves of the baseline's *texts*: MTEs of disjoint text sets also
differ by the sampling noise of the inputs, which the paired shift does not contain, and at usual
probe sizes that noise is large. Measured (label mode, features=64, 2,000 probe texts, local
in-context models): the two halves of an unchanged model's texts lie 0.77 apart; when the model is
replaced by another task's (sentiment -> news topic), halves of the two runs lie 1.02 (0.94-1.05)
apart against 0.81 (0.83-0.99) within a run - overlapping intervals, no detection - while the
paired shift is 1.00 (0.95-1.06) against an exchange noise floor of 0.81 (0.68-0.92): detected.

Why it is cheap: the frozen encoder's features F of the probe texts are computed once. Statistics
are additive (:class:`~taskspace.embedding.surrogate.TaskStats`), so the texts are cut into random groups (at
most :data:`GROUPS` of them; one text per group when there are at most that many texts) whose
statistics are summed once. A bootstrap round draws groups with replacement (and, for the noise
floor, exchanges whole groups between the runs) and only re-weights those group sums, then solves
the surrogate's ridge head once for all four embeddings it needs (they share the resampled
inputs). Nothing is re-featurized or re-encoded inside the bootstrap. Resampling random groups of
texts is the bootstrap over texts at group granularity (for the means the estimator is built from,
it has the same variance).

The bootstrap rounds evaluate the ``operator`` estimator in batches: numpy for the moments, two Rust
kernels (``rust/bootstrap.rs``) for the ridge solves (a Cholesky whose inner products vectorise)
and for the read-out (each estimate's entries computed on the fly and added into their read-out
positions, which are re-derived here from the read-out's specified hash), because the Rust core's
single-task ``embed`` spends most of its time in a scalar Cholesky; ``tests/test_drift.py`` checks
that this path equals the Rust embedding. The ``fisher`` estimator falls back to the Rust core per round
(exact, slower). The point estimates always use the Rust core.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from taskspace import _checks, _core
from taskspace.embedding.surrogate import Mode, Surrogate, TaskStats
from taskspace.errors import InvalidInputError

__all__ = ["GROUPS", "DriftReport", "drift"]

#: The probe texts are cut into at most this many random groups for the bootstrap.
GROUPS = 128
#: Bootstrap rounds evaluated per batch (bounds the memory of the stacked hxh matrices).
_ROUNDS_PER_BATCH = 16


@dataclass(frozen=True)
class DriftReport:
    """The result of :func:`drift` (see :mod:`taskspace.embedding.drift` for the definitions).

    Attributes:
        shift: 1 - cosine of the baseline's and the current MTE (0 = identical behaviour).
        shift_low, shift_high: the shift's bootstrap percentile interval (level 1 - alpha).
        noise_floor: the median shift between two random halves of the pooled answers (what an
            unchanged model shows); noise_low, noise_high: its interval.
        drifted: the shift's and the noise floor's intervals are disjoint (``shift_low > noise_high``
            or ``shift_high < noise_low``).
        n: probe texts compared; n_boot, alpha, seed, mode: the settings used.
    """

    shift: float
    shift_low: float
    shift_high: float
    noise_floor: float
    noise_low: float
    noise_high: float
    drifted: bool
    n: int
    n_boot: int
    alpha: float
    seed: int
    mode: str

    @property
    def interval(self) -> tuple[float, float]:
        """``(shift_low, shift_high)``."""
        return (self.shift_low, self.shift_high)

    @property
    def noise_interval(self) -> tuple[float, float]:
        """``(noise_low, noise_high)``."""
        return (self.noise_low, self.noise_high)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (inverse: :meth:`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DriftReport:
        """Rebuild a report from :meth:`to_dict`'s output."""
        try:
            return cls(**{k: d[k] for k in cls.__dataclass_fields__})
        except (KeyError, TypeError) as e:
            raise InvalidInputError(f"not a drift report: {e}") from None

    def __str__(self) -> str:
        verdict = "DRIFTED" if self.drifted else "no drift"
        pct = round(100 * (1 - self.alpha))
        return (
            f"{verdict}: shift {self.shift:.4f} ({pct}% interval {self.shift_low:.4f}-{self.shift_high:.4f}) vs "
            f"noise floor {self.noise_floor:.4f} ({self.noise_low:.4f}-{self.noise_high:.4f}); "
            f"{self.n} probe texts, {self.n_boot} bootstrap rounds"
        )


def drift(
    surrogate: Surrogate,
    probe_texts: Sequence[str],
    baseline_outputs: Any,
    current_outputs: Any,
    *,
    text_pairs: Sequence[str] | None = None,
    mode: Mode = "label",
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> DriftReport:
    """Has a model's behaviour on ``probe_texts`` changed between two runs?

    Args:
        surrogate: the surrogate that embeds both runs.
        probe_texts: the probe texts both runs answered (at least 8), aligned with the outputs;
            ``text_pairs`` gives second texts for pair tasks.
        baseline_outputs, current_outputs: the model's outputs then and now, as for
            :meth:`Surrogate.model_embedding`, both of one kind: labels (str or int; the label
            sets may differ), (n, C) label distributions with the same C, or (``mode="text"``)
            output texts.
        mode: ``"label"`` or ``"text"``.
        n_boot: bootstrap rounds (≥ 20).
        alpha: the intervals have level 1 - alpha (0 < alpha < 1).
        seed: seeds the groups, the bootstrap and the exchanges (numpy ``default_rng``): equal
            inputs and seed give an equal report.

    Returns:
        A :class:`DriftReport`; ``report.drifted`` is True when the shift's interval and the noise
        floor's are disjoint.

    Example:
        >>> import taskspace as ts
        >>> sur = ts.Surrogate(features=64, dim=1024)
        >>> texts = ts.probe_set(n=1000)
        >>> then = ["question" if "?" in t else "other" for t in texts]
        >>> ts.drift(sur, texts, then, list(then), n_boot=50).drifted
        False
        >>> now = ["self" if " i " in f" {t.lower()} " else "other" for t in texts]  # another task
        >>> report = ts.drift(sur, texts, then, now, n_boot=50)
        >>> report.drifted, report.shift_low > report.noise_high
        (True, True)
    """
    if not isinstance(surrogate, Surrogate):
        raise TypeError(f"surrogate must be a taskspace.Surrogate, got {type(surrogate).__name__}")
    if mode not in ("label", "text"):
        raise InvalidInputError(f"mode must be 'label' or 'text', got {mode!r}")
    n_boot = _checks.positive_int(n_boot, "n_boot", minimum=20)
    seed = _checks.positive_int(seed, "seed", minimum=0)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0 < alpha < 1:
        raise InvalidInputError(f"alpha must be a number in (0, 1), got {alpha!r}")
    f = surrogate.encode(probe_texts, text_pairs=text_pairs)  # validates the texts
    n = f.shape[0]
    if n < 8:
        raise InvalidInputError(f"drift needs at least 8 probe texts, got {n}")
    y_base, y_cur = _outputs(surrogate, baseline_outputs, current_outputs, n, mode)

    # The point estimate with the Rust core: exactly the MTEs Surrogate.model_embedding gives.
    shift = _distance(_exact(surrogate, f, y_base, mode), _exact(surrogate, f, y_cur, mode))
    rng = np.random.default_rng(seed)
    shifts, noises = _bootstrap(surrogate, mode, _Groups(f, (y_base, y_cur), rng), n_boot, rng)
    q = (alpha / 2, 1 - alpha / 2)
    s_lo, s_hi = (float(v) for v in np.quantile(shifts, q))
    n_lo, n_hi = (float(v) for v in np.quantile(noises, q))
    return DriftReport(
        shift=shift,
        shift_low=s_lo,
        shift_high=s_hi,
        noise_floor=float(np.median(noises)),
        noise_low=n_lo,
        noise_high=n_hi,
        drifted=bool(s_lo > n_hi or s_hi < n_lo),
        n=n,
        n_boot=n_boot,
        alpha=float(alpha),
        seed=seed,
        mode=mode,
    )


def _outputs(sur: Surrogate, base: Any, cur: Any, n: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Both runs' encoded outputs (n, c) with the same columns, as :meth:`Surrogate.stats` builds them
    (label-mode embeddings do not depend on label names, order or unused labels)."""
    if mode == "text":
        out = []
        for outputs, what in ((base, "baseline_outputs"), (cur, "current_outputs")):
            if _checks.is_soft(outputs):
                raise TypeError(f"text mode needs output texts in {what}, not an array of label scores")
            texts = _checks.texts_list(outputs, what)
            _checks.same_length(n, len(texts), what)
            _checks.check_encodable(texts, what)
            out.append(sur.encode_outputs(texts))
        return out[0], out[1]
    soft = (_checks.is_soft(base), _checks.is_soft(cur))
    if soft[0] != soft[1]:
        raise InvalidInputError(
            "baseline_outputs and current_outputs must be of one kind: both labels or both (n, C) "
            "label distributions"
        )
    if soft[0]:
        yb, yc = _checks.soft_labels(base, n), _checks.soft_labels(cur, n)
        if yb.shape[1] != yc.shape[1]:
            raise InvalidInputError(
                f"baseline_outputs have {yb.shape[1]} label columns but current_outputs have {yc.shape[1]}"
            )
        return yb, yc
    _checks.hard_labels(base, n)  # validates each run with its own message
    _checks.hard_labels(cur, n)
    try:  # one-hot over the union of both runs' labels (unused columns do not change the MTE)
        both = _checks.hard_labels([*list(base), *list(cur)], 2 * n)[0]
    except TypeError:
        raise TypeError("baseline_outputs and current_outputs mix str and int labels; use one type") from None
    return both[:n], both[n:]


def _exact(sur: Surrogate, f: np.ndarray, y: np.ndarray, mode: str) -> np.ndarray:
    """The embedding vector (float64) of the encoded pairs, as :meth:`Surrogate.model_embedding` gives it."""
    return _embedding_vector(sur, sur.encoded_stats(f, y, mode=mode))  # type: ignore[arg-type]


def _embedding_vector(sur: Surrogate, s: TaskStats) -> np.ndarray:
    # A degenerate resample is a valid outcome here, not worth a warning (embedding_vector never warns).
    return sur.embedding_vector(s).astype(np.float64)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cosine; see :func:`_distances`."""
    return float(_distances(a[None, :], b[None, :])[0])


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise 1 - cosine of two (R, d) stacks. A zero vector (a degenerate task: one label, identical
    outputs) has cosine 0 with a real task, but two degenerate tasks are the same task: distance 0."""
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = np.einsum("ij,ij->i", a, b)
    ok = (na > 0) & (nb > 0)
    cos = np.where(ok, dot / np.where(ok, na * nb, 1.0), np.where((na == 0) & (nb == 0), 1.0, 0.0))
    return 1.0 - np.clip(cos, -1.0, 1.0)


class _Groups:
    """Additive statistics of random groups of the texts, for both runs (float32, like the core's
    own per-piece accumulation): groups are padded with zero rows to one size, so every group's
    FᵀF, FᵀY and YᵀY come from one batched matrix product."""

    def __init__(self, f: np.ndarray, ys: tuple[np.ndarray, np.ndarray], rng: np.random.Generator):
        n, h = f.shape
        parts = np.array_split(rng.permutation(n), min(n, GROUPS))
        self.k, size = len(parts), len(parts[0])
        idx = np.full((self.k, size), n)  # index n is the zero row
        for g, p in enumerate(parts):
            idx[g, : len(p)] = p
        fp = np.concatenate([f, np.zeros((1, h), np.float32)])[idx]  # (k, size, h)
        self.n = np.array([len(p) for p in parts], dtype=np.float64)
        self.sum_f = fp.sum(axis=1, dtype=np.float64)
        ft = fp.transpose(0, 2, 1)
        self.ff = (ft @ fp).reshape(self.k, h * h)
        self.sum_y, self.fy, self.yy = [], [], []
        for y in ys:
            c = y.shape[1]
            yp = np.concatenate([y.astype(np.float32), np.zeros((1, c), np.float32)])[idx]
            self.sum_y.append(yp.sum(axis=1, dtype=np.float64))
            self.fy.append((ft @ yp).reshape(self.k, h * c))
            self.yy.append((yp.transpose(0, 2, 1) @ yp).reshape(self.k, c * c))


@dataclass
class _Batch:
    """Statistics of R resamples: n (R,), sum_f (R, h), ff (R, h, h) shared by every output set, and
    per output set sum_y (R, c), fy (R, h, c), yy (R, c, c); all float64."""

    n: np.ndarray
    sum_f: np.ndarray
    ff: np.ndarray
    sum_y: list[np.ndarray]
    fy: list[np.ndarray]
    yy: list[np.ndarray]

    def stats(self, r: int, j: int, sur: Surrogate, mode: str) -> TaskStats:
        return TaskStats(
            sur.fingerprint,
            mode,
            None,
            int(self.n[r]),
            self.sum_f[r],
            self.sum_y[j][r],
            self.ff[r],
            self.fy[j][r],
            self.yy[j][r],
        )


def _resample(g: _Groups, counts: np.ndarray, swap: np.ndarray, h: int) -> _Batch:
    """Statistics of R resamples (``counts``: (R, k) group weights). Output sets: 0 baseline,
    1 current, 2 and 3 the two halves of the pooled answers (``swap``: (R, k), 1 where a group's
    answers change sides)."""
    r, c = counts.shape[0], g.sum_y[0].shape[1]
    keep, moved = counts * (1 - swap), counts * swap
    sum_y, fy, yy = [], [], []
    for a, b in ((counts, 0 * counts), (0 * counts, counts), (keep, moved), (moved, keep)):
        # output set = a-weighted baseline answers + b-weighted current answers
        a32, b32 = a.astype(np.float32), b.astype(np.float32)
        sum_y.append(a @ g.sum_y[0] + b @ g.sum_y[1])
        fy.append((a32 @ g.fy[0] + b32 @ g.fy[1]).astype(np.float64).reshape(r, h, c))
        yy.append((a32 @ g.yy[0] + b32 @ g.yy[1]).astype(np.float64).reshape(r, c, c))
    return _Batch(
        n=counts @ g.n,
        sum_f=counts @ g.sum_f,
        ff=(counts.astype(np.float32) @ g.ff).astype(np.float64).reshape(r, h, h),
        sum_y=sum_y,
        fy=fy,
        yy=yy,
    )


def _bootstrap(
    sur: Surrogate, mode: str, g: _Groups, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Shift and noise floor of ``n_boot`` resamples of the groups."""
    h = sur.features
    shifts, noises = np.empty(n_boot), np.empty(n_boot)
    uniform = np.full(g.k, 1.0 / g.k)
    for start in range(0, n_boot, _ROUNDS_PER_BATCH):
        r = min(_ROUNDS_PER_BATCH, n_boot - start)
        counts = rng.multinomial(g.k, uniform, size=r).astype(np.float64)
        swap = rng.integers(0, 2, size=(r, g.k)).astype(np.float64)
        batch = _resample(g, counts, swap, h)
        if sur.method == "operator":
            base, cur, half_a, half_b = _operator_embeddings(
                batch, (0, 1, 2, 3), mode, sur.ridge, sur.seed, sur.dim
            )
        else:
            base, cur, half_a, half_b = (
                np.stack([_embedding_vector(sur, batch.stats(i, j, sur, mode)) for i in range(r)])
                for j in range(4)
            )
        shifts[start : start + r] = _distances(base, cur)
        noises[start : start + r] = _distances(half_a, half_b)
    return shifts, noises


# -- the operator estimator, batched (mirrors `estimate` in rust/surrogate.rs) -------------------------
_DEGENERATE_REL = 1e-4


def _operator_embeddings(
    s: _Batch, outputs: tuple[int, ...], mode: str, ridge: float, seed: int, dim: int
) -> list[np.ndarray]:
    """The operator estimator read out (unnormalised) for R resamples: one (R, dim) array per output
    set in ``outputs``. The ridge solve is shared (the inputs are the same); degenerate resamples
    give zero rows, as in the core."""
    r, h = s.sum_f.shape
    n = s.n[:, None]
    mf = s.sum_f / n
    a = s.ff / n[:, :, None]  # (R, h, h): later steps work in place (these passes bound the loop)
    second_f = np.einsum("rii->r", a) / h
    for k in range(r):  # Σ_F, one outer product at a time (no (R, h, h) temporary)
        a[k] -= np.outer(mf[k], mf[k])
    tf = np.einsum("rii->r", a) / h
    ok = (s.n >= 2) & _varies(tf, second_f)
    np.einsum("rii->ri", a)[...] += (ridge * tf)[:, None]
    a[~ok] = np.eye(h)  # never used: their rows are zeroed below
    crosses, sigmas, cs = [], [], []
    for j in outputs:
        my = s.sum_y[j] / n
        cross = s.fy[j] / n[:, :, None] - mf[:, :, None] * my[:, None, :]
        sigma_y = s.yy[j] / n[:, :, None] - my[:, :, None] * my[:, None, :]
        c = my.shape[1]
        if mode == "label":  # rows sum to 1: the last column is redundant (see the Rust docs)
            c -= 1
            cross, sigma_y = cross[:, :, :c], sigma_y[:, :c, :c]
        crosses.append(cross)
        sigmas.append(sigma_y)
        cs.append(c)
    rhs = np.ascontiguousarray(np.concatenate(crosses, axis=2))
    w_all = rhs  # no columns: every output set is a single label (degenerate)
    if rhs.shape[2]:
        w_all = _core.solve_spd_batch(np.ascontiguousarray(a), rhs, 1).reshape(rhs.shape)  # Cholesky, in Rust
    sketch = _readout(seed, h, dim, mode)
    out, col = [], 0
    for sigma_y, c, j in zip(sigmas, cs, outputs, strict=True):
        w = w_all[:, :, col : col + c]
        col += c
        if c == 0:
            out.append(np.zeros((r, dim)))
            continue
        ty = np.trace(sigma_y, axis1=1, axis2=2) / c
        second_y = np.trace(s.yy[j][:, :c, :c], axis1=1, axis2=2) / (c * s.n)
        good = ok & _varies(ty, second_y)
        if mode == "text":
            acc = sketch.apply(w.reshape(r, h * h))
        else:
            reg = sigma_y + (1e-9 * np.where(good, ty, 1.0))[:, None, None] * np.eye(c)
            reg[~good] = np.eye(c)
            ws = np.swapaxes(np.linalg.solve(reg, np.swapaxes(w, 1, 2)), 1, 2)  # W Σ_Y⁻¹, (R, h, c)
            # M = W Σ_Y⁻¹ Wᵀ - (tr/h)·I read out entry by entry, never formed (rust/bootstrap.rs).
            acc = _core.sketch_triangles(
                np.ascontiguousarray(ws), np.ascontiguousarray(w), sketch.pos, sketch.weight, dim, 1
            ).reshape(r, dim)
        out.append(np.where(good[:, None], acc, 0.0))
    return out


def _varies(var: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.isfinite(var) & (second > 0) & (var > _DEGENERATE_REL * second)


# -- the read-out (mirrors `readout` in rust/sketch.rs, from the hashes specified in rust/hash.rs) -----
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_DOMAIN_READOUT = 2
_DOMAIN_SCATTER = 3


def _fmix64(k: np.ndarray) -> np.ndarray:
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xFF51AFD7ED558CCD)
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xC4CEB9FE1A85EC53)
    return k ^ (k >> np.uint64(33))


def _derive(seed: int, domain: int, index: np.ndarray) -> np.ndarray:
    head = _fmix64(np.array([seed ^ ((domain * _GOLDEN) & _MASK)], dtype=np.uint64))
    return _fmix64(head ^ index.astype(np.uint64))


class _SplitMix64:
    def __init__(self, state: int) -> None:
        self.state = state

    def next(self) -> int:
        self.state = (self.state + _GOLDEN) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)


class _Sketch:
    """The read-out as a sparse map: value k goes to position pos[k] with weight weight[k]. In label
    mode the values are the upper triangle of the estimate, row by row, and the weight includes the
    √2 of off-diagonal entries (which keeps the Frobenius product)."""

    def __init__(self, pos: np.ndarray, weight: np.ndarray, dim: int) -> None:
        self.pos, self.weight, self.dim = pos, weight, dim
        self._where: dict[int, np.ndarray] = {}

    def apply(self, values: np.ndarray) -> np.ndarray:
        """(R, len(pos)) -> (R, dim), unnormalised (only cosines are taken)."""
        r = values.shape[0]
        if r not in self._where:  # row r's buckets are offset by r·dim: one bincount for all rows
            self._where[r] = (self.pos[None, :].astype(np.intp) + self.dim * np.arange(r)[:, None]).ravel()
        values = values * self.weight
        acc = np.bincount(self._where[r], weights=values.ravel(), minlength=r * self.dim)
        return acc.reshape(r, self.dim)


@lru_cache(maxsize=8)
def _readout(seed: int, h: int, dim: int, mode: str) -> _Sketch:
    length = h * (h + 1) // 2 if mode == "label" else h * h
    pos, sign = _readout_map(seed, length, dim)
    if mode == "label":
        iu0, iu1 = np.triu_indices(h)  # row-major, as the core lays out the triangle
        sign = sign * np.where(iu0 == iu1, 1.0, math.sqrt(2.0))
    return _Sketch(pos.astype(np.uint32), np.ascontiguousarray(sign), dim)


def _readout_map(seed: int, length: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Position and sign of each of ``length`` values in the core's read-out to ``dim``."""
    if length <= dim:  # seeded partial Fisher-Yates scatter with signs
        rng = _SplitMix64(int(_derive(seed, _DOMAIN_SCATTER, np.array([length]))[0]))
        perm = list(range(dim))
        pos, sign = np.empty(length, dtype=np.intp), np.empty(length)
        for i in range(length):
            j = i + ((rng.next() * (dim - i)) >> 64)
            perm[i], perm[j] = perm[j], perm[i]
            pos[i] = perm[i]
            sign[i] = -1.0 if rng.next() & 1 else 1.0
    else:  # count sketch
        x = _derive(seed, _DOMAIN_READOUT, np.arange(length, dtype=np.uint64))
        pos = (((x >> np.uint64(32)) * np.uint64(dim)) >> np.uint64(32)).astype(np.intp)
        sign = np.where((x & np.uint64(1)) == 1, -1.0, 1.0)

    return pos, sign
