"""The service's client connections: a deadline for each request head, and a cap on how many are open.

aiohttp has neither. Its ``keepalive_timeout`` closes a connection that has not sent a whole
request some time after opening or after its previous response, which is the right rule, but it
is one knob shared with idle keep-alive and nothing bounds how many connections are open: a client
that opens connections and sends half a request on each (slowloris) holds one file descriptor per
connection until the process has none left and answers nobody. So every accepted connection gets a
small wrapper (:class:`_Connection`) between the transport and aiohttp's protocol, owned by
:class:`Connections`:

* **head deadline** — a connection not busy with a request (just opened, between requests on
  keep-alive, or trickling a request head) is aborted ``header_timeout`` seconds after it became
  so. Bytes arriving do not extend it. A connection is *busy* from the moment the service's
  middleware receives its request (the head is complete) until the handler has returned.
* **cap** — at most ``max_connections`` are open (lowered to fit ``RLIMIT_NOFILE``: see
  :func:`listen_plan`). A connection arriving at the cap closes the connection that has been idle
  longest; when every connection is busy, the newcomer is answered 503 ``overloaded`` and closed.
  Half-sent connections are idle, so they are the first to go and can never lock others out.

The body deadline (``body_timeout``) is the application's: it reads the body
(:meth:`taskspace.service.app.Service.read_body`).
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

__all__ = ["FD_RESERVE", "MAX_BACKLOG", "Connections", "listen_plan", "raise_open_file_limit"]

#: File descriptors kept free for everything but client connections (the space file and its WAL,
#: a reload's second copy, the listening socket, the event loop, stdio, logs, lazy imports).
FD_RESERVE = 32
#: The listen backlog at most. asyncio accepts up to ``backlog`` connections per turn of the event
#: loop and sees each (so the cap applies) only two turns later, and a connection evicted for a
#: newcomer releases its descriptor a turn after that: four times the backlog must stay free.
MAX_BACKLOG = 128

_BUSY_BODY = json.dumps(
    {"error": {"code": "overloaded", "message": "too many open connections, all busy; retry later"}}
).encode()
#: What a connection gets when every other connection is busy with a request.
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Retry-After: 1\r\nContent-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)


def listen_plan(max_connections: int) -> tuple[int, int]:
    """``(cap, backlog)``: open connections at most and the listen backlog, chosen so that the cap,
    the connections accepted but not yet seen and those evicted but not yet closed (four times the
    backlog, see :data:`MAX_BACKLOG`) and :data:`FD_RESERVE` fit the open-file limit
    (``RLIMIT_NOFILE``). A backlog much below 32 makes the kernel drop connection attempts
    (retried by clients a second later) whenever the busy event loop falls behind. Example: at a
    limit of 256, 96 connections and a backlog of 32; at 1,024, 480 and 128; at 4,096 or more,
    ``max_connections``."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        unlimited = soft == resource.RLIM_INFINITY
    except (ImportError, OSError, ValueError):  # no resource module (Windows)
        unlimited = True
    if unlimited:
        return max_connections, MAX_BACKLOG
    backlog = max(1, min(MAX_BACKLOG, soft // 8))
    return max(1, min(max_connections, soft - FD_RESERVE - 4 * backlog)), backlog


def raise_open_file_limit(target: int = 65_536) -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` towards ``target`` (never above the hard limit);
    returns the soft limit now. ``taskspace serve`` does this at start, as servers commonly do."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = target if hard == resource.RLIM_INFINITY else min(target, hard)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    except (ImportError, OSError, ValueError):
        return -1


class _Connection(asyncio.Protocol):
    """One client connection: aiohttp's protocol (``inner``) behind the head deadline and the cap."""

    __slots__ = ("busy", "inner", "owner", "timer", "transport")

    def __init__(self, owner: Connections) -> None:
        self.owner = owner
        self.inner: Any = None  # aiohttp's RequestHandler, once admitted
        self.transport: asyncio.Transport | None = None
        self.busy = 0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.owner.admit(self):
            transport.write(_BUSY_RESPONSE)
            transport.close()
            return
        self.inner = self.owner.protocol()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.forget(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class Connections:
    """The open client connections of one service (see the module docs).

    :meth:`listen` starts accepting; the service's middleware wraps each request in :meth:`busy`.
    Counts go to ``event(name, result)`` (the service's metrics): ``connection`` with ``timed_out``
    (head deadline), ``evicted`` (closed for a newcomer at the cap) or ``refused`` (503 at the cap).
    """

    def __init__(
        self, *, header_timeout: float, max_connections: int, event: Callable[[str, str], None]
    ) -> None:
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.cap = max_connections
        self._event = event
        self._server: web.Server | None = None
        self._by_transport: dict[asyncio.BaseTransport, _Connection] = {}
        self._idle: OrderedDict[_Connection, None] = OrderedDict()  # longest idle first
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        """How many connections are open now."""
        return len(self._by_transport)

    async def listen(self, server: web.Server, host: str, port: int) -> asyncio.Server:
        """Accept connections on ``host:port`` for aiohttp's ``server`` (a :class:`web.Server`, the
        protocol factory of a set-up ``AppRunner``); the cap is fixed now (:func:`listen_plan`)."""
        self._server = server
        self._loop = asyncio.get_running_loop()
        self.cap, backlog = listen_plan(self.max_connections)
        return await self._loop.create_server(lambda: _Connection(self), host, port, backlog=backlog)

    def protocol(self) -> Any:
        assert self._server is not None
        return self._server()

    # -- called by _Connection ------------------------------------------------------------------------
    def admit(self, conn: _Connection) -> bool:
        """Make room for ``conn`` (closing the longest-idle connection at the cap); False: no room."""
        if len(self._by_transport) >= self.cap:
            if not self._idle:
                self._event("connection", "refused")
                return False
            oldest = next(iter(self._idle))
            self._drop(oldest)
            oldest.abort()
            self._event("connection", "evicted")
        assert conn.transport is not None
        self._by_transport[conn.transport] = conn
        self._set_idle(conn)
        return True

    def forget(self, conn: _Connection) -> None:
        self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        if conn.transport is not None:
            self._by_transport.pop(conn.transport, None)
        self._idle.pop(conn, None)
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None

    def _set_idle(self, conn: _Connection) -> None:
        assert self._loop is not None
        self._idle[conn] = None
        self._idle.move_to_end(conn)
        if conn.timer is not None:
            conn.timer.cancel()
        conn.timer = self._loop.call_later(self.header_timeout, self._expire, conn)

    def _expire(self, conn: _Connection) -> None:
        conn.timer = None
        if conn.busy == 0 and conn.transport is not None and conn.transport in self._by_transport:
            self._drop(conn)
            conn.abort()
            self._event("connection", "timed_out")

    # -- called by the middleware ---------------------------------------------------------------------
    @contextmanager
    def busy(self, transport: asyncio.BaseTransport | None) -> Iterator[None]:
        """While a request of the connection ``transport`` is being handled: no head deadline and
        not to be evicted; idle again (its deadline restarting) afterwards."""
        conn = self._by_transport.get(transport) if transport is not None else None
        if conn is None:  # not one of ours (a test client), or already gone
            yield
            return
        conn.busy += 1
        self._idle.pop(conn, None)
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        try:
            yield
        finally:
            conn.busy -= 1
            if conn.busy == 0 and conn.transport in self._by_transport:
                self._set_idle(conn)

    def close(self) -> None:
        """Stop every head deadline (the server is shutting down and closes the connections)."""
        for conn in list(self._by_transport.values()):
            if conn.timer is not None:
                conn.timer.cancel()
                conn.timer = None
