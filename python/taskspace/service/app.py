"""The taskspace service: a :class:`~taskspace.space.task_space.TaskSpace` file served over HTTP (aiohttp).

Endpoints (JSON in and out; the full reference is ``docs/serve.md``):

* ``POST /v1/embed``: pairs or texts with outputs -> a task embedding (vector + fingerprint).
* ``POST /v1/search``: a stored name, a vector or an embedding -> the nearest tasks (``kind`` filter).
* ``POST /v1/select``: a dataset (stored name, embedding, or pairs) -> candidate models ranked.
* ``GET /v1/tasks``: the stored names and kinds (paged). ``POST /v1/tasks`` adds an embedding and
  ``DELETE /v1/tasks/{name}`` removes one, unless the service is read-only.
* ``POST /v1/reload``: re-open the space file (also on SIGHUP), without dropping requests.
* ``GET /healthz`` (never needs a token) and ``GET /metrics`` (Prometheus text format).

Answers are the library's: search calls :meth:`TaskSpace.nearest`, select :meth:`TaskSpace.select`,
embed :meth:`Surrogate.stats` + :meth:`Surrogate.embed` of the space's surrogate.

Safety: a bearer token from ``TASKSPACE_TOKEN`` is required on every endpoint but ``/healthz``
when set; it is compared in constant time and never logged. Bodies, batches, texts and ``k`` are
bounded (:class:`~taskspace.service.limits.Limits`; bodies are read by
:mod:`taskspace.service.requests`), every request has a deadline, and errors are
``{"error": {"code": ..., "message": ...}}`` with a stable ``code``. CPU work runs in worker threads
(searches and embeddings in separate pools, so a large embedding does not hold up searches), never
on the event loop. Listening, signals and shutdown are :mod:`taskspace.service.run`'s.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from taskspace._core import __version__
from taskspace.embedding.task_embedding import TaskEmbedding
from taskspace.errors import FingerprintMismatchError, InvalidInputError, TaskspaceError
from taskspace.service.connections import Connections
from taskspace.service.limits import Limits
from taskspace.service.metrics import CONTENT_TYPE, Metrics
from taskspace.service.requests import (
    ADD_FIELDS,
    EMBED_FIELDS,
    ERROR_CODE,
    SEARCH_FIELDS,
    SELECT_FIELDS,
    ApiError,
    Pairs,
    invalid,
    parse_add,
    parse_embed,
    parse_json,
    parse_search,
    parse_select,
    parse_tasks_query,
    reject_unknown,
)
from taskspace.space.task_space import TaskSpace

__all__ = ["TOKEN_ENV", "Service", "create_app", "service_key"]

log = logging.getLogger("taskspace.service.app")

#: The environment variable holding the bearer token.
TOKEN_ENV = "TASKSPACE_TOKEN"

_T = TypeVar("_T")
_OPEN_PATHS = frozenset({"/healthz"})
#: Bodies up to this size (a few ms to parse) are parsed on the event loop; larger ones in a worker.
_INLINE_JSON = 256 * 1024
#: The worker pools: searches (and listing, adding, removing), embeddings, and opening/closing spaces.
POOLS = ("search", "embed", "admin")


# -- work done in worker threads ----------------------------------------------------------------------


def _embed(space: TaskSpace, p: Pairs, *, kind: str, name: str, meta: dict[str, Any] | None) -> TaskEmbedding:
    """The library's embedding of the pairs; a degenerate task is answered, not warned about."""
    sur = space.surrogate
    mode = p.mode or space.mode or "label"
    stats = sur.stats(p.texts, p.outputs, text_pairs=p.text_pairs, mode=mode)  # type: ignore[arg-type]
    return sur.embed(stats, name=name, kind=kind, meta=meta)  # type: ignore[arg-type]


def _open_space(path: Path) -> tuple[TaskSpace, int, str | None]:
    """Open the space and build its search indexes (all kinds, and each kind) now rather than on the
    first request; returns the space, its size and its mode."""
    space = TaskSpace.open(path)
    try:
        n = len(space)
        for kind in (None, "dataset", "model") if n else ():
            space.nearest(np.ones(space.surrogate.dim, dtype=np.float32), k=1, kind=kind)
        return space, n, space.mode
    except BaseException:
        space.close()
        raise


def _add(space: TaskSpace, e: TaskEmbedding, *, replace: bool) -> int:
    if not replace and e.name in space:
        raise ApiError(409, "task_exists", f'{e.name!r} is already in the space; pass "replace": true')
    space.add(e, replace=replace)
    return len(space)


def _remove(space: TaskSpace, name: str) -> int:
    space.remove(name)
    return len(space)


def _tasks_page(space: TaskSpace, kind: str | None, offset: int, limit: int) -> bytes:
    names = space.names(kind)
    models = set(space.names("model")) if kind is None else set()
    page = names[offset : offset + limit]
    tasks = [{"name": n, "kind": kind or ("model" if n in models else "dataset")} for n in page]
    body = {
        "fingerprint": space.fingerprint,
        "surrogate": space.surrogate.config,
        "mode": space.mode,
        "dim": space.surrogate.dim,
        "total": len(names),
        "offset": offset,
        "limit": limit,
        "tasks": tasks,
    }
    return json.dumps(body).encode()


def _embedding_body(space: TaskSpace, p: Pairs, *, kind: str, name: str) -> bytes:
    e = _embed(space, p, kind=kind, name=name, meta=None)
    return json.dumps({**e.to_dict(), "degenerate": e.degenerate}).encode()


def _ranked(pairs: list[tuple[str, float]], fingerprint: str) -> bytes:
    results = [{"name": n, "similarity": s} for n, s in pairs]
    return json.dumps({"fingerprint": fingerprint, "results": results}).encode()


# -- the service ------------------------------------------------------------------------------------


def _reload_done(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved here: reload() already logged it, and its caller may be gone


class _Served:
    """A space and how many requests use it; a replaced space closes when its last user is done."""

    __slots__ = ("retired", "space", "users")

    def __init__(self, space: TaskSpace) -> None:
        self.space = space
        self.users = 0
        self.retired = False


@contextmanager
def _deadline(seconds: float) -> Iterator[Callable[[], bool]]:
    """Cancel the current task after ``seconds``; yields a function telling whether it fired."""
    task = asyncio.current_task()
    assert task is not None
    fired = False

    def fire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    handle = asyncio.get_running_loop().call_later(seconds, fire)
    try:
        yield lambda: fired
    finally:
        handle.cancel()


def _uncancel() -> None:
    """Forget our own deadline's cancellation (Python >= 3.11 counts them), so the response goes out."""
    task = asyncio.current_task()
    if task is not None and hasattr(task, "uncancel"):
        task.uncancel()


class Service:
    """The state of one running service: the served space, worker pools, metrics, settings.

    Made by :func:`create_app`; the space is opened when the application starts and closed when it
    stops. ``url`` is set by :func:`taskspace.service.run.serve_space` once it listens.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, read_only: bool = False, limits: Limits | None = None
    ) -> None:
        if not isinstance(read_only, bool):
            raise TypeError(f"read_only must be a bool, got {type(read_only).__name__}")
        self.path = Path(path)
        self.read_only = read_only
        self.limits = limits or Limits()
        if not isinstance(self.limits, Limits):
            raise TypeError(f"limits must be taskspace.service.limits.Limits, got {type(limits).__name__}")
        token = os.environ.get(TOKEN_ENV)
        if token is not None and not token.strip():
            raise InvalidInputError(f"{TOKEN_ENV} is set but empty; unset it or set a real token")
        self._token = None if token is None else token.encode("utf-8")
        self.url: str | None = None
        self.metrics = Metrics()
        self.connections = Connections(
            header_timeout=self.limits.header_timeout,
            max_connections=self.limits.max_connections,
            event=self.metrics.event,
        )
        self._served: _Served | None = None
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._pending: dict[str, int] = {}
        self._reload_lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[TaskSpace]] = set()

    def __repr__(self) -> str:
        auth = "token" if self._token else "no token"
        return f"Service({str(self.path)!r}, read_only={self.read_only}, {auth}, url={self.url!r})"

    @property
    def requires_token(self) -> bool:
        return self._token is not None

    @property
    def space(self) -> TaskSpace:
        """The space being served now (replaced by :meth:`reload`)."""
        if self._served is None:
            raise InvalidInputError("the service has not started")
        return self._served.space

    def executor(self, pool: str) -> ThreadPoolExecutor:
        """The worker pool ``pool`` (one of :data:`POOLS`) while the service runs.

        Jobs submitted here directly bypass the ``max_pending`` bound (:meth:`run_in_pool` keeps it)."""
        if pool not in self._pools:
            raise InvalidInputError(f"no running worker pool {pool!r}; the pools are {list(POOLS)}")
        return self._pools[pool]

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the space (and build its index) in a worker thread."""
        cpus = os.cpu_count() or 1
        self._pools = {
            "search": ThreadPoolExecutor(self.limits.search_threads or cpus, thread_name_prefix="ts-search"),
            "embed": ThreadPoolExecutor(self.limits.embed_threads, thread_name_prefix="ts-embed"),
            "admin": ThreadPoolExecutor(1, thread_name_prefix="ts-admin"),
        }
        self._pending = dict.fromkeys(self._pools, 0)
        try:
            opened = await asyncio.get_running_loop().run_in_executor(
                self._pools["admin"], _open_space, self.path
            )
        except BaseException:
            await self.stop()
            raise
        self._serve(opened[0], opened[2])
        log.info("serving %s: %d tasks, surrogate %s", self.path, opened[1], opened[0].fingerprint)

    async def stop(self) -> None:
        """Wait for reloads and worker jobs, then close the space."""
        for task in list(self._reloads):
            with suppress(Exception, asyncio.CancelledError):
                await task
        pools, self._pools = self._pools, {}
        for pool in pools.values():  # runs what is queued, e.g. closing a replaced space
            await asyncio.to_thread(pool.shutdown, wait=True)
        if self._served is not None:
            self._served.space.close()
            self._served = None

    def _serve(self, space: TaskSpace, mode: str | None) -> None:
        old, self._served = self._served, _Served(space)
        self.metrics.info = {
            "version": __version__,
            "fingerprint": space.fingerprint,
            "mode": mode or "",
            "read_only": str(self.read_only).lower(),
        }
        if old is not None:
            old.retired = True
            if old.users == 0:
                self._close_later(old.space)

    def _close_later(self, space: TaskSpace) -> None:
        # Closing waits for the space's lock, which a timed-out job may still hold: never on the loop.
        pool = self._pools.get("admin")
        if pool is None:
            space.close()
        else:
            pool.submit(space.close)

    async def reload(self) -> TaskSpace:
        """Open the space file again and serve it from then on; requests in flight finish on the old one.

        The file may now hold another surrogate. If it cannot be opened, the old space stays served
        and :class:`~taskspace.service.requests.ApiError` (500 ``reload_failed``) is raised. A reload
        whose caller gives up (a request timeout) still completes.
        """
        task = asyncio.get_running_loop().create_task(self._reload())
        self._reloads.add(task)
        task.add_done_callback(_reload_done)
        task.add_done_callback(self._reloads.discard)
        return await asyncio.shield(task)

    async def _reload(self) -> TaskSpace:
        async with self._reload_lock:  # one at a time, in order: the last one reads the newest file
            loop = asyncio.get_running_loop()
            try:
                opened = await loop.run_in_executor(self._pools["admin"], _open_space, self.path)
            except (TaskspaceError, OSError) as e:
                self.metrics.event("reload", "failed")
                log.error("reload of %s failed, still serving the previous space: %s", self.path, e)
                raise ApiError(
                    500, "reload_failed", f"{self.path}: {e}; the previous space is still served"
                ) from None
            self._serve(opened[0], opened[2])
            self.metrics.event("reload", "ok")
            log.info("reloaded %s: %d tasks, surrogate %s", self.path, opened[1], opened[0].fingerprint)
            return opened[0]

    @asynccontextmanager
    async def _use(self) -> AsyncIterator[TaskSpace]:
        served = self._served
        if served is None:
            raise ApiError(503, "unavailable", "the service is not serving a space")
        served.users += 1
        try:
            yield served.space
        finally:
            served.users -= 1
            if served.retired and served.users == 0:
                self._close_later(served.space)

    async def run_in_pool(self, pool: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run a library call in the worker pool ``pool``; its input errors become 4xx
        :class:`~taskspace.service.requests.ApiError`, and more than ``limits.max_pending`` jobs
        in the pool a 503 ``overloaded`` at once."""
        if self._pending[pool] >= self.limits.max_pending:
            raise ApiError(503, "overloaded", f"{self._pending[pool]} {pool} jobs are waiting; retry later")
        executor = self._pools[pool]
        self._pending[pool] += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                executor, functools.partial(fn, *args, **kwargs)
            )
        except KeyError as e:
            raise ApiError(404, "unknown_task", str(e.args[0]) if e.args else "no such task") from None
        except FingerprintMismatchError as e:
            raise ApiError(409, "fingerprint_mismatch", str(e)) from None
        except (TaskspaceError, TypeError) as e:
            raise invalid(str(e)) from None
        finally:
            self._pending[pool] -= 1

    async def count_tasks(self) -> int:
        """How many task embeddings the served space holds (counted in a worker thread)."""
        async with self._use() as space:
            return await self.run_in_pool("search", len, space)

    # -- middleware -------------------------------------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Every request: the deadline, the token, errors as JSON, and the metrics."""
        start = time.perf_counter()
        route = request.match_info.route.resource
        endpoint = route.canonical if route is not None else "unmatched"
        self.metrics.in_flight += 1
        try:
            with self.connections.busy(request.transport):
                response = await self._answer(request, handler, endpoint)
        finally:
            self.metrics.in_flight -= 1
        self.metrics.observe(endpoint, request.method, response.status, time.perf_counter() - start)
        if response.status >= 400:
            self.metrics.error(endpoint, response.get(ERROR_CODE, f"http_{response.status}"))
        return response

    async def _answer(self, request: web.Request, handler: Any, endpoint: str) -> web.StreamResponse:
        """The handler's response, or the error response for what went wrong, within the deadline."""
        with _deadline(self.limits.timeout) as fired:
            try:
                self._authorize(request)
                return await handler(request)
            except ApiError as e:
                return e.response()
            except web.HTTPException as e:
                return _http_error(e, request, self.limits).response()
            except asyncio.CancelledError:
                if not fired():
                    raise
                _uncancel()
                return ApiError(
                    503, "timeout", f"the request took longer than {self.limits.timeout:g} s"
                ).response()
            except Exception:
                log.exception("internal error in %s %s", request.method, endpoint)
                return ApiError(500, "internal", "internal error; see the server's log").response()

    def _authorize(self, request: web.Request) -> None:
        if self._token is None or request.path in _OPEN_PATHS:
            return
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if not header:
            raise ApiError(401, "unauthorized", "this service needs 'Authorization: Bearer <token>'")
        # Compare even on a wrong scheme, so timing does not tell which part was wrong.
        ok = hmac.compare_digest(given.strip().encode("utf-8", "replace"), self._token)
        if scheme.lower() != "bearer" or not ok:
            raise ApiError(401, "unauthorized", "the bearer token is not valid")

    async def _json(
        self, request: web.Request, allowed: frozenset[str], endpoint: str, pool: str = "embed"
    ) -> dict[str, Any]:
        """The body as a JSON object with only ``allowed`` fields; large bodies are parsed in ``pool``."""
        limit = self.limits.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(
                413, "body_too_large", f"the body has {request.content_length} bytes; the limit is {limit}"
            )
        raw = await self.read_body(request)
        if len(raw) <= _INLINE_JSON:
            body = parse_json(raw)
        else:
            body = await self.run_in_pool(pool, parse_json, raw)
        reject_unknown(body, allowed, endpoint)
        return body

    async def read_body(self, request: web.Request) -> bytes:
        """The whole body, within ``limits.body_timeout`` (else 408 ``body_timeout``); a client that
        hangs up or half-closes before sending all of it gets 400 ``incomplete_body`` (its fault,
        not the service's: not logged as an error). aiohttp stops reading past ``client_max_size``
        (413). Either way the connection is closed after the answer."""
        try:
            return await asyncio.wait_for(request.read(), self.limits.body_timeout)
        except asyncio.TimeoutError:
            raise ApiError(
                408,
                "body_timeout",
                f"the body did not arrive within {self.limits.body_timeout:g} s",
                close=True,
            ) from None
        except (ConnectionError, HttpProcessingError) as e:
            raise ApiError(
                400,
                "incomplete_body",
                f"the connection ended before the whole body arrived ({type(e).__name__})",
                close=True,
            ) from None

    # -- handlers ---------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics_text(self, request: web.Request) -> web.Response:
        gauges = {
            "taskspace_tasks": ("Task embeddings in the served space.", float(await self.count_tasks())),
            "taskspace_jobs_pending": (
                "Worker jobs queued or running, all pools.",
                float(sum(self._pending.values())),
            ),
            "taskspace_connections_open": ("Client connections open now.", float(len(self.connections))),
            "taskspace_connections_max": (
                "Open connections allowed (limits.max_connections, fitted to the open-file limit).",
                float(self.connections.cap),
            ),
        }
        return web.Response(body=self.metrics.render(gauges).encode(), headers={"Content-Type": CONTENT_TYPE})

    async def embed(self, request: web.Request) -> web.Response:
        req = parse_embed(await self._json(request, EMBED_FIELDS, "/v1/embed"), self.limits)
        async with self._use() as space:
            answer = await self.run_in_pool(
                "embed", _embedding_body, space, req.pairs, kind=req.kind, name=req.name
            )
        return _raw_json(answer)

    async def search(self, request: web.Request) -> web.Response:
        req = parse_search(await self._json(request, SEARCH_FIELDS, "/v1/search", "search"), self.limits)
        async with self._use() as space:
            if req.fingerprint is not None and req.fingerprint != space.fingerprint:
                raise ApiError(
                    409,
                    "fingerprint_mismatch",
                    f"the vector comes from surrogate {req.fingerprint}; "
                    f"this space holds surrogate {space.fingerprint}",
                )
            found = await self.run_in_pool("search", space.nearest, req.query, req.k, kind=req.kind)
            return _raw_json(_ranked(found, space.fingerprint))

    async def select(self, request: web.Request) -> web.Response:
        req = parse_select(await self._json(request, SELECT_FIELDS, "/v1/select"), self.limits)
        async with self._use() as space:
            dataset = req.dataset
            if req.pairs is not None:
                dataset = await self.run_in_pool(
                    "embed", _embed, space, req.pairs, kind="dataset", name="", meta=None
                )
            ranked = await self.run_in_pool("search", space.select, dataset, req.candidates)
            return _raw_json(_ranked(ranked, space.fingerprint))

    async def list_tasks(self, request: web.Request) -> web.Response:
        q = parse_tasks_query(request.query)
        async with self._use() as space:
            return _raw_json(await self.run_in_pool("search", _tasks_page, space, q.kind, q.offset, q.limit))

    async def add_task(self, request: web.Request) -> web.Response:
        self._writable()
        req = parse_add(await self._json(request, ADD_FIELDS, "POST /v1/tasks"), self.limits)
        async with self._use() as space:
            e = req.embedding
            if req.pairs is not None:
                e = await self.run_in_pool(
                    "embed", _embed, space, req.pairs, kind=req.kind, name=req.name, meta=req.meta
                )
            assert e is not None
            total = await self.run_in_pool("search", _add, space, e, replace=req.replace)
        out = {
            "name": e.name,
            "kind": e.kind,
            "fingerprint": e.fingerprint,
            "degenerate": e.degenerate,
            "total": total,
        }
        return web.json_response(out, status=201)

    async def delete_task(self, request: web.Request) -> web.Response:
        self._writable()
        name = request.match_info["name"]
        async with self._use() as space:
            total = await self.run_in_pool("search", _remove, space, name)
        return web.json_response({"deleted": name, "total": total})

    async def reload_handler(self, request: web.Request) -> web.Response:
        if request.can_read_body:  # no fields, but an empty object is fine
            await self._json(request, frozenset(), "/v1/reload")
        space = await self.reload()
        total = await self.run_in_pool("search", len, space)
        return web.json_response({"status": "reloaded", "fingerprint": space.fingerprint, "total": total})

    def _writable(self) -> None:
        if self.read_only:
            raise ApiError(403, "read_only", "the service is read-only (started with --read-only)")


def _raw_json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _http_error(e: web.HTTPException, request: web.Request, limits: Limits) -> ApiError:
    code = _HTTP_CODES.get(e.status, f"http_{e.status}")
    if e.status == 404:
        message = f"no endpoint {request.method} {request.path}"
    elif e.status == 405:
        message = f"{request.path} does not take {request.method}"
    elif e.status == 413:
        message = f"the body exceeds the limit of {limits.max_body_bytes} bytes"
    else:
        message = e.reason
    return ApiError(e.status, code, message)


_SERVICE = web.AppKey("service", Service)


def create_app(
    path: str | os.PathLike[str], *, read_only: bool = False, limits: Limits | None = None
) -> web.Application:
    """The aiohttp application serving the space file ``path`` (see the module docs for endpoints).

    The bearer token is read from ``TASKSPACE_TOKEN`` now (unset: no authentication). The space is
    opened when the application starts; ``app[taskspace.service.app.service_key()]`` is its :class:`Service`.
    """
    service = Service(path, read_only=read_only, limits=limits)
    app = web.Application(middlewares=[service.middleware], client_max_size=service.limits.max_body_bytes)
    app[_SERVICE] = service
    r = app.router
    r.add_get("/healthz", service.healthz)
    r.add_get("/metrics", service.metrics_text)
    r.add_post("/v1/embed", service.embed)
    r.add_post("/v1/search", service.search)
    r.add_post("/v1/select", service.select)
    r.add_get("/v1/tasks", service.list_tasks)
    r.add_post("/v1/tasks", service.add_task)
    r.add_delete("/v1/tasks/{name}", service.delete_task)
    r.add_post("/v1/reload", service.reload_handler)

    async def on_startup(app: web.Application) -> None:
        await service.start()

    async def on_cleanup(app: web.Application) -> None:
        await service.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def service_key() -> web.AppKey[Service]:
    """The key of the :class:`Service` in an application made by :func:`create_app`."""
    return _SERVICE
