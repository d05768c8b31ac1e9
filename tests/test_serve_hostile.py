"""``taskspace serve`` against hostile clients: malformed, oversized, nested, non-UTF-8, half-sent
and stalled requests, more idle connections than the process has file descriptors, tokens in query
strings. After each attack the service must still answer ``/healthz`` and give the library's
answer to a search. A real server: in-process (``serve_space``) on 127.0.0.1, or a ``taskspace
serve`` subprocess with a low ``RLIMIT_NOFILE``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import taskspace as ts
from taskspace.service.app import TOKEN_ENV
from taskspace.service.connections import listen_plan
from taskspace.service.limits import Limits
from taskspace.service.run import serve_space
from taskspace.space.task_space import TaskSpace

pytestmark = pytest.mark.timeout(180)

DIM = 64
SECRET = "tok-9f8e7d6c5b4a39281706f5e4d3c2b1a0"


@pytest.fixture(scope="module")
def space_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "space.sqlite"
    sur = ts.Surrogate(features=32, dim=DIM)
    rng = np.random.default_rng(0)
    with ts.TaskSpace(sur, path) as space:
        space.add(
            sur.dataset_embedding(
                ["good film", "bad film", "fine", "awful"], ["+", "-", "+", "-"], name="reviews"
            )
        )
        for i in range(20):
            vector = rng.standard_normal(DIM).astype(np.float32)
            kind = "model" if i % 2 else "dataset"
            space.add(
                ts.TaskEmbedding(vector, sur.fingerprint, "label", "operator", name=f"t{i:02d}", kind=kind)
            )  # type: ignore[arg-type]
    return path


@pytest.fixture(scope="module")
def expected(space_path: Path) -> list[list[Any]]:
    with TaskSpace.open(space_path) as space:
        return [[n, s] for n, s in space.nearest("reviews", k=3)]


@pytest.fixture(autouse=True)
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


async def raw(url: str, data: bytes, *, half_close: bool = False, wait: float = 10.0) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it (bounded)."""
    reader, writer = await asyncio.open_connection(*host_port(url))
    try:
        writer.write(data)
        await writer.drain()
        if half_close:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), wait)
    finally:
        writer.close()


def status_of(response: bytes) -> int:
    found = re.match(rb"HTTP/1\.[01] (\d{3}) ", response)
    assert found, f"not an HTTP response: {response[:200]!r}"
    return int(found.group(1))


def code_of(response: bytes) -> str:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])["error"]["code"]


async def still_serving(url: str, expected: list[list[Any]], headers: dict[str, str] | None = None) -> None:
    """/healthz answers and a search gives the library's answer, promptly."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as http:
        async with http.get(f"{url}/healthz") as r:
            assert r.status == 200 and (await r.json()) == {"status": "ok"}
        async with http.post(f"{url}/v1/search", json={"name": "reviews", "k": 3}) as r:
            assert r.status == 200, await r.text()
            assert [[x["name"], x["similarity"]] for x in (await r.json())["results"]] == expected


def request(path: str, body: bytes, *, extra: bytes = b"") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


# -- bad requests, one connection each ----------------------------------------------------------------

DEEP = b'{"name": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
HOSTILE: list[tuple[str, bytes, int, str | None]] = [
    ("malformed JSON", request("/v1/search", b'{"name": "reviews",'), 400, "bad_json"),
    ("JSON not an object", request("/v1/search", b"[1, 2]"), 400, "bad_json"),
    ("deeply nested JSON", request("/v1/search", DEEP), 400, "bad_json"),
    ("non-UTF-8 body", request("/v1/search", b'{"name": "\xff\xfe"}'), 400, "bad_json"),
    (
        "lone surrogate name",
        request("/v1/tasks", b'{"name": "bad\\udc80", "pairs": [["a", "x"], ["b", "y"]]}'),
        400,
        "invalid_request",
    ),
    (
        "lone surrogate text",
        request("/v1/embed", b'{"pairs": [["a\\udc80", "x"], ["b", "y"]]}'),
        400,
        "invalid_request",
    ),
    (
        "vector of 1e400",
        request("/v1/search", b'{"vector": [1e400' + b", 0.5" * (DIM - 1) + b"]}"),
        400,
        "invalid_request",
    ),
    (
        "vector of 10**400",
        request("/v1/search", b'{"vector": [1' + b"0" * 400 + b", 0.5" * (DIM - 1) + b"]}"),
        400,
        "invalid_request",
    ),
    (
        "vector of NaN",
        request("/v1/search", b'{"vector": [NaN' + b", 0.5" * (DIM - 1) + b"]}"),
        400,
        "invalid_request",
    ),
    (
        "vector of strings",
        request("/v1/search", b'{"vector": ["1"' + b", 0.5" * (DIM - 1) + b"]}"),
        400,
        "invalid_request",
    ),
    ("body over the limit", request("/v1/search", b" " * 70_000), 413, "body_too_large"),
    (
        "chunked body over the limit",
        b"POST /v1/search HTTP/1.1\r\nHost: t\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (8192, b" " * 8192) for _ in range(10))
        + b"0\r\n\r\n",
        413,
        "body_too_large",
    ),
    (
        "non-UTF-8 request line",
        b"GET /v1/t\xffasks HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        400,
        None,
    ),
    ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n", 400, None),
    (
        "header with a control character",
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: b\x01c\r\n\r\n",
        400,
        None,
    ),
    (
        "header line over the limit",
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: " + b"a" * 20_000 + b"\r\n\r\n",
        400,
        None,
    ),
    ("bad Content-Length", b"POST /v1/search HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n{}", 400, None),
]


def test_hostile_requests_get_4xx_and_the_service_keeps_answering(
    space_path: Path, expected: list[list[Any]]
) -> None:
    limits = Limits(max_body_bytes=64 * 1024)

    async def attack() -> None:
        async with serve_space(space_path, limits=limits) as service:
            for what, data, status, code in HOSTILE:
                got = await raw(service.url, data)
                assert status_of(got) == status, f"{what}: {got[:300]!r}"
                if code is not None:
                    assert code_of(got) == code, what
                await still_serving(service.url, expected)
            metrics = service.metrics.render()
            assert 'code="internal"' not in metrics

    asyncio.run(attack())


def test_half_sent_and_half_closed_bodies_are_the_clients_error(
    space_path: Path, expected: list[list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    limits = Limits(body_timeout=1.0)
    head = b"POST /v1/search HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n"

    async def attack() -> None:
        async with serve_space(space_path, limits=limits) as service:
            # The client half-closes mid-body: a 400 of its own, never an internal error.
            await raw(service.url, head + b'{"name": "rev', half_close=True)
            await still_serving(service.url, expected)
            # The body stalls: 408 after body_timeout, and the connection is closed.
            start = time.monotonic()
            got = await raw(service.url, head + b'{"name": "rev', wait=10)
            assert status_of(got) == 408 and code_of(got) == "body_timeout"
            assert 0.9 < time.monotonic() - start < 8
            await still_serving(service.url, expected)
            metrics = service.metrics.render()
            assert 'code="incomplete_body"} 1' in metrics and 'code="internal"' not in metrics

    asyncio.run(attack())
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_stalled_request_heads_are_closed_after_header_timeout(
    space_path: Path, expected: list[list[Any]]
) -> None:
    limits = Limits(header_timeout=1.0)

    async def attack() -> None:
        async with serve_space(space_path, limits=limits) as service:
            host, port = host_port(service.url)
            stalled = []
            openings = [
                (b"", b"G"),
                (b"GET /healthz HTTP/1.1\r\nHost: t\r\n", b"X-B: 1\r\n"),
                (b"GET /heal", b"th"),
            ]
            for opening, _ in openings:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(opening)
                stalled.append((reader, writer))
            start = time.monotonic()
            await asyncio.sleep(0.5)
            for (_reader, writer), (_, more) in zip(stalled, openings, strict=True):
                writer.write(more)  # a trickle of bytes must not extend the deadline
            for reader, writer in stalled:
                assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
                writer.close()
            assert 0.9 < time.monotonic() - start < 8
            await still_serving(service.url, expected)
            assert 'event="connection",result="timed_out"} 3' in service.metrics.render()

    asyncio.run(attack())


def test_at_the_connection_cap_all_busy_newcomers_get_503(
    space_path: Path, expected: list[list[Any]]
) -> None:
    limits = Limits(max_connections=2, body_timeout=2.0)
    head = b"POST /v1/search HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{"

    async def attack() -> None:
        async with serve_space(space_path, limits=limits) as service:
            host, port = host_port(service.url)
            busy = []
            for _ in range(2):  # heads complete, bodies trickling: busy, not evictable
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(head)
                busy.append((reader, writer))
            await asyncio.sleep(0.3)
            got = await raw(service.url, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert status_of(got) == 503 and code_of(got) == "overloaded"
            for reader, writer in busy:  # their bodies time out: 408, closed
                assert status_of(await asyncio.wait_for(reader.read(), 10)) == 408
                writer.close()
            await asyncio.sleep(0.1)
            await still_serving(service.url, expected)
            assert 'result="refused"} 1' in service.metrics.render()

    asyncio.run(attack())


def test_listen_plan_fits_the_open_file_limit() -> None:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    cap, backlog = listen_plan(10**9)
    assert cap + 4 * backlog < soft
    assert listen_plan(5)[0] == 5


# -- a `taskspace serve` process with 256 file descriptors ---------------------------------------------


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


async def _flood(url: str, n: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``n`` connections, each with half a request head (slowloris)."""
    held = []
    for _ in range(n):
        reader, writer = await asyncio.open_connection(*host_port(url))
        writer.write(b"POST /v1/search HTTP/1.1\r\nHost: t\r\nContent-Le")
        held.append((reader, writer))
    return held


async def _attack_process(url: str, expected: list[list[Any]], n_idle: int) -> str:
    auth = {"Authorization": f"Bearer {SECRET}"}
    held = await _flood(url, n_idle)
    start = time.monotonic()
    await still_serving(url, expected, auth)  # at once, not after the head deadline
    assert time.monotonic() - start < 2.5
    for reader, writer in held:
        assert await asyncio.wait_for(reader.read(), 15) == b""  # evicted or timed out: closed
        writer.close()
    async with aiohttp.ClientSession(headers=auth) as http:
        for path in (f"/v1/tasks?limit=5&token={SECRET}", f"/v1/tasks?access_token={SECRET}"):
            async with http.get(f"{url}{path}") as r:
                assert r.status in (200, 400)
        async with http.post(f"{url}/v1/search?api_key={SECRET}", json={"name": "reviews", "k": 3}) as r:
            assert r.status == 200
        async with http.get(f"{url}/metrics") as r:
            metrics = await r.text()
    for bad in (  # malformed requests quoting the token: aiohttp would log their bytes
        f"GET /v1/tasks?token={SECRET} HTTP/1.1\r\nHost: t\r\nX-A: b\x01{SECRET}\r\n\r\n".encode(),
        f"GET /v1/tasks?token={SECRET} HTTP/9.9 {SECRET}\r\n\r\n".encode(),
        f"GET /v1/tasks HTTP/1.1\r\nAuthorization: Bearer {SECRET}\x00\r\n\r\n".encode(),
    ):
        await raw(url, bad)
    await still_serving(url, expected, auth)
    return metrics


def test_process_with_256_fds_survives_600_idle_connections_and_never_logs_the_token(
    space_path: Path, expected: list[list[Any]], tmp_path: Path
) -> None:
    n_idle = 600
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n_idle + 100:
        if hard != resource.RLIM_INFINITY and hard < n_idle + 100:
            pytest.skip(f"this test opens {n_idle} connections; the hard open-file limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (n_idle + 100, hard))
    env = {**os.environ, TOKEN_ENV: SECRET}
    cmd = [sys.executable, "-m", "taskspace", "serve", "--space", str(space_path), "--port", "0"]
    cmd += ["--header-timeout", "3", "--access-log"]
    log = (tmp_path / "serve.log").open("w+b")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env, preexec_fn=_low_fd_limit)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        found = re.search(r" at (http://127\.0\.0\.1:\d+)$", line.strip())
        assert found, f"no URL in {line!r}"
        metrics = asyncio.run(_attack_process(found.group(1), expected, n_idle))
        assert "taskspace_connections_max 96" in metrics  # 256 fds: 32 reserved, 4 x 32 for the backlog
        closed = sum(  # for newcomers at the cap, or at the head deadline (a slow flood)
            int(n) for n in re.findall(r'event="connection",result="(?:evicted|timed_out)"\} (\d+)', metrics)
        )
        assert closed >= n_idle - 96
        proc.terminate()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
    log.seek(0)
    text = log.read()
    log.close()
    assert b'"GET /v1/tasks" 400' in text and b'"POST /v1/search" 200' in text  # the access log ran
    assert b"malformed request" in text  # aiohttp's errors were logged, filtered
    assert b"Too many open files" not in text
    for i in range(len(SECRET) - 15):  # not the token, nor any 16-character piece of it
        assert SECRET[i : i + 16].encode() not in text
