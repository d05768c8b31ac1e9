"""Running the taskspace service: listening, signals (SIGHUP reloads), graceful shutdown.

:func:`serve_space` serves a space file inside an ``async with`` block (what tests and embedding
applications use); :func:`serve` is ``taskspace serve``: it serves until SIGTERM or SIGINT.
The application itself (routes, auth, limits, middleware) is :mod:`taskspace.service.app`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from taskspace.errors import InvalidInputError
from taskspace.models.server import is_loopback
from taskspace.service.app import TOKEN_ENV, Service, create_app, service_key
from taskspace.service.connections import raise_open_file_limit
from taskspace.service.limits import Limits
from taskspace.service.requests import ApiError

__all__ = ["serve", "serve_space"]

log = logging.getLogger("taskspace.service.run")
#: Seconds to read and drop the rest of a body the answer did not need (so the client sees the
#: answer, not a reset); aiohttp's default of 10 s would let a stalled client hold on that long.
_LINGER = 2.0
#: aiohttp's own messages about connections (malformed requests, for one) go here, filtered.
http_log = logging.getLogger("taskspace.service.http")


def _printable(text: str, limit: int = 200) -> str:
    """``text`` for a log line: control and non-ASCII characters escaped (no forged lines), cut."""
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[:limit] + "..."


class AccessLogger(AbstractAccessLogger):
    """One line per request: client, method, path, status, body bytes, seconds.

    Never the query string (a client may put a token there: ``?token=...``, ``?api_key=...``)
    and never a header; the path is escaped, so a request cannot forge log lines."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.6f',
            request.remote,
            _printable(request.method, 20),
            _printable(request.path),
            response.status,
            response.body_length,
            time,
        )


class _BadRequestFilter(logging.Filter):
    """aiohttp logs a malformed request as an error with its traceback, whose message can quote the
    offending bytes (a request line with a token in its query, a header value). It is the client's
    error: keep one INFO line naming the kind of error, without the bytes."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg = "malformed request from %s: %s (answered %s)"
            record.args = (record.args[0] if record.args else "?", type(exc).__name__, exc.code)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


http_log.addFilter(_BadRequestFilter())


def _check_listen(host: Any, port: Any) -> None:
    if not isinstance(host, str) or not host:
        raise InvalidInputError(f"host must be a non-empty str, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidInputError(f"port must be an integer in 0..65535 (0 = any free port), got {port!r}")
    token = os.environ.get(TOKEN_ENV)
    if not is_loopback(host) and not (token and token.strip()):
        raise InvalidInputError(
            f"refusing to listen on {host!r} without authentication: set {TOKEN_ENV} to a secret token "
            "(clients send 'Authorization: Bearer <token>'), or listen on 127.0.0.1"
        )


@asynccontextmanager
async def serve_space(
    path: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    read_only: bool = False,
    limits: Limits | None = None,
    access_log: bool = False,
) -> AsyncIterator[Service]:
    """Serve the space file while the ``async with`` block runs; yields the
    :class:`~taskspace.service.app.Service` (``service.url`` is ``http://HOST:PORT``). ``port=0``
    picks a free port.

    Listening starts only once the space is open and indexed. A host other than loopback needs
    ``TASKSPACE_TOKEN`` (otherwise :class:`InvalidInputError`). On exit the service stops accepting
    connections and waits up to ``limits.timeout`` seconds for requests in flight.

    Example:
        >>> import asyncio, os, tempfile, aiohttp, taskspace as ts
        >>> from taskspace.service.run import serve_space
        >>> path = os.path.join(tempfile.mkdtemp(), "space.sqlite")
        >>> sur = ts.Surrogate(features=32, dim=64)
        >>> with ts.TaskSpace(sur, path) as space:
        ...     space.add(sur.dataset_embedding(["good", "bad"], ["+", "-"], name="reviews"))
        ...     space.add(sur.model_embedding(["nice", "awful"], ["y", "n"], name="clf"))
        >>> async def ask():
        ...     async with serve_space(path) as service, aiohttp.ClientSession() as http:
        ...         async with http.post(f"{service.url}/v1/search", json={"name": "reviews", "k": 1}) as r:
        ...             return (await r.json())["results"][0]["name"]
        >>> asyncio.run(ask())
        'clf'
    """
    _check_listen(host, port)
    limits = limits or Limits()
    app = create_app(path, read_only=read_only, limits=limits)
    runner = web.AppRunner(
        app,
        access_log_class=AccessLogger,  # never headers nor query strings: a token must not reach a log
        access_log=logging.getLogger("taskspace.service.app.access") if access_log else None,
        logger=http_log,
        keepalive_timeout=limits.header_timeout,  # aiohttp's own idle rule; ours is Connections'
        lingering_time=_LINGER,
        shutdown_timeout=limits.timeout,
    )
    await runner.setup()
    service = app[service_key()]
    listener: asyncio.Server | None = None
    try:
        assert runner.server is not None
        # Not web.TCPSite: every connection goes through service.connections (head deadline, cap).
        listener = await service.connections.listen(runner.server, host, port)
        bound = listener.sockets[0].getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        service.url = f"http://{shown}:{bound}"
        yield service
    finally:
        if listener is not None:
            listener.close()  # stop accepting; runner.cleanup() lets requests in flight finish
        await runner.cleanup()
        service.connections.close()


def serve(
    path: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    read_only: bool = False,
    limits: Limits | None = None,
    access_log: bool = False,
) -> str:
    """Serve until SIGTERM or SIGINT (graceful: requests in flight finish); SIGHUP reloads the file.

    Prints one line with the URL once listening. Returns the name of the signal that stopped it.
    """
    _check_listen(host, port)
    raise_open_file_limit()  # room for --max-connections; the cap still fits whatever limit there is
    listen = functools.partial(
        serve_space, path, host=host, port=port, read_only=read_only, limits=limits, access_log=access_log
    )
    return asyncio.run(_serve_until_stopped(listen))


async def _serve_until_stopped(listen: Callable[[], Any]) -> str:
    """Serve (``listen()`` is a :func:`serve_space` context) until a stopping signal; its name."""
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[str] = loop.create_future()
    reloads: set[asyncio.Task[Any]] = set()

    def stop_on(name: str) -> None:
        if not stop.done():
            stop.set_result(name)

    async with listen() as service:

        def on_hup() -> None:
            task = loop.create_task(_reload(service))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        _on_signals(
            loop,
            {
                signal.SIGTERM: functools.partial(stop_on, "SIGTERM"),
                signal.SIGINT: functools.partial(stop_on, "SIGINT"),
                signal.SIGHUP: on_hup,
            },
        )
        await _announce(service)
        how = await stop
        log.info("%s: stopping; waiting for requests in flight", how)
    for task in reloads:
        task.cancel()
    return how


async def _reload(service: Service) -> None:
    """SIGHUP: re-open the space file; on failure the old space stays served."""
    with suppress(ApiError):  # logged by reload()
        await service.reload()


def _on_signals(loop: asyncio.AbstractEventLoop, handlers: dict[signal.Signals, Callable[[], None]]) -> None:
    for sig, handler in handlers.items():
        with suppress(NotImplementedError, RuntimeError, AttributeError):  # Windows, not main thread
            loop.add_signal_handler(sig, handler)


async def _announce(service: Service) -> None:
    """The one line ``taskspace serve`` prints once it listens."""
    space = service.space
    n_tasks = await service.count_tasks()
    state = "read-only" if service.read_only else "read-write"
    auth = "token required" if service.requires_token else "no token"
    print(
        f"taskspace serve: {n_tasks} tasks from {service.path} (surrogate {space.fingerprint}, "
        f"{service.metrics.info['mode'] or 'empty'}, {state}, {auth}) at {service.url}",
        flush=True,
    )
