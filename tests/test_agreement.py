"""taskspace.probing.agreement against straightforward references (scikit-learn's Cohen's kappa)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import taskspace as ts
from sklearn.metrics import cohen_kappa_score


@pytest.mark.parametrize("seed", range(6))
def test_labels_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(5, 300)), int(rng.integers(2, 6))
    a = [f"l{v}" for v in rng.integers(0, k, n)]
    b = [x if rng.random() < 0.6 else f"l{rng.integers(0, k + 1)}" for x in a]  # b may use an extra label
    got = ts.agreement(a, b)
    assert got.kind == "label" and got.n == n
    assert got.exact == pytest.approx(np.mean([x == y for x, y in zip(a, b, strict=True)]))
    assert got.kappa == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert got.tv == pytest.approx(1 - got.exact)
    assert got.text_similarity is None


def test_int_labels_and_edge_cases() -> None:
    a, b = [0, 1, 1, 2, 2, 2], [0, 1, 2, 2, 2, 1]
    assert ts.agreement(a, b).kappa == pytest.approx(cohen_kappa_score(a, b))
    same = ts.agreement(["x", "y"], ["x", "y"])
    assert same.exact == 1.0 and same.kappa == 1.0
    # both always give one and the same label: kappa is undefined (0/0), reported as nan
    assert math.isnan(ts.agreement(["x"] * 4, ["x"] * 4).kappa)  # type: ignore[arg-type]
    assert ts.agreement(np.array(["p", "q"]), ["p", "p"]).exact == 0.5


def test_soft_labels() -> None:
    rng = np.random.default_rng(3)
    p = rng.dirichlet([1, 1, 1], 200)
    q = rng.dirichlet([1, 1, 1], 200)
    got = ts.agreement(p, q)
    tv = np.mean([0.5 * np.abs(x - y).sum() for x, y in zip(p, q, strict=True)])
    assert got.kind == "soft" and got.tv == pytest.approx(tv)
    la, lb = p.argmax(1), q.argmax(1)
    assert got.exact == pytest.approx(np.mean(la == lb))
    assert got.kappa == pytest.approx(cohen_kappa_score(la, lb))
    assert ts.agreement(p, p).tv == 0.0


def test_text_similarity_matches_a_dense_reference() -> None:
    a = ["a great film", "the plot was thin", "", "Hello   world", "completely different"]
    b = ["a great movie", "the plot was thin", "", "hello world", "nothing in common here"]
    got = ts.agreement(a, b, mode="text")
    sur = ts.Surrogate()
    dense = []
    for x, y in zip(a, b, strict=True):
        sx, sy = sur.featurize([x]), sur.featurize([y])
        u, v = np.zeros(sx.n_features), np.zeros(sy.n_features)
        u[sx.indices] = sx.values
        v[sy.indices] = sy.values
        nu, nv = np.linalg.norm(u), np.linalg.norm(v)
        dense.append(1.0 if nu == nv == 0 else (u @ v / (nu * nv) if nu * nv else 0.0))
    assert got.text_similarity == pytest.approx(np.mean(dense), abs=1e-6)
    assert got.exact == pytest.approx(2 / 5)  # identical after whitespace normalisation: "the plot...", ""
    assert dense[1] == pytest.approx(1.0) and 0 < dense[0] < 1
    assert got.kappa is None and got.tv is None


def test_bad_input() -> None:
    with pytest.raises(ts.InvalidInputError, match="3 outputs but outputs_b has 2"):
        ts.agreement(["a", "b", "c"], ["a", "b"])
    with pytest.raises(ts.InvalidInputError, match="mixed output kinds"):
        ts.agreement(["a", "b"], np.array([[0.5, 0.5], [1.0, 0.0]]))
    with pytest.raises(ts.InvalidInputError, match="mixed label types"):
        ts.agreement(["a", "b"], [1, 2])
    with pytest.raises(ts.InvalidInputError, match="label columns"):
        ts.agreement(np.full((2, 2), 0.5), np.full((2, 3), 1 / 3))
    with pytest.raises(ts.InvalidInputError, match="rows"):
        ts.agreement(np.full((2, 2), 0.5), np.full((3, 2), 0.5))
    with pytest.raises(ts.InvalidInputError, match="empty"):
        ts.agreement([], [])
    with pytest.raises(TypeError, match=r"outputs_b\[1\]"):
        ts.agreement(["a", "b"], ["a", None])
    with pytest.raises(TypeError, match="sequence"):
        ts.agreement("ab", "ab")
    with pytest.raises(TypeError, match="text mode"):
        ts.agreement(np.full((2, 2), 0.5), np.full((2, 2), 0.5), mode="text")
    with pytest.raises(ts.InvalidInputError):
        ts.agreement(np.array([[0.5, 0.6]]), np.array([[0.5, 0.5]]))  # not a distribution
    with pytest.raises(ts.InvalidInputError, match="mode"):
        ts.agreement(["a"], ["a"], mode="soft")  # type: ignore[arg-type]


def test_agreement_matrix() -> None:
    from taskspace.probing.agreement import agreement_matrix

    runs = {"a": ["x", "y", "x", None], "b": ["x", "x", "x", "y"], "c": [None, None, None, "y"]}
    names, kappa, exact = agreement_matrix(runs)
    assert names == ["a", "b", "c"]
    assert exact[0, 1] == exact[1, 0] == pytest.approx(2 / 3)
    assert kappa[0, 1] == pytest.approx(cohen_kappa_score(["x", "y", "x"], ["x", "x", "x"]))
    assert exact[1, 2] == 1.0 and math.isnan(exact[0, 2])  # a and c never both answered
    assert exact[0, 0] == 1.0
    texts = {"p": ["a b", "c"], "q": ["a  b", "d"]}
    _, k2, e2 = agreement_matrix(texts, mode="text")
    assert e2[0, 1] == 0.5 and math.isnan(k2[0, 1])
    with pytest.raises(ts.InvalidInputError, match="lengths"):
        agreement_matrix({"a": ["x"], "b": ["x", "y"]})
    with pytest.raises(ts.InvalidInputError, match="non-empty"):
        agreement_matrix({})


def test_cli_compare_agreement(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from taskspace.cli import main
    from taskspace.probing.agreement import agreement_matrix

    cfg = tmp_path / "probe.toml"
    cfg.write_text(
        '[probe_set]\nn = 300\n\n[output]\ncache = "probe.sqlite"\noutputs = "outputs.jsonl"\n\n'
        '[models.a]\nkind = "zero-shot"\ntemplate = "This text is {}."\n'
        'label_descriptions = { positive = "great, good, loved it", negative = "bad, awful, hated it" }\n\n'
        '[models.b]\nkind = "zero-shot"\ntemplate = "I think it is {}."\n'
        'label_descriptions = { positive = "good and happy", negative = "sad, a question, why?" }\n\n'
        '[models.c]\nkind = "in-context"\nk = 1\n'
        'demonstrations = [{ text = "I loved it", label = "pos" }, { text = "what is this?", label = "neg" }]\n',
        encoding="utf-8",
    )
    assert main(["probe", str(cfg), "--quiet"]) == 0
    probe = ts.ProbeResult.load(tmp_path / "outputs.jsonl")
    sur = ts.Surrogate(features=64, dim=512)
    space = tmp_path / "space.sqlite"
    with ts.TaskSpace(sur, space) as s:
        for m in probe.models.values():
            t, p, outs = m.embedding_inputs("label")
            s.add(sur.model_embedding(t, outs, text_pairs=p, name=m.name))
    capsys.readouterr()
    assert main(["compare", str(space), "--agreement", str(tmp_path / "outputs.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "MTE cosine similarity" in out and "Cohen's kappa" in out
    assert (
        main(["compare", str(space), "--agreement", str(tmp_path / "outputs.jsonl"), "--format", "json"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model_a"], r["model_b"]) for r in rows] == [("a", "b"), ("a", "c"), ("b", "c")]
    answers = {}
    for m in probe.models.values():
        answers[m.name] = [m.labels[int(np.argmax(o))] if isinstance(o, np.ndarray) else o for o in m.outputs]
    _, kappa, exact = agreement_matrix(answers)
    assert rows[0]["kappa"] == pytest.approx(kappa[0, 1]) and rows[2]["exact"] == pytest.approx(exact[1, 2])
    assert rows[0]["kappa"] == pytest.approx(cohen_kappa_score(answers["a"], answers["b"]))
    other = tmp_path / "other.sqlite"
    ts.TaskSpace(sur, other).close()
    assert main(["compare", str(other), "--agreement", str(tmp_path / "outputs.jsonl")]) == 2
    assert "fewer than two models" in capsys.readouterr().err
