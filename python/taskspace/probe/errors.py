"""Exceptions of the probe layer.

A :class:`ProbeError` is a :class:`taskspace.TaskspaceError` (and so a :class:`ValueError`). It is
raised when a run cannot start (bad models, a missing API-key variable, a cache of another format)
or when a result cannot be turned into an embedding. Failures of single requests are never raised:
they are recorded in the result (``result[name].errors``) with their cause.

No message ever holds an API key or a header value.
"""

from __future__ import annotations

from taskspace.errors import TaskspaceError

__all__ = ["ProbeError"]


class ProbeError(TaskspaceError):
    """A probe run cannot start or go on, or its result cannot be used as asked."""
