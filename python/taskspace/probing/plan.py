"""What a probe run will ask: the models, their groups, the cache keys, the answers already cached.

A :class:`Plan` is built from the models and the probe texts (checking that every model can run on
them), then :meth:`Plan.prepare` makes each request's cache key, serves what the cache already holds
and logs what is left to ask. Each model's :class:`ModelPlan` collects the answers as they arrive,
from the cache, from the local runner (:class:`taskspace.probing.runner.Runner`) or from the Ray
driver (:func:`taskspace.distributed.probe`), and :meth:`Plan.result` turns them into the
:class:`~taskspace.probing.result.ProbeResult` both return.

Example:
    >>> import taskspace as ts
    >>> from taskspace.probing.plan import Plan
    >>> m = ts.CallableModel(lambda batch: [t.upper() for t in batch], name="upper", mode="text")
    >>> plan = Plan([m], ["a", "b"])
    >>> plan.prepare("probe"), plan.models[0].todo
    (2, [0, 1])
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from taskspace.errors import ProbeError
from taskspace.probing.adaptive import Adaptive, Tracker
from taskspace.probing.cache import (
    ProbeCache,
    callable_key_prefix,
    key_prefix,
    prompt_request_key,
    request_key_from,
)
from taskspace.probing.endpoints import CallableModel, OpenAIEndpoint, is_local_model
from taskspace.probing.local import callable_output, takes_pairs
from taskspace.probing.prompted import DEFAULT_COMPLETION_ESTIMATE, Prompted
from taskspace.probing.redaction import Redactor
from taskspace.probing.result import CallRecord, ItemError, ModelResult, ProbeResult, Usage

__all__ = ["Group", "ModelPlan", "Plan"]

logger = logging.getLogger("taskspace.probing")
_body_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
#: The state of one input of a model.
PENDING, OK, FAILED = 0, 1, 2


class ModelPlan:
    """One model of a run: what to ask it and, as the run goes, what it answered.

    ``todo`` lists the inputs left to ask once :meth:`Plan.prepare` has run; ``outputs``, ``errors``
    and ``records`` fill in through :meth:`outcome` and :meth:`record`. A prompted model also holds
    its requests' prompts (``prompt_json``), and with a cache every request's key (``keys``).
    """

    def __init__(self, spec: Any, texts: list[str], text_pairs: list[str] | None) -> None:
        n = len(texts)
        self.spec = spec
        self.name: str = spec.name
        self.texts = texts
        self.pairs = text_pairs
        self.http = isinstance(spec, Prompted)
        self.local = not self.http and not isinstance(spec, CallableModel)
        self.mode: str = "label"
        self.labels: tuple[str, ...] | None = None
        self.outputs: list[Any] = [None] * n
        self.state = bytearray(n)
        self.errors: list[ItemError] = []
        self.records: list[CallRecord] = []
        self.todo: list[int] = []
        self.stop_reason: str | None = None
        self.tracker: Tracker | None = None
        self.price: tuple[float, float] | None = None
        #: Cache keys of the inputs (``None`` when the model's answers are not cached).
        self.keys: list[str] | None = None
        self.key_prefix: tuple[str, str, str] = ("", "", "")
        # prompted models: each input's prompt as canonical JSON, the request bodies' common head
        self.prompt_json: list[str] = []
        self.canonical: list[str] = []
        self.body_head = ""
        self.out_estimate = DEFAULT_COMPLETION_ESTIMATE

    def stopped(self) -> bool:
        """Whether nothing more is to be asked (stopped, or its running MTE has converged)."""
        return self.stop_reason is not None or (self.tracker is not None and self.tracker.converged)

    def body(self, i: int) -> bytes:
        """The HTTP request body of input ``i`` (a prompted model)."""
        return f"{self.body_head}{self.prompt_json[i]}}}".encode()

    def request(self, i: int) -> str:
        """The canonical JSON of input ``i``'s request, as stored in the cache beside its key."""
        if self.canonical:
            return self.canonical[i]
        pair = None if self.pairs is None else self.pairs[i]
        return request_key_from(self.key_prefix, None, [self.texts[i], pair])[1]

    def record(self, r: CallRecord) -> None:
        """Add one call's record."""
        self.records.append(r)

    def outcome(self, i: int, out: Any, cause: str | None, kind: str) -> None:
        """Input ``i``'s output, or (``out`` is ``None``) its error of ``kind`` with its cause."""
        if out is None:
            self.state[i] = FAILED
            self.errors.append(ItemError(i, kind, cause or "no output"))  # type: ignore[arg-type]
            return
        self.state[i] = OK
        self.outputs[i] = out
        if self.tracker is not None:
            self.tracker.add(i, out)

    def result(self, run_stop_reason: str | None) -> ModelResult:
        """The model's :class:`ModelResult`; inputs never answered are ``skipped``."""
        skipped = [i for i, s in enumerate(self.state) if s == PENDING]
        if not skipped:
            self.stop_reason = None
        elif self.stop_reason is None:
            self.stop_reason = run_stop_reason or "cancelled"
        self.errors.sort(key=lambda e: e.index)
        usage = Usage()
        for r in self.records:
            usage.add(r)
        adaptive = None
        if self.tracker is not None:
            self.tracker.update()
            adaptive = self.tracker.report(len(self.texts) - len(skipped))
        return ModelResult(
            name=self.name,
            mode=self.mode,  # type: ignore[arg-type]
            labels=self.labels,
            texts=self.texts,
            text_pairs=self.pairs,
            outputs=self.outputs,
            errors=self.errors,
            skipped=skipped,
            stop_reason=self.stop_reason,
            records=self.records,
            usage=usage,
            adaptive=adaptive,
        )


class Group:
    """Models that share workers: the prompted models of one endpoint, or one local/callable model.

    ``workers`` is the group's default number of workers: the endpoint's ``max_concurrency``, a
    callable's ``max_concurrency``, 1 for a local model.
    """

    def __init__(self, models: list[ModelPlan], workers: int, endpoint: OpenAIEndpoint | None) -> None:
        self.models = models
        self.workers = workers
        self.endpoint = endpoint


class Plan:
    """What a run will ask: models (checked), their groups, and after :meth:`prepare` the cache hits.

    Args:
        models: :class:`~taskspace.Prompted`, :class:`~taskspace.CallableModel` or local models,
            with unique names.
        texts, text_pairs: the probe inputs (already checked, see
            :func:`taskspace.probing.runner.check_probe_arguments`).
        cache: answers found there are served instead of asked.
        prices: model name (or endpoint model) -> price per million tokens, as for
            :func:`taskspace.probe`.
        adaptive: track each model's running MTE (its convergence stops the model).
        cache_sampled: also serve sampled answers from the cache.

    Raises :class:`ProbeError` (or ``TypeError``) for a model that cannot run on these inputs.
    """

    def __init__(
        self,
        models: Sequence[Any],
        texts: list[str],
        text_pairs: list[str] | None = None,
        *,
        cache: ProbeCache | None = None,
        prices: Mapping[str, Any] | None = None,
        adaptive: Adaptive | None = None,
        cache_sampled: bool = False,
    ) -> None:
        self.texts = texts
        self.pairs = text_pairs
        self.cache = cache
        self.adaptive = adaptive
        self.cache_sampled = cache_sampled
        self.models = [self._model(spec) for spec in models]
        names = [m.name for m in self.models]
        dup = sorted({x for x in names if names.count(x) > 1})
        if dup:
            raise ProbeError(f"model names must be unique within a run; repeated: {dup}")
        for m in self.models:
            m.price = _prices(prices, m)
        self.groups = self._groups()
        #: Cleans a text of every secret of the run's endpoints (API keys, header values) and of
        #: every 16-character piece of one (:class:`~taskspace.probing.redaction.Redactor`).
        self.redact = Redactor(
            s for g in self.groups if g.endpoint is not None for s in g.endpoint._secrets()
        )

    def _model(self, spec: Any) -> ModelPlan:
        if isinstance(spec, Prompted):
            if spec.uses_pairs and self.pairs is None:
                raise ProbeError(
                    f"the template of {spec.name!r} uses {{text_pair}} but no text_pairs were given"
                )
            if self.pairs is not None and not spec.uses_pairs:
                raise ProbeError(
                    f"text_pairs were given but the template of {spec.name!r} has no {{text_pair}}"
                )
            spec.endpoint.check_api_key()
            m = ModelPlan(spec, self.texts, self.pairs)
            m.mode = "label" if spec.labels is not None else "text"
            m.labels = spec.labels
            return m
        if isinstance(spec, CallableModel):
            m = ModelPlan(spec, self.texts, self.pairs)
            m.mode = spec.mode
            m.labels = spec.labels
            return m
        if is_local_model(spec):
            if self.pairs is not None and not takes_pairs(spec.predict_proba):
                raise ProbeError(
                    f"local model {spec.name!r} does not take text_pairs (no text_pairs keyword)"
                )
            return ModelPlan(spec, self.texts, self.pairs)
        raise TypeError(
            "a model must be a Prompted, a CallableModel, or a local model with name, predict and "
            f"predict_proba; got {type(spec).__name__}"
        )

    def _groups(self) -> list[Group]:
        groups: list[Group] = []
        by_endpoint: dict[OpenAIEndpoint, list[ModelPlan]] = {}
        for m in self.models:
            if m.http:
                by_endpoint.setdefault(m.spec.endpoint, []).append(m)
            else:
                workers = m.spec.max_concurrency if isinstance(m.spec, CallableModel) else 1
                groups.append(Group([m], workers, None))
        for ep, ms in by_endpoint.items():
            groups.insert(0, Group(ms, ep.max_concurrency, ep))
        return groups

    def prepare(self, how: str) -> int:
        """Make the requests and their cache keys, serve the cached answers, log what the run will
        do (``how`` names the run in the log); return the number of inputs left to ask."""
        for m in self.models:
            if m.http:
                self._prompts(m)
            elif isinstance(m.spec, CallableModel) and m.spec.cache_id is not None:
                self._callable_keys(m)
            if self.adaptive is not None:
                m.tracker = Tracker(self.adaptive, self.texts, self.pairs, m.mode, m.labels)
        for m in self.models:
            self._look_up(m)
        todo = sum(len(m.todo) for m in self.models if not m.stopped())
        cached = sum(r.status == "cached" for m in self.models for r in m.records)
        logger.info(
            "%s: %d models x %d texts; %d answers from the cache, %d to ask",
            how,
            len(self.models),
            len(self.texts),
            cached,
            todo,
        )
        return todo

    def _prompts(self, m: ModelPlan) -> None:
        """A prompted model's prompts, request body head, token estimate and (with a cache) keys."""
        spec: Prompted = m.spec
        m.key_prefix = key_prefix(spec.endpoint.id, spec.endpoint.model, spec.params)
        field = "messages" if spec.endpoint.kind == "chat" else "prompt"
        head = _body_dumps({"model": spec.endpoint.model, **spec.params})
        m.body_head = f'{head[:-1]},"{field}":'
        out = spec.params.get("max_tokens", spec.params.get("max_completion_tokens"))
        if isinstance(out, int) and not isinstance(out, bool):
            m.out_estimate = out
        pairs = self.pairs
        m.prompt_json = [
            spec.prompt_json(t, None if pairs is None else pairs[i]) for i, t in enumerate(self.texts)
        ]
        if self.cache is None:
            return
        m.keys = []
        for i, pj in enumerate(m.prompt_json):
            key, canonical = prompt_request_key(
                m.key_prefix, pj, self.texts[i], None if pairs is None else pairs[i]
            )
            m.keys.append(key)
            m.canonical.append(canonical)

    def _callable_keys(self, m: ModelPlan) -> None:
        m.key_prefix = callable_key_prefix(m.spec.cache_id)
        if self.cache is None:
            return
        pairs = self.pairs
        m.keys = [
            request_key_from(m.key_prefix, None, [t, None if pairs is None else pairs[i]])[0]
            for i, t in enumerate(self.texts)
        ]

    def _look_up(self, m: ModelPlan) -> None:
        """Serve ``m``'s cached answers; the rest go to ``m.todo``."""
        hits: dict[str, Any] = {}
        keys = m.keys
        if (
            self.cache is not None
            and keys is not None
            and not (m.http and m.spec.sampled and not self.cache_sampled)
        ):
            hits = self.cache.get_many(keys)
        for i in range(len(self.texts)):
            hit = hits.get(keys[i]) if hits else None  # type: ignore[index]
            if hit is None:
                m.todo.append(i)
                continue
            try:
                if m.http:
                    out, cause = m.spec.parse(hit.answer)
                else:
                    out, cause = callable_output(m, hit.answer.get("output")), None
            except Exception:  # a row this version cannot read (another version, a damaged file): ask again
                m.todo.append(i)
                continue
            m.record(CallRecord(m.name, i, status="cached", latency=0.0))
            m.outcome(i, out, cause, "unparseable")
        if m.tracker is not None:
            m.tracker.update()
            if m.tracker.converged:
                m.stop_reason = f"adaptive: converged after {m.tracker.n} texts"

    def result(
        self, elapsed: float, *, stop_reason: str | None = None, budget: dict[str, Any] | None = None
    ) -> ProbeResult:
        """The run's :class:`ProbeResult` from what the models have answered so far (``stop_reason``
        is why the run stopped early, ``budget`` its spending); logs failures and totals."""
        out = {m.name: m.result(stop_reason) for m in self.models}
        total = Usage()
        for r in out.values():
            total = total.merge(r.usage)
        result = ProbeResult(models=out, usage=total, stop_reason=stop_reason, elapsed=elapsed, budget=budget)
        failed = sum(m.n_failed for m in out.values())
        unparseable = sum(m.n_unparseable for m in out.values())
        if failed or unparseable:
            logger.warning(
                "probe: %d inputs failed and %d answers were unparseable (see result[name].errors)",
                failed,
                unparseable,
            )
        logger.info("probe: done in %.2f s: %d calls, %d tokens", elapsed, total.calls, total.total_tokens)
        return result


def _prices(prices: Mapping[str, Any] | None, model: ModelPlan) -> tuple[float, float] | None:
    """(prompt, completion) price per token from a table in price per million tokens."""
    if not prices:
        return None
    entry = prices.get(model.name)
    if entry is None and model.http:
        entry = prices.get(model.spec.endpoint.model)
    if entry is None:
        return None
    if isinstance(entry, Mapping):
        try:
            p, c = entry["prompt"], entry["completion"]
        except KeyError:
            raise ProbeError(
                f"price of {model.name!r} must have 'prompt' and 'completion' (per 1M tokens)"
            ) from None
    else:
        try:
            p, c = entry
        except (TypeError, ValueError):
            raise ProbeError(
                f"price of {model.name!r} must be (prompt, completion) or a dict, per 1M tokens"
            ) from None
    for v in (p, c):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= 0):
            raise ProbeError(f"prices of {model.name!r} must be finite numbers >= 0, got {entry!r}")
    return float(p) / 1e6, float(c) / 1e6
