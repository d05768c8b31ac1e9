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
from taskspace.embedding.drift import DriftReport, drift
from taskspace.embedding.surrogate import SparseFeatures, Surrogate, TaskStats
from taskspace.embedding.task_embedding import TaskEmbedding
from taskspace.errors import (
    DegenerateTaskWarning,
    FingerprintMismatchError,
    InvalidInputError,
    NumericalError,
    ProbeError,
    TaskspaceError,
)
from taskspace.probing.adaptive import Adaptive
from taskspace.probing.agreement import Agreement, agreement
from taskspace.probing.cache import ProbeCache
from taskspace.probing.endpoints import CallableModel, OpenAIEndpoint
from taskspace.probing.prompted import Prompted
from taskspace.probing.result import ModelResult, ProbeResult, Usage
from taskspace.probing.runner import Budget, probe, probe_sync
from taskspace.probing.texts import pair_probe, probe_set
from taskspace.search.cosine import Pairs, TopK, pairs_above, similarity
from taskspace.search.index import Index, SearchResult
from taskspace.space.task_space import TaskSpace

__all__ = [
    "Adaptive",
    "Agreement",
    "Budget",
    "CallableModel",
    "DegenerateTaskWarning",
    "DriftReport",
    "FingerprintMismatchError",
    "Index",
    "InvalidInputError",
    "ModelResult",
    "NumericalError",
    "OpenAIEndpoint",
    "Pairs",
    "ProbeCache",
    "ProbeError",
    "ProbeResult",
    "Prompted",
    "SearchResult",
    "SparseFeatures",
    "Surrogate",
    "TaskEmbedding",
    "TaskSpace",
    "TaskStats",
    "TaskspaceError",
    "TopK",
    "Usage",
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
