"""What the taskspace service accepts and how much work it takes on at once (:class:`Limits`).

Request parsing (:mod:`taskspace.service.requests`), the application (:mod:`taskspace.service.app`)
and the serving loop (:mod:`taskspace.service.run`) all read one :class:`Limits`, so it has a room of
its own below them.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskspace.errors import InvalidInputError

__all__ = ["Limits"]

_POSITIVE_INTS = (
    "max_body_bytes",
    "max_batch",
    "max_text_chars",
    "max_k",
    "max_pending",
    "embed_threads",
    "max_connections",
)
_SECONDS = ("timeout", "header_timeout", "body_timeout")


@dataclass(frozen=True)
class Limits:
    """What the service accepts; anything larger is refused with a 4xx error before any work.

    Attributes:
        max_body_bytes: request body size (413 ``body_too_large``).
        max_batch: pairs or texts per request, and candidates per select (413 ``batch_too_large``).
        max_text_chars: characters per text, second text or output text (413 ``text_too_long``).
        max_k: results per search (400 ``invalid_request``).
        timeout: seconds from a request's arrival to its response (503 ``timeout``); also how long
            shutdown waits for requests in flight.
        max_pending: worker jobs queued or running per pool; more get 503 ``overloaded`` at once.
        search_threads: threads for searches, selects and listing (``None``: one per core).
        embed_threads: threads for embeddings (each embedding already uses every core).
        header_timeout: seconds a connection has to send a whole request head (request line and
            headers), counted from when it opens or its previous response went out; a connection
            that has not is closed. It is also how long an idle keep-alive connection stays open.
            This is what stops slow or stalled clients (slowloris) from holding connections.
        body_timeout: seconds to receive a request's whole body once its head is in (408
            ``body_timeout``, and the connection is closed).
        max_connections: open client connections at most (lowered to fit the process's limit on
            open files, less a reserve). One more closes the connection that has been idle longest
            (none: the newcomer gets 503 ``overloaded`` and is closed), so idle or half-sent
            connections can never lock other clients out.

    Example:
        >>> from taskspace.service.limits import Limits
        >>> Limits(max_k=50, timeout=5).max_k
        50
    """

    max_body_bytes: int = 16 * 2**20
    max_batch: int = 10_000
    max_text_chars: int = 20_000
    max_k: int = 1_000
    timeout: float = 30.0
    max_pending: int = 256
    search_threads: int | None = None
    embed_threads: int = 1
    header_timeout: float = 10.0
    body_timeout: float = 20.0
    max_connections: int = 1024

    def __post_init__(self) -> None:
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"Limits.{name} must be a positive int, got {value!r}")
        st = self.search_threads
        if st is not None and (isinstance(st, bool) or not isinstance(st, int) or st < 1):
            raise InvalidInputError(f"Limits.search_threads must be a positive int or None, got {st!r}")
        for name in _SECONDS:
            t = getattr(self, name)
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < float("inf"):
                raise InvalidInputError(f"Limits.{name} must be a positive number of seconds, got {t!r}")
