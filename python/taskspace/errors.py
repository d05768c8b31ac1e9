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
    "TaskspaceError",
]


class FingerprintMismatchError(TaskspaceError):
    """Two embeddings (or statistics) come from different surrogates or modes and cannot be compared."""


class DegenerateTaskWarning(UserWarning):
    """The task carries no information (one label, identical outputs, or inputs without features):
    its embedding is the zero vector, whose similarity with anything is 0."""
