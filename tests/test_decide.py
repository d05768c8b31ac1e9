"""TaskSpace.select with costs: the cheaper candidate within tolerance, the better one outside it."""

from __future__ import annotations

import numpy as np
import pytest
import taskspace as ts
from taskspace.datasets import builtin as datasets
from taskspace.space.task_space import Selection


@pytest.fixture(scope="module")
def space() -> ts.TaskSpace:
    sur = ts.Surrogate(features=64, dim=512)
    s = ts.TaskSpace(sur)
    texts, labels = datasets.load("movie_sentiment")
    s.add(sur.dataset_embedding(texts, labels, name="movies", mode="text"))
    s.add(sur.model_embedding(texts, labels, name="good", mode="text"))
    flipped = [
        ("negative" if x == "positive" else "positive") if i % 4 == 0 else x for i, x in enumerate(labels)
    ]
    s.add(sur.model_embedding(texts, flipped, name="worse", mode="text"))
    return s


def _sims(space: ts.TaskSpace) -> dict[str, float]:
    return dict(space.select("movies"))


def test_without_costs_the_most_similar(space: ts.TaskSpace) -> None:
    sel = space.select("movies")
    assert isinstance(sel, Selection) and isinstance(sel, list)
    assert [n for n, _ in sel] == ["good", "worse"] and sel.choice == sel.best == "good"
    assert sel.costs is None and "no costs given" in sel.reason


def test_cheaper_within_tolerance_better_outside(space: ts.TaskSpace) -> None:
    sims = _sims(space)
    gap = sims["good"] - sims["worse"]
    assert gap > 0.01  # the two candidates are clearly apart
    costs = {"good": 0.02, "worse": 0.002}
    inside = space.select("movies", costs=costs, tolerance=gap + 0.001)
    assert inside.choice == "worse" and inside.best == "good"
    assert "worse" in inside.reason and "10.0x cheaper" in inside.reason
    outside = space.select("movies", costs=costs, tolerance=gap - 0.001)
    assert outside.choice == "good"
    assert "no cheaper candidate is within" in outside.reason
    # when the best is also the cheapest, it is chosen whatever the tolerance
    assert space.select("movies", costs={"good": 0.001, "worse": 0.002}, tolerance=1.0).choice == "good"
    # the ranking itself does not change with costs
    assert list(inside) == list(outside) == list(space.select("movies"))
    table = inside.table()
    assert "* " in table.splitlines()[2] and "0.002" in table and inside.reason in table


def test_costs_from_probe_usage(space: ts.TaskSpace) -> None:
    from taskspace.probing.result import CallRecord, ModelResult, ProbeResult, Usage

    def result(name: str, per_call: float, calls: int) -> ModelResult:
        usage = Usage()
        for i in range(calls):
            usage.add(CallRecord(name, i, cost=per_call))
        return ModelResult(name=name, mode="label", labels=None, texts=["t"] * calls, text_pairs=None,
                           outputs=["x"] * calls, usage=usage)  # fmt: skip

    models = {"good": result("good", 0.03, 4), "worse": result("worse", 0.001, 5)}
    probe = ProbeResult(models=models, usage=Usage(), stop_reason=None, elapsed=0.0)
    sel = space.select("movies", costs=probe, tolerance=1.0)
    assert sel.costs == pytest.approx({"good": 0.03, "worse": 0.001})
    assert sel.choice == "worse"


def test_bad_costs(space: ts.TaskSpace) -> None:
    with pytest.raises(ts.InvalidInputError, match="no cost for candidate 'worse'"):
        space.select("movies", costs={"good": 1.0})
    with pytest.raises(ts.InvalidInputError, match=">= 0"):
        space.select("movies", costs={"good": -1.0, "worse": 1.0})
    with pytest.raises(ts.InvalidInputError, match=">= 0"):
        space.select("movies", costs={"good": np.nan, "worse": 1.0})
    with pytest.raises(TypeError, match="number"):
        space.select("movies", costs={"good": "1", "worse": 1.0})
    with pytest.raises(TypeError, match="mapping"):
        space.select("movies", costs=[1.0, 2.0])
    with pytest.raises(ts.InvalidInputError, match="tolerance"):
        space.select("movies", costs={"good": 1.0, "worse": 1.0}, tolerance=-0.1)
    with pytest.raises(TypeError, match="tolerance"):
        space.select("movies", tolerance="0.1")  # type: ignore[arg-type]


def test_docs_examples_run(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "decide.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 3, "docs/decide.md should have three runnable examples"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(doc), "exec"), {"__name__": "decide_docs"})


def test_cli_select_with_costs(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json as _json

    from taskspace.cli import main

    sur = ts.Surrogate(features=64, dim=512)
    path = tmp_path / "space.sqlite"
    texts, labels = datasets.load("movie_sentiment")
    flipped = [
        ("negative" if x == "positive" else "positive") if i % 4 == 0 else x for i, x in enumerate(labels)
    ]
    with ts.TaskSpace(sur, path) as s:
        s.add(sur.dataset_embedding(texts, labels, name="movies", mode="text"))
        s.add(sur.model_embedding(texts, labels, name="good", mode="text"))
        s.add(sur.model_embedding(texts, flipped, name="worse", mode="text"))
        sims = dict(s.select("movies"))
    gap = sims["good"] - sims["worse"]
    prices = tmp_path / "prices.toml"
    prices.write_text('good = 0.02\n"worse" = 0.002\n', encoding="utf-8")
    args = ["select", str(path), "--dataset", "movies", "--costs", str(prices)]
    assert main([*args, "--tolerance", f"{gap + 0.001:.6f}"]) == 0
    out = capsys.readouterr().out
    assert "choose worse" in out and "cost/call" in out and "10.0x cheaper" in out
    assert main([*args, "--tolerance", f"{gap - 0.001:.6f}"]) == 0
    assert "choose good" in capsys.readouterr().out
    assert main([*args, "--tolerance", "1", "--format", "json"]) == 0
    rows = _json.loads(capsys.readouterr().out)
    assert [r["chosen"] for r in rows] == ["", "*"] and rows[1]["cost/call"] == 0.002
    prices.write_text('good = 0.02\nworse = "cheap"\n', encoding="utf-8")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "'worse'" in err
    prices.write_text("good = 0.02\n", encoding="utf-8")
    assert main(args) == 2
    assert "no cost for candidate 'worse'" in capsys.readouterr().err
