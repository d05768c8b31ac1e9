"""taskspace: datasets, models and prompted LLMs in one vector space of tasks.

Implements FUTE (Wang et al., "Towards Unified Task Embeddings Across Multiple Models", Findings of
ACL 2024) with a closed-form, deterministic surrogate in Rust.

Example:
    >>> import taskspace as ts
    >>> sur = ts.Surrogate(features=64, dim=256)
    >>> d = sur.dataset_embedding(["good film", "bad film"], ["pos", "neg"], name="reviews")
    >>> d.vector.shape
    (256,)
"""

from __future__ import annotations

from taskspace._core import __version__, simd_backend
from taskspace.embedding import TaskEmbedding
from taskspace.errors import (
    DegenerateTaskWarning,
    FingerprintMismatchError,
    InvalidInputError,
    NumericalError,
    TaskspaceError,
)
from taskspace.pairs import pair_probe
from taskspace.similarity import similarity
from taskspace.surrogate import SparseFeatures, Surrogate, TaskStats

__all__ = [
    "DegenerateTaskWarning",
    "FingerprintMismatchError",
    "InvalidInputError",
    "NumericalError",
    "SparseFeatures",
    "Surrogate",
    "TaskEmbedding",
    "TaskStats",
    "TaskspaceError",
    "__version__",
    "pair_probe",
    "simd_backend",
    "similarity",
]
