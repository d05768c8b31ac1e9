"""The probe runner: ask many models for their outputs on the probe texts, concurrently and politely.

``await probe(models, texts, ...)`` runs every model on every text and returns a
:class:`~taskspace.probing.result.ProbeResult`. How it works:

* **One aiohttp session per run** (inside ``async with``), connections pooled.
* **Groups and workers.** Prompted models on equal endpoints form one group; each local or callable
  model is a group of its own. A group has ``max_concurrency`` workers pulling jobs from a bounded
  ``asyncio.Queue`` that one feeder fills lazily (round-robin over the group's models), so a run
  holds a fixed number of tasks however many texts there are, and never more requests in flight to
  an endpoint than its ``max_concurrency``.
* **Limits** per endpoint: RPM and TPM token buckets (TPM reserves an estimate, corrected from the
  response's ``usage``), and a pause shared by the endpoint's workers after a 429, as long as
  ``Retry-After`` / ``retry-after-ms`` asks (a backoff delay when it does not say).
* **Retries** on connection errors, timeouts and the endpoint's ``retry_statuses`` (408, 409, 429,
  5xx), with jittered exponential backoff, up to ``max_retries``; 401, 403 and 404 stop the whole
  endpoint (every other request would fail the same way). A 200 whose body is not a completion
  (malformed JSON, an HTML page, no ``choices``) fails that request without retrying.
* **Cache = resume** (:mod:`taskspace.probing.cache`): cached answers are read before anything is
  sent, and each new answer is written through as it arrives.
* **Budget** (tokens and/or money, run-wide): each request reserves its estimate before it is sent;
  when the next one would not fit, scheduling stops (requests in flight finish), the unasked inputs
  are listed in ``skipped`` and ``stop_reason`` says why.
* **Deadline** (seconds from the start): at the deadline everything still running is cancelled;
  answers received so far are kept (and cached).
* Cancelling the task running ``probe`` closes the session and flushes the cache before the
  ``CancelledError`` propagates, so the next run resumes where this one stopped.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import aiohttp
import numpy as np

from taskspace import _checks
from taskspace.errors import ProbeError
from taskspace.probing.adaptive import Adaptive, Tracker
from taskspace.probing.cache import CacheWriter, ProbeCache, key_prefix, request_key_from
from taskspace.probing.endpoints import CallableModel, OpenAIEndpoint, is_local_model
from taskspace.probing.limits import EndpointLimits, backoff_delay, retry_after_seconds
from taskspace.probing.progress import Progress
from taskspace.probing.prompted import DEFAULT_COMPLETION_ESTIMATE, Prompted, read_response
from taskspace.probing.result import CallRecord, ItemError, ModelResult, ProbeResult, Usage

__all__ = ["Budget", "probe", "probe_sync"]

logger = logging.getLogger("taskspace.probing")
_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False).encode
_body_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_json_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]
#: Statuses that make every further request to the endpoint pointless.
_FATAL_STATUSES = {401: "unauthorized", 403: "forbidden", 404: "not found"}
_PENDING, _OK, _FAILED = 0, 1, 2
_SOFT_TOLERANCE = _checks.SOFT_LABEL_TOLERANCE
#: Texts per ``predict_proba`` call of a local model.
LOCAL_BATCH = 256


@dataclass(frozen=True)
class Budget:
    """A run-wide spending limit: ``tokens`` (prompt + completion) and/or ``cost`` (needs ``prices``).

    Example:
        >>> from taskspace.probing import Budget
        >>> Budget(tokens=100_000)
        Budget(tokens=100000, cost=None)
    """

    tokens: int | None = None
    cost: float | None = None

    def __post_init__(self) -> None:
        if self.tokens is None and self.cost is None:
            raise ProbeError("a Budget needs tokens and/or cost")
        if self.tokens is not None and (
            isinstance(self.tokens, bool) or not isinstance(self.tokens, int) or self.tokens < 0
        ):
            raise ProbeError(f"budget tokens must be an int >= 0, got {self.tokens!r}")
        if self.cost is not None and (
            isinstance(self.cost, bool) or not isinstance(self.cost, (int, float)) or not self.cost >= 0
        ):
            raise ProbeError(f"budget cost must be a number >= 0, got {self.cost!r}")


class _Spend:
    """Spent and reserved tokens/cost against a :class:`Budget`."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.tokens = 0
        self.cost = 0.0
        self.res_tokens = 0
        self.res_cost = 0.0

    def reserve(self, tokens: int, cost: float) -> str | None:
        """Reserve an estimate; return why not when it does not fit."""
        b = self.budget
        if b.tokens is not None and self.tokens + self.res_tokens + tokens > b.tokens:
            return f"token budget of {b.tokens} reached ({self.tokens} spent)"
        if b.cost is not None and self.cost + self.res_cost + cost > b.cost:
            return f"cost budget of {b.cost:g} reached ({self.cost:.4f} spent)"
        self.res_tokens += tokens
        self.res_cost += cost
        return None

    def settle(self, est_tokens: int, est_cost: float, tokens: int, cost: float) -> None:
        self.res_tokens -= est_tokens
        self.res_cost -= est_cost
        self.tokens += tokens
        self.cost += cost

    def as_dict(self) -> dict[str, Any]:
        return {
            "tokens": self.budget.tokens,
            "cost": self.budget.cost,
            "spent_tokens": self.tokens,
            "spent_cost": self.cost,
        }


class _Model:
    """The state of one model during a run."""

    def __init__(self, spec: Any, name: str, n: int) -> None:
        self.spec = spec
        self.name = name
        self.http = isinstance(spec, Prompted)
        self.local = not self.http and not isinstance(spec, CallableModel)
        self.mode: str = "label"
        self.labels: tuple[str, ...] | None = None
        self.outputs: list[Any] = [None] * n
        self.state = bytearray(n)
        self.errors: list[ItemError] = []
        self.records: list[CallRecord] = []
        self.usage = Usage()
        self.todo: list[int] = []
        self.stop_reason: str | None = None
        self.tracker: Tracker | None = None
        self.price: tuple[float, float] | None = None
        # HTTP models
        self.keys: list[str] = []
        self.canonical: list[str] = []
        self.prompt_json: list[str] = []
        self.key_prefix: tuple[str, str, str] = ("", "", "")
        self.body_head = ""
        self.out_estimate = DEFAULT_COMPLETION_ESTIMATE
        # cached callables
        self.cache_keys: list[str] | None = None

    def stopped(self) -> bool:
        return self.stop_reason is not None or (self.tracker is not None and self.tracker.converged)


class _Group:
    """Workers sharing one queue: the prompted models of one endpoint, or one local/callable model."""

    def __init__(self, models: list[_Model], workers: int, endpoint: OpenAIEndpoint | None) -> None:
        self.models = models
        self.workers = workers
        self.endpoint = endpoint
        self.limits = EndpointLimits(endpoint.rpm, endpoint.tpm) if endpoint is not None else None
        self.timeout = aiohttp.ClientTimeout(total=endpoint.timeout) if endpoint is not None else None
        self.fatal: str | None = None
        self.queue: asyncio.Queue[Any] | None = None


def _prices(prices: Mapping[str, Any] | None, model: _Model) -> tuple[float, float] | None:
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


def _takes_pairs(fn: Callable[..., Any]) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return "text_pairs" in sig.parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
    )


class _Run:
    def __init__(
        self,
        models: Sequence[Any],
        texts: list[str],
        text_pairs: list[str] | None,
        *,
        cache: ProbeCache | None,
        progress: bool,
        budget: Budget | None,
        deadline: float | None,
        prices: Mapping[str, Any] | None,
        adaptive: Adaptive | None,
        cache_sampled: bool,
        concurrency: int | None,
        seed: int | None,
    ) -> None:
        self.texts = texts
        self.pairs = text_pairs
        self.cache = cache
        self.show_progress = progress
        self.spend = _Spend(budget) if budget is not None else None
        self.deadline = deadline
        self.adaptive = adaptive
        self.cache_sampled = cache_sampled
        self.rng = random.Random(seed)
        self.stop_reason: str | None = None
        self.session: aiohttp.ClientSession | None = None
        self.writer: CacheWriter | None = None
        self.executor: ThreadPoolExecutor | None = None
        self.progress: Progress | None = None
        self.secrets: list[str] = []
        self.global_limit = asyncio.Semaphore(concurrency) if concurrency is not None else None
        self.models = [self._model(spec) for spec in models]
        names = [m.name for m in self.models]
        dup = sorted({x for x in names if names.count(x) > 1})
        if dup:
            raise ProbeError(f"model names must be unique within a run; repeated: {dup}")
        for m in self.models:
            m.price = _prices(prices, m)
            if budget is not None and budget.cost is not None and m.http and m.price is None:
                raise ProbeError(f"a cost budget needs a price for every prompted model; none for {m.name!r}")
        self.groups = self._groups()

    # -- planning ------------------------------------------------------------------------------
    def _model(self, spec: Any) -> _Model:
        n = len(self.texts)
        if isinstance(spec, Prompted):
            m = _Model(spec, spec.name, n)
            m.mode = "label" if spec.labels is not None else "text"
            m.labels = spec.labels
            if spec.uses_pairs and self.pairs is None:
                raise ProbeError(
                    f"the template of {spec.name!r} uses {{text_pair}} but no text_pairs were given"
                )
            if self.pairs is not None and not spec.uses_pairs:
                raise ProbeError(
                    f"text_pairs were given but the template of {spec.name!r} has no {{text_pair}}"
                )
            spec.endpoint.check_api_key()
            return m
        if isinstance(spec, CallableModel):
            m = _Model(spec, spec.name, n)
            m.mode = spec.mode
            m.labels = spec.labels
            return m
        if is_local_model(spec):
            m = _Model(spec, spec.name, n)
            if self.pairs is not None and not _takes_pairs(spec.predict_proba):
                raise ProbeError(
                    f"local model {spec.name!r} does not take text_pairs (no text_pairs keyword)"
                )
            return m
        raise TypeError(
            "a model must be a Prompted, a CallableModel, or a local model with name, predict and "
            f"predict_proba; got {type(spec).__name__}"
        )

    def _groups(self) -> list[_Group]:
        groups: list[_Group] = []
        by_endpoint: dict[OpenAIEndpoint, list[_Model]] = {}
        for m in self.models:
            if m.http:
                by_endpoint.setdefault(m.spec.endpoint, []).append(m)
            else:
                workers = m.spec.max_concurrency if isinstance(m.spec, CallableModel) else 1
                groups.append(_Group([m], workers, None))
        for ep, ms in by_endpoint.items():
            groups.insert(0, _Group(ms, ep.max_concurrency, ep))
            self.secrets.extend(ep._secrets())
        return groups

    def _plan(self) -> None:
        """Keys, cache hits and the inputs left to ask, per model."""
        n = len(self.texts)
        pairs = self.pairs
        for m in self.models:
            if m.http:
                spec: Prompted = m.spec
                m.key_prefix = key_prefix(spec.endpoint.id, spec.endpoint.model, spec.params)
                field = "messages" if spec.endpoint.kind == "chat" else "prompt"
                head = _body_dumps({"model": spec.endpoint.model, **spec.params})
                m.body_head = f'{head[:-1]},"{field}":'
                out = spec.params.get("max_tokens", spec.params.get("max_completion_tokens"))
                m.out_estimate = (
                    out if isinstance(out, int) and not isinstance(out, bool) else DEFAULT_COMPLETION_ESTIMATE
                )
                for i in range(n):
                    pj = spec.prompt_json(self.texts[i], None if pairs is None else pairs[i])
                    m.prompt_json.append(pj)
                    if self.cache is not None:
                        key, canonical = self._canonical(m, i, pj)
                        m.keys.append(key)
                        m.canonical.append(canonical)
            elif isinstance(m.spec, CallableModel) and m.spec.cache_id is not None:
                prefix = key_prefix(f"callable:{m.spec.cache_id}", m.spec.cache_id, {})
                m.key_prefix = prefix
                m.cache_keys = [
                    request_key_from(prefix, None, [self.texts[i], None if pairs is None else pairs[i]])[0]
                    for i in range(n)
                ]
            if self.adaptive is not None:
                m.tracker = Tracker(self.adaptive, self.texts, pairs, m.mode, m.labels)
        for m in self.models:
            hits: dict[str, Any] = {}
            keys = m.keys if m.http else m.cache_keys
            if (
                self.cache is not None
                and keys is not None
                and not (m.http and m.spec.sampled and not self.cache_sampled)
            ):
                hits = self.cache.get_many(keys)
            for i in range(n):
                hit = hits.get(keys[i]) if hits else None  # type: ignore[index]
                if hit is None:
                    m.todo.append(i)
                    continue
                if m.http:
                    out, cause = m.spec.parse(hit.answer)
                else:
                    try:
                        out, cause = self._callable_output(m, hit.answer.get("output")), None
                    except ValueError:  # stored by another version of the callable: ask again
                        m.todo.append(i)
                        continue
                self._record(m, CallRecord(m.name, i, status="cached", latency=0.0))
                self._outcome(m, i, out, cause, "unparseable")
            if m.tracker is not None:
                m.tracker.update()
                if m.tracker.converged:
                    m.stop_reason = f"adaptive: converged after {m.tracker.n} texts"

    def _canonical(self, m: _Model, i: int, pj: str) -> tuple[str, str]:
        e, mod, p = m.key_prefix
        text = _json_str(self.texts[i])
        pair = "null" if self.pairs is None else _json_str(self.pairs[i])
        canonical = f'{{"endpoint":{e},"input":[{text},{pair}],"model":{mod},"params":{p},"prompt":{pj}}}'
        return sha256(canonical.encode()).hexdigest(), canonical

    # -- bookkeeping -----------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, "***")
        return text

    def _record(self, m: _Model, r: CallRecord) -> None:
        m.records.append(r)

    def _outcome(self, m: _Model, i: int, out: Any, cause: str | None, kind: str) -> None:
        if out is None:
            m.state[i] = _FAILED
            m.errors.append(ItemError(i, kind, cause or "no output"))  # type: ignore[arg-type]
            return
        m.state[i] = _OK
        m.outputs[i] = out
        if m.tracker is not None:
            m.tracker.add(i, out)

    def _check_stop(self, m: _Model, group: _Group) -> bool:
        if m.stop_reason is not None:
            return True
        reason = self.stop_reason or group.fatal
        if reason is None and m.tracker is not None and m.tracker.converged:
            reason = f"adaptive: converged after {m.tracker.n} texts"
        if reason is not None:
            m.stop_reason = reason
            return True
        return False

    # -- HTTP ------------------------------------------------------------------------------------
    async def _http(self, group: _Group, m: _Model, i: int) -> None:
        spec: Prompted = m.spec
        ep = spec.endpoint
        pj = m.prompt_json[i]
        est = len(pj) // 4 + 8 + m.out_estimate
        est_cost = 0.0
        if m.price is not None:
            est_cost = (len(pj) // 4 + 8) * m.price[0] + m.out_estimate * m.price[1]
        if self.spend is not None:
            why = self.spend.reserve(est, est_cost)
            if why is not None:
                if self.stop_reason is None:
                    self.stop_reason = why
                    logger.warning("probe: %s; no further requests are scheduled", why)
                m.stop_reason = self.stop_reason
                return
        body = f"{m.body_head}{pj}}}".encode()
        rec = CallRecord(m.name, i)
        limits = group.limits
        assert limits is not None and self.session is not None
        t0 = time.perf_counter()
        status: int | None = None
        cause = ""
        answer: Any = None
        pt = ct = None
        attempt = 0
        try:
            while True:
                if not limits.try_acquire(est):
                    await limits.acquire(est)
                if group.fatal is not None:
                    m.stop_reason = group.fatal
                    return
                rec.attempts += 1
                retry_after: float | None = None
                retryable = False
                status = None
                try:
                    headers = ep._request_headers()
                    async with self.session.post(
                        ep.url, data=body, headers=headers, timeout=group.timeout
                    ) as resp:
                        status = resp.status
                        raw = await resp.read()
                        if status == 200:
                            try:
                                data = json.loads(raw)
                            except ValueError:
                                ctype = resp.content_type
                                what = (
                                    "malformed JSON"
                                    if "json" in ctype
                                    else f"unexpected content type {ctype}"
                                )
                                cause = f"HTTP 200 with {what}: {_snippet(raw)}"
                            else:
                                try:
                                    answer, pt, ct = read_response(data)
                                except ValueError as e:
                                    cause = f"HTTP 200 but {e}"
                        else:
                            cause = f"HTTP {status}: {_snippet(raw)}"
                            if status == 429 or status >= 500:
                                retry_after = retry_after_seconds(resp.headers)
                except (asyncio.TimeoutError, TimeoutError):
                    cause = f"timeout after {ep.timeout:g} s"
                    retryable = True
                except aiohttp.ClientError as e:
                    cause = f"connection error: {type(e).__name__}: {e}"
                    retryable = True
                except OSError as e:
                    cause = f"connection error: {type(e).__name__}: {e}"
                    retryable = True
                if answer is not None:
                    break
                if status is not None:
                    if status == 429:
                        rec.rate_limited += 1
                        limits.pause(
                            retry_after
                            if retry_after is not None
                            else backoff_delay(attempt, ep.backoff, ep.backoff_max, self.rng)
                        )
                        if self.progress is not None:
                            self.progress.advance(0, rate_limited=1)
                        retryable = ep.retry_on_429
                    elif status in _FATAL_STATUSES:
                        if group.fatal is None:
                            group.fatal = self._redact(
                                f"endpoint {ep.base_url} answered HTTP {status} ({_FATAL_STATUSES[status]}) "
                                f"for model {ep.model!r}"
                                + (
                                    f"; check {ep.api_key_env}"
                                    if status in (401, 403) and ep.api_key_env
                                    else ""
                                )
                            )
                            logger.error(
                                "probe: %s; the endpoint's remaining requests are skipped", group.fatal
                            )
                    else:
                        retryable = status in ep.retry_statuses
                if not retryable or attempt >= ep.max_retries:
                    if attempt > 0 and retryable:
                        cause = f"gave up after {rec.attempts} attempts ({attempt} retries): {cause}"
                    break
                delay = backoff_delay(attempt, ep.backoff, ep.backoff_max, self.rng)
                if retry_after is not None:
                    delay = max(delay, retry_after)
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "probe: %s item %d attempt %d: %s; retrying in %.2f s",
                        m.name,
                        i,
                        rec.attempts,
                        self._redact(cause),
                        delay,
                    )
                attempt += 1
                await asyncio.sleep(delay)
        finally:
            rec.latency = time.perf_counter() - t0
            rec.http_status = status
            tokens = (pt or 0) + (ct or 0)
            if answer is not None:
                rec.prompt_tokens = pt or 0
                rec.completion_tokens = ct or 0
                if m.price is not None:
                    rec.cost = rec.prompt_tokens * m.price[0] + rec.completion_tokens * m.price[1]
                limits.reconcile(est, tokens if pt is not None or ct is not None else None)
            if self.spend is not None:
                self.spend.settle(est, est_cost, tokens if answer is not None else 0, rec.cost)
        if answer is not None:
            rec.status = "ok"
            self._record(m, rec)
            if self.writer is not None:
                self.writer.put_answer(m.keys[i], m.name, m.canonical[i], answer, pt, ct, rec.latency)
            out, why = spec.parse(answer)
            self._outcome(m, i, out, why, "unparseable")
            if self.progress is not None:
                self.progress.advance(
                    1,
                    ok=1 if out is not None else 0,
                    errors=0 if out is not None else 1,
                    tokens=rec.prompt_tokens + rec.completion_tokens,
                    cost=rec.cost,
                )
        else:
            rec.status = "error"
            rec.cause = self._redact(cause)
            self._record(m, rec)
            if self.writer is not None:
                self.writer.put_error(m.keys[i], m.name, status, rec.cause, rec.attempts)
            self._outcome(m, i, None, rec.cause, "failed")
            if self.progress is not None:
                self.progress.advance(1, errors=1)

    # -- local models and callables --------------------------------------------------------------
    def _callable_output(self, m: _Model, o: Any) -> Any:
        if o is None:
            return None
        if isinstance(o, str):
            if m.mode == "label" and m.labels is not None and o not in m.labels:
                raise ValueError(f"label {o!r} is not one of {list(m.labels)}")
            return o
        if m.mode == "text":
            raise ValueError(f"a text model must return str, got {type(o).__name__}")
        row = np.asarray(o, dtype=np.float64)
        if row.ndim != 1 or row.size < 1:
            raise ValueError(f"a soft label must be a 1-D row, got shape {row.shape}")
        if m.labels is None:
            m.labels = tuple(str(j) for j in range(row.size))
            if m.tracker is not None:
                m.tracker.labels = m.labels
        if row.size != len(m.labels):
            raise ValueError(f"a soft label row has {row.size} values for {len(m.labels)} labels")
        if not np.all(np.isfinite(row)) or np.any(row < 0) or abs(row.sum() - 1.0) > _SOFT_TOLERANCE:
            raise ValueError("a soft label row must be finite, >= 0 and sum to 1")
        return row / row.sum()

    def _local_outputs(self, m: _Model, res: Any, n: int) -> list[Any]:
        try:
            labels, probs = res
        except (TypeError, ValueError):
            raise ValueError("predict_proba must return (labels, probs)") from None
        labels = tuple(str(x) for x in labels)
        probs = np.asarray(probs, dtype=np.float64)
        if probs.shape != (n, len(labels)):
            raise ValueError(
                f"predict_proba returned probs of shape {probs.shape} for {n} texts and {len(labels)} labels"
            )
        if m.labels is None:
            m.labels = labels
            if m.tracker is not None:
                m.tracker.labels = labels
        elif labels != m.labels:
            if set(labels) != set(m.labels):
                raise ValueError(
                    f"predict_proba's labels changed between calls: {list(labels)} vs {list(m.labels)}"
                )
            probs = probs[:, [labels.index(x) for x in m.labels]]
        sums = probs.sum(axis=1)
        bad = (
            ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1) | (np.abs(sums - 1.0) > _SOFT_TOLERANCE)
        )
        out: list[Any] = []
        for r in range(n):
            out.append(None if bad[r] else probs[r] / sums[r])
        return out

    async def _batch(self, group: _Group, m: _Model, idx: list[int]) -> None:
        texts = [self.texts[i] for i in idx]
        pairs = None if self.pairs is None else [self.pairs[i] for i in idx]
        rec = CallRecord(m.name, idx[0], count=len(idx), attempts=1)
        t0 = time.perf_counter()
        outs: list[Any] | None = None
        cause = ""
        try:
            spec = m.spec
            if m.local:
                fn = spec.predict_proba
                call = (lambda: fn(texts)) if pairs is None else (lambda: fn(texts, text_pairs=pairs))
                timeout = None
                is_async = False
            else:
                fn = spec.fn
                call = (lambda: fn(texts)) if pairs is None else (lambda: fn(texts, pairs))
                timeout = spec.timeout
                is_async = spec.is_async
            if is_async:
                res = await asyncio.wait_for(call(), timeout)
            else:
                if self.executor is None:
                    workers = sum(g.workers for g in self.groups if g.endpoint is None)
                    self.executor = ThreadPoolExecutor(
                        max_workers=max(1, workers), thread_name_prefix="taskspace-probe"
                    )
                fut = asyncio.get_running_loop().run_in_executor(self.executor, call)
                res = await asyncio.wait_for(fut, timeout)
            if m.local:
                outs = self._local_outputs(m, res, len(idx))
            else:
                if isinstance(res, np.ndarray) and res.ndim == 2:
                    res = list(res)
                if isinstance(res, (str, bytes)) or not isinstance(res, Sequence):
                    raise ValueError(f"returned a {type(res).__name__}, not a list of outputs")
                if len(res) != len(idx):
                    raise ValueError(f"returned {len(res)} outputs for {len(idx)} texts")
                outs = [self._callable_output(m, o) for o in res]
        except asyncio.CancelledError:
            raise
        except (asyncio.TimeoutError, TimeoutError):
            cause = f"timeout after {m.spec.timeout:g} s"
        except Exception as e:
            cause = self._redact(f"{type(e).__name__}: {e}")
        rec.latency = time.perf_counter() - t0
        if outs is None:
            rec.status = "error"
            rec.cause = cause
            self._record(m, rec)
            for i in idx:
                self._outcome(m, i, None, cause, "failed")
            if self.progress is not None:
                self.progress.advance(len(idx), errors=len(idx))
            return
        self._record(m, rec)
        ok = 0
        for i, o in zip(idx, outs, strict=True):
            self._outcome(
                m, i, o, "invalid probability row" if m.local else "the model returned None", "failed"
            )
            if o is not None:
                ok += 1
                if self.writer is not None and m.cache_keys is not None:
                    stored = o.tolist() if isinstance(o, np.ndarray) else o
                    canonical = request_key_from(
                        m.key_prefix, None, [self.texts[i], None if self.pairs is None else self.pairs[i]]
                    )[1]
                    self.writer.put_answer(
                        m.cache_keys[i], m.name, canonical, {"output": stored}, None, None, rec.latency
                    )
        if self.progress is not None:
            self.progress.advance(len(idx), ok=ok, errors=len(idx) - ok)

    # -- scheduling ------------------------------------------------------------------------------
    async def _feed(self, group: _Group) -> None:
        q = group.queue
        assert q is not None
        if group.endpoint is not None:
            iters = [(m, iter(m.todo)) for m in group.models if m.todo]
            while iters:
                for entry in list(iters):
                    m, it = entry
                    i = next(it, None)
                    if i is None or self._check_stop(m, group):
                        iters.remove(entry)
                        continue
                    await q.put((m, i))
        else:
            (m,) = group.models
            size = m.spec.batch_size if isinstance(m.spec, CallableModel) else LOCAL_BATCH
            if m.tracker is not None:  # check convergence between batches, not after a huge one
                size = min(size, self.adaptive.check_every)  # type: ignore[union-attr]
            for start in range(0, len(m.todo), size):
                if self._check_stop(m, group):
                    break
                await q.put((m, m.todo[start : start + size]))
        for _ in range(group.workers):
            await q.put(None)

    async def _work(self, group: _Group) -> None:
        q = group.queue
        assert q is not None
        http = group.endpoint is not None
        limit = self.global_limit
        while True:
            job = await q.get()
            if job is None:
                return
            m, item = job
            if self._check_stop(m, group):
                continue
            if limit is not None:
                async with limit:
                    await (self._http(group, m, item) if http else self._batch(group, m, item))
            elif http:
                await self._http(group, m, item)
            else:
                await self._batch(group, m, item)

    def _start(self, how: str) -> int:
        """Plan the run (cache look-ups included), log what it will do; return the number to ask."""
        self._plan()
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

    async def run(self) -> ProbeResult:
        t0 = time.perf_counter()
        todo = self._start("probe")
        bar = Progress(todo, enabled=self.show_progress)
        self.progress = bar if bar.shown else None
        groups = [g for g in self.groups if any(m.todo and not m.stopped() for m in g.models)]
        http_workers = sum(g.workers for g in groups if g.endpoint is not None)
        try:
            if groups:
                if http_workers:
                    connector = aiohttp.TCPConnector(limit=http_workers, ttl_dns_cache=300)
                    self.session = aiohttp.ClientSession(
                        connector=connector,
                        timeout=aiohttp.ClientTimeout(total=None),
                        headers={"Content-Type": "application/json"},
                    )
                if self.cache is not None:
                    self.writer = CacheWriter(self.cache.path)
                await self._execute(groups)
        finally:
            try:
                if self.session is not None:
                    await self.session.close()
            finally:
                self.session = None
                if self.executor is not None:
                    self.executor.shutdown(wait=False, cancel_futures=True)
                bar.close()
                if self.writer is not None:
                    writer, self.writer = self.writer, None
                    writer.close()
        return self._result(time.perf_counter() - t0)

    async def _execute(self, groups: list[_Group]) -> None:
        tasks: list[asyncio.Task[None]] = []
        for g in groups:
            g.queue = asyncio.Queue(maxsize=2 * g.workers)
            tasks.append(asyncio.ensure_future(self._feed(g)))
            tasks.extend(asyncio.ensure_future(self._work(g)) for _ in range(g.workers))
        end = None if self.deadline is None else time.monotonic() + self.deadline
        try:
            pending: set[asyncio.Task[None]] = set(tasks)
            while pending:
                timeout = None if end is None else max(0.0, end - time.monotonic())
                done, pending = await asyncio.wait(
                    pending, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION
                )
                for t in done:
                    if not t.cancelled() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
                if pending and end is not None and time.monotonic() >= end:
                    self.stop_reason = f"deadline of {self.deadline:g} s reached"
                    logger.warning("probe: %s; cancelling what is still running", self.stop_reason)
                    break
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _result(self, elapsed: float) -> ProbeResult:
        total = Usage()
        out: dict[str, ModelResult] = {}
        for m in self.models:
            skipped = [i for i, s in enumerate(m.state) if s == _PENDING]
            if not skipped:
                m.stop_reason = None
            elif m.stop_reason is None:
                m.stop_reason = self.stop_reason or "cancelled"
            m.errors.sort(key=lambda e: e.index)
            for r in m.records:
                m.usage.add(r)
            adaptive = None
            if m.tracker is not None:
                m.tracker.update()
                adaptive = m.tracker.report(len(self.texts) - len(skipped))
            out[m.name] = ModelResult(
                name=m.name,
                mode=m.mode,  # type: ignore[arg-type]
                labels=m.labels,
                texts=self.texts,
                text_pairs=self.pairs,
                outputs=m.outputs,
                errors=m.errors,
                skipped=skipped,
                stop_reason=m.stop_reason,
                records=m.records,
                usage=m.usage,
                adaptive=adaptive,
            )
            total = total.merge(m.usage)
        result = ProbeResult(
            models=out,
            usage=total,
            stop_reason=self.stop_reason,
            elapsed=elapsed,
            budget=self.spend.as_dict() if self.spend is not None else None,
        )
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


def _snippet(raw: bytes, limit: int = 200) -> str:
    text = raw[: limit + 1].decode("utf-8", errors="replace").strip()
    text = " ".join(text.split())
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def _budget(budget: Any) -> Budget | None:
    if budget is None or isinstance(budget, Budget):
        return budget
    if isinstance(budget, Mapping):
        unknown = set(budget) - {"tokens", "cost"}
        if unknown:
            raise ProbeError(f"budget keys must be 'tokens' and/or 'cost', got {sorted(unknown)}")
        return Budget(**budget)
    raise TypeError(f"budget must be a Budget or a dict with 'tokens'/'cost', got {type(budget).__name__}")


def check_probe_arguments(
    models: Any, texts: Sequence[str], text_pairs: Sequence[str] | None, deadline: float | None
) -> tuple[list[Any], list[str], list[str] | None]:
    """Validate the arguments every probe entry point shares; returns (models, texts, text_pairs)."""
    if not isinstance(models, (list, tuple)):
        models = [models]
    if not models:
        raise ProbeError("no models to probe")
    t = _checks.texts_list(texts, "texts")
    _checks.check_encodable(t, "texts")
    pairs = None
    if text_pairs is not None:
        pairs = _checks.texts_list(text_pairs, "text_pairs")
        _checks.same_length(len(t), len(pairs), "text_pairs")
        _checks.check_encodable(pairs, "text_pairs")
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or not deadline > 0
    ):
        raise ProbeError(f"deadline must be a number of seconds > 0, got {deadline!r}")
    return list(models), t, pairs


def open_cache(cache: str | os.PathLike[str] | ProbeCache | None) -> tuple[ProbeCache | None, bool]:
    """The probe cache a run writes to, and whether the run opened it (and so must close it)."""
    if cache is None or isinstance(cache, ProbeCache):
        return cache, False
    if not isinstance(cache, (str, os.PathLike)):
        raise TypeError(f"cache must be a path or a ProbeCache, got {type(cache).__name__}")
    return ProbeCache(cache), True


async def probe(
    models: Any,
    texts: Sequence[str],
    *,
    text_pairs: Sequence[str] | None = None,
    cache: str | os.PathLike[str] | ProbeCache | None = None,
    progress: bool = True,
    budget: Budget | Mapping[str, float] | None = None,
    deadline: float | None = None,
    prices: Mapping[str, Any] | None = None,
    adaptive: Adaptive | bool | None = None,
    cache_sampled: bool = False,
    concurrency: int | None = None,
    seed: int | None = None,
) -> ProbeResult:
    """Run every model on every probe text; return outputs aligned with ``texts``.

    Args:
        models: a model or a list of models: :class:`taskspace.Prompted` (an LLM + prompt),
            :class:`taskspace.CallableModel`, or local models (``name``, ``predict``,
            ``predict_proba``; outputs are their soft label rows). Names must be unique.
        texts: the probe texts (e.g. :func:`taskspace.probe_set`).
        text_pairs: second texts for pair tasks (``{text_pair}`` in templates).
        cache: a SQLite file (path or :class:`~taskspace.probing.cache.ProbeCache`): answers found
            there are not asked again, new answers are written as they arrive, so re-running a
            killed probe asks only for what is missing.
        progress: show a progress bar (only when stderr is a terminal).
        budget: ``Budget(tokens=..., cost=...)`` or ``{"tokens": ..., "cost": ...}``: stop
            scheduling requests when the next one would exceed it (run-wide; cost needs ``prices``).
        deadline: seconds from the start after which everything still running is cancelled.
        prices: model name (or endpoint model) -> ``(prompt, completion)`` or
            ``{"prompt": ..., "completion": ...}`` in money per **million** tokens.
        adaptive: ``True`` or :class:`~taskspace.probing.adaptive.Adaptive` settings: stop asking a
            model once its running MTE has converged; ``result[name].adaptive`` says how many texts
            were used.
        cache_sampled: also serve sampled answers (temperature > 0 without a seed) from the cache.
        concurrency: a cap on calls in flight across all models (each endpoint's
            ``max_concurrency`` applies anyway).
        seed: seeds the backoff jitter (for reproducible timing in tests).

    Returns:
        A :class:`~taskspace.probing.result.ProbeResult`: ``result[name].outputs`` (``None`` where
        an input has no output; ``result[name].errors`` says why, ``result[name].skipped`` lists
        inputs never asked), ``result[name].records``, ``result.usage``, ``result.summary()``, and
        ``result[name].embedding(surrogate)`` for the MTE.

    Example:
        >>> import asyncio, taskspace as ts
        >>> m = ts.CallableModel(lambda batch: [t.upper() for t in batch], name="upper", mode="text")
        >>> res = asyncio.run(ts.probe([m], ["a", "b"], progress=False))
        >>> res["upper"].outputs, res.usage.calls
        (['A', 'B'], 1)
    """
    models, t, pairs = check_probe_arguments(models, texts, text_pairs, deadline)
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        raise ProbeError(f"concurrency must be an int >= 1, got {concurrency!r}")
    if adaptive is True:
        adaptive = Adaptive()
    elif adaptive is False:
        adaptive = None
    elif adaptive is not None and not isinstance(adaptive, Adaptive):
        raise TypeError(f"adaptive must be True, False, None or an Adaptive, got {type(adaptive).__name__}")
    store, own_cache = open_cache(cache)
    try:
        run = _Run(
            models,
            t,
            pairs,
            cache=store,
            progress=progress,
            budget=_budget(budget),
            deadline=None if deadline is None else float(deadline),
            prices=prices,
            adaptive=adaptive,
            cache_sampled=cache_sampled,
            concurrency=concurrency,
            seed=seed,
        )
        return await run.run()
    finally:
        if own_cache and store is not None:
            store.close()


def probe_sync(models: Any, texts: Sequence[str], **kwargs: Any) -> ProbeResult:
    """:func:`probe` for code without an event loop (runs it with ``asyncio.run``).

    Example:
        >>> import taskspace as ts
        >>> m = ts.CallableModel(lambda batch: [len(t) % 2 and "odd" or "even" for t in batch], name="parity")
        >>> ts.probe_sync(m, ["ab", "abc"], progress=False)["parity"].outputs
        ['even', 'odd']
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(probe(models, texts, **kwargs))
    raise ProbeError("probe_sync cannot run inside a running event loop; use `await taskspace.probing(...)`")
