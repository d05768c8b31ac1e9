"""Exceptions and warnings raised by taskspace.

Every error is a :class:`TaskspaceError`, which is a :class:`ValueError`, so ``except ValueError``
keeps working; wrong Python types raise the built-in :class:`TypeError`.
"""

from __future__ import annotations

from taskspace._core import InvalidInputError, NumericalError, TaskspaceError

__all__ = [
    "DegenerateTaskWarning",
    "FingerprintMismatchError",
    "InvalidInputError",
    "NumericalError",
    "ProbeError",
    "TaskspaceError",
]


class FingerprintMismatchError(TaskspaceError):
    """Two embeddings (or statistics) come from different surrogates or modes and cannot be compared."""


class DegenerateTaskWarning(UserWarning):
    """The task carries no information (one label, identical outputs, or inputs without features):
    its embedding is the zero vector, whose similarity with anything is 0."""


class ProbeError(TaskspaceError):
    """A probe run cannot start or go on, or its result cannot be used as asked.

    Raised when a run cannot start (bad models, a missing API-key variable, a cache of another
    format) or when a result cannot be turned into an embedding. Failures of single requests are
    never raised: they are recorded in the result (``result[name].errors``) with their cause. No
    message ever holds an API key or a header value.
    """
