"""The probe runner against a real aiohttp server on 127.0.0.1: answers, limits, retries, errors, secrets.

Every test runs its own event loop with a timeout (``run``) and a per-test pytest timeout, so nothing
can hang; every request loop is bounded in count.
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import taskspace as ts
from probe_server import FakeOpenAI
from taskspace.errors import ProbeError
from taskspace.probing.result import ProbeResult
from taskspace.probing.runner import Budget

pytestmark = pytest.mark.timeout(30)

LABELS = {"pos": ["positive", "great"], "neg": ["negative"]}


def run(coro: Any, timeout: float = 20.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def endpoint(srv: FakeOpenAI, **kw: Any) -> ts.OpenAIEndpoint:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("max_retries", 2)
    return ts.OpenAIEndpoint(srv.base_url, kw.pop("model", "test-model"), **kw)


# -- answers -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["chat", "completions"])
def test_soft_labels_match_the_logprobs_given(kind: str) -> None:
    table = {
        # both labels listed: softmax of their logprobs
        "a": [(" positive", math.log(0.6)), (" negative", math.log(0.3)), (" maybe", math.log(0.1))],
        # two verbalizers of one label: the max counts; case and punctuation are ignored
        "b": [("Great", math.log(0.5)), ("positive", math.log(0.2)), ("NEGATIVE.", math.log(0.25))],
        # negative missing: floor = min(lowest listed p, 1 - sum listed) = min(0.15, 0.05)
        "c": [(" positive", math.log(0.8)), (" neutral", math.log(0.15))],
    }
    expected = {
        "a": [0.6 / 0.9, 0.3 / 0.9],
        "b": [0.5 / 0.75, 0.25 / 0.75],
        "c": [0.8 / 0.85, 0.05 / 0.85],
    }

    async def main() -> ProbeResult:
        async with FakeOpenAI(logprobs=lambda t: table[t]) as srv:
            m = ts.Prompted(endpoint(srv, kind=kind), "{text}", labels=LABELS, name="m")
            return await ts.probe([m], list(table), progress=False)

    res = run(main())
    rows = res["m"].outputs
    for text, row in zip(table, rows, strict=True):
        assert isinstance(row, np.ndarray)
        np.testing.assert_allclose(row, expected[text], rtol=1e-9)
    assert res["m"].labels == ("pos", "neg")
    assert res["m"].predictions() == ["pos", "pos", "pos"]
    np.testing.assert_allclose(res["m"].probs().sum(axis=1), 1.0)


def test_text_answers_are_matched_and_unparseable_ones_counted() -> None:
    answers = {"t1": "Positive.", "t2": "The answer is: negative", "t3": "I cannot tell", "t4": "great!"}

    async def main() -> ProbeResult:
        async with FakeOpenAI(answer=answers.__getitem__) as srv:
            m = ts.Prompted(endpoint(srv), "{text}", labels=LABELS, name="m")
            plain = ts.Prompted(endpoint(srv), "{text}", name="plain")
            return await ts.probe([m, plain], list(answers), progress=False)

    res = run(main())
    m = res["m"]
    assert m.outputs == ["pos", "neg", None, "pos"]
    assert m.n_unparseable == 1 and m.n_failed == 0
    (err,) = m.errors
    assert err.index == 2 and err.kind == "unparseable" and "I cannot tell" in err.cause
    assert "unparseable" in res.summary().splitlines()[0]
    assert res["plain"].outputs == list(answers.values())
    assert res["plain"].mode == "text" and res["m"].mode == "label"


def test_text_pairs_fill_the_template() -> None:
    async def main() -> tuple[ProbeResult, list[str]]:
        async with FakeOpenAI() as srv:
            m = ts.Prompted(endpoint(srv), "P: {text} H: {text_pair}", name="m")
            res = await ts.probe([m], ["a good day", "b"], text_pairs=["x", "y {text}"], progress=False)
            return res, srv.texts()

    res, seen = run(main())
    assert sorted(seen) == ["P: a good day H: x", "P: b H: y {text}"]
    assert res["m"].outputs == ["positive", "negative"]
    with pytest.raises(ProbeError, match="text_pair"):
        ts.probe_sync(
            [ts.Prompted(ts.OpenAIEndpoint("http://127.0.0.1:1/v1", "m"), "{text} {text_pair}")], ["a"]
        )
    with pytest.raises(ProbeError, match="text_pair"):
        ts.probe_sync(
            [ts.Prompted(ts.OpenAIEndpoint("http://127.0.0.1:1/v1", "m"), "{text}")], ["a"], text_pairs=["b"]
        )


# -- limits ------------------------------------------------------------------------------------------


def test_concurrency_limit_is_never_exceeded() -> None:
    async def main() -> tuple[int, int]:
        async with FakeOpenAI(delay=0.02) as srv:
            ep = endpoint(srv, max_concurrency=5)
            models = [ts.Prompted(ep, "{text}", name="a"), ts.Prompted(ep, "Q: {text}", name="b")]
            res = await ts.probe(models, [f"text {i}" for i in range(60)], progress=False)
            assert all(res[n].n_ok == 60 for n in res)
            return srv.max_inflight, len(srv.hits)

    peak, hits = run(main())
    assert hits == 120
    assert peak == 5  # reached and never exceeded, shared by the two prompts of one endpoint


@pytest.mark.parametrize("grouped", [True, False])
def test_group_by_prompt_sends_one_prompt_after_the_other(grouped: bool) -> None:
    async def main() -> list[str]:
        async with FakeOpenAI(ok_delay=0.002) as srv:
            ep = endpoint(srv, max_concurrency=4, group_by_prompt=grouped)
            models = [ts.Prompted(ep, f"{p} {{text}}", name=p) for p in ("A", "B", "C")]
            res = await ts.probe(models, [f"t{i}" for i in range(20)], progress=False)
            assert all(res[p].n_ok == 20 for p in ("A", "B", "C"))
            return [h.text[0] for h in srv.hits]

    order = run(main())
    # prompts that arrive after a later prompt's first request: none when grouped (up to the
    # max_concurrency requests in flight at a switch), nearly all with round-robin
    late = sum(order[j] < max(order[:j]) for j in range(1, len(order)))
    if grouped:
        assert late <= 2 * 4, order
        assert order[:10] == ["A"] * 10
    else:
        assert late >= 30, order


def test_global_concurrency_cap() -> None:
    async def main() -> int:
        async with FakeOpenAI(delay=0.02) as srv:
            m = ts.Prompted(endpoint(srv, max_concurrency=8), "{text}", name="a")
            await ts.probe([m], [f"t{i}" for i in range(30)], progress=False, concurrency=3)
            return srv.max_inflight

    assert run(main()) == 3


def test_rpm_limit_is_respected() -> None:
    rpm = 1200.0  # 20 requests per second; the bucket holds ~one second's worth

    async def main() -> list[float]:
        async with FakeOpenAI() as srv:
            m = ts.Prompted(endpoint(srv, rpm=rpm, max_concurrency=16), "{text}", name="a")
            res = await ts.probe([m], [f"t{i}" for i in range(45)], progress=False)
            assert res["a"].n_ok == 45
            return [h.t for h in srv.hits]

    times = run(main())
    capacity = max(1.0, rpm / 61)
    rate = (rpm - capacity) / 60
    # token bucket: any k consecutive requests span at least (k - capacity) / rate seconds
    for i in range(len(times)):
        for j in range(i, len(times)):
            k = j - i + 1
            assert times[j] - times[i] >= (k - capacity - 1) / rate - 0.02, (i, j)
    assert times[-1] - times[0] >= (45 - capacity - 1) / rate - 0.05
    # and no 60 s window (scaled: the whole run is far shorter) exceeds rpm
    assert len(times) <= rpm


def test_tpm_limit_reserves_and_reconciles() -> None:
    async def main() -> list[float]:
        async with FakeOpenAI() as srv:
            # estimate per request: len(prompt json)//4 + 8 + max_tokens 20 ≈ 40 tokens; 2440 tpm ≈ 40 tokens/s
            m = ts.Prompted(endpoint(srv, tpm=2440), "{text}", params={"max_tokens": 20}, name="a")
            res = await ts.probe([m], [f"t{i}" for i in range(6)], progress=False)
            assert res["a"].n_ok == 6
            return [h.t for h in srv.hits]

    times = run(main())
    # The bucket (40 tokens) admits one request (36 reserved); the next waits until the first's usage
    # (~5 tokens) gives back the rest. Without reconciliation six requests would need > 4 s.
    assert times[1] - times[0] > 0.02
    assert times[-1] - times[0] < 2.0


@pytest.mark.parametrize("header", [{"retry_after": "1"}, {"retry_after_ms": "400"}])
def test_429_pause_is_shared_and_honoured(header: dict[str, str]) -> None:
    pause = 1.0 if "retry_after" in header else 0.4

    async def main() -> tuple[list[Any], ProbeResult]:
        async with FakeOpenAI(fail_first=1, fail_mode="429", ok_delay=0.05, **header) as srv:
            m = ts.Prompted(endpoint(srv, max_concurrency=4, max_retries=3), "{text}", name="a")
            res = await ts.probe([m], [f"t{i}" for i in range(12)], progress=False)
            return srv.hits, res

    hits, res = run(main())
    assert res["a"].n_ok == 12
    assert hits[0].mode == "429"
    t429 = hits[0].t
    later = hits[4:]  # the first four were sent together, before the 429 came back
    assert later and min(h.t for h in later) >= t429 + pause - 0.03
    assert res.usage.rate_limited == 1 and res.usage.retries == 1
    (rec,) = [r for r in res["a"].records if r.rate_limited]
    assert rec.attempts == 2 and rec.status == "ok"


def test_429_not_retried_when_asked() -> None:
    async def main() -> tuple[int, ProbeResult]:
        async with FakeOpenAI(mode="429", retry_after_ms="10") as srv:
            m = ts.Prompted(endpoint(srv, retry_on_429=False), "{text}", name="a")
            res = await ts.probe([m], ["x", "y"], progress=False)
            return len(srv.hits), res

    hits, res = run(main())
    assert hits == 2
    assert [e.cause for e in res["a"].errors] == [res["a"].errors[0].cause] * 2
    assert "HTTP 429" in res["a"].errors[0].cause and "gave up" not in res["a"].errors[0].cause


# -- retries and errors --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["503", "500", "reset"])
def test_retries_stop_at_the_limit_with_a_clear_error(mode: str) -> None:
    async def main() -> tuple[int, ProbeResult]:
        async with FakeOpenAI(mode=mode) as srv:
            m = ts.Prompted(endpoint(srv, max_retries=2), "{text}", name="a")
            res = await ts.probe([m], ["x", "y", "z"], progress=False)
            return len(srv.hits), res

    hits, res = run(main())
    assert hits == 9  # 3 inputs x (1 + 2 retries)
    a = res["a"]
    assert a.outputs == [None, None, None] and a.n_failed == 3
    want = "connection error" if mode == "reset" else f"HTTP {mode}"
    for e in a.errors:
        assert (
            e.kind == "failed"
            and e.cause.startswith("gave up after 3 attempts (2 retries)")
            and want in e.cause
        )
    assert all(r.attempts == 3 and r.status == "error" for r in a.records)
    assert res.usage.errors == 3 and res.usage.retries == 6


def test_transient_errors_are_retried_to_success() -> None:
    async def main() -> tuple[int, ProbeResult]:
        async with FakeOpenAI(fail_first=3, fail_mode="503") as srv:
            m = ts.Prompted(endpoint(srv, max_concurrency=1, max_retries=5), "{text}", name="a")
            res = await ts.probe([m], ["good", "bad"], progress=False)
            return len(srv.hits), res

    hits, res = run(main())
    assert hits == 5 and res["a"].outputs == ["positive", "negative"] and res.usage.retries == 3


def test_timeouts_are_retried_then_fail() -> None:
    async def main() -> tuple[int, ProbeResult]:
        async with FakeOpenAI(delay=1.0) as srv:
            m = ts.Prompted(endpoint(srv, timeout=0.15, max_retries=1), "{text}", name="a")
            res = await ts.probe([m], ["x"], progress=False)
            return len(srv.hits), res

    hits, res = run(main())
    assert hits == 2
    assert "timeout after 0.15 s" in res["a"].errors[0].cause


@pytest.mark.parametrize(
    ("mode", "cause", "retried"),
    [
        ("malformed", "malformed JSON", True),
        ("empty", "no choices", True),
        ("html", "unexpected content type text/html", True),
        ("400", "HTTP 400", False),
    ],
)
def test_bad_answers_are_retried_then_recorded(mode: str, cause: str, retried: bool) -> None:
    # an unusable 200 is transient (a proxy's error page, a body cut short): retried like a 503
    async def main() -> tuple[int, ProbeResult]:
        async with FakeOpenAI() as srv:
            m = ts.Prompted(endpoint(srv), "{text}", labels=LABELS, name="a")
            res = await ts.probe([m], [f"x [[{mode}]]", "good"], progress=False)
            return len(srv.hits), res

    hits, res = run(main())
    assert hits == (1 + 3 if retried else 1 + 1)  # max_retries=2: 3 attempts
    a = res["a"]
    assert a.outputs[1] == "pos" and a.outputs[0] is None
    (err,) = a.errors
    assert err.index == 0 and err.kind == "failed" and cause in err.cause
    assert ("gave up after 3 attempts" in err.cause) == retried


def test_an_unusable_200_that_heals_is_answered_and_errors_are_retried_on_resume(tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"

    async def main() -> tuple[ProbeResult, ProbeResult, ProbeResult, list[str]]:
        async with FakeOpenAI(fail_first=1, fail_mode="malformed") as srv:
            m = ts.Prompted(endpoint(srv, max_concurrency=1), "{text}", labels=LABELS, name="a")
            healed = await ts.probe([m], ["good"], progress=False)
        async with FakeOpenAI(mode="html") as srv:
            m = ts.Prompted(endpoint(srv, max_retries=0, name="srv"), "{text}", labels=LABELS, name="a")
            failed = await ts.probe([m], ["good", "bad"], cache=cache, progress=False)
        async with FakeOpenAI() as srv:  # the same endpoint name on a new port: the same keys
            m = ts.Prompted(endpoint(srv, name="srv"), "{text}", labels=LABELS, name="a")
            again = await ts.probe([m], ["good", "bad"], cache=cache, progress=False)
            return healed, failed, again, srv.texts()

    healed, failed, again, asked = run(main())
    assert healed["a"].outputs == ["pos"] and healed.usage.retries == 1
    assert failed["a"].n_failed == 2 and sorted(asked) == ["bad", "good"]
    assert again["a"].outputs == ["pos", "neg"] and again.usage.cached == 0
    with ts.ProbeCache(cache) as c:
        assert len(c.errors()) == 2 and len(c) == 2


def test_unauthorized_stops_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKSPACE_TEST_KEY", "wrong-key-value")

    async def main() -> tuple[int, ProbeResult]:
        async with FakeOpenAI(mode="401") as srv:
            ep = endpoint(srv, api_key_env="TASKSPACE_TEST_KEY", max_concurrency=2)
            res = await ts.probe(
                [ts.Prompted(ep, "{text}", name="a")], [f"t{i}" for i in range(50)], progress=False
            )
            return len(srv.hits), res

    hits, res = run(main())
    assert hits <= 2
    a = res["a"]
    assert (
        len(a.skipped) >= 48 and "HTTP 401" in (a.stop_reason or "") and "TASKSPACE_TEST_KEY" in a.stop_reason
    )
    assert a.n_failed == hits


# -- secrets -------------------------------------------------------------------------------------


def test_api_key_never_reaches_cache_logs_or_errors(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = "sk-taskspace-SECRET-0123456789"
    monkeypatch.setenv("TASKSPACE_TEST_KEY", key)
    caplog.set_level(logging.DEBUG)
    cache = tmp_path / "probe.sqlite"

    async def main() -> tuple[list[Any], ProbeResult]:
        async with FakeOpenAI(fail_first=2, fail_mode="503") as srv:
            ep = endpoint(srv, api_key_env="TASKSPACE_TEST_KEY", headers={"X-Org": "org-SECRET-HEADER"})
            models = [
                ts.Prompted(ep, "{text}", labels=LABELS, name="a"),
                ts.Prompted(ep, "{text}", name="b"),
            ]
            texts = ["good", "bad", "x [[500]]", "y [[malformed]]", "z [[reset]]"]
            res = await ts.probe(models, texts, cache=cache, progress=True)
            print(res.summary(), repr(res), ep, models[0], res.records)
            return srv.hits, res

    hits, res = run(main())
    assert hits and all(h.auth == f"Bearer {key}" for h in hits)  # the key was used ...
    assert res.usage.errors > 0 and res.usage.retries > 0
    # ... and is nowhere else
    secrets = [key, "org-SECRET-HEADER"]
    files = [p for p in tmp_path.iterdir() if p.name.startswith("probe.sqlite")]
    assert files
    for path in files:
        data = path.read_bytes()
        for s in secrets:
            assert s.encode() not in data, path
    out = capsys.readouterr()
    for s in secrets:
        assert s not in caplog.text and s not in out.out and s not in out.err
        assert s not in repr(res.records) and s not in res.summary()
    # a missing variable is a clear error that names the variable, before anything is sent
    monkeypatch.delenv("TASKSPACE_TEST_KEY")
    ep = ts.OpenAIEndpoint("http://127.0.0.1:9/v1", "m", api_key_env="TASKSPACE_TEST_KEY")
    with pytest.raises(ProbeError, match="TASKSPACE_TEST_KEY"):
        ts.probe_sync([ts.Prompted(ep, "{text}")], ["x"], progress=False)


# -- budget, deadline, progress ----------------------------------------------------------------------


def test_token_budget_stops_scheduling_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> tuple[int, ProbeResult]:
        async with FakeOpenAI() as srv:
            m = ts.Prompted(endpoint(srv, max_concurrency=4), "{text}", labels=LABELS, name="a")
            res = await ts.probe(
                [m], [f"good text {i}" for i in range(100)], budget={"tokens": 300}, progress=False
            )
            return len(srv.hits), res

    hits, res = run(main())
    a = res["a"]
    assert 0 < hits < 100
    assert a.n_ok == hits and not a.errors  # everything asked was answered
    assert len(a.skipped) == 100 - hits and a.skipped == sorted(a.skipped)
    assert res.stop_reason is not None and "token budget of 300 reached" in res.stop_reason
    assert a.stop_reason == res.stop_reason
    assert res.budget is not None and res.budget["spent_tokens"] <= 300
    assert res.usage.total_tokens == res.budget["spent_tokens"]
    assert "stopped early: token budget" in res.summary()
    assert "token budget" in caplog.text


def test_cost_budget_uses_prices() -> None:
    async def main() -> tuple[int, ProbeResult]:
        async with FakeOpenAI() as srv:
            m = ts.Prompted(endpoint(srv, model="priced"), "{text}", params={"max_tokens": 10}, name="a")
            prices = {"priced": (1000.0, 2000.0)}  # per million tokens
            res = await ts.probe(
                [m], [f"t {i}" for i in range(40)], budget=Budget(cost=0.2), prices=prices, progress=False
            )
            return len(srv.hits), res

    hits, res = run(main())
    assert 0 < hits < 40 and "cost budget" in (res.stop_reason or "")
    assert 0 < res.usage.cost <= 0.2
    rec = res["a"].records[0]
    assert rec.cost == pytest.approx(rec.prompt_tokens * 1e-3 + rec.completion_tokens * 2e-3)
    with pytest.raises(ProbeError, match="price"):
        ts.probe_sync(
            [ts.Prompted(ts.OpenAIEndpoint("http://127.0.0.1:9/v1", "m"), "{text}")],
            ["x"],
            budget={"cost": 1},
        )


def test_deadline_cancels_what_is_running() -> None:
    async def main() -> ProbeResult:
        async with FakeOpenAI(delay=0.2) as srv:
            m = ts.Prompted(endpoint(srv, max_concurrency=2), "{text}", name="a")
            return await ts.probe([m], [f"t{i}" for i in range(20)], deadline=0.5, progress=False)

    res = run(main())
    a = res["a"]
    assert 2 <= a.n_ok <= 6 and len(a.skipped) == 20 - a.n_ok and not a.errors
    assert res.stop_reason == "deadline of 0.5 s reached" and res.elapsed < 1.5


def test_progress_bar_shows_counters_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def main(progress: bool) -> None:
        async with FakeOpenAI() as srv:
            m = ts.Prompted(endpoint(srv), "{text}", name="a")
            await ts.probe([m], ["good", "x [[500]]"], progress=progress)

    run(main(True))  # stderr is captured, not a terminal: no bar
    assert capsys.readouterr().err == ""
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    run(main(False))
    assert capsys.readouterr().err == ""
    run(main(True))
    err = capsys.readouterr().err
    assert "2/2" in err and "ok=1" in err and "err=1" in err and "tok=" in err


def test_offline_path_with_the_local_model_server() -> None:
    """serve-models' server + probe + embed: soft labels over HTTP equal the local model's own."""
    server = pytest.importorskip("taskspace.models.server")
    models = pytest.importorskip("taskspace.models")
    zs = models.ZeroShot(
        "This text is about {}.", {"sport": "football, a match, the team", "money": "banks, prices"}
    )
    texts = ["the team won the match", "banks raised prices", "a quiet day", "the striker scored"]

    async def main() -> ProbeResult:
        async with server.model_server({"zs": zs}) as url:
            m = ts.Prompted(ts.OpenAIEndpoint(url, "zs"), "{text}", labels=list(zs.labels), name="http")
            return await ts.probe([m, zs], texts, progress=False)

    res = run(main())
    np.testing.assert_allclose(res["http"].probs(), res[zs.name].probs(), atol=1e-9)
    sur = ts.Surrogate(features=32, dim=256)
    a, b = res["http"].embedding(sur), res[zs.name].embedding(sur)
    assert a.similarity(b) == pytest.approx(1.0, abs=1e-5)


def test_runner_takes_limits_and_workers_from_its_caller() -> None:
    # The seam the Ray driver uses: Runner(plan, limits_for=..., workers=...), no attribute patching.
    from taskspace.probing.limits import EndpointLimits
    from taskspace.probing.plan import Plan
    from taskspace.probing.runner import Runner

    asked: list[ts.OpenAIEndpoint] = []
    acquired: list[int] = []

    class Counting(EndpointLimits):
        def try_acquire(self, tokens: int) -> bool:
            acquired.append(tokens)
            return super().try_acquire(tokens)

    def limits_for(ep: ts.OpenAIEndpoint) -> EndpointLimits:
        asked.append(ep)
        return Counting(None, None)

    async def main() -> tuple[ProbeResult, int]:
        async with FakeOpenAI() as srv:
            ep = endpoint(srv, max_concurrency=8)
            plan = Plan([ts.Prompted(ep, "{text}", labels=LABELS, name="a")], ["good", "bad", "good!"])
            runner = Runner(plan, limits_for=limits_for, workers=1)
            res = await runner.run()
            return res, srv.max_inflight

    res, in_flight = run(main())
    assert res["a"].outputs == ["pos", "neg", "pos"]
    assert len(asked) == 1 and len(acquired) == 3
    assert in_flight == 1  # one worker instead of the endpoint's eight
