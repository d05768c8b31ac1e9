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
from taskspace.agreement import Agreement, agreement
from taskspace.drift import DriftReport, drift
from taskspace.embedding import TaskEmbedding
from taskspace.errors import (
    DegenerateTaskWarning,
    FingerprintMismatchError,
    InvalidInputError,
    NumericalError,
    TaskspaceError,
)
from taskspace.index import Index, SearchResult
from taskspace.pairs import pair_probe
from taskspace.probe import CallableModel, OpenAIEndpoint, Prompted, probe, probe_set, probe_sync
from taskspace.similarity import Pairs, TopK, pairs_above, similarity
from taskspace.space import TaskSpace
from taskspace.surrogate import SparseFeatures, Surrogate, TaskStats

__all__ = [
    "Agreement",
    "CallableModel",
    "DegenerateTaskWarning",
    "DriftReport",
    "FingerprintMismatchError",
    "Index",
    "InvalidInputError",
    "NumericalError",
    "OpenAIEndpoint",
    "Pairs",
    "Prompted",
    "SearchResult",
    "SparseFeatures",
    "Surrogate",
    "TaskEmbedding",
    "TaskSpace",
    "TaskStats",
    "TaskspaceError",
    "TopK",
    "__version__",
    "agreement",
    "drift",
    "pair_probe",
    "pairs_above",
    "probe",
    "probe_set",
    "probe_sync",
    "simd_backend",
    "similarity",
]
