"""The probe cache is the resume mechanism: a killed or cancelled run asks only for what is missing.

Real SQLite files, a real aiohttp server on 127.0.0.1, and a real subprocess killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import taskspace as ts
from probe_server import FakeOpenAI
from taskspace.errors import ProbeError
from taskspace.probing.cache import ProbeCache, request_key
from taskspace.probing.result import ProbeResult

pytestmark = pytest.mark.timeout(40)


def run(coro: Any, timeout: float = 25.0) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def prompted(url: str, **kw: Any) -> ts.Prompted:
    ep = ts.OpenAIEndpoint(
        url, "test-model", max_concurrency=kw.pop("max_concurrency", 4), max_retries=0, backoff=0.01
    )
    return ts.Prompted(ep, kw.pop("template", "{text}"), name=kw.pop("name", "a"), **kw)


def test_key_is_sha256_of_canonical_json() -> None:
    prompt = [{"role": "user", "content": "héllo {x}"}]
    params = {"temperature": 0, "max_tokens": 8, "logprobs": True}
    key, canonical = request_key("chat:http://h/v1", "m", prompt, params, ["héllo {x}", None])
    doc = {
        "endpoint": "chat:http://h/v1",
        "model": "m",
        "prompt": prompt,
        "params": params,
        "input": ["héllo {x}", None],
    }
    assert canonical == json.dumps(doc, sort_keys=True, separators=(",", ":"))
    assert key == hashlib.sha256(canonical.encode()).hexdigest()


def test_prompt_json_is_the_canonical_json_of_the_prompt() -> None:
    from taskspace.probing.prompted import canonical_json

    chat = ts.OpenAIEndpoint("http://127.0.0.1:9/v1", "m")
    completions = ts.OpenAIEndpoint("http://127.0.0.1:9/v1", "m", kind="completions")
    models = [
        ts.Prompted(chat, "{text}"),
        ts.Prompted(chat, 'A {text} B {text_pair} {text} "é" {x}', system="sys ü"),
        ts.Prompted(completions, "Q: {text}\nA:"),
    ]
    for m in models:
        for text, pair in [('héllo "q" {text_pair} \n', "pair ☃"), ("", None)]:
            assert m.prompt_json(text, pair) == canonical_json(m.prompt(text, pair))
    assert models[1].render("t", "p") == 'A t B p t "é" {x}'


def test_prompted_id_is_stable_and_specific() -> None:
    ep = ts.OpenAIEndpoint("http://127.0.0.1:8000/v1", "m")
    a = ts.Prompted(ep, "{text}", labels={"p": ["yes"], "n": ["no"]}, params={"max_tokens": 4, "seed": 1})
    b = ts.Prompted(
        ts.OpenAIEndpoint("http://127.0.0.1:8000/v1/", "m", max_concurrency=3),
        "{text}",
        labels={"p": ["yes"], "n": ["no"]},
        params={"seed": 1, "max_tokens": 4},
    )
    assert a.id == b.id and a.name == b.name  # limits and key order do not change what is asked
    assert ts.Prompted(ep, "Q: {text}", labels={"p": ["yes"], "n": ["no"]}).id != a.id
    assert (
        ts.Prompted(
            ep, "{text}", labels={"p": ["yes"], "n": ["nope"]}, params={"max_tokens": 4, "seed": 1}
        ).id
        != a.id
    )
    assert (
        ts.Prompted(ts.OpenAIEndpoint("http://127.0.0.1:8000/v1", "m2"), "{text}").id
        != ts.Prompted(ep, "{text}").id
    )


def test_answers_are_served_from_the_cache_and_errors_are_not(tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    texts = ["good one", "bad one", "x [[500]]", "odd [[malformed]]"]

    async def main() -> tuple[ProbeResult, ProbeResult, list[str]]:
        async with FakeOpenAI() as srv:
            first = await ts.probe([prompted(srv.base_url)], texts, cache=cache, progress=False)
            n = len(srv.hits)
            second = await ts.probe([prompted(srv.base_url)], texts, cache=cache, progress=False)
            return first, second, srv.texts()[n:]

    first, second, asked_again = run(main())
    assert first["a"].outputs == second["a"].outputs == ["positive", "negative", None, None]
    assert sorted(asked_again) == ["odd [[malformed]]", "x [[500]]"]  # only the failures
    assert second.usage.cached == 2 and second["a"].n_failed == 2
    assert [r.status for r in second["a"].records].count("cached") == 2
    with ProbeCache(cache) as c:
        assert len(c) == 2
        causes = [e["cause"] for e in c.errors()]
        assert (
            len(causes) == 4
            and any("HTTP 500" in x for x in causes)
            and any("malformed" in x for x in causes)
        )
        (req,) = [r for r in c.requests("a") if r["input"][0] == "good one"]
        assert req["model"] == "test-model" and req["params"]["temperature"] == 0
    # every row's key is the sha256 of its request, in canonical JSON, as request_key builds it
    conn = sqlite3.connect(cache)
    rows = conn.execute("SELECT key, request FROM answers").fetchall()
    conn.close()
    for key, request in rows:
        doc = json.loads(request)
        assert request == json.dumps(doc, sort_keys=True, separators=(",", ":"))
        assert (key, request) == request_key(
            doc["endpoint"], doc["model"], doc["prompt"], doc["params"], doc["input"]
        )


def test_cached_unparseable_answers_are_parsed_again(tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"

    async def main() -> tuple[ProbeResult, ProbeResult, int]:
        async with FakeOpenAI(answer=lambda t: "no idea") as srv:
            m = prompted(srv.base_url, labels=["positive", "negative"])
            a = await ts.probe([m], ["t1", "t2"], cache=cache, progress=False)
            b = await ts.probe([m], ["t1", "t2"], cache=cache, progress=False)
            return a, b, len(srv.hits)

    a, b, hits = run(main())
    assert hits == 2 and a["a"].n_unparseable == b["a"].n_unparseable == 2


def test_sampled_answers_are_not_served_unless_asked(tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    texts = [f"t{i}" for i in range(5)]

    async def main() -> list[int]:
        counts = []
        async with FakeOpenAI() as srv:
            sampled = prompted(srv.base_url, params={"temperature": 0.8})
            seeded = prompted(srv.base_url, params={"temperature": 0.8, "seed": 7}, name="s")
            for kwargs in ({}, {}, {"cache_sampled": True}):
                before = len(srv.hits)
                await ts.probe([sampled], texts, cache=cache, progress=False, **kwargs)
                counts.append(len(srv.hits) - before)
            for _ in range(2):
                before = len(srv.hits)
                await ts.probe([seeded], texts, cache=cache, progress=False)
                counts.append(len(srv.hits) - before)
        return counts

    assert run(main()) == [5, 5, 0, 5, 0]
    assert prompted("http://127.0.0.1:9/v1", params={"temperature": 0.8}).sampled
    assert not prompted("http://127.0.0.1:9/v1").sampled


def test_cancelled_run_resumes_with_only_the_missing_requests(tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    texts = [f"text {i}" for i in range(60)]

    async def main() -> tuple[int, list[str], ProbeResult]:
        async with FakeOpenAI(delay=0.03) as srv:
            task = asyncio.ensure_future(
                ts.probe([prompted(srv.base_url)], texts, cache=cache, progress=False)
            )
            for _ in range(500):
                if len(srv.hits) >= 25:
                    break
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with ProbeCache(cache) as c:
                stored = len(c)
                assert stored == len({r["input"][0] for r in c.requests()})
            before = len(srv.hits)
            res = await ts.probe([prompted(srv.base_url)], texts, cache=cache, progress=False)
            return stored, srv.texts()[before:], res

    stored, asked, res = run(main())
    assert 15 <= stored < 60
    assert len(asked) == len(set(asked)) == 60 - stored  # only the missing ones, each once
    assert res.usage.cached == stored and res["a"].n_ok == 60


CHILD = """
import sys
import taskspace as ts
url, cache, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ep = ts.OpenAIEndpoint(url, "test-model", max_concurrency=4, max_retries=0, name="srv")
m = ts.Prompted(ep, "{text}", name="a")
ts.probe_sync([m], [f"text {i}" for i in range(n)], cache=cache, progress=False)
print("finished")
"""


@pytest.mark.parametrize("kill_after", [1, 12, 45])
def test_killed_process_resumes_rerunning_at_most_what_was_in_flight(tmp_path: Path, kill_after: int) -> None:
    # group commit: a worker sends its next request only once its answer is committed, so a
    # SIGKILL at any point loses at most the max_concurrency (4) requests in flight
    cache = tmp_path / "c.sqlite"
    n = 80
    texts = [f"text {i}" for i in range(n)]

    async def main() -> tuple[list[str], set[str], list[str], ProbeResult]:
        async with FakeOpenAI(ok_delay=0.002) as srv:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                CHILD,
                srv.base_url,
                str(cache),
                str(n),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                deadline = time.monotonic() + 20
                while len(srv.hits) < kill_after and time.monotonic() < deadline and proc.returncode is None:
                    await asyncio.sleep(0.0005)
            finally:
                if proc.returncode is None:
                    proc.kill()
                out, err = await proc.communicate()
            assert b"finished" not in out, "the child finished before it was killed"
            assert proc.returncode == -9, err.decode()
            await asyncio.sleep(0.2)  # requests the child sent before it died reach the handler
            before = srv.texts()
            with ProbeCache(cache) as c:
                stored = {r["input"][0] for r in c.requests()}
            ep = ts.OpenAIEndpoint(srv.base_url, "test-model", max_concurrency=4, max_retries=0, name="srv")
            res = await ts.probe([ts.Prompted(ep, "{text}", name="a")], texts, cache=cache, progress=False)
            return before, stored, srv.texts()[len(before) :], res

    before, stored, after, res = run(main())
    assert stored <= set(before) and len(before) >= kill_after
    assert len(after) == len(set(after)) == n - len(stored)  # each missing text asked once ...
    assert set(after) | stored == set(texts)  # ... and every text answered
    reasked = set(after) & set(before)
    assert len(reasked) <= 4, (len(before), len(stored), sorted(reasked))  # only what was in flight
    assert res["a"].n_ok == n and res.usage.cached == len(stored)


def test_callable_answers_are_cached_with_a_cache_id(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def fn(batch: list[str]) -> list[Any]:
        calls.append(batch)
        return [[0.25, 0.75] if "b" in t else "x" for t in batch]

    m = ts.CallableModel(fn, name="f", labels=["x", "y"], cache_id="fn-v1", batch_size=2)
    texts = ["a", "b", "c"]
    r1 = ts.probe_sync([m], texts, cache=tmp_path / "c.sqlite", progress=False)
    r2 = ts.probe_sync([m], texts, cache=tmp_path / "c.sqlite", progress=False)
    assert len(calls) == 2 and r2.usage.cached == 3
    assert r1["f"].outputs[0] == r2["f"].outputs[0] == "x"
    assert list(r2["f"].outputs[1]) == [0.25, 0.75]
    plain = ts.CallableModel(fn, name="g", labels=["x", "y"])
    ts.probe_sync([plain], texts, cache=tmp_path / "c.sqlite", progress=False)
    assert len(calls) == 3 and calls[-1] == texts  # no cache_id: never cached


def test_a_worker_sends_its_next_request_only_once_its_answer_is_committed(tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    seen: list[tuple[int, int]] = []

    def committed(n: int) -> None:  # runs in the event loop, between two steps of the client
        if cache.exists():
            conn = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
            try:
                seen.append((n, conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]))
            except sqlite3.OperationalError:  # the schema is not there yet
                seen.append((n, 0))
            finally:
                conn.close()

    async def main() -> ProbeResult:
        async with FakeOpenAI(on_hit=committed) as srv:
            m = prompted(srv.base_url, max_concurrency=4)
            return await ts.probe([m], [f"t{i}" for i in range(60)], cache=cache, progress=False)

    assert run(main())["a"].n_ok == 60
    # when request n arrives, at most the 3 other workers' requests are unanswered or uncommitted
    assert len(seen) == 60 and all(rows >= n - 4 for n, rows in seen), seen


def test_a_named_endpoint_keeps_its_cache_when_the_server_moves(tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    texts = ["good one", "bad one"]

    async def one_run(name: str | None) -> tuple[ProbeResult, int]:
        async with FakeOpenAI() as srv:  # a new port each time
            ep = ts.OpenAIEndpoint(srv.base_url, "test-model", name=name, max_retries=0)
            if name is None:
                assert ep.id == f"chat:{srv.base_url}"  # the default: the URL, as before names
            res = await ts.probe([ts.Prompted(ep, "{text}", name="a")], texts, cache=cache, progress=False)
            return res, len(srv.hits)

    (_, hits1), (moved, hits2) = run(one_run("local-gemma")), run(one_run("local-gemma"))
    assert hits1 == 2 and hits2 == 0 and moved.usage.cached == 2
    assert moved["a"].outputs == ["positive", "negative"]
    (_, hits3), (unnamed, hits4) = run(one_run(None)), run(one_run(None))
    assert hits3 == 2 and hits4 == 2 and unnamed.usage.cached == 0  # keyed by the URL's port
    with pytest.raises(ProbeError, match="name"):
        ts.OpenAIEndpoint("http://127.0.0.1:1/v1", "m", name="")


def test_bad_cache_files_are_clear_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ProbeError, match="cannot use"):
        ProbeCache(junk)
    other = tmp_path / "other.sqlite"
    with ProbeCache(other):
        pass
    conn = sqlite3.connect(other)
    conn.execute("UPDATE meta SET value='99' WHERE name='schema'")
    conn.commit()
    conn.close()
    with pytest.raises(ProbeError, match="format 99"):
        ProbeCache(other)


def test_keys_are_those_the_old_code_wrote(tmp_path: Path) -> None:
    # tests/fixtures/legacy: a cache written before the runner was split into plan/runner/http/local
    import importlib.util
    import shutil

    from taskspace.probing.plan import Plan

    legacy = Path(__file__).parent / "fixtures" / "legacy"
    spec = importlib.util.spec_from_file_location("make_legacy", legacy / "make_legacy.py")
    assert spec is not None and spec.loader is not None
    make_legacy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_legacy)
    expected = json.loads((legacy / "requests.json").read_text(encoding="utf-8"))
    shutil.copy(legacy / "probe_cache.sqlite", tmp_path / "c.sqlite")
    with ProbeCache(tmp_path / "c.sqlite") as cache:
        plan = Plan(make_legacy.models(), expected["texts"], cache=cache)
        assert plan.prepare("legacy") == 0  # every answer is served from the cache
        assert sorted(k for m in plan.models for k in m.keys or []) == expected["keys"]
    conn = sqlite3.connect(tmp_path / "c.sqlite")
    rows = dict(conn.execute("SELECT key, request FROM answers").fetchall())
    conn.close()
    for m in plan.models:
        for i in range(len(expected["texts"])):
            assert m.keys is not None and rows[m.keys[i]] == m.request(i)
