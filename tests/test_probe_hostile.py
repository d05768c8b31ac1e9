"""The probe runner against a hostile OpenAI-compatible server: whatever a server sends, a run ends
with each input answered or recorded with a cause, within its deadline, with bounded memory, and with
no piece of the API key in the cache, the logs or stdout/stderr.

Each route of ``tests/hostile_server.py`` has one misbehaviour; the run against it is checked
generically (every input accounted for, the deadline held, the key nowhere) and for its own outcome
(the cause it must give, or that it is answered). A second run over the same cache must not crash
(nothing was cached that cannot be read back).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import tracemalloc
from pathlib import Path

import pytest
import taskspace as ts
from hostile_server import ROUTES, HostileOpenAI
from taskspace.probing.result import ProbeResult

pytestmark = pytest.mark.timeout(60)

KEY = "sk-hostile-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL"
WINDOWS = [KEY[i : i + 16] for i in range(len(KEY) - 15)]
LABELS = {"pos": ["positive"], "neg": ["negative"]}
TEXTS = ["first text", "second text", "third text"]
DEADLINE = 5.0

#: route -> "answered" (every input of the text model has an output) or a piece of the cause (of an
#: error, or the stop reason) the run must give.
EXPECTED = {
    "ok": "answered",
    "html": "unexpected content type text/html",
    "missing": "neither message nor text",
    "no_choices": "no choices",
    "not_object": "not an object",
    "malformed": "malformed JSON",
    "deep": "nested too deeply",
    "logprob_big": "not a log-probability",
    "logprob_overflow": "not a log-probability",
    "logprob_neg_inf": "answered",
    "logprob_nan": "answered",
    "finish_nan": "answered",
    "usage_absurd": "answered",
    "top_int": "top_logprobs is a int",
    "content_int": "response text is a int",
    "logprobs_str": "malformed logprobs: a str",
    "choices_str": "no choices",
    "huge": "max_response_bytes",
    "endless": "max_response_bytes",
    "500_endless": "gave up after 2 attempts (1 retries): HTTP 500",
    "trickle": "timeout",
    "silent": "timeout",
    "slow_headers": "timeout",
    "reset": "connection error",
    "401_echo": "HTTP 401",
    "400": "HTTP 400",
    "500_echo": "HTTP 500",
    "429_inf": "ends after the deadline",
    "429_1e8": "ends after the deadline",
    "429_negative": "gave up after 2 attempts",
    "429_garbage": "gave up after 2 attempts",
    "echo": "answered",
    "echo_escaped": "answered",
    "echo_tokens": "answered",
    "echo_partial": "answered",
}


def test_every_route_has_an_expectation() -> None:
    assert set(EXPECTED) == set(ROUTES)


def _models(url: str) -> list[ts.Prompted]:
    ep = ts.OpenAIEndpoint(
        url,
        "hostile",
        name=url.split("/")[3],
        api_key_env="HOSTILE_KEY",
        timeout=0.5,
        max_retries=1,
        backoff=0.01,
        backoff_max=0.05,
    )
    return [ts.Prompted(ep, "{text}", labels=LABELS, name="l"), ts.Prompted(ep, "{text}", name="t")]


async def _probe(route: str, cache: Path) -> tuple[ProbeResult, float, int]:
    async with HostileOpenAI() as srv:
        t0 = time.monotonic()
        res = await ts.probe(_models(srv.url(route)), TEXTS, cache=cache, deadline=DEADLINE, progress=False)
        return res, time.monotonic() - t0, srv.hits[route]


def _accounted_for(res: ProbeResult) -> None:
    for name in ("l", "t"):
        r = res[name]
        failed = {e.index: e.cause for e in r.errors}
        for i, out in enumerate(r.outputs):
            if out is not None:
                continue
            if i in r.skipped:
                assert r.stop_reason, (name, i)
            else:
                assert failed.get(i), (name, i, r.errors)


def _no_key(*texts: str) -> None:
    for text in texts:
        leaked = [w for w in WINDOWS if w in text]
        assert not leaked, (leaked[:3], text[:500])


@pytest.mark.parametrize("route", list(ROUTES))
def test_hostile_route(
    route: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HOSTILE_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    cache = tmp_path / "probe.sqlite"
    res, elapsed, hits = asyncio.run(_probe(route, cache))
    assert hits > 0
    assert elapsed < DEADLINE + 1.0, elapsed
    _accounted_for(res)
    expected = EXPECTED[route]
    if expected == "answered":
        assert all(o is not None for o in res["t"].outputs), res["t"].errors
    else:
        causes = [e.cause for name in ("l", "t") for e in res[name].errors]
        causes += [res[name].stop_reason or "" for name in ("l", "t")]
        assert any(expected in c for c in causes), causes
    print(res.summary(), repr(res["l"].records), res["t"].outputs, res["l"].errors, res["t"].errors)
    # a resume over the same cache never crashes: whatever was cached can be read back
    again, _, _ = asyncio.run(_probe(route, cache))
    _accounted_for(again)
    stored = sum(o is not None for name in ("l", "t") for o in res[name].outputs)
    stored += sum(e.kind == "unparseable" for name in ("l", "t") for e in res[name].errors)
    assert again.usage.cached == stored
    # the key reached the server, and nothing else
    out = capfd.readouterr()
    files = [p.read_bytes().decode("latin-1") for p in tmp_path.iterdir()]
    _no_key(caplog.text, out.out, out.err, *files, repr(again["t"].outputs), repr(again["l"].errors))


def test_echoed_key_is_redacted_from_the_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTILE_KEY", KEY)
    for route in ("echo", "echo_escaped"):
        res, _, _ = asyncio.run(_probe(route, tmp_path / f"{route}.sqlite"))
        assert res["t"].outputs == ["you sent Bearer ***"] * 3
    res, _, _ = asyncio.run(_probe("echo_partial", tmp_path / "partial.sqlite"))
    assert res["t"].outputs == ["you sent ***"] * 3


def test_absurd_usage_is_not_believed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTILE_KEY", KEY)
    res, _, _ = asyncio.run(_probe("usage_absurd", tmp_path / "c.sqlite"))
    assert res.usage.completion_tokens == 0 and res.usage.prompt_tokens == 0
    conn = sqlite3.connect(tmp_path / "c.sqlite")
    rows = conn.execute("SELECT prompt_tokens, completion_tokens FROM answers").fetchall()
    conn.close()
    assert rows == [(None, None)] * 6


@pytest.mark.parametrize("route", ["huge", "endless", "500_endless", "deep"])
def test_memory_stays_bounded(route: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTILE_KEY", KEY)

    async def main() -> ProbeResult:
        async with HostileOpenAI() as srv:
            ep = ts.OpenAIEndpoint(
                srv.url(route),
                "hostile",
                api_key_env="HOSTILE_KEY",
                timeout=5,
                max_retries=0,
                max_concurrency=1,
                max_response_bytes=4 << 20,
            )
            return await ts.probe([ts.Prompted(ep, "{text}", name="t")], TEXTS[:2], progress=False)

    tracemalloc.start()
    try:
        res = asyncio.run(main())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res["t"].n_failed == 2
    assert peak < 24 << 20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize(("header", "capped"), [("inf", True), ("1e8", True), ("-5", False), ("soon", False)])
def test_retry_after_is_capped(header: str, capped: bool) -> None:
    from probe_server import FakeOpenAI

    async def main() -> tuple[float, int, ProbeResult]:
        async with FakeOpenAI(fail_first=1, fail_mode="429", retry_after=header) as srv:
            ep = ts.OpenAIEndpoint(srv.base_url, "m", max_retry_after=0.3, backoff=0.01, max_concurrency=1)
            t0 = time.monotonic()
            res = await ts.probe([ts.Prompted(ep, "{text}", name="t")], ["a"], progress=False)
            return time.monotonic() - t0, len(srv.hits), res

    elapsed, hits, res = asyncio.run(main())
    assert hits == 2 and res["t"].outputs == ["negative"]
    if not capped:  # ignored: the backoff decides
        assert elapsed < 0.25
    else:  # capped at max_retry_after
        assert 0.3 <= elapsed < 1.5
