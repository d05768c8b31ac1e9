"""taskspace on a Ray cluster: work that outgrows one machine (``pip install taskspace[ray]``).

* :func:`topk` and :func:`pairs_above` — all-pairs top-k and threshold search over row blocks x
  column blocks of the embeddings, one Ray task per block pair; the same results as
  :func:`taskspace.similarity` (``top_k=``) and :func:`taskspace.pairs_above`, bit for bit.
* :func:`stats`, :func:`model_embedding`, :func:`dataset_embedding` — workers encode shards of the
  pairs and return additive statistics; the driver adds them in a fixed order, so the vector is
  bit-identical to :meth:`taskspace.Surrogate.model_embedding` on one machine.
* :func:`probe` — (model, probe-shard) work items as Ray tasks, with each endpoint's RPM/TPM limits
  and its 429 pause shared by all workers through one limiter actor per endpoint; answers come back
  to the driver, which writes the probe cache, so a killed run resumes exactly as on one machine.

Every function takes ``ray_address``: ``None`` uses the Ray connection this process already has,
else ``RAY_ADDRESS`` from the environment, else starts a local Ray instance; ``"auto"`` or
``"ray://host:10001"`` connect to a cluster. ``import taskspace`` never imports Ray; importing this
module without Ray installed raises an :class:`ImportError` that says how to install it.

Example:
    >>> import numpy as np, taskspace.distributed as tsd
    >>> x = np.random.default_rng(0).standard_normal((100, 16)).astype(np.float32)
    >>> top = tsd.topk(x, k=3, exclude_self=True)  # doctest: +SKIP
"""

from __future__ import annotations

try:
    import ray  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "taskspace.distributed needs Ray, which is not installed: pip install taskspace[ray]"
    ) from e

from taskspace.distributed._probe import probe
from taskspace.distributed._search import pairs_above, topk
from taskspace.distributed._stats import dataset_embedding, model_embedding, stats

__all__ = ["dataset_embedding", "model_embedding", "pairs_above", "probe", "stats", "topk"]
