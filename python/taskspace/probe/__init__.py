"""The probe layer: get models' outputs on the probe texts, concurrently, politely and resumably.

Public names (also re-exported from :mod:`taskspace`): :class:`OpenAIEndpoint`, :class:`Prompted`,
:class:`CallableModel`, :func:`probe`, :func:`probe_sync` and :func:`probe_set` (the default probe texts). Also here: :class:`Budget`, :class:`Adaptive`, :class:`ProbeCache`, the result
classes and :class:`ProbeError`.

``taskspace.probe`` (the attribute of the top-level package) is the :func:`probe` function, not
this package: import from the package's modules with ``from taskspace.probe.cache import
ProbeCache`` (``import taskspace.probe.cache as c`` does not work).

Example:
    >>> import taskspace as ts
    >>> m = ts.CallableModel(lambda batch: ["q" if t.endswith("?") else "s" for t in batch], name="questions")
    >>> res = ts.probe_sync([m], ["Is it late?", "It is late."], progress=False)
    >>> res["questions"].outputs, res["questions"].errors
    (['q', 's'], [])
"""

from __future__ import annotations

from taskspace.probe.adaptive import Adaptive
from taskspace.probe.cache import ProbeCache
from taskspace.probe.endpoints import CallableModel, LocalModel, OpenAIEndpoint
from taskspace.probe.errors import ProbeError
from taskspace.probe.labels import Verbalizers
from taskspace.probe.probe_set import probe_set
from taskspace.probe.prompted import Prompted
from taskspace.probe.result import CallRecord, ItemError, ModelResult, ProbeResult, Usage
from taskspace.probe.runner import Budget, probe, probe_sync

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
    "probe",
    "probe_set",
    "probe_sync",
]
