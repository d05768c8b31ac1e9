"""``taskspace serve``: a real aiohttp server on 127.0.0.1 with a real aiohttp client.

Answers are checked against the library (a second TaskSpace opened on the same file), bad
requests against their stable error codes, and the process-level behaviour (SIGHUP reload, graceful
SIGTERM) against a ``taskspace serve`` subprocess.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import taskspace as ts
from taskspace.cli import main
from taskspace.datasets import builtin as datasets
from taskspace.errors import InvalidInputError
from taskspace.service.app import TOKEN_ENV, Service
from taskspace.service.limits import Limits
from taskspace.service.run import serve_space
from taskspace.space.task_space import TaskSpace

pytestmark = pytest.mark.timeout(120)

DIM = 256
DOC = Path(__file__).resolve().parents[1] / "docs" / "serve.md"


def surrogate() -> ts.Surrogate:
    return ts.Surrogate(features=64, dim=DIM)


def build_space(path: Path, *, extra: tuple[str, ...] = ()) -> None:
    """Three built-in datasets, an oracle model, 40 random entries (half models) and ``extra`` ones."""
    sur = surrogate()
    rng = np.random.default_rng(0)
    with ts.TaskSpace(sur, path) as space:
        for name in ("movie_sentiment", "product_sentiment", "news_topic"):
            space.add(sur.dataset_embedding(*datasets.load(name), name=name, mode="text"))
        texts, labels = datasets.load("movie_sentiment")
        space.add(sur.model_embedding(texts, labels, name="oracle", mode="text"))
        for i, name in enumerate([f"random-{j:02d}" for j in range(40)] + list(extra)):
            vector = rng.standard_normal(DIM).astype(np.float32)
            kind = "model" if i % 2 else "dataset"
            space.add(
                ts.TaskEmbedding(vector, sur.fingerprint, "text", "operator", name=name, kind=kind)  # type: ignore[arg-type]
            )


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve") / "master.sqlite"
    build_space(path)
    return path


@pytest.fixture
def space_path(master: Path, tmp_path: Path) -> Path:
    """A fresh copy of the module's space file for each test (tests may change it)."""
    path = tmp_path / "space.sqlite"
    path.write_bytes(master.read_bytes())
    return path


@pytest.fixture(autouse=True)
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)


@pytest.fixture
def lib(space_path: Path) -> Iterator[TaskSpace]:
    with TaskSpace.open(space_path) as space:
        yield space


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def call(
    http: aiohttp.ClientSession,
    service: Service,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    async with http.request(method, f"{service.url}{path}", data=data, headers=hdrs) as r:
        text = await r.text()
        if r.content_type == "application/json":
            return r.status, json.loads(text)
        return r.status, text


def pairs_of(found: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return [(r["name"], r["similarity"]) for r in found]


def query_vectors(n: int, seed: int = 1) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [[float(x) for x in rng.standard_normal(DIM).astype(np.float32)] for _ in range(n)]


# -- answers equal the library's ------------------------------------------------------------------------


def test_search_select_embed_and_tasks_equal_the_library(space_path: Path, lib: TaskSpace) -> None:
    sur = lib.surrogate
    texts, labels = datasets.load("product_sentiment")
    probe = sur.dataset_embedding(texts, labels, mode="text", name="probe")
    vectors = query_vectors(3)
    pair_texts = [
        ["a man sleeps", "someone rests"],
        ["a dog runs", "the dog is asleep"],
        ["it rains", "it is wet"],
    ]
    pair_labels = ["entailment", "contradiction", "entailment"]
    soft = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]

    async def check() -> None:
        async with serve_space(space_path) as service, aiohttp.ClientSession() as http:
            for kind in (None, "dataset", "model"):
                status, got = await call(
                    http, service, "POST", "/v1/search", {"name": "movie_sentiment", "k": 6, "kind": kind}
                )
                assert status == 200 and got["fingerprint"] == sur.fingerprint
                assert pairs_of(got["results"]) == lib.nearest("movie_sentiment", k=6, kind=kind)
            for v in vectors:
                status, got = await call(
                    http, service, "POST", "/v1/search", {"vector": v, "k": 9, "fingerprint": sur.fingerprint}
                )
                assert status == 200
                assert pairs_of(got["results"]) == lib.nearest(np.array(v, dtype=np.float32), k=9)
            status, got = await call(
                http, service, "POST", "/v1/search", {"embedding": probe.to_dict(), "k": 4}
            )
            assert pairs_of(got["results"]) == lib.nearest(probe, k=4)

            status, got = await call(http, service, "POST", "/v1/select", {"dataset": "movie_sentiment"})
            assert status == 200 and pairs_of(got["results"]) == lib.select("movie_sentiment")
            cands = ["oracle", "random-03", "news_topic"]
            status, got = await call(
                http, service, "POST", "/v1/select", {"dataset": "movie_sentiment", "candidates": cands}
            )
            assert pairs_of(got["results"]) == lib.select("movie_sentiment", cands)
            body = {"pairs": [[t, y] for t, y in zip(texts, labels, strict=True)]}
            status, got = await call(http, service, "POST", "/v1/select", body)
            assert pairs_of(got["results"]) == lib.select(sur.dataset_embedding(texts, labels, mode="text"))

            # /v1/embed: the space's mode (text) by default; the result is a TaskEmbedding dict.
            status, got = await call(
                http, service, "POST", "/v1/embed", {"texts": texts, "outputs": labels, "name": "p"}
            )
            assert status == 200 and got["degenerate"] is False
            assert ts.TaskEmbedding.from_dict(got) == sur.dataset_embedding(
                texts, labels, mode="text", name="p"
            )
            body = {
                "pairs": [[t, y] for t, y in zip(texts, labels, strict=True)],
                "kind": "model",
                "name": "m",
            }
            status, got = await call(http, service, "POST", "/v1/embed", body)
            assert ts.TaskEmbedding.from_dict(got) == sur.model_embedding(
                texts, labels, mode="text", name="m"
            )
            body = {"pairs": [[x, y] for x, y in zip(pair_texts, pair_labels, strict=True)], "mode": "label"}
            status, got = await call(http, service, "POST", "/v1/embed", body)
            expected = sur.dataset_embedding(
                [a for a, _ in pair_texts], pair_labels, text_pairs=[b for _, b in pair_texts], mode="label"
            )
            assert status == 200 and ts.TaskEmbedding.from_dict(got) == expected
            body = {"texts": texts[:4], "outputs": soft, "mode": "label"}
            status, got = await call(http, service, "POST", "/v1/embed", body)
            assert ts.TaskEmbedding.from_dict(got) == sur.dataset_embedding(texts[:4], soft, mode="label")
            # A degenerate task is an answer (the zero vector), not an error.
            status, got = await call(
                http, service, "POST", "/v1/embed", {"texts": ["a", "b"], "outputs": ["x", "x"]}
            )
            assert status == 200 and got["degenerate"] is True and not any(got["vector"])

            status, got = await call(http, service, "GET", "/v1/tasks")
            assert status == 200 and got["total"] == len(lib) == 44
            assert [t["name"] for t in got["tasks"]] == lib.names()
            models = set(lib.names("model"))
            assert all((t["kind"] == "model") == (t["name"] in models) for t in got["tasks"])
            assert got["surrogate"] == sur.config and got["mode"] == "text" and got["dim"] == DIM
            status, got = await call(http, service, "GET", "/v1/tasks?kind=model&offset=5&limit=3")
            assert [t["name"] for t in got["tasks"]] == lib.names("model")[5:8]
            assert await call(http, service, "GET", "/healthz") == (200, {"status": "ok"})

    run(check())


def test_concurrent_requests_give_the_library_answers(space_path: Path, lib: TaskSpace) -> None:
    sur = lib.surrogate
    cases: list[tuple[str, dict[str, Any], Any]] = []
    for i, v in enumerate(query_vectors(60, seed=7)):
        kind = (None, "dataset", "model")[i % 3]
        cases.append(
            (
                "/v1/search",
                {"vector": v, "k": 5, "kind": kind},
                lib.nearest(np.array(v, np.float32), k=5, kind=kind),
            )
        )
    for name in lib.names()[:30]:
        cases.append(("/v1/search", {"name": name, "k": 3}, lib.nearest(name, k=3)))
        cases.append(("/v1/select", {"dataset": name}, lib.select(name)))
    for name in ("movie_sentiment", "news_topic", "question_type"):
        texts, labels = datasets.load(name)
        body = {"texts": texts, "outputs": labels}
        cases.append(("/v1/embed", body, sur.dataset_embedding(texts, labels, mode="text")))

    async def check() -> None:
        async with serve_space(space_path) as service, aiohttp.ClientSession() as http:
            gate = asyncio.Semaphore(32)

            async def one(path: str, body: dict[str, Any]) -> tuple[int, Any]:
                async with gate:
                    return await call(http, service, "POST", path, body)

            answers = await asyncio.gather(*(one(path, body) for path, body, _ in cases))
        for (path, _, expected), (status, got) in zip(cases, answers, strict=True):
            assert status == 200
            if path == "/v1/embed":
                assert ts.TaskEmbedding.from_dict(got) == expected
            else:
                assert pairs_of(got["results"]) == expected

    run(check())


def test_search_over_the_hnsw_index_equals_the_library(tmp_path: Path) -> None:
    """Above 10,000 entries TaskSpace searches its HNSW index; the service answers the same."""
    from taskspace.search.index import EXACT_MAX
    from taskspace.space.store import Store

    sur = ts.Surrogate(features=16, dim=32)
    path = tmp_path / "big.sqlite"
    ts.TaskSpace(sur, path).close()
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((50, 32)).astype(np.float32)
    n = EXACT_MAX + 200
    vectors = centres[rng.integers(0, 50, n)] + 0.3 * rng.standard_normal((n, 32)).astype(np.float32)
    store = Store(path)
    with store.transaction() as db:  # one transaction: TaskSpace.add commits (and fsyncs) each row
        for i in range(n):
            store.insert(
                db, ts.TaskEmbedding(vectors[i], sur.fingerprint, "text", "operator", name=f"t{i:05d}")
            )
    store.close()
    queries = [
        [float(x) for x in q] for q in centres[:20] + 0.3 * rng.standard_normal((20, 32)).astype(np.float32)
    ]
    with TaskSpace.open(path) as lib:
        expected = [lib.nearest(np.array(q, np.float32), k=10) for q in queries]
        by_name = lib.nearest("t00007", k=10)

    async def check() -> None:
        async with serve_space(path) as service, aiohttp.ClientSession() as http:
            for q, want in zip(queries, expected, strict=True):
                status, got = await call(http, service, "POST", "/v1/search", {"vector": q, "k": 10})
                assert status == 200 and pairs_of(got["results"]) == want
            status, got = await call(http, service, "POST", "/v1/search", {"name": "t00007", "k": 10})
            assert pairs_of(got["results"]) == by_name

    run(check())


# -- authentication ---------------------------------------------------------------------------------


def test_bearer_token_is_required_compared_and_never_logged(
    space_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token = "tok-3f9a1c77e2b54d08a6"
    monkeypatch.setenv(TOKEN_ENV, token)
    caplog.set_level(logging.DEBUG)
    good = {"Authorization": f"Bearer {token}"}
    seen: list[str] = []

    async def check() -> None:
        async with serve_space(space_path, access_log=True) as service, aiohttp.ClientSession() as http:
            assert service.requires_token and token not in repr(service)
            search = {"name": "oracle", "k": 2}
            for headers in (
                {},
                {"Authorization": "Bearer wrong-token"},
                {"Authorization": f"Basic {token}"},
                {"Authorization": f"Bearer {token}x"},
                {"Authorization": "Bearer"},
                {"Authorization": f"Bearer {token[:-1]}"},
            ):
                status, got = await call(http, service, "POST", "/v1/search", search, headers=headers)
                assert status == 401 and got["error"]["code"] == "unauthorized", headers
                seen.append(json.dumps(got))
            async with http.get(f"{service.url}/metrics") as r:
                assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
            status, got = await call(http, service, "POST", "/v1/search", search, headers=good)
            assert status == 200 and len(got["results"]) == 2
            status, got = await call(
                http, service, "POST", "/v1/search", search, headers={"Authorization": f"bearer  {token}"}
            )
            assert status == 200
            assert (await call(http, service, "GET", "/healthz"))[0] == 200  # for load balancers
            status, text = await call(http, service, "GET", "/metrics", headers=good)
            assert status == 200 and 'code="unauthorized"' in text
            seen.append(text)
            # A failing request with the right token: its error must not echo the header either.
            status, got = await call(http, service, "POST", "/v1/search", {"name": token}, headers=good)
            assert status == 404
            seen.append(json.dumps(got).replace(token, "<the name we sent>", 1))

    run(check())
    assert "POST /v1/search" in caplog.text  # the access log ran
    assert token not in caplog.text
    assert all(token not in s for s in seen)


def test_refuses_non_loopback_without_token(space_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def start(host: str) -> None:
        async with serve_space(space_path, host=host):
            pass

    with pytest.raises(InvalidInputError, match=TOKEN_ENV):
        run(start("0.0.0.0"))
    assert main(["serve", "--space", str(space_path), "--host", "0.0.0.0", "--port", "0"]) == 2
    assert main(["serve", "--space", str(space_path), "--host", "192.0.2.1", "--port", "0"]) == 2
    monkeypatch.setenv(TOKEN_ENV, "   ")
    assert main(["serve", "--space", str(space_path), "--port", "0"]) == 2  # set but empty


# -- bad requests -----------------------------------------------------------------------------------

SMALL = Limits(max_batch=50, max_text_chars=200, max_body_bytes=100_000, max_k=20)


def bad_requests(lib: TaskSpace) -> list[tuple[str, str, Any, int, str]]:
    """(method, path, body (dict, or bytes sent raw), status, code)."""
    zero = [0.0] * DIM
    one = [1.0] * DIM
    other = ts.Surrogate(features=32, dim=DIM).dataset_embedding(["a b", "c d"], ["x", "y"], mode="text")
    label_mode = lib.surrogate.dataset_embedding(["a b", "c d"], ["x", "y"], mode="label")
    texts = ["good film", "bad film"]
    return [
        ("POST", "/v1/search", b"{not json", 400, "bad_json"),
        ("POST", "/v1/search", b"[1, 2]", 400, "bad_json"),
        ("POST", "/v1/search", b"\xff\xfe\x00", 400, "bad_json"),
        ("POST", "/v1/search", b"", 400, "bad_json"),
        ("POST", "/v1/search", b"[" * 5000 + b"]" * 5000, 400, "bad_json"),
        ("POST", "/v1/search", {}, 400, "invalid_request"),
        ("POST", "/v1/search", {"name": "oracle", "vector": one}, 400, "invalid_request"),
        ("POST", "/v1/search", {"name": "oracle", "vectr": one}, 400, "invalid_request"),
        ("POST", "/v1/search", {"name": 5}, 400, "invalid_request"),
        ("POST", "/v1/search", {"name": "no-such-task"}, 404, "unknown_task"),
        ("POST", "/v1/search", {"name": "oracle", "k": 0}, 400, "invalid_request"),
        ("POST", "/v1/search", {"name": "oracle", "k": 21}, 400, "invalid_request"),
        ("POST", "/v1/search", {"name": "oracle", "k": True}, 400, "invalid_request"),
        ("POST", "/v1/search", {"name": "oracle", "k": "3"}, 400, "invalid_request"),
        ("POST", "/v1/search", {"name": "oracle", "kind": "models"}, 400, "invalid_request"),
        ("POST", "/v1/search", {"name": "oracle", "fingerprint": "abc"}, 400, "invalid_request"),
        ("POST", "/v1/search", {"vector": [1.0, 2.0, 3.0]}, 400, "invalid_request"),
        ("POST", "/v1/search", {"vector": ["a"] * DIM}, 400, "invalid_request"),
        ("POST", "/v1/search", {"vector": zero}, 400, "invalid_request"),
        ("POST", "/v1/search", {"vector": [one, one]}, 400, "invalid_request"),
        ("POST", "/v1/search", {"vector": "abc"}, 400, "invalid_request"),
        ("POST", "/v1/search", {"vector": [None] * DIM}, 400, "invalid_request"),
        ("POST", "/v1/search", b'{"vector": [NaN' + b", 1.0" * (DIM - 1) + b"]}", 400, "invalid_request"),
        ("POST", "/v1/search", {"vector": [1e39] * DIM}, 400, "invalid_request"),
        (
            "POST",
            "/v1/search",
            {"vector": one, "fingerprint": "0123456789abcdef"},
            409,
            "fingerprint_mismatch",
        ),
        ("POST", "/v1/search", {"embedding": other.to_dict()}, 409, "fingerprint_mismatch"),
        ("POST", "/v1/search", {"embedding": label_mode.to_dict()}, 409, "fingerprint_mismatch"),
        ("POST", "/v1/search", {"embedding": {"format": "nope"}}, 400, "invalid_request"),
        ("POST", "/v1/search", {"embedding": [1, 2]}, 400, "invalid_request"),
        ("POST", "/v1/embed", {}, 400, "invalid_request"),
        ("POST", "/v1/embed", {"texts": texts}, 400, "invalid_request"),
        ("POST", "/v1/embed", {"texts": "good film", "outputs": ["x"]}, 400, "invalid_request"),
        ("POST", "/v1/embed", {"texts": [], "outputs": []}, 400, "invalid_request"),
        ("POST", "/v1/embed", {"texts": texts, "outputs": ["x"]}, 400, "invalid_request"),
        ("POST", "/v1/embed", {"texts": [1, 2], "outputs": ["x", "y"]}, 400, "invalid_request"),
        ("POST", "/v1/embed", {"texts": texts, "outputs": ["x", 1], "mode": "label"}, 400, "invalid_request"),
        (
            "POST",
            "/v1/embed",
            {"texts": texts, "outputs": [[0.5, 0.6], [1, 0]], "mode": "label"},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/embed",
            {"texts": texts, "outputs": [[0.5, 0.5], [1]], "mode": "label"},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/embed",
            {"texts": texts, "outputs": ["x", "y"], "mode": "speech"},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/embed",
            {"texts": texts, "outputs": ["x", "y"], "kind": "prompt"},
            400,
            "invalid_request",
        ),
        ("POST", "/v1/embed", {"texts": texts, "outputs": ["x", "y"], "name": 3}, 400, "invalid_request"),
        ("POST", "/v1/embed", {"texts": ["\ud800"], "outputs": ["x"]}, 400, "invalid_request"),
        ("POST", "/v1/embed", {"pairs": [["a"]]}, 400, "invalid_request"),
        ("POST", "/v1/embed", {"pairs": [[["a"], "x"]]}, 400, "invalid_request"),
        ("POST", "/v1/embed", {"pairs": [[["a", "b"], "x"], ["c", "y"]]}, 400, "invalid_request"),
        ("POST", "/v1/embed", {"pairs": [["a", "x"]], "texts": ["a"]}, 400, "invalid_request"),
        ("POST", "/v1/embed", {"pairs": "a"}, 400, "invalid_request"),
        ("POST", "/v1/embed", {"texts": ["t"] * 51, "outputs": ["x"] * 51}, 413, "batch_too_large"),
        ("POST", "/v1/embed", {"pairs": [["t", "x"]] * 51}, 413, "batch_too_large"),
        ("POST", "/v1/embed", {"texts": ["t" * 201, "u"], "outputs": ["x", "y"]}, 413, "text_too_long"),
        ("POST", "/v1/embed", {"texts": ["t", "u"], "outputs": ["x" * 201, "y"]}, 413, "text_too_long"),
        (
            "POST",
            "/v1/embed",
            {"texts": ["t"] * 40, "outputs": ["x" * 199] * 40, "pad": "y" * 100_000},
            413,
            "body_too_large",
        ),
        ("POST", "/v1/select", {"dataset": "no-such-task"}, 404, "unknown_task"),
        (
            "POST",
            "/v1/select",
            {"dataset": "movie_sentiment", "candidates": ["no-such"]},
            404,
            "unknown_task",
        ),
        ("POST", "/v1/select", {"dataset": "movie_sentiment", "candidates": []}, 400, "invalid_request"),
        (
            "POST",
            "/v1/select",
            {"dataset": "movie_sentiment", "candidates": "oracle"},
            400,
            "invalid_request",
        ),
        ("POST", "/v1/select", {"dataset": "movie_sentiment", "candidates": [1]}, 400, "invalid_request"),
        (
            "POST",
            "/v1/select",
            {"dataset": "movie_sentiment", "candidates": ["oracle"] * 51},
            413,
            "batch_too_large",
        ),
        ("POST", "/v1/select", {"dataset": "movie_sentiment", "outputs": ["x"]}, 400, "invalid_request"),
        ("POST", "/v1/select", {"dataset": "movie_sentiment", "texts": texts}, 400, "invalid_request"),
        ("POST", "/v1/select", {"dataset": zero[:3]}, 400, "invalid_request"),
        ("POST", "/v1/select", {"embedding": other.to_dict()}, 409, "fingerprint_mismatch"),
        ("GET", "/v1/tasks?kind=prompt", None, 400, "invalid_request"),
        ("GET", "/v1/tasks?offset=-1", None, 400, "invalid_request"),
        ("GET", "/v1/tasks?limit=abc", None, 400, "invalid_request"),
        ("GET", "/v1/tasks?limit=0", None, 400, "invalid_request"),
        ("GET", "/v1/tasks?sort=name", None, 400, "invalid_request"),
        ("POST", "/v1/tasks", {"name": "oracle", "texts": texts, "outputs": ["x", "y"]}, 409, "task_exists"),
        ("POST", "/v1/tasks", {"texts": texts, "outputs": ["x", "y"]}, 400, "invalid_request"),
        (
            "POST",
            "/v1/tasks",
            {"name": "n", "texts": texts, "outputs": ["x", "y"], "mode": "label"},
            409,
            "fingerprint_mismatch",
        ),
        (
            "POST",
            "/v1/tasks",
            {"name": "n", "texts": texts, "outputs": ["x", "y"], "replace": "yes"},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/tasks",
            {"name": "n", "texts": texts, "outputs": ["x", "y"], "meta": [1]},
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/tasks",
            {"name": "n", "texts": texts, "outputs": ["x", "y"], "meta": {"f": b"x".hex()}, "kind": "x"},
            400,
            "invalid_request",
        ),
        ("POST", "/v1/tasks", {"embedding": other.to_dict(), "name": "x"}, 400, "invalid_request"),
        (
            "POST",
            "/v1/tasks",
            {"embedding": {**other.to_dict(), "name": "other"}},
            409,
            "fingerprint_mismatch",
        ),
        ("DELETE", "/v1/tasks/no-such-task", None, 404, "unknown_task"),
        ("POST", "/v1/reload", {"now": True}, 400, "invalid_request"),
        ("GET", "/v1/nothing", None, 404, "not_found"),
        ("GET", "/v1/search", None, 405, "method_not_allowed"),
        ("PUT", "/v1/tasks", {}, 405, "method_not_allowed"),
    ]


def test_every_bad_request_gets_a_4xx_with_a_code_and_the_server_keeps_serving(
    space_path: Path, lib: TaskSpace
) -> None:
    cases = bad_requests(lib)
    expected = lib.nearest("movie_sentiment", k=3)

    async def check() -> None:
        async with serve_space(space_path, limits=SMALL) as service, aiohttp.ClientSession() as http:
            for method, path, body, status, code in cases:
                raw = body if isinstance(body, bytes) else None
                got_status, got = await call(http, service, method, path, None if raw else body, raw=raw)
                where = f"{method} {path} {str(body)[:60]}"
                assert (got_status, got["error"]["code"]) == (status, code), f"{where}: {got}"
                assert isinstance(got["error"]["message"], str) and len(got["error"]["message"]) > 10, where
                ok, answer = await call(
                    http, service, "POST", "/v1/search", {"name": "movie_sentiment", "k": 3}
                )
                assert ok == 200 and pairs_of(answer["results"]) == expected, f"after {where}"
            status, text = await call(http, service, "GET", "/metrics")
            assert (
                f'taskspace_requests_total{{endpoint="/v1/search",method="POST",status="200"}} {len(cases)}'
                in text
            )

    run(check())
    assert len(TaskSpace.open(space_path)) == len(lib)  # nothing was written


def test_a_request_over_its_deadline_gets_503_timeout(space_path: Path, lib: TaskSpace) -> None:
    """A client that sends half a body and stalls (slow loris) is answered at the deadline."""

    async def check() -> None:
        async with (
            serve_space(space_path, limits=Limits(timeout=1.0)) as service,
            aiohttp.ClientSession() as http,
        ):
            port = int(service.url.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(
                    b"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 100\r\n\r\n{"name": '
                )
                await writer.drain()
                answer = b""
                while b'"timeout"' not in answer:  # bounded by wait_for and EOF
                    chunk = await asyncio.wait_for(reader.read(4096), 20)
                    if not chunk:
                        break
                    answer += chunk
            finally:
                writer.close()
            assert answer.startswith(b"HTTP/1.1 503") and b'"code": "timeout"' in answer
            status, got = await call(http, service, "POST", "/v1/search", {"name": "oracle", "k": 2})
            assert status == 200 and pairs_of(got["results"]) == lib.nearest("oracle", k=2)

    run(check())


def test_busy_embedding_workers_do_not_hold_up_searches(space_path: Path, lib: TaskSpace) -> None:
    """Embeddings and searches have separate worker pools: with every embedding worker held (as by
    a huge embedding), searches are still answered, and the embedding is answered afterwards.
    Queues are bounded: past ``max_pending`` jobs a request gets 503 ``overloaded`` at once."""
    texts, labels = datasets.load("news_topic")

    async def check() -> None:
        async with (
            serve_space(space_path, limits=Limits(max_pending=1)) as service,
            aiohttp.ClientSession() as http,
        ):
            gate = threading.Event()
            held = service.executor("embed").submit(gate.wait, 60)  # occupies the only embedding worker
            try:
                embedding = asyncio.create_task(
                    call(http, service, "POST", "/v1/embed", {"texts": texts, "outputs": labels})
                )
                for name in lib.names()[:10]:
                    status, got = await call(http, service, "POST", "/v1/search", {"name": name, "k": 4})
                    assert status == 200 and pairs_of(got["results"]) == lib.nearest(name, k=4)
                assert not embedding.done()
                # The embedding waits in the queue; with max_pending=1 another one is refused at once.
                status, got = await call(
                    http, service, "POST", "/v1/embed", {"texts": texts, "outputs": labels}
                )
                assert (status, got["error"]["code"]) == (503, "overloaded")
                assert not embedding.done()
            finally:
                gate.set()
            assert held.result(timeout=10) is True
            status, got = await embedding
            assert status == 200
            assert ts.TaskEmbedding.from_dict(got) == lib.surrogate.dataset_embedding(
                texts, labels, mode="text"
            )

    run(check())


# -- writes, read-only, reload, metrics ------------------------------------------------------------------


def test_writes_add_and_remove_tasks_unless_read_only(space_path: Path) -> None:
    sur = surrogate()
    texts, labels = datasets.load("question_type")
    body = {"name": "qt-model", "kind": "model", "texts": texts, "outputs": labels, "meta": {"model": "m1"}}

    async def read_only() -> None:
        async with serve_space(space_path, read_only=True) as service, aiohttp.ClientSession() as http:
            for method, path, payload in (("POST", "/v1/tasks", body), ("DELETE", "/v1/tasks/oracle", None)):
                status, got = await call(http, service, method, path, payload)
                assert (status, got["error"]["code"]) == (403, "read_only")
            assert (await call(http, service, "POST", "/v1/search", {"name": "oracle"}))[0] == 200

    async def writable() -> None:
        async with serve_space(space_path) as service, aiohttp.ClientSession() as http:
            status, got = await call(http, service, "POST", "/v1/tasks", body)
            assert status == 201 and got == {
                "name": "qt-model",
                "kind": "model",
                "fingerprint": sur.fingerprint,
                "degenerate": False,
                "total": 45,
            }
            status, got = await call(http, service, "POST", "/v1/search", {"name": "qt-model", "k": 5})
            with TaskSpace.open(space_path) as lib:
                assert lib.get("qt-model") == sur.model_embedding(
                    texts, labels, mode="text", name="qt-model", meta={"model": "m1"}
                )
                assert pairs_of(got["results"]) == lib.nearest("qt-model", k=5)
            assert (await call(http, service, "POST", "/v1/tasks", body))[0] == 409
            status, got = await call(http, service, "POST", "/v1/tasks", {**body, "replace": True})
            assert status == 201 and got["total"] == 45
            e = sur.dataset_embedding(["a b", "c d"], ["x", "y"], mode="text", name="from-embedding")
            status, got = await call(http, service, "POST", "/v1/tasks", {"embedding": e.to_dict()})
            assert status == 201 and got["total"] == 46
            status, got = await call(http, service, "DELETE", "/v1/tasks/qt-model")
            assert (status, got) == (200, {"deleted": "qt-model", "total": 45})
            assert (await call(http, service, "POST", "/v1/search", {"name": "qt-model"}))[0] == 404

    run(read_only())
    with TaskSpace.open(space_path) as lib:
        assert "qt-model" not in lib and len(lib) == 44
    run(writable())
    with TaskSpace.open(space_path) as lib:
        assert "qt-model" not in lib and "from-embedding" in lib and len(lib) == 45


def replace_space(path: Path, tmp: Path, *, extra: tuple[str, ...]) -> None:
    """Build a new space file beside ``path`` and rename it over ``path`` (atomic)."""
    new = tmp / f"new-{len(extra)}.sqlite"
    build_space(new, extra=extra)
    os.replace(new, path)


def test_reload_swaps_the_file_without_dropping_requests(
    space_path: Path, tmp_path: Path, lib: TaskSpace
) -> None:
    vectors = query_vectors(40, seed=3)
    before = [lib.nearest(np.array(v, np.float32), k=5) for v in vectors]

    async def check() -> None:
        async with serve_space(space_path) as service, aiohttp.ClientSession() as http:
            replace_space(space_path, tmp_path, extra=("late-task",))
            searches = [call(http, service, "POST", "/v1/search", {"vector": v, "k": 5}) for v in vectors]
            results = await asyncio.gather(
                *searches[:20], call(http, service, "POST", "/v1/reload"), *searches[20:]
            )
            reload_status, reloaded = results[20]
            assert reload_status == 200 and reloaded["total"] == 45
            answers = results[:20] + results[21:]
            assert all(status == 200 for status, _ in answers)
            with TaskSpace.open(space_path) as new:
                after = [new.nearest(np.array(v, np.float32), k=5) for v in vectors]
            # Each search was answered from the old file or the new one, never failed or mixed.
            for (_, got), old, new_answer in zip(answers, before, after, strict=True):
                assert pairs_of(got["results"]) in (old, new_answer)
            status, got = await call(http, service, "GET", "/v1/tasks")
            assert "late-task" in [t["name"] for t in got["tasks"]]

            # A broken file: the reload fails, the previous space is still served.
            broken = tmp_path / "broken.sqlite"
            broken.write_bytes(b"this is not a database" * 100)
            os.replace(broken, space_path)
            status, got = await call(http, service, "POST", "/v1/reload")
            assert (status, got["error"]["code"]) == (500, "reload_failed")
            status, got = await call(http, service, "POST", "/v1/search", {"vector": vectors[0], "k": 5})
            assert status == 200 and pairs_of(got["results"]) == after[0]
            status, text = await call(http, service, "GET", "/metrics")
            assert 'taskspace_events_total{event="reload",result="ok"} 1' in text
            assert 'taskspace_events_total{event="reload",result="failed"} 1' in text

    run(check())


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_metrics_count_requests_latencies_and_errors(space_path: Path) -> None:
    async def check() -> None:
        async with serve_space(space_path) as service, aiohttp.ClientSession() as http:
            for _ in range(7):
                assert (await call(http, service, "POST", "/v1/search", {"name": "oracle", "k": 2}))[0] == 200
            for _ in range(3):
                assert (await call(http, service, "POST", "/v1/search", {"name": "missing"}))[0] == 404
            assert (await call(http, service, "POST", "/v1/embed", raw=b"{"))[0] == 400
            async with http.get(f"{service.url}/metrics") as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                m = parse_metrics(await r.text())
        search = 'endpoint="/v1/search"'
        assert m[f'taskspace_requests_total{{{search},method="POST",status="200"}}'] == 7
        assert m[f'taskspace_requests_total{{{search},method="POST",status="404"}}'] == 3
        assert m[f'taskspace_errors_total{{{search},code="unknown_task"}}'] == 3
        assert m['taskspace_errors_total{endpoint="/v1/embed",code="bad_json"}'] == 1
        assert m[f"taskspace_request_duration_seconds_count{{{search}}}"] == 10
        assert m[f'taskspace_request_duration_seconds_bucket{{{search},le="+Inf"}}'] == 10
        buckets = [
            v for k, v in m.items() if k.startswith(f"taskspace_request_duration_seconds_bucket{{{search}")
        ]
        assert buckets == sorted(buckets) and len(buckets) == 16
        assert 0 < m[f"taskspace_request_duration_seconds_sum{{{search}}}"] < 10 * 30
        assert m["taskspace_requests_in_flight"] == 1  # the scrape itself
        assert m["taskspace_tasks"] == 44
        info = next(k for k in m if k.startswith("taskspace_info"))
        assert f'fingerprint="{surrogate().fingerprint}"' in info and 'mode="text"' in info

    run(check())


# -- the command line ---------------------------------------------------------------------------------


def test_cli_errors_in_process(space_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--space", str(tmp_path / "missing.sqlite")]) == 2
    assert "no such space file" in capsys.readouterr().err
    (tmp_path / "junk.sqlite").write_bytes(b"junk" * 1000)
    assert main(["serve", "--space", str(tmp_path / "junk.sqlite"), "--port", "0"]) == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--space", str(space_path), "--port", str(port)]) == 1
    assert "cannot listen" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--space", str(space_path), "--timeout", "0"])
    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0 and "example:" in capsys.readouterr().out


def _first_line(stream: Any, timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def test_cli_subprocess_reloads_on_sighup_and_stops_gracefully_on_sigterm(
    space_path: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    cmd = [
        sys.executable,
        "-m",
        "taskspace",
        "serve",
        "--space",
        str(space_path),
        "--port",
        "0",
        "--read-only",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = _first_line(proc.stdout, 60)
        found = re.search(r" at (http://127\.0\.0\.1:\d+)$", line.strip())
        assert found, f"no URL in {line!r}; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        url = found.group(1)
        assert "44 tasks" in line and "read-only" in line

        async def check() -> None:
            async with aiohttp.ClientSession() as http:

                async def names() -> list[str]:
                    async with http.get(f"{url}/v1/tasks") as r:
                        return [t["name"] for t in (await r.json())["tasks"]]

                async def jobs() -> float:
                    async with http.get(f"{url}/metrics") as r:
                        return parse_metrics(await r.text())["taskspace_jobs_pending"]

                assert "late-task" not in await names()
                replace_space(space_path, tmp_path, extra=("late-task",))
                proc.send_signal(signal.SIGHUP)
                for _ in range(300):  # bounded: 30 s
                    if "late-task" in await names():
                        break
                    await asyncio.sleep(0.1)
                assert "late-task" in await names()

                # A request being worked on when SIGTERM comes is answered in full. (One whose body
                # is still arriving is not: aiohttp stops reading connections when shutdown starts.)
                rng = np.random.default_rng(5)
                words = np.array(["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"])
                texts = [" ".join(rng.choice(words, 150)) for _ in range(10_000)]
                outputs = [f"label-{i % 7}" for i in range(10_000)]
                body = io.BytesIO(json.dumps({"texts": texts, "outputs": outputs}).encode())
                headers = {"Content-Type": "application/json"}
                embedding = asyncio.create_task(http.post(f"{url}/v1/embed", data=body, headers=headers))
                for _ in range(500):  # bounded: 10 s
                    if await jobs() >= 1 or embedding.done():  # its body is in: parsing or embedding
                        break
                    await asyncio.sleep(0.02)
                assert not embedding.done(), "the embedding finished before it could be seen in flight"
                proc.send_signal(signal.SIGTERM)
                async with await asyncio.wait_for(embedding, 60) as r:
                    assert r.status == 200
                    got = ts.TaskEmbedding.from_dict(await r.json())
                assert got == surrogate().dataset_embedding(texts, outputs, mode="text")

        run(check())
        assert proc.wait(timeout=60) == 0
        err = proc.stderr.read()
        assert "reloaded" in err and "SIGTERM" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


# -- the user docs ----------------------------------------------------------------------------------


def test_serve_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "docs/serve.md has no runnable example"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {"__name__": "serve_docs"})
