"""The HTML report: its numerics (clustering, PCA, Spearman), its content, and how it renders in a real
headless Chromium (loads without errors, shows its figures)."""

from __future__ import annotations

import itertools
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import taskspace as ts
from taskspace.datasets import builtin as datasets
from taskspace.probing.result import ModelResult, ProbeResult, Usage
from taskspace.report import (
    DEFAULT_SECTIONS,
    ReportData,
    SelectionRow,
    build_report,
    cluster_order,
    pca_2d,
    report_data,
    spearman,
    write_report,
)

pytestmark = pytest.mark.timeout(120)


def test_cluster_order_puts_each_cluster_together() -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 32))
    labels = np.array([0, 1, 2] * 6)
    x = centres[labels] + 0.05 * rng.standard_normal((18, 32))
    order = cluster_order(x)
    assert sorted(order) == list(range(18))
    runs = [labels[i] for i in order]
    changes = sum(a != b for a, b in itertools.pairwise(runs))
    assert changes == 2, runs  # three contiguous blocks
    assert cluster_order(x) == order  # deterministic
    assert cluster_order(np.zeros((0, 4))) == [] and cluster_order(np.ones((1, 4))) == [0]


def test_pca_2d_finds_the_spread_directions() -> None:
    rng = np.random.default_rng(1)
    x = np.zeros((200, 10))
    x[:, 3] = 5 * rng.standard_normal(200)
    x[:, 7] = 2 * rng.standard_normal(200)
    x += 0.001 * rng.standard_normal((200, 10))
    coords, share = pca_2d(x)
    assert coords.shape == (200, 2)
    assert abs(np.corrcoef(coords[:, 0], x[:, 3])[0, 1]) > 0.999
    assert abs(np.corrcoef(coords[:, 1], x[:, 7])[0, 1]) > 0.99  # sample correlation mixes the two a little
    assert share[0] > share[1] > 0 and share[0] + share[1] <= 1 + 1e-9


def test_spearman_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(30), rng.standard_normal(30)
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    assert spearman(a, b) == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)  # ties
    assert spearman([1.0], [2.0]) is None and spearman([1, 1, 1], [1, 2, 3]) is None
    with pytest.raises(ValueError):
        spearman([1, 2], [1, 2, 3])


def small_space() -> ts.TaskSpace:
    sur = ts.Surrogate(features=64, dim=256)
    space = ts.TaskSpace(sur)
    for name in datasets.BUILTIN:
        space.add(sur.dataset_embedding(*datasets.load(name), name=name, mode="text"))
    texts, labels = datasets.load("movie_sentiment")
    flipped = ["negative" if y == "positive" else "positive" for y in labels]
    space.add(sur.model_embedding(texts, labels, name="sentiment/right", mode="text"))
    space.add(sur.model_embedding(texts, flipped, name="sentiment/flipped", mode="text"))
    texts, labels = datasets.load("news_topic")
    space.add(sur.model_embedding(texts, labels, name="topic/right", mode="text"))
    return space


def small_outputs() -> ProbeResult:
    usage = {"calls": 12, "ok": 10, "cached": 1, "errors": 1, "retries": 2, "rate_limited": 1,
             "prompt_tokens": 300, "completion_tokens": 12, "total_tokens": 312, "cost": 0.0042,
             "latency_p50": 0.05, "latency_p95": 0.2}  # fmt: skip
    model = ModelResult(
        "sentiment/right",
        "label",
        ("a", "b"),
        texts=["t"] * 12,
        text_pairs=None,
        outputs=["a"] * 12,
        usage=Usage.from_dict(usage),
        counts={"failed": 1, "unparseable": 0, "skipped": 0},
    )
    assert model.usage.as_dict() == usage  # what a loaded outputs file shows, unchanged
    return ProbeResult({model.name: model}, Usage.from_dict(usage), stop_reason=None, elapsed=1.5)


def test_report_usage_of_a_saved_and_loaded_result(tmp_path: Path) -> None:
    result = small_outputs()
    result.save(tmp_path / "outputs.jsonl")
    loaded = ProbeResult.load(tmp_path / "outputs.jsonl")
    with small_space() as space:
        direct, via_file = (report_data(space, outputs=r) for r in (result, loaded))
    assert direct.usage == via_file.usage and direct.usage_total == via_file.usage_total
    assert direct.usage[0]["failed"] == 1 and direct.usage_total["elapsed"] == 1.5


def demo_report(tmp_path: Path) -> Path:
    with small_space() as space:
        data = report_data(
            space,
            title="test <report> & co",
            outputs=small_outputs(),
            accuracy={"movie_sentiment": {"sentiment/right": 0.9, "sentiment/flipped": 0.1}},
            candidates={
                "movie_sentiment": ["sentiment/right", "sentiment/flipped"],
                "news_topic": ["topic/right"],
            },
        )
    return write_report(tmp_path / "report.html", build_report(data))


def test_report_content(tmp_path: Path) -> None:
    html = demo_report(tmp_path).read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "test &lt;report&gt; &amp; co" in html  # escaped
    for section in ("overview", "heatmap", "map", "selection", "usage"):
        assert f"<section id='{section}'>" in html
    # The heatmap is 4 datasets x 3 models, each cell with its value as a tooltip.
    assert (
        len(re.findall(r"<rect x='\d+' y='\d+' width='\d+' height='\d+' fill='#[0-9a-f]{6}'><title>", html))
        == 12
    )
    # Selection: the right model first, with its accuracy; selected / oracle 1.00; Spearman 1.00.
    assert "best by the task space: <b>sentiment/right</b> (accuracy 0.900)" in html
    assert "selected / oracle 1.00" in html
    assert "312" in html and "0.0042" in html  # usage: tokens and cost
    # Self-contained: nothing to fetch.
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html


def test_sections_are_pluggable() -> None:
    def extra(data: ReportData) -> str:
        return f"<section id='extra'>{len(data.names)} entries</section>"

    with small_space() as space:
        data = report_data(space)
    html = build_report(data, sections=[*DEFAULT_SECTIONS, extra, lambda d: None])
    assert "<section id='extra'>7 entries</section>" in html
    assert "<section id='usage'>" not in html  # no outputs given: the usage section leaves itself out


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt install chromium; CI installs it)"
)


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
           "--disable-extensions", "--enable-logging=stderr", "--v=0", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def _png_pixels(path: Path) -> tuple[int, int, bytes]:
    """(width, height, raw scanlines) of a PNG, decoded with the standard library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


@needs_chromium
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    page = demo_report(tmp_path)
    url = page.resolve().as_uri()
    dom = _chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The inline script ran to its end and saw both figures.
    assert 'data-report-ready="2"' in dom.stdout, dom.stdout[:500]
    assert dom.stdout.count("<svg") == 2 and dom.stdout.count("<circle") >= 3
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console  # no JavaScript errors or console messages

    shot = tmp_path / "report.png"
    done = _chromium("--hide-scrollbars", "--window-size=1200,1400", f"--screenshot={shot}", url)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    width, height, raw = _png_pixels(shot)
    assert (width, height) == (1200, 1400)
    # A blank page compresses to a handful of byte values; heatmap colours and text give many.
    assert len(set(raw)) > 100


def test_large_spaces_are_cut_to_readable_figures() -> None:
    from taskspace import report

    rng = np.random.default_rng(3)
    n_datasets, n_models, dim = 5, 400, 64
    vectors = rng.standard_normal((n_datasets + n_models, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # Three models are copies of dataset 0: they must survive the cut.
    vectors[n_datasets : n_datasets + 3] = vectors[0]
    names = [f"d{i}" for i in range(n_datasets)] + [f"m{i:03d}" for i in range(n_models)]
    kinds = ["dataset"] * n_datasets + ["model"] * n_models
    data = ReportData("big", names, kinds, vectors)
    rows = [SelectionRow(f"m{i:03d}", 1 - i / 1000, 0.5) for i in range(60)]
    data.selection = {"d0": rows}
    html = build_report(data)
    heat = html[html.index("<section id='heatmap'>") : html.index("<section id='map'>")]
    assert f"Shown: {n_datasets} of {n_datasets} rows and {report.MAX_HEATMAP} of {n_models} columns" in heat
    for name in ("m000", "m001", "m002"):
        assert f">{name}</text>" in heat
    assert heat.count("<title>") == n_datasets * report.MAX_HEATMAP
    assert f"{60 - report.MAX_CANDIDATES_SHOWN} more candidates not shown" in html
