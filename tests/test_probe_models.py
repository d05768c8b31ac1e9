"""Local models, callables, adaptive probing, MTEs from results, and the pieces: verbalizers, limits."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Sequence
from email.utils import formatdate
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import taskspace as ts
from taskspace.errors import ProbeError
from taskspace.probing.adaptive import Adaptive
from taskspace.probing.labels import Verbalizers
from taskspace.probing.limits import TokenBucket, backoff_delay, retry_after_seconds
from taskspace.probing.prompted import read_response

pytestmark = pytest.mark.timeout(30)

WORDS = [
    "good",
    "great",
    "fine",
    "bad",
    "awful",
    "poor",
    "the",
    "a",
    "film",
    "food",
    "day",
    "service",
    "very",
    "not",
]


def probe_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(n)]


class Keyword:
    """A tiny local model: the protocol of taskspace.models (name, predict, predict_proba)."""

    def __init__(self, name: str, positive: Sequence[str], *, order: Sequence[str] = ("pos", "neg")) -> None:
        self.name = name
        self.positive = set(positive)
        self.order = list(order)
        self.calls = 0

    def predict_proba(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        self.calls += 1
        p = np.array([0.9 if self.positive & set(t.split()) else 0.2 for t in texts])
        probs = {"pos": p, "neg": 1 - p}
        return self.order, np.stack([probs[x] for x in self.order], axis=1)

    def predict(self, texts: Sequence[str]) -> list[str]:
        labels, probs = self.predict_proba(texts)
        return [labels[j] for j in probs.argmax(axis=1)]


def test_local_model_is_probed_directly_and_keeps_its_labels() -> None:
    model = Keyword("kw", ["good", "great"])
    texts = ["good film", "bad film", "great day", "poor service"]
    res = ts.probe_sync([model], texts, progress=False)
    r = res["kw"]
    assert r.labels == ("pos", "neg") and r.mode == "label"
    np.testing.assert_allclose(np.stack(r.outputs), [[0.9, 0.1], [0.2, 0.8], [0.9, 0.1], [0.2, 0.8]])
    assert r.predictions() == model.predict(texts)
    sur = ts.Surrogate(features=32, dim=256)
    mte = r.embedding(sur)
    direct = sur.model_embedding(texts, model.predict_proba(texts)[1], name="kw")
    assert mte.kind == "model" and mte.name == "kw" and mte.similarity(direct) == pytest.approx(1.0, abs=1e-6)


def test_local_labels_are_aligned_across_batches() -> None:
    class Flipping(Keyword):
        def predict_proba(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
            self.order = self.order[::-1]  # another column order on every call
            return super().predict_proba(texts)

    model = Flipping("flip", ["good"])
    texts = ["good"] * 300 + ["bad"] * 300  # three batches of 256
    res = ts.probe_sync([model], texts, progress=False)
    assert model.calls == 3
    probs = res["flip"].probs()
    labels = res["flip"].labels
    assert labels is not None
    np.testing.assert_allclose(probs[:300, labels.index("pos")], 0.9)
    np.testing.assert_allclose(probs[300:, labels.index("pos")], 0.2)


def test_callables_sync_and_async_with_failures_recorded() -> None:
    def sync_fn(batch: list[str]) -> list[Any]:
        if any("boom" in t for t in batch):
            raise RuntimeError("model crashed")
        return [None if t == "none" else t.upper() for t in batch]

    async def async_fn(batch: list[str]) -> np.ndarray:
        await asyncio.sleep(0)
        return np.array([[0.5, 0.5] if "x" in t else [1.0, 0.0] for t in batch])

    def wrong_count(batch: list[str]) -> list[str]:
        return ["a"]

    texts = ["ok", "none", "boom", "xx"]
    res = ts.probe_sync(
        [
            ts.CallableModel(sync_fn, name="sync", mode="text", batch_size=2),
            ts.CallableModel(async_fn, name="async", labels=["a", "b"], batch_size=3),
            ts.CallableModel(wrong_count, name="wrong", batch_size=4),
        ],
        texts,
        progress=False,
    )
    s = res["sync"]
    assert s.outputs == ["OK", None, None, None]
    assert [(e.index, e.kind) for e in s.errors] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert "returned None" in s.errors[0].cause and "RuntimeError: model crashed" in s.errors[1].cause
    a = res["async"]
    assert a.labels == ("a", "b") and [list(o) for o in a.outputs] == [[1, 0], [1, 0], [1, 0], [0.5, 0.5]]
    w = res["wrong"]
    assert w.n_failed == 4 and "returned 1 outputs for 4 texts" in w.errors[0].cause
    assert res.usage.errors == 2  # failed calls: the sync batch that raised, the wrong batch
    assert "sync" in res.summary()


def test_callable_timeout() -> None:
    async def slow(batch: list[str]) -> list[str]:
        await asyncio.sleep(5)
        return batch

    t0 = time.monotonic()
    res = ts.probe_sync([ts.CallableModel(slow, name="slow", timeout=0.1)], ["a", "b"], progress=False)
    assert time.monotonic() - t0 < 2
    assert res["slow"].n_failed == 2 and "timeout after 0.1 s" in res["slow"].errors[0].cause


def test_bad_models_and_arguments_are_clear_errors() -> None:
    with pytest.raises(TypeError, match="a model must be"):
        ts.probe_sync([object()], ["a"])
    m = ts.CallableModel(lambda b: b, name="same", mode="text")
    with pytest.raises(ProbeError, match="unique"):
        ts.probe_sync([m, m], ["a"])
    with pytest.raises(ProbeError, match="no models"):
        ts.probe_sync([], ["a"])
    with pytest.raises(TypeError):
        ts.probe_sync([m], "a single string")
    with pytest.raises(ProbeError, match="deadline"):
        ts.probe_sync([m], ["a"], deadline=0)
    with pytest.raises(ProbeError, match="text_pairs"):
        ts.probe_sync([Keyword("kw", ["good"])], ["a"], text_pairs=["b"])
    with pytest.raises(ProbeError, match="template must contain"):
        ts.Prompted(ts.OpenAIEndpoint("http://127.0.0.1:9/v1", "m"), "no field")
    with pytest.raises(ProbeError, match="both"):
        Verbalizers({"a": ["yes"], "b": ["Yes"]})
    with pytest.raises(ProbeError, match="http"):
        ts.OpenAIEndpoint("127.0.0.1:8000", "m")

    async def inside() -> None:
        ts.probe_sync([m], ["a"])

    with pytest.raises(ProbeError, match="running event loop"):
        asyncio.run(inside())


def test_mte_from_result_drops_failed_items() -> None:
    texts = probe_texts(200)

    def fn(batch: list[str]) -> list[str | None]:
        return [
            None if "day" in t.split() else ("pos" if {"good", "great"} & set(t.split()) else "neg")
            for t in batch
        ]

    res = ts.probe_sync([ts.CallableModel(fn, name="f")], texts, progress=False)
    r = res["f"]
    keep = [i for i, t in enumerate(texts) if "day" not in t.split()]
    assert r.ok_indices() == keep and r.n_failed == len(texts) - len(keep)
    sur = ts.Surrogate(features=32, dim=256)
    mte = r.embedding(sur)
    direct = sur.model_embedding([texts[i] for i in keep], [r.outputs[i] for i in keep])
    assert mte.n == len(keep) and mte.meta["dropped"] == len(texts) - len(keep)
    assert mte.similarity(direct) == pytest.approx(1.0, abs=1e-6)
    assert set(res.embeddings(sur)) == {"f"}
    empty = ts.probe_sync([ts.CallableModel(lambda b: [None] * len(b), name="none")], ["a"], progress=False)
    with pytest.raises(ProbeError, match="no outputs"):
        empty["none"].embedding(sur)


def test_adaptive_probing_stops_when_the_mte_converges() -> None:
    texts = probe_texts(3000, seed=1)
    model = Keyword("kw", ["good", "great", "fine"])
    cfg = Adaptive(ts.Surrogate(features=64, dim=1024), eps=0.01, window=3, check_every=100, min_texts=200)
    res = ts.probe_sync([model], texts, adaptive=cfg, progress=False)
    info = res["kw"].adaptive
    assert info is not None and info["converged"]
    used = info["texts_used"]
    assert 300 <= used < len(texts)
    assert res["kw"].n_ok == used and len(res["kw"].skipped) == len(texts) - used
    assert res["kw"].stop_reason is not None and res["kw"].stop_reason.startswith("adaptive: converged")
    assert all(c >= 0.99 for c in info["cosines"][-3:])
    # the early-stopped MTE is close to the MTE of all the texts
    sur = cfg.surrogate
    assert sur is not None
    full = sur.model_embedding(texts, model.predict_proba(texts)[1])
    assert res["kw"].embedding(sur).similarity(full) > 0.95


def test_verbalizers() -> None:
    v = Verbalizers(
        {"entailment": ["entailment", "yes"], "neutral": ["neutral", "maybe"], "contradiction": ["no"]}
    )
    assert v.match("Yes, it follows") == "entailment"
    assert v.match("maybe not") == "neutral"  # the earliest verbalizer wins
    assert v.match("nothing") is None  # whole words only
    # a split word counts through an unambiguous prefix of >= 2 characters; "ne" would be ambiguous? no:
    # only "neutral" starts with "ne" here, so it counts; punctuation-only tokens are skipped
    tokens = [["**", -0.1, []], ["ent", math.log(0.5), [["ent", math.log(0.5)], ["ne", math.log(0.3)]]]]
    row = v.soft_label(tokens)
    assert row is not None
    floor = min(0.3, 1 - 0.8)
    np.testing.assert_allclose(row, np.array([0.5, 0.3, floor]) / (0.8 + floor))
    assert v.soft_label([["I", -0.1, [["I", -0.1], ["The", -3.0]]]]) is None  # no verbalizer: use the text
    assert v.soft_label(None) is None
    with pytest.raises(ProbeError, match="at least 2"):
        Verbalizers(["only"])
    assert Verbalizers(["pos", "neg"]).canonical() == [["pos", ["pos"]], ["neg", ["neg"]]]


def test_read_response_formats() -> None:
    chat = {
        "choices": [
            {
                "message": {"content": "yes"},
                "logprobs": {
                    "content": [
                        {"token": "yes", "logprob": -0.1, "top_logprobs": [{"token": "no", "logprob": -2.5}]}
                    ]
                },
            }
        ]
    }
    answer, pt, ct = read_response(chat)
    assert answer["tokens"] == [["yes", -0.1, [["no", -2.5]]]] and pt is None and ct is None
    legacy = {
        "choices": [
            {
                "text": " no",
                "logprobs": {"tokens": [" no"], "token_logprobs": [-0.2], "top_logprobs": [{" no": -0.2}]},
            }
        ],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1},
    }
    answer, pt, ct = read_response(legacy)
    assert (
        answer["text"] == " no"
        and answer["tokens"] == [[" no", -0.2, [[" no", -0.2]]]]
        and (pt, ct) == (4, 1)
    )
    for bad, why in [
        ([], "not an object"),
        ({"choices": []}, "no choices"),
        ({"error": {"message": "x"}}, "error"),
    ]:
        with pytest.raises(ValueError, match=why):
            read_response(bad)


def test_retry_after_and_backoff() -> None:
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "soon"}) is None and retry_after_seconds({}) is None
    later = retry_after_seconds({"Retry-After": formatdate(time.time() + 30, usegmt=True)})
    assert later is not None and 25 < later <= 31
    rng = random.Random(0)
    for attempt in range(12):
        d = backoff_delay(attempt, 0.5, 8.0, rng)
        cap = min(8.0, 0.5 * 2**attempt)
        assert cap / 2 <= d <= cap


def test_token_bucket_rate() -> None:
    async def main() -> float:
        bucket = TokenBucket.per_minute(600)  # 10/s, holds ~10
        t0 = time.monotonic()
        for _ in range(25):
            await bucket.acquire()
        return time.monotonic() - t0

    elapsed = asyncio.run(main())
    capacity = 600 / 61
    assert elapsed >= (25 - capacity) / ((600 - capacity) / 60) - 0.05


def test_endpoint_repr_shows_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKSPACE_REPR_KEY", "sk-very-secret-key")
    ep = ts.OpenAIEndpoint(
        "http://127.0.0.1:9/v1",
        "m",
        api_key_env="TASKSPACE_REPR_KEY",
        headers={"X-Token": "hdr-secret-value"},
        rpm=60,
    )
    text = repr(ep) + repr(ts.Prompted(ep, "{text}"))
    assert "TASKSPACE_REPR_KEY" in text and "X-Token" in text and "rpm=60" in text
    assert "sk-very-secret-key" not in text and "hdr-secret-value" not in text
    assert "sk-very-secret-key" not in str(
        vars(ep) if hasattr(ep, "__dict__") else [getattr(ep, s) for s in ep.__slots__]
    )


def test_endpoint_options_and_their_config_keys(tmp_path: Path) -> None:
    from taskspace.probing.config import load_probe_config

    (tmp_path / "probe.toml").write_text(
        """
[probe_set]
version = 1
n = 10
[endpoints.gemma]
base_url = "http://127.0.0.1:8081/v1"
model = "gemma"
name = "local-gemma"
max_response_bytes = 65536
max_retry_after = 10
group_by_prompt = true
[prompts.p]
endpoint = "gemma"
template = "{text}"
""",
        encoding="utf-8",
    )
    (m,) = load_probe_config(tmp_path / "probe.toml").models
    ep = m.endpoint
    assert (ep.name, ep.id, ep.max_response_bytes, ep.max_retry_after, ep.group_by_prompt) == (
        "local-gemma",
        "chat:local-gemma",
        65536,
        10.0,
        True,
    )
    assert "name='local-gemma'" in repr(ep)
    moved = ts.OpenAIEndpoint("http://10.0.0.7:9000/v1", "gemma", name="local-gemma")
    assert ts.Prompted(moved, "{text}").id == ts.Prompted(ep, "{text}").id  # same model, same name
    assert ep != moved  # other limits and URL: not one set of limits
    for bad in ({"max_response_bytes": 0}, {"max_retry_after": -1.0}, {"max_retry_after": math.inf}):
        with pytest.raises(ProbeError):
            ts.OpenAIEndpoint("http://127.0.0.1:1/v1", "m", **bad)
