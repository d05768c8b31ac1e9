"""A self-contained HTML report of a task space: one file that opens offline.

The page holds inline CSS, inline SVG figures and a few lines of inline JavaScript (sortable tables);
nothing is fetched from anywhere. Sections, in order:

* **overview** — what the space holds (surrogate fingerprint, mode, counts);
* **heatmap** — cosine similarity of datasets x models (or of all entries when one kind is
  missing), rows and columns each in average-linkage clustering order, so similar tasks sit together;
* **map** — a 2-D map of the task space: the first two principal components of the unit embedding
  vectors (numpy SVD), datasets as squares and models as circles;
* **selection** — for each dataset, its candidate models/prompts ranked by cosine similarity
  (with their measured accuracy, selected / oracle and Spearman's rho when accuracies are given);
* **usage** — probe usage per model: calls, cached, errors, retries, 429s, tokens, cost, latency;
* **drift** — each model's drift checks (``taskspace drift``), oldest first: MTE shift and noise
  floor with their intervals, and the verdict.

A section is a function ``ReportData -> str | None`` (an HTML fragment, or ``None`` to leave it
out); :func:`build_report` renders any sequence of them, so another section is one more function in
the list::

    html = build_report(data, sections=[*DEFAULT_SECTIONS, my_section])

Example:
    >>> import taskspace as ts
    >>> from taskspace.datasets import builtin as datasets
    >>> from taskspace.report import build_report, report_data
    >>> sur = ts.Surrogate(features=64, dim=256)
    >>> space = ts.TaskSpace(sur)
    >>> for name in ("movie_sentiment", "news_topic"):
    ...     space.add(sur.dataset_embedding(*datasets.load(name), name=name, mode="text"))
    >>> html = build_report(report_data(space, title="two datasets"))
    >>> html.startswith("<!DOCTYPE html>") and "<svg" in html and "http" not in html.split("</style>")[0]
    True
"""

from __future__ import annotations

import html as _html
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from taskspace.evaluation.metrics import spearman

if TYPE_CHECKING:
    from taskspace.probing.result import ProbeResult

__all__ = [
    "DEFAULT_SECTIONS",
    "ReportData",
    "SelectionRow",
    "build_report",
    "cluster_order",
    "pca_2d",
    "report_data",
    "spearman",
    "write_report",
]

#: Heatmaps larger than this (rows or columns) show the first entries in clustered order only.
MAX_HEATMAP = 80
#: Maps with more points than this label only the datasets.
MAX_MAP_LABELS = 60
#: Maps show at most this many points (every dataset, and models evenly spread over the rest).
MAX_MAP_POINTS = 1500
#: Selection tables list at most this many candidates per dataset.
MAX_CANDIDATES_SHOWN = 25


@dataclass(frozen=True)
class SelectionRow:
    """One candidate of one dataset: its cosine with the dataset and, if known, its accuracy."""

    candidate: str
    cosine: float
    accuracy: float | None = None


@dataclass
class ReportData:
    """Everything a report shows; sections read from it.

    Attributes:
        title: the page title.
        names, kinds: the entries (``kinds[i]`` is ``"dataset"`` or ``"model"``).
        vectors: ``(n, dim)`` float32 unit rows (zero rows for degenerate entries).
        fingerprint, mode: of the space's surrogate.
        selection: dataset name -> its candidates ranked by cosine, best first.
        usage: one dict per probed model (keys of ``Usage.as_dict`` plus ``model``, ``failed``,
            ``unparseable``, ``skipped``), and ``usage_total`` for the whole run.
        notes: short paragraphs shown under the overview (how the data was made, caveats).
        extra: anything further sections need.
    """

    title: str
    names: list[str]
    kinds: list[str]
    vectors: np.ndarray
    fingerprint: str = ""
    mode: str = ""
    selection: dict[str, list[SelectionRow]] = field(default_factory=dict)
    usage: list[dict[str, Any]] = field(default_factory=list)
    usage_total: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[int]:
        return [i for i, k in enumerate(self.kinds) if k == kind]


Section = Callable[[ReportData], "str | None"]


# -- numerics ------------------------------------------------------------------------------------


def cluster_order(vectors: np.ndarray) -> list[int]:
    """Leaf order of average-linkage agglomerative clustering under cosine distance.

    Deterministic (ties go to the lower index); O(n³), meant for the few hundred rows a figure shows.

    Example:
        >>> import numpy as np
        >>> from taskspace.report import cluster_order
        >>> x = np.array([[1, 0], [0, 1], [0.99, 0.1], [0.1, 0.99]], dtype=np.float32)
        >>> order = cluster_order(x)
        >>> abs(order.index(0) - order.index(2)) == 1 and abs(order.index(1) - order.index(3)) == 1
        True
    """
    x = np.asarray(vectors, dtype=np.float64)
    n = len(x)
    if n <= 2:
        return list(range(n))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    dist = 1.0 - unit @ unit.T
    np.fill_diagonal(dist, np.inf)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    size = np.ones(n)
    for _ in range(n - 1):
        flat = int(np.argmin(dist))
        a, b = divmod(flat, n)
        a, b = min(a, b), max(a, b)
        # Lance-Williams update for average linkage: the merged cluster's mean distance.
        merged = (size[a] * dist[a] + size[b] * dist[b]) / (size[a] + size[b])
        dist[a, :] = merged
        dist[:, a] = merged
        dist[b, :] = np.inf
        dist[:, b] = np.inf
        dist[a, a] = np.inf
        size[a] += size[b]
        members[a] = members[a] + members.pop(b)
    (order,) = members.values()
    return order


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """The first two principal components of the rows (``(n, 2)``) and the share of variance each
    explains. Signs are fixed so that the largest-magnitude coordinate of each axis is positive."""
    x = np.asarray(vectors, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros((0, 2)), (0.0, 0.0)
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    coords = np.zeros((n, 2))
    k = min(2, len(s))
    coords[:, :k] = u[:, :k] * s[:k]
    for j in range(k):
        if coords[np.argmax(np.abs(coords[:, j])), j] < 0:
            coords[:, j] *= -1
    total = float(np.sum(s**2))
    share = [float(s[j] ** 2 / total) if total > 0 and j < len(s) else 0.0 for j in range(2)]
    return coords, (share[0], share[1])


def selection_summary(rows: Sequence[SelectionRow]) -> dict[str, Any]:
    """For a ranking with accuracies: the selected candidate, the oracle (most accurate), selected /
    oracle accuracy and Spearman's rho between cosine and accuracy. Empty without accuracies."""
    known = [(r, float(r.accuracy)) for r in rows if r.accuracy is not None]
    if not known:
        return {}
    selected, selected_acc = known[0]
    best = max(range(len(known)), key=lambda k: (known[k][1], -k))  # ties: the higher-ranked one
    oracle, oracle_acc = known[best]
    return {
        "selected": selected.candidate,
        "selected_accuracy": selected_acc,
        "oracle": oracle.candidate,
        "oracle_accuracy": oracle_acc,
        "selected_over_oracle": selected_acc / oracle_acc if oracle_acc > 0 else None,
        "spearman": spearman([r.cosine for r, _ in known], [a for _, a in known]),
    }


# -- data ----------------------------------------------------------------------------------------


def report_data(
    space: Any,
    *,
    title: str = "taskspace report",
    outputs: ProbeResult | None = None,
    accuracy: Mapping[str, Mapping[str, float]] | None = None,
    candidates: Mapping[str, Sequence[str]] | None = None,
    notes: Sequence[str] = (),
) -> ReportData:
    """Collect a report's data from a :class:`~taskspace.TaskSpace`.

    Args:
        space: the task space.
        title: the page title.
        outputs: a :class:`~taskspace.probing.result.ProbeResult` (a probe run, or its outputs file
            read with :meth:`~taskspace.probing.result.ProbeResult.load`) for the usage section.
        accuracy: dataset -> candidate -> measured accuracy, shown next to the ranking.
        candidates: dataset -> the candidates to rank for it (default: every model entry).
        notes: paragraphs shown under the overview.
    """
    names = space.names()
    kinds = [space.info(n).kind for n in names]
    dim = space.surrogate.dim
    vectors = np.stack([space.get(n).vector for n in names]) if names else np.zeros((0, dim), np.float32)
    selection: dict[str, list[SelectionRow]] = {}
    has_models = "model" in kinds
    for d in (n for n, k in zip(names, kinds, strict=True) if k == "dataset"):
        if not has_models or not np.any(vectors[names.index(d)]):
            continue
        cands = None if candidates is None else candidates.get(d)
        if candidates is not None and not cands:
            continue
        acc = (accuracy or {}).get(d, {})
        selection[d] = [SelectionRow(c, s, acc.get(c)) for c, s in space.select(d, cands)]
    # Drift checks stored by `taskspace drift` / TaskSpace.record_drift: (model, when, DriftReport).
    drift = space.drift_history() if hasattr(space, "drift_history") else []
    usage, total = _usage_rows(outputs) if outputs is not None else ([], {})
    return ReportData(
        title=title,
        names=names,
        kinds=kinds,
        vectors=vectors,
        fingerprint=space.fingerprint,
        mode=space.mode or "",
        selection=selection,
        usage=usage,
        usage_total=total,
        notes=list(notes),
        extra={"drift": drift},
    )


def _usage_rows(result: ProbeResult) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-model usage rows and the run's totals (with ``elapsed``) of a probe result."""
    rows = [
        {
            "model": m.name,
            **m.usage.as_dict(),
            "failed": m.n_failed,
            "unparseable": m.n_unparseable,
            "skipped": m.n_skipped,
        }
        for m in result.models.values()
    ]
    return rows, {**result.usage.as_dict(), "elapsed": result.elapsed}


# -- rendering -----------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; --fg: #1d232a; --muted: #5b6570; --line: #d9dee3; --accent: #1f5f99; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1180px; padding: 24px 28px 60px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 34px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
p.caption, .muted { color: var(--muted); }
p.caption { margin: 4px 0 10px; max-width: 900px; }
.figure { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
table { border-collapse: collapse; margin: 6px 0 14px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: left; }
th { background: #f3f5f7; cursor: pointer; user-select: none; white-space: nowrap; }
td.num, th.num { text-align: right; }
td.name { white-space: nowrap; }
tr.best td { background: #eef6ee; }
tr.drift td { background: #fbeaea; }
tr.top td:first-child { font-weight: 600; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; }
.legend span { display: inline-block; margin-right: 14px; }
code { background: #f3f5f7; padding: 0 3px; border-radius: 3px; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
"""

# Sortable tables; sets a marker the headless-browser test reads. No external resources.
_JS = """
(function () {
  function key(cell) {
    var t = cell.getAttribute('data-v') || cell.textContent.trim();
    var x = parseFloat(t);
    return isNaN(x) ? t.toLowerCase() : x;
  }
  document.querySelectorAll('table.sortable th').forEach(function (th, col) {
    th.addEventListener('click', function () {
      var table = th.closest('table'), body = table.tBodies[0];
      var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
      var asc = th.getAttribute('data-sort') !== 'asc';
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a.cells[idx]), y = key(b.cells[idx]);
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
      th.setAttribute('data-sort', asc ? 'asc' : 'desc');
    });
  });
  document.documentElement.setAttribute('data-report-ready', String(document.querySelectorAll('svg').length));
})();
"""


def _e(x: Any) -> str:
    return _html.escape(str(x), quote=True)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _color(v: float, scale: float) -> str:
    """Diverging colour: blue (negative) — white (0) — red (positive)."""
    t = 0.0 if scale <= 0 else max(-1.0, min(1.0, v / scale))
    if t >= 0:
        r, g, b = 255, int(255 - 160 * t), int(255 - 190 * t)
    else:
        r, g, b = int(255 + 200 * t), int(255 + 120 * t), 255
    return f"#{r:02x}{g:02x}{b:02x}"


def _short(name: str, limit: int = 34) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def overview_section(data: ReportData) -> str:
    """What the space holds."""
    n_d, n_m = len(data.of_kind("dataset")), len(data.of_kind("model"))
    notes = "".join(f"<p class='caption'>{n}</p>" for n in data.notes)
    return (
        "<section id='overview'><dl class='facts'>"
        f"<dt>entries</dt><dd>{n_d} datasets (DTEs), {n_m} models/prompts (MTEs)</dd>"
        f"<dt>surrogate</dt><dd><code>{_e(data.fingerprint)}</code>, {_e(data.mode)} mode, "
        f"{data.vectors.shape[1] if data.vectors.ndim == 2 else 0} dimensions</dd>"
        f"<dt>generated</dt><dd>{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}</dd>"
        f"</dl>{notes}</section>"
    )


def _strongest(v: np.ndarray, rows: list[int], cols: list[int]) -> tuple[list[int], list[int]]:
    """At most MAX_HEATMAP rows and columns: those with the largest |cosine| to the other side
    (blockwise, so a large space never needs its full similarity matrix), in their given order."""

    def top(a: list[int], b: list[int]) -> list[int]:
        if len(a) <= MAX_HEATMAP:
            return a
        va, same = v[a], a == b
        best = np.zeros(len(a))
        for start in range(0, len(b), 1024):
            block = np.abs(va @ v[b[start : start + 1024]].T)
            if same:  # an entry is not its own evidence
                k = np.arange(start, start + block.shape[1])
                block[k, k - start] = 0.0
            best = np.maximum(best, block.max(axis=1))
        keep = np.sort(np.argsort(-best, kind="stable")[:MAX_HEATMAP])
        return [a[k] for k in keep]

    new_rows, new_cols = top(rows, cols), top(cols, rows)
    return new_rows, new_cols


def heatmap_section(data: ReportData) -> str | None:
    """Cosine similarity heatmap, datasets x models (or all x all), in clustered order."""
    rows, cols = data.of_kind("dataset"), data.of_kind("model")
    what = "datasets (rows) &times; models and prompts (columns)"
    if not rows or not cols:
        rows = cols = list(range(len(data.names)))
        what = "all entries"
    if not rows:
        return None
    v = data.vectors
    n_rows, n_cols = len(rows), len(cols)
    rows, cols = _strongest(v, rows, cols)
    rows = [rows[i] for i in cluster_order(v[rows])]
    cols = [cols[i] for i in cluster_order(v[cols])]
    sims = np.clip(v[rows] @ v[cols].T, -1.0, 1.0)
    if rows == cols:
        off = sims[~np.eye(len(rows), dtype=bool)]
        scale = float(np.max(np.abs(off))) if off.size else 1.0
    else:
        scale = float(np.max(np.abs(sims))) if sims.size else 1.0
    scale = scale or 1.0
    cell = 28 if len(cols) <= 24 else 22 if len(cols) <= 40 else 14
    left = 8 + 7 * max(len(_short(data.names[i])) for i in rows)
    top = 10 + int(5.2 * max(len(_short(data.names[j])) for j in cols))
    width = left + cell * len(cols) + 70
    height = top + cell * len(rows) + 20
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='heatmap' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='similarity heatmap'>"
    ]
    for a, j in enumerate(cols):
        x = left + a * cell + cell / 2
        parts.append(
            f"<text x='{x:.1f}' y='{top - 6}' font-size='11' transform='rotate(-55 {x:.1f} {top - 6})'>"
            f"{_e(_short(data.names[j]))}</text>"
        )
    for r, i in enumerate(rows):
        y = top + r * cell
        parts.append(
            f"<text x='{left - 6}' y='{y + cell * 0.68:.1f}' font-size='11' text-anchor='end'>"
            f"{_e(_short(data.names[i]))}</text>"
        )
        for a, j in enumerate(cols):
            s = float(sims[r, a])
            parts.append(
                f"<rect x='{left + a * cell}' y='{y}' width='{cell - 1}' height='{cell - 1}' "
                f"fill='{_color(s, scale)}'><title>{_e(data.names[i])} &times; {_e(data.names[j])}: {s:.3f}</title></rect>"
            )
    # colour bar
    bx = left + cell * len(cols) + 20
    for k in range(21):
        t = 1 - k / 10
        parts.append(
            f"<rect x='{bx}' y='{top + k * 6}' width='14' height='6' fill='{_color(t * scale, scale)}'/>"
        )
    parts.append(f"<text x='{bx + 18}' y='{top + 8}' font-size='10'>{scale:+.2f}</text>")
    parts.append(f"<text x='{bx + 18}' y='{top + 64}' font-size='10'>0</text>")
    parts.append(f"<text x='{bx + 18}' y='{top + 126}' font-size='10'>{-scale:+.2f}</text>")
    parts.append("</svg>")
    cut = ""
    if len(rows) < n_rows or len(cols) < n_cols:
        cut = (
            f" Shown: {len(rows)} of {n_rows} rows and {len(cols)} of {n_cols} columns, those with the largest "
            "similarities to the other side."
        )
    return (
        "<section id='heatmap'><h2>Similarity heatmap</h2>"
        f"<p class='caption'>Cosine similarity of the task embeddings: {what}. Rows and columns are each "
        "ordered by average-linkage clustering (cosine distance), so similar tasks sit together. Red is "
        f"similar, blue dissimilar; the colour scale is ±{scale:.2f}. Hover a cell for its value.{cut}</p>"
        f"<div class='figure'>{''.join(parts)}</div></section>"
    )


_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")


def _group(name: str, kind: str) -> str:
    if kind == "dataset":
        return "dataset"
    return name.split("/", 1)[0] if "/" in name else "model"


def _map_points(data: ReportData) -> tuple[list[int], str]:
    """The entries a map shows (non-zero vectors; past :data:`MAX_MAP_POINTS`, every dataset and
    models evenly spaced in name order) and a note saying how many were left out."""
    live = [i for i in range(len(data.names)) if np.any(data.vectors[i])]
    if len(live) <= MAX_MAP_POINTS:
        return live, ""
    ds = [i for i in live if data.kinds[i] == "dataset"]
    ms = [i for i in live if data.kinds[i] != "dataset"]
    room = max(0, MAX_MAP_POINTS - len(ds))
    picked = [ms[int(k)] for k in np.linspace(0, len(ms) - 1, room)] if room and ms else []
    note = f" Shown: {len(ds[:MAX_MAP_POINTS]) + len(picked)} of {len(live)} entries."
    return sorted(set(ds[:MAX_MAP_POINTS]) | set(picked)), note


def _map_legend(groups: Sequence[str], colour: Mapping[str, str], w: int) -> list[str]:
    """The map's legend in its right margin: a square for datasets, a circle per model group."""
    parts = []
    ly = 24
    for g in ["dataset", *groups]:
        shape = (
            f"<rect x='{w - 140}' y='{ly - 9}' width='10' height='10' fill='{colour[g]}' stroke='#000'/>"
            if g == "dataset"
            else f"<circle cx='{w - 135}' cy='{ly - 4}' r='5' fill='{colour[g]}'/>"
        )
        parts.append(f"{shape}<text x='{w - 122}' y='{ly}' font-size='11'>{_e(_short(g, 18))}</text>")
        ly += 16
    return parts


def map_section(data: ReportData) -> str | None:
    """A 2-D PCA map of every entry."""
    live, shown_note = _map_points(data)
    if len(live) < 3:
        return None
    coords, share = pca_2d(data.vectors[live])
    # Most entries of a high-dimensional task space are nearly orthogonal and crowd the centre; a
    # square-root stretch of the distance from the centre spreads them while keeping directions
    # and the order of distances.
    radius = np.linalg.norm(coords, axis=1, keepdims=True)
    coords = np.divide(coords, np.sqrt(radius), out=np.zeros_like(coords), where=radius > 0)
    w, h, pad = 820, 560, 40
    plot_w = w - 2 * pad - 170
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    xy = pad + (coords - lo) / span * np.array([plot_w, h - 2 * pad])
    xy[:, 1] = h - xy[:, 1]
    groups = sorted({_group(data.names[i], data.kinds[i]) for i in live} - {"dataset"})
    colour = {g: _PALETTE[k % len(_PALETTE)] for k, g in enumerate(groups)}
    colour["dataset"] = "#d62728"
    label_all = len(live) <= MAX_MAP_LABELS
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='taskmap' width='{w}' height='{h}' viewBox='0 0 {w} {h}' "
        "role='img' aria-label='2-D map of the task space'>",
        f"<rect x='1' y='1' width='{w - 2}' height='{h - 2}' fill='#fbfcfd' stroke='#d9dee3'/>",
        f"<text x='{pad + plot_w / 2 - 60:.0f}' y='{h - 8}' font-size='11' fill='#5b6570'>PC 1 ({share[0]:.0%} of variance)</text>",
        f"<text x='14' y='{h / 2:.0f}' font-size='11' fill='#5b6570' transform='rotate(-90 14 {h / 2:.0f})'>"
        f"PC 2 ({share[1]:.0%})</text>",
    ]
    marks, labels = [], []
    taken: list[tuple[float, float, float, float]] = []
    # Datasets first, so their labels win when labels would overlap.
    for k in sorted(range(len(live)), key=lambda k: data.kinds[live[k]] != "dataset"):
        i, (x, y) = live[k], xy[k]
        name, kind = data.names[i], data.kinds[i]
        c = colour[_group(name, kind)]
        tip = f"<title>{_e(name)} ({kind})</title>"
        if kind == "dataset":
            marks.append(
                f"<rect x='{x - 6:.1f}' y='{y - 6:.1f}' width='12' height='12' fill='{c}' stroke='#000'>{tip}</rect>"
            )
        else:
            marks.append(
                f"<circle cx='{x:.1f}' cy='{y:.1f}' r='5' fill='{c}' fill-opacity='0.85'>{tip}</circle>"
            )
        text = _short(name, 28)
        box = (x + 7, y - 8, x + 9 + 5.6 * len(text), y + 5)
        free = not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken)
        if (label_all or kind == "dataset") and free:
            taken.append(box)
            weight = " font-weight='600'" if kind == "dataset" else ""
            labels.append(f"<text x='{x + 8:.1f}' y='{y + 4:.1f}' font-size='10'{weight}>{_e(text)}</text>")
    parts.extend(marks[::-1])  # datasets drawn last, on top
    parts.extend(labels)
    parts.extend(_map_legend(groups, colour, w))
    parts.append("</svg>")
    return (
        "<section id='map'><h2>Map of the task space</h2>"
        "<p class='caption'>The first two principal components of the unit-length task embeddings "
        f"(together {share[0] + share[1]:.0%} of the variance), with distances from the centre square-root "
        "scaled so the crowd of nearly unrelated tasks near the centre spreads out: a rough guide only, the "
        "heatmap shows the exact cosines. Squares are datasets, circles models/prompts, coloured by the part of "
        "their name before the first '/'; labels that would overlap are left out (hover a point for its "
        f"name).{shown_note}</p>"
        f"<div class='figure'>{''.join(parts)}</div></section>"
    )


def selection_section(data: ReportData) -> str | None:
    """Per dataset: candidates ranked by cosine, with accuracy when known."""
    if not data.selection:
        return None
    blocks = []
    summary_rows = []
    for dataset, rows in data.selection.items():
        s = selection_summary(rows)
        has_acc = bool(s)
        head = "<tr><th class='num'>rank</th><th>candidate</th><th class='num'>cosine</th>"
        head += "<th class='num'>accuracy</th></tr>" if has_acc else "</tr>"
        body = []
        for k, r in enumerate(rows):
            if k >= MAX_CANDIDATES_SHOWN and not (has_acc and r.candidate == s["oracle"]):
                continue
            cls = []
            if k == 0:
                cls.append("top")
            if has_acc and r.candidate == s["oracle"]:
                cls.append("best")
            attr = f" class='{' '.join(cls)}'" if cls else ""
            acc = f"<td class='num'>{_fmt(r.accuracy)}</td>" if has_acc else ""
            body.append(
                f"<tr{attr}><td class='num'>{k + 1}</td><td>{_e(r.candidate)}</td>"
                f"<td class='num'>{r.cosine:.4f}</td>{acc}</tr>"
            )
        if len(rows) > MAX_CANDIDATES_SHOWN:
            body.append(
                f"<tr><td></td><td class='muted'>{len(rows) - len(body)} more candidates not shown</td></tr>"
            )
        line = f"best by the task space: <b>{_e(rows[0].candidate)}</b>"
        if has_acc:
            ratio = s["selected_over_oracle"]
            line += (
                f" (accuracy {_fmt(s['selected_accuracy'])}); most accurate: <b>{_e(s['oracle'])}</b> "
                f"({_fmt(s['oracle_accuracy'])}); selected / oracle {_fmt(ratio, 2)}; Spearman &rho;(cosine, "
                f"accuracy) {_fmt(s['spearman'], 2)}"
            )
            summary_rows.append((dataset, s))
        blocks.append(
            f"<h3>{_e(dataset)}</h3><p class='caption'>{line}</p>"
            f"<table class='sortable'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
        )
    summary = ""
    if summary_rows:
        ratios = [s["selected_over_oracle"] for _, s in summary_rows if s["selected_over_oracle"] is not None]
        rhos = [s["spearman"] for _, s in summary_rows if s["spearman"] is not None]
        summary = (
            "<p class='caption'>Accuracy is measured on labelled data the ranking did not see; the green "
            "row is the most accurate candidate. "
            f"Mean selected / oracle accuracy: <b>{_fmt(float(np.mean(ratios)) if ratios else None, 2)}</b>; "
            f"mean Spearman &rho;: <b>{_fmt(float(np.mean(rhos)) if rhos else None, 2)}</b>.</p>"
        )
    return (
        "<section id='selection'><h2>Prompt and model selection</h2>"
        "<p class='caption'>For each dataset, its candidate models/prompts ranked by the cosine similarity of "
        "their task embedding (MTE) with the dataset's (DTE); the first is the one the task space selects.</p>"
        f"{summary}{''.join(blocks)}</section>"
    )


_USAGE_COLUMNS = (
    ("model", "model"),
    ("calls", "calls"),
    ("ok", "ok"),
    ("cached", "cached"),
    ("errors", "errors"),
    ("failed", "failed inputs"),
    ("unparseable", "unparseable"),
    ("skipped", "skipped"),
    ("retries", "retries"),
    ("rate_limited", "429s"),
    ("total_tokens", "tokens"),
    ("cost", "cost"),
    ("latency_p50", "p50 latency (s)"),
)


def usage_section(data: ReportData) -> str | None:
    """Probe usage per model and in total."""
    if not data.usage:
        return None
    head = "".join(
        f"<th{'' if k == 'model' else ' class=num'}>{_e(label)}</th>" for k, label in _USAGE_COLUMNS
    )

    def cell(row: Mapping[str, Any], key: str) -> str:
        v = row.get(key)
        if key == "model":
            return f"<td class='name'>{_e(v)}</td>"
        digits = 4 if key in ("cost", "latency_p50") else 0
        text = _fmt(float(v), digits) if isinstance(v, (int, float)) and digits else _fmt(v)
        return f"<td class='num'>{text}</td>"

    body = "".join("<tr>" + "".join(cell(r, k) for k, _ in _USAGE_COLUMNS) + "</tr>" for r in data.usage)
    t = data.usage_total
    total = ""
    if t:
        total = (
            f"<p class='caption'>Whole run: {t.get('calls', 0)} calls ({t.get('cached', 0)} from the cache, "
            f"{t.get('errors', 0)} failed, {t.get('retries', 0)} retries, {t.get('rate_limited', 0)} rate-limited), "
            f"{t.get('total_tokens', 0)} tokens, cost {float(t.get('cost', 0.0)):.4f}, "
            f"{float(t.get('elapsed', 0.0)):.1f} s.</p>"
        )
    return (
        "<section id='usage'><h2>Probe usage</h2>"
        "<p class='caption'>Calls made to each model while probing (a call is an HTTP request with its retries, "
        "or a cache hit); tokens as the servers reported them; cost from the price table (0 without one).</p>"
        f"{total}<table class='sortable'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>"
    )


def drift_section(data: ReportData) -> str | None:
    """Each model's drift checks, oldest first (from ``data.extra["drift"]``)."""
    checks = data.extra.get("drift") or []
    if not checks:
        return None
    models: dict[str, list[Any]] = {}
    for model, when, report in checks:
        models.setdefault(model, []).append((when, report))
    blocks = []
    for model, rows in models.items():
        last = rows[-1][1]
        state = "DRIFTED" if last.drifted else "no drift"
        body = "".join(
            f"<tr{' class=drift' if r.drifted else ''}><td>{_e(f'{when:%Y-%m-%d %H:%M}')} UTC</td>"
            f"<td class='num'>{r.shift:.4f}</td><td class='num'>{r.shift_low:.4f}-{r.shift_high:.4f}</td>"
            f"<td class='num'>{r.noise_floor:.4f}</td><td class='num'>{r.noise_low:.4f}-{r.noise_high:.4f}</td>"
            f"<td class='num'>{r.n}</td><td>{'DRIFTED' if r.drifted else 'no drift'}</td></tr>"
            for when, r in rows
        )
        blocks.append(
            f"<h3>{_e(model)} <span class='muted'>— last check: {state}</span></h3>"
            "<table class='sortable'><thead><tr><th>checked</th><th class=num>shift</th>"
            "<th class=num>interval</th><th class=num>noise floor</th><th class=num>interval</th>"
            f"<th class=num>texts</th><th>verdict</th></tr></thead><tbody>{body}</tbody></table>"
        )
    return (
        "<section id='drift'><h2>Drift history</h2>"
        "<p class='caption'>Each check re-probed the model on its stored probe texts (never from the cache) "
        "and compared the answers with its baseline: shift = 1 - cosine of the two MTEs; noise floor = the "
        "shift an unchanged model shows; drifted when their intervals are disjoint (taskspace.embedding.drift).</p>"
        f"{''.join(blocks)}</section>"
    )


#: The sections of a report, in page order.
DEFAULT_SECTIONS: tuple[Section, ...] = (
    overview_section,
    heatmap_section,
    map_section,
    selection_section,
    usage_section,
    drift_section,
)


def build_report(data: ReportData, *, sections: Sequence[Section] = DEFAULT_SECTIONS) -> str:
    """The report as one HTML document (a string); sections returning ``None`` are left out."""
    body = "".join(part for section in sections if (part := section(data)))
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(data.title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(data.title)}</h1><p class='muted'>made by taskspace — datasets, models and prompts in one "
        f"vector space of tasks</p>{body}<script>{_JS}</script></body></html>\n"
    )


def write_report(path: str | os.PathLike[str], html: str) -> Path:
    """Write ``html`` to ``path`` atomically (a reader never sees half a file); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p
