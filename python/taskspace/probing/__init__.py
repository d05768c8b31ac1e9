"""The probe layer: get models' outputs on the probe texts, concurrently, politely and resumably.

The functions users call are on the package face: :func:`taskspace.probe`,
:func:`taskspace.probe_sync`, :func:`taskspace.probe_set` and :func:`taskspace.pair_probe`. This
package's face re-exports the classes users meet (endpoints, :class:`Prompted`, :class:`Budget`,
:class:`Adaptive`, :class:`ProbeCache`, the result classes); everything else is imported from its
module, e.g. ``from taskspace.probing.cache import ProbeCache`` or ``import taskspace.probing.cache``.

Modules, in the order a request flows through them: ``texts`` (probe texts), ``endpoints`` and
``prompted`` (what to ask), ``labels`` (verbalizers -> soft labels), ``plan`` (a run's models,
groups, cache keys and cache hits: the :class:`~taskspace.probing.plan.Plan` both the local runner
and the Ray driver execute), ``runner`` (scheduling: workers, budget, deadline, progress, adaptive
stop; :func:`~taskspace.probing.runner.probe` and the :class:`~taskspace.probing.runner.Runner`),
``http`` (one request to an OpenAI-compatible endpoint, with retries and 429 pauses),
``redaction`` (secrets out of answers, causes and logs), ``local``
(one batch of a local model or callable), ``limits`` (rate limits and backoff), ``cache`` (the
write-through SQLite cache and the one place a cache key is made), ``progress``, ``adaptive`` (stop
early), ``result`` (what a run returns), ``outputs`` (the outputs file a result is saved to),
``config`` (TOML probe configs), ``agreement`` (do two models answer alike?).

Example:
    >>> import taskspace as ts
    >>> m = ts.CallableModel(lambda batch: ["q" if t.endswith("?") else "s" for t in batch], name="questions")
    >>> res = ts.probe_sync([m], ["Is it late?", "It is late."], progress=False)
    >>> res["questions"].outputs, res["questions"].errors
    (['q', 's'], [])
"""

from __future__ import annotations

from taskspace.errors import ProbeError
from taskspace.probing.adaptive import Adaptive
from taskspace.probing.cache import ProbeCache
from taskspace.probing.endpoints import CallableModel, LocalModel, OpenAIEndpoint
from taskspace.probing.labels import Verbalizers
from taskspace.probing.prompted import Prompted
from taskspace.probing.result import CallRecord, ItemError, ModelResult, ProbeResult, Usage
from taskspace.probing.runner import Budget

__all__ = [
    "Adaptive",
    "Budget",
    "CallRecord",
    "CallableModel",
    "ItemError",
    "LocalModel",
    "ModelResult",
    "OpenAIEndpoint",
    "ProbeCache",
    "ProbeError",
    "ProbeResult",
    "Prompted",
    "Usage",
    "Verbalizers",
]
