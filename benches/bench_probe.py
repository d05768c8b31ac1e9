"""Requests per second of the probe runner against a raw aiohttp loop and the official openai client.

Run explicitly (the numbers in docs/probe.md come from this)::

    python -m pytest benches/bench_probe.py -q --benchmark-json=/tmp/bench_probe.json
    python benches/ratios.py /tmp/bench_probe.json

One local server process (a minimal aiohttp OpenAI-compatible responder on 127.0.0.1, started by a
fixture, answering every ``/v1/chat/completions`` with the same small completion, and exiting by
itself after ``SERVER_LIFETIME`` seconds at most) serves ``N_REQUESTS`` chat requests (distinct
inputs) per round, at concurrency 64 and 256. Groups ``probe-<n>-c<concurrency>``, one benchmark per
implementation (``extra_info["impl"]``):

* ``taskspace`` — ``await taskspace.probe`` with a labelled ``Prompted`` model (answers parsed to
  labels), the SQLite cache on (a new file per round, so nothing is served from it: every answer is
  written through), RPM and TPM limits on (set high enough not to bind, so their bookkeeping is
  measured, not their waiting), retries on, progress off;
* ``taskspace-linger50`` — the same, with the cache writer of before issue 13: each commit
  delayed 50 ms after the first uncommitted answer (``CacheWriter(linger=0.05)``) and workers not
  waiting for it, against today's group commit (a commit on the loop's next turn, each worker
  waiting for the commit of its answer before its next request, so a SIGKILL re-asks at most the
  requests in flight);
* ``aiohttp`` — the raw loop (the baseline of every group): one ``ClientSession``, one task per request behind an
  ``asyncio.Semaphore``, ``response.json()`` and the answer text, nothing else;
* ``openai`` — ``openai.AsyncOpenAI().chat.completions.create`` behind a semaphore (its own httpx
  client, with its connection pool raised to the concurrency so it is not the limit).

Targets (issues 3 and 13): taskspace >= 0.8x the raw loop's requests/s and >= 2x the openai
client's, with the group commit;
``ratios.py`` prints ``<baseline> / taskspace`` time ratios, which are exactly taskspace's requests/s
over the baseline's. With ``--benchmark-disable`` (the CI smoke run) each benchmark runs once on
``N_SMOKE`` requests.

Client and server share the machine: on the 2-core machine of this project the server process
takes one core, so requests/s measure the server as much as the client. Each benchmark therefore
also records the client's own CPU time per request (``extra_info["client_cpu_us_per_request"]``,
``time.process_time`` over all the client's threads, including the cache writer), which does not
depend on what else the machine is doing.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import taskspace as ts
import taskspace.probing.runner
from taskspace.probing.cache import CacheWriter

N_REQUESTS = 5000
N_SMOKE = 200
ROUNDS = 3
SERVER_LIFETIME = 900

RESPONDER = r"""
import asyncio, json, sys
from aiohttp import web

BODY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "positive"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
}).encode()

async def chat(request):
    await request.read()
    return web.Response(body=BODY, content_type="application/json")

async def main():
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    try:
        await asyncio.sleep(float(sys.argv[1]))  # bounded: the server stops by itself
    finally:
        await runner.cleanup()

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", RESPONDER, str(SERVER_LIFETIME)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def n_requests(request: pytest.FixtureRequest) -> int:
    return N_SMOKE if request.config.getoption("benchmark_disable") else N_REQUESTS


def _texts(n: int, round_no: int) -> list[str]:
    return [f"round {round_no} probe text number {i}: how does this model label it?" for i in range(n)]


async def _taskspace(url: str, texts: list[str], concurrency: int, cache: Path) -> list[Any]:
    ep = ts.OpenAIEndpoint(url, "bench", max_concurrency=concurrency, rpm=1e9, tpm=1e12, max_retries=5)
    model = ts.Prompted(ep, "{text}", labels={"pos": ["positive"], "neg": ["negative"]}, name="bench")
    res = await ts.probe([model], texts, cache=cache, progress=False)
    return res["bench"].outputs


async def _taskspace_linger(url: str, texts: list[str], concurrency: int, cache: Path) -> list[Any]:
    # the runner's cache writer, made to commit 50 ms after the first uncommitted answer instead
    saved = taskspace.probing.runner.CacheWriter
    taskspace.probing.runner.CacheWriter = functools.partial(CacheWriter, linger=0.05)  # type: ignore[misc]
    try:
        return await _taskspace(url, texts, concurrency, cache)
    finally:
        taskspace.probing.runner.CacheWriter = saved  # type: ignore[misc]


async def _aiohttp(url: str, texts: list[str], concurrency: int, cache: Path) -> list[Any]:
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(text: str) -> str:
            body = {"model": "bench", "messages": [{"role": "user", "content": text}], "temperature": 0}
            async with sem, session.post(f"{url}/chat/completions", json=body) as resp:
                return (await resp.json())["choices"][0]["message"]["content"]

        return await asyncio.gather(*(one(t) for t in texts))


async def _openai(url: str, texts: list[str], concurrency: int, cache: Path) -> list[Any]:
    import importlib

    import openai

    # openai 1.x and 2.x use httpx, 3.x its fork httpx2: take Limits from the client's own HTTP library
    httpx = importlib.import_module(openai.DefaultAsyncHttpxClient.__mro__[1].__module__.split(".")[0])
    http_client = openai.DefaultAsyncHttpxClient(
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    )
    client = openai.AsyncOpenAI(base_url=url, api_key="bench", http_client=http_client)
    sem = asyncio.Semaphore(concurrency)
    try:

        async def one(text: str) -> str | None:
            async with sem:
                r = await client.chat.completions.create(
                    model="bench", messages=[{"role": "user", "content": text}], temperature=0
                )
                return r.choices[0].message.content

        return await asyncio.gather(*(one(t) for t in texts))
    finally:
        await client.close()


IMPLS: dict[str, Callable[..., Any]] = {
    "taskspace": _taskspace,
    "taskspace-linger50": _taskspace_linger,
    "aiohttp": _aiohttp,
    "openai": _openai,
}


@pytest.mark.parametrize("concurrency", [64, 256])
@pytest.mark.parametrize("impl", list(IMPLS))
def test_probe_requests(
    benchmark, server: str, tmp_path: Path, n_requests: int, impl: str, concurrency: int
) -> None:
    if impl == "openai":
        pytest.importorskip("openai")
    benchmark.group = f"probe-{n_requests}-c{concurrency}"
    benchmark.extra_info.update({"impl": impl, "concurrency": concurrency, "requests": n_requests})
    fn = IMPLS[impl]
    rounds = iter(range(1000))
    rates: list[float] = []
    cpu: list[float] = []
    outputs: list[list[Any]] = []

    def setup() -> tuple[tuple[list[str], Path], dict[str, Any]]:
        r = next(rounds)
        return (_texts(n_requests, r), tmp_path / f"cache-{r}.sqlite"), {}

    def once(texts: list[str], cache: Path) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        out = asyncio.run(fn(server, texts, concurrency, cache))
        rates.append(len(texts) / (time.perf_counter() - t0))
        cpu.append((time.process_time() - c0) / len(texts) * 1e6)
        outputs.append(out)

    benchmark.pedantic(once, setup=setup, rounds=ROUNDS, iterations=1)
    benchmark.extra_info["requests_per_s"] = round(sorted(rates)[len(rates) // 2], 1)
    # the client's CPU time (all its threads) per request: what each implementation costs, whatever
    # else the machine is doing
    benchmark.extra_info["client_cpu_us_per_request"] = round(sorted(cpu)[len(cpu) // 2], 1)
    for out in outputs:  # every request answered, by every implementation
        assert len(out) == n_requests and all(o in ("pos", "positive") for o in out)
