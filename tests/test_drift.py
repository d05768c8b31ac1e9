"""taskspace.embedding.drift: the bootstrap path equals the core, decisions on real local models, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import taskspace as ts
from taskspace.cli import main
from taskspace.datasets import builtin as datasets
from taskspace.models import InContext, ZeroShot

D = sys.modules["taskspace.embedding.drift"]  # `taskspace.embedding.drift` is the function

SUR = ts.Surrogate(features=64, dim=1024)
TEXTS = ts.probe_set(n=2000)
SENTIMENT = {"positive": ["great, good, loved it", "happy"], "negative": ["bad, awful, hated it", "sad"]}


def _probe(model: object, texts: list[str]) -> object:
    """Outputs of one model through the probe layer, never from a cache."""
    res = ts.probe_sync([model], texts, cache=None, progress=False)
    (name,) = list(res)
    return res[name].probs() if res[name].labels is not None else res[name].outputs


# -- the bootstrap's numpy path is the Rust estimator ---------------------------------------------------
@pytest.mark.parametrize(
    ("features", "dim", "mode"),
    [(16, 256, "label"), (32, 256, "label"), (64, 1024, "label"), (16, 512, "text")],
)
def test_bootstrap_embeddings_equal_the_core(features: int, dim: int, mode: str) -> None:
    # label mode with 16/32 features scatters (length <= dim), 64 features count-sketches
    sur = ts.Surrogate(features=features, dim=dim, seed=7)
    texts = TEXTS[:300]
    f = sur.encode(texts)
    rng = np.random.default_rng(1)
    if mode == "label":
        hard = [str(v) for v in rng.integers(0, 3, len(texts))]
        other = [str(v) for v in rng.integers(0, 3, len(texts))]
        yb, yc = D._outputs(sur, hard, other, len(texts), mode)
    else:
        yb, yc = D._outputs(
            sur, [t.split()[0] for t in texts], [t.split()[-1] for t in texts], len(texts), mode
        )
    groups = D._Groups(f, (yb, yc), rng)
    counts = rng.multinomial(groups.k, np.full(groups.k, 1 / groups.k), size=3).astype(float)
    swap = rng.integers(0, 2, size=counts.shape).astype(float)
    batch = D._resample(groups, counts, swap, features)
    fast = D._operator_embeddings(batch, (0, 1, 2, 3), mode, sur.ridge, sur.seed, dim)
    for j in range(4):
        for r in range(3):
            exact = D._embedding_vector(sur, batch.stats(r, j, sur, mode))
            assert np.linalg.norm(exact) > 0
            cos = fast[j][r] @ exact / (np.linalg.norm(fast[j][r]) * np.linalg.norm(exact))
            assert cos > 1 - 1e-6


def test_point_shift_is_the_mte_cosine() -> None:
    zs = ZeroShot("This text is {}.", SENTIMENT)
    then = zs.predict(TEXTS[:500])
    now = [x if i % 3 else "positive" for i, x in enumerate(then)]
    report = ts.drift(SUR, TEXTS[:500], then, now, n_boot=20)
    a = SUR.model_embedding(TEXTS[:500], then)
    b = SUR.model_embedding(TEXTS[:500], now)
    assert report.shift == pytest.approx(1 - a.similarity(b), abs=1e-5)
    assert report.shift_low <= report.shift_high and report.noise_low <= report.noise_high


# -- decisions -----------------------------------------------------------------------------------------
def test_unchanged_deterministic_model_is_not_drifted() -> None:
    zs = ZeroShot("This text is {}.", SENTIMENT)
    then, now = _probe(zs, TEXTS), _probe(ZeroShot("This text is {}.", SENTIMENT), TEXTS)
    report = ts.drift(SUR, TEXTS, then, now)
    assert not report.drifted
    assert report.shift == pytest.approx(0.0, abs=1e-6)


def test_changed_label_description_is_drifted() -> None:
    changed = dict(SENTIMENT, negative=["a question, what, how, why?", "sad"])
    then = _probe(ZeroShot("This text is {}.", SENTIMENT), TEXTS)
    now = _probe(ZeroShot("This text is {}.", changed), TEXTS)
    report = ts.drift(SUR, TEXTS, then, now)
    assert report.drifted, report
    assert report.shift_low > report.noise_high


def test_swapped_demonstrations_are_drifted() -> None:
    movies, news = datasets.load("movie_sentiment"), datasets.load("news_topic")
    then = InContext(list(zip(movies[0][:40], movies[1][:40], strict=True)), k=5).predict(TEXTS)
    now = InContext(list(zip(news[0][:40], news[1][:40], strict=True)), k=5).predict(TEXTS)
    report = ts.drift(SUR, TEXTS, then, now)
    assert report.drifted, report


def test_sampling_model_false_positive_rate() -> None:
    """A model that samples its label (softmax temperature 0.01: its most likely label has 0.85
    probability on average; a new seed every run), unchanged: 20 pairs of runs on 1,000 probe texts,
    100 bootstrap rounds each (2-6 s on a loaded 2-core box): at most one false alarm (5 %). Measured:
    0 of 20 (and 0 of 30 in a longer run)."""
    zs = ZeroShot("This text is {}.", SENTIMENT, temperature=0.01)
    texts = TEXTS[:1000]
    runs = iter(range(10_000))

    def sampler() -> ts.CallableModel:
        rng = np.random.default_rng(1000 + next(runs))  # a new seed for every run

        def answer(batch: list[str]) -> list[str]:
            labels, probs = zs.predict_proba(batch)
            u = rng.random(len(batch))[:, None]
            return [labels[min(int(k), len(labels) - 1)] for k in (probs.cumsum(axis=1) < u).sum(axis=1)]

        return ts.CallableModel(answer, name="sampler")

    start = time.perf_counter()
    alarms = 0
    for trial in range(20):
        then, now = _probe(sampler(), texts), _probe(sampler(), texts)
        assert then != now  # it does sample
        alarms += ts.drift(SUR, texts, then, now, n_boot=100, seed=trial).drifted
    assert alarms <= 1, f"{alarms} false alarms in 20 trials ({time.perf_counter() - start:.1f} s)"


# -- settings and bad input ----------------------------------------------------------------------------
def test_deterministic_given_seed_and_fisher_fallback() -> None:
    zs = ZeroShot("This text is {}.", SENTIMENT)
    texts = TEXTS[:300]
    then = zs.predict(texts)
    now = [x if i % 4 else "negative" for i, x in enumerate(then)]
    a = ts.drift(SUR, texts, then, now, n_boot=30, seed=3)
    assert a == ts.drift(SUR, texts, then, now, n_boot=30, seed=3)
    assert a != ts.drift(SUR, texts, then, now, n_boot=30, seed=4)
    assert ts.DriftReport.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    assert "shift" in str(a)
    fisher = ts.Surrogate(features=16, dim=64, method="fisher")
    r = ts.drift(fisher, texts, then, now, n_boot=20)
    assert 0 <= r.noise_low <= r.noise_high


def test_soft_and_text_outputs() -> None:
    texts = TEXTS[:200]
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1, 1], len(texts))
    assert not ts.drift(SUR, texts, p, p.copy(), n_boot=20).drifted
    pairs = list(reversed(texts))  # pair tasks: second texts are encoded with the first
    longer = ["y" if len(a) > len(b) else "n" for a, b in zip(texts, pairs, strict=True)]
    assert ts.drift(SUR, texts, longer, list(longer), text_pairs=pairs, n_boot=20).shift < 1e-6
    ints = np.array([i % 2 for i in range(len(texts))])
    assert ts.drift(SUR, texts, ints, ints.copy(), n_boot=20).n == len(texts)
    constant = ["yes"] * len(texts)  # a degenerate task: its MTE is the zero vector
    assert ts.drift(SUR, texts, constant, list(constant), n_boot=20).shift == 0.0
    assert ts.drift(SUR, texts, constant, longer, n_boot=20).shift == 1.0
    words = [t.split()[0] for t in texts]
    r = ts.drift(SUR, texts, words, list(words), mode="text", n_boot=20)
    assert r.shift == pytest.approx(0.0, abs=1e-6) and r.mode == "text"


def test_bad_input() -> None:
    texts = TEXTS[:50]
    labels = ["a", "b"] * 25
    with pytest.raises(ts.InvalidInputError, match="items"):
        ts.drift(SUR, texts, labels, labels[:-1])
    with pytest.raises(ts.InvalidInputError, match="one kind"):
        ts.drift(SUR, texts, labels, np.full((50, 2), 0.5))
    with pytest.raises(ts.InvalidInputError, match="label columns"):
        ts.drift(SUR, texts, np.full((50, 2), 0.5), np.full((50, 3), 1 / 3))
    with pytest.raises(ts.InvalidInputError, match="at least 8"):
        ts.drift(SUR, texts[:5], labels[:5], labels[:5])
    with pytest.raises(ts.InvalidInputError, match="alpha"):
        ts.drift(SUR, texts, labels, labels, alpha=1.5)
    with pytest.raises(ts.InvalidInputError, match="n_boot"):
        ts.drift(SUR, texts, labels, labels, n_boot=5)
    with pytest.raises(TypeError, match="n_boot"):
        ts.drift(SUR, texts, labels, labels, n_boot=20.0)  # type: ignore[arg-type]
    with pytest.raises(ts.InvalidInputError, match="mode"):
        ts.drift(SUR, texts, labels, labels, mode="soft")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text mode"):
        ts.drift(SUR, texts, labels, np.full((50, 2), 0.5), mode="text")
    with pytest.raises(TypeError, match="mix str and int"):
        ts.drift(SUR, texts, labels, [i % 2 for i in range(50)])
    with pytest.raises(TypeError, match="Surrogate"):
        ts.drift("sur", texts, labels, labels)  # type: ignore[arg-type]


# -- storage and the command line ------------------------------------------------------------------------
def test_space_keeps_baselines_and_history(tmp_path: Path) -> None:
    texts = TEXTS[:100]
    then = ZeroShot("This text is {}.", SENTIMENT).predict(texts)
    with ts.TaskSpace(SUR, tmp_path / "s.sqlite") as space:
        assert space.drift_baseline("m") is None and space.drift_history() == []
        space.set_drift_baseline("m", texts, then)
        r = ts.drift(SUR, texts, then, then, n_boot=20)
        first = space.record_drift("m", r)
        space.record_drift("other", r)
    with ts.TaskSpace.open(tmp_path / "s.sqlite") as space:
        base = space.drift_baseline("m")
        assert base is not None and base["texts"] == texts and base["outputs"] == then
        history = space.drift_history("m")
        assert [(name, when, report) for name, when, report in history] == [("m", first, r)]
        assert len(space.drift_history()) == 2


def _config(path: Path, negative: str) -> Path:
    path.write_text(
        '[probe_set]\nn = 2000\n\n[models.rev]\nkind = "zero-shot"\ntemplate = "This text is {}."\n'
        f'label_descriptions = {{ positive = ["great, good, loved it", "happy"], negative = ["{negative}", "sad"] }}\n',
        encoding="utf-8",
    )
    return path


def test_cli_baseline_then_unchanged_then_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.sqlite"
    ts.TaskSpace(SUR, space).close()
    same = _config(tmp_path / "a.toml", "bad, awful, hated it")
    changed = _config(tmp_path / "b.toml", "a question, what, how, why?")
    assert main(["drift", str(same), "--space", str(space), "--n", "2000", "--n-boot", "100"]) == 0
    assert "baseline stored (2000 of 2000 texts)" in capsys.readouterr().out
    assert main(["drift", str(same), "--space", str(space), "--n-boot", "100"]) == 0
    assert "no drift: shift 0.0000" in capsys.readouterr().out
    code = main(["drift", str(changed), "--space", str(space), "--n-boot", "100", "--fail-on-drift"])
    assert "DRIFTED" in capsys.readouterr().out and code == 1
    with ts.TaskSpace.open(space) as s:
        assert [r.drifted for _, _, r in s.drift_history("rev")] == [False, True]
    assert main(["drift", str(same), "--space", str(space), "--model", "nope"]) == 2
    assert "no model named nope" in capsys.readouterr().err


def test_cli_subprocess_help_and_bad_args(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "taskspace", "drift", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "example:" in out.stdout
    cfg = _config(tmp_path / "a.toml", "bad")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskspace",
            "drift",
            str(cfg),
            "--space",
            str(tmp_path / "s.sqlite"),
            "--n-boot",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "--n-boot must be >= 20" in out.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_over_http_never_uses_the_probe_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A prompted model behind a real OpenAI-compatible server on 127.0.0.1 (`taskspace serve-models`):
    `taskspace probe` fills the cache; with the server gone, `probe` still answers from the cache but
    `drift` cannot, because a drift check always asks the model itself."""
    import urllib.request

    (tmp_path / "models.toml").write_text(
        '[models.mood]\nkind = "zero-shot"\ntemplate = "This text is {}."\n'
        'label_descriptions = { positive = ["great, good, loved it"], negative = ["bad, awful, hated it"] }\n',
        encoding="utf-8",
    )
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskspace",
            "serve-models",
            str(tmp_path / "models.toml"),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):  # up to 30 s for the server to start
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("serve-models did not start")
        cfg = tmp_path / "probe.toml"
        cfg.write_text(
            '[probe_set]\nn = 200\n\n[output]\ncache = "probe.sqlite"\noutputs = "outputs.jsonl"\n\n'
            f'[endpoints.local]\nbase_url = "http://127.0.0.1:{port}/v1"\nmodel = "mood"\nmax_retries = 0\n'
            "timeout = 5\n\n"
            '[prompts.p]\nendpoint = "local"\ntemplate = "{text}"\n'
            'labels = { positive = ["positive"], negative = ["negative"] }\nparams = { logprobs = true, top_logprobs = 5 }\n',
            encoding="utf-8",
        )
        space = tmp_path / "space.sqlite"
        ts.TaskSpace(SUR, space).close()
        assert main(["probe", str(cfg), "--quiet"]) == 0
        assert main(["drift", str(cfg), "--space", str(space), "--n", "200", "--n-boot", "20"]) == 0
        assert main(["drift", str(cfg), "--space", str(space), "--n-boot", "20"]) == 0
        assert "p  no drift: shift 0.0000" in capsys.readouterr().out
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert main(["probe", str(cfg), "--quiet"]) == 0  # every answer from the cache
    capsys.readouterr()
    assert main(["drift", str(cfg), "--space", str(space), "--n-boot", "20"]) == 1
    assert "could not be checked" in capsys.readouterr().err
    with ts.TaskSpace.open(space) as s:
        assert len(s.drift_history("p")) == 1  # the failed check stored nothing


def test_report_shows_drift_history(tmp_path: Path) -> None:
    from taskspace.report import build_report, report_data

    texts = TEXTS[:200]
    then = ZeroShot("This text is {}.", SENTIMENT).predict(texts)
    now = ["self" if " i " in f" {t.lower()} " else "other" for t in texts]
    with ts.TaskSpace(SUR, tmp_path / "s.sqlite") as space:
        space.add(SUR.dataset_embedding(texts, then, name="reviews"))
        space.record_drift("api/model", ts.drift(SUR, texts, then, then, n_boot=20))
        space.record_drift("api/model", ts.drift(SUR, texts, then, now, n_boot=20))
        html = build_report(report_data(space))
    assert "<section id='drift'><h2>Drift history</h2>" in html
    assert "api/model" in html and html.count("<tr class=drift>") == 1
    assert "last check: DRIFTED" in html
