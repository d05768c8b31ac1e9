"""The probe runner: ask many models for their outputs on the probe texts, concurrently and politely.

``await probe(models, texts, ...)`` runs every model on every text and returns a
:class:`~taskspace.probing.result.ProbeResult`. A run is a :class:`~taskspace.probing.plan.Plan`
(what to ask, with the cache hits served) executed by a :class:`Runner`, which does the scheduling;
one request is :mod:`taskspace.probing.http`'s job, one batch of a local model or callable
:mod:`taskspace.probing.local`'s. How it works:

* **One aiohttp session per run** (inside ``async with``), connections pooled.
* **Groups and workers.** Prompted models on equal endpoints form one group; each local or callable
  model is a group of its own. A group has ``max_concurrency`` workers pulling jobs from a bounded
  ``asyncio.Queue`` that one feeder fills lazily (round-robin over the group's models, or one model
  after the other on an endpoint with ``group_by_prompt``), so a run
  holds a fixed number of tasks however many texts there are, and never more requests in flight to
  an endpoint than its ``max_concurrency``.
* **Limits** per endpoint: RPM and TPM token buckets (TPM reserves an estimate, corrected from the
  response's ``usage``), and a pause shared by the endpoint's workers after a 429, as long as
  ``Retry-After`` / ``retry-after-ms`` asks (a backoff delay when it does not say).
* **Retries** on connection errors, timeouts and the endpoint's ``retry_statuses`` (408, 409, 429,
  5xx), with jittered exponential backoff, up to ``max_retries``; 401, 403 and 404 stop the whole
  endpoint (every other request would fail the same way). A 200 whose body is not a completion
  (malformed JSON, an HTML page, no ``choices``, impossible logprobs) is retried too, then fails
  that request with its cause; a body over ``max_response_bytes`` fails it at once.
* **Cache = resume** (:mod:`taskspace.probing.cache`): cached answers are read before anything is
  sent, and each new answer is parsed, then written through by a group commit that the worker waits
  for before its next request, so a killed run re-asks at most the requests it had in flight.
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
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import aiohttp
import numpy as np

from taskspace import _checks
from taskspace.errors import ProbeError
from taskspace.probing.adaptive import Adaptive
from taskspace.probing.cache import CacheWriter, ProbeCache
from taskspace.probing.endpoints import CallableModel, OpenAIEndpoint
from taskspace.probing.http import EndpointClient, Limits, Reply
from taskspace.probing.limits import EndpointLimits
from taskspace.probing.local import ask_batch
from taskspace.probing.plan import Group, ModelPlan, Plan
from taskspace.probing.progress import Progress
from taskspace.probing.result import CallRecord, ProbeResult

__all__ = ["Budget", "Runner", "probe", "probe_sync"]

logger = logging.getLogger("taskspace.probing")
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


class _Lane:
    """A group's workers in this run: how many, their job queue and (prompted models) the client of
    their endpoint."""

    def __init__(self, group: Group, workers: int, client: EndpointClient | None) -> None:
        self.models = group.models
        self.workers = workers
        self.client = client
        self.queue: asyncio.Queue[Any] | None = None

    @property
    def refused(self) -> str | None:
        return None if self.client is None else self.client.refused


def _own_limits(endpoint: OpenAIEndpoint) -> Limits:
    return EndpointLimits(endpoint.rpm, endpoint.tpm)


def _cost(m: ModelPlan, reply: Reply) -> float:
    if m.price is None:
        return 0.0
    return (reply.prompt_tokens or 0) * m.price[0] + (reply.completion_tokens or 0) * m.price[1]


class Runner:
    """Asks a :class:`~taskspace.probing.plan.Plan`'s models what is left to ask: the scheduling of
    one run (workers, budget, deadline, progress, adaptive stop).

    Args:
        plan: what to ask (not yet prepared: :meth:`run` calls :meth:`Plan.prepare`).
        budget: stop scheduling requests when the next one would exceed it.
        deadline: seconds from the start after which everything still running is cancelled.
        concurrency: a cap on calls in flight across all models.
        progress: show a progress bar (only when stderr is a terminal).
        seed: seeds the backoff jitter.
        limits_for: each endpoint's limits (default: its own RPM/TPM buckets, for this run only);
            e.g. limits shared by the workers of a cluster.
        workers: workers per group (default: the endpoint's or callable's ``max_concurrency``, 1
            for a local model).

    Example:
        >>> import asyncio, taskspace as ts
        >>> from taskspace.probing.plan import Plan
        >>> m = ts.CallableModel(lambda batch: [t[::-1] for t in batch], name="rev", mode="text")
        >>> asyncio.run(Runner(Plan([m], ["ab", "cd"])).run())["rev"].outputs
        ['ba', 'dc']
    """

    def __init__(
        self,
        plan: Plan,
        *,
        budget: Budget | None = None,
        deadline: float | None = None,
        concurrency: int | None = None,
        progress: bool = False,
        seed: int | None = None,
        limits_for: Callable[[OpenAIEndpoint], Limits] | None = None,
        workers: int | None = None,
    ) -> None:
        if budget is not None and budget.cost is not None:
            for m in plan.models:
                if m.http and m.price is None:
                    raise ProbeError(
                        f"a cost budget needs a price for every prompted model; none for {m.name!r}"
                    )
        self.plan = plan
        self.spend = _Spend(budget) if budget is not None else None
        self.deadline = deadline
        self.show_progress = progress
        self.rng = random.Random(seed)
        #: Why the run stopped early (budget or deadline), else ``None``.
        self.stop_reason: str | None = None
        self.session: aiohttp.ClientSession | None = None
        self.writer: CacheWriter | None = None
        self.executor: ThreadPoolExecutor | None = None
        self.progress: Progress | None = None
        self.global_limit = asyncio.Semaphore(concurrency) if concurrency is not None else None
        limits_for = limits_for or _own_limits
        self.lanes = [
            _Lane(g, g.workers if workers is None else workers, self._client(g, limits_for))
            for g in plan.groups
        ]

    def _client(self, g: Group, limits_for: Callable[[OpenAIEndpoint], Limits]) -> EndpointClient | None:
        if g.endpoint is None:
            return None
        return EndpointClient(
            g.endpoint,
            limits_for(g.endpoint),
            rng=self.rng,
            redact=self.plan.redact,
            on_rate_limited=self._rate_limited,
        )

    def _rate_limited(self) -> None:
        if self.progress is not None:
            self.progress.advance(0, rate_limited=1)

    def _executor(self) -> ThreadPoolExecutor:
        """The thread pool of sync local models and callables (made at the first call)."""
        if self.executor is None:
            workers = sum(lane.workers for lane in self.lanes if lane.client is None)
            self.executor = ThreadPoolExecutor(
                max_workers=max(1, workers), thread_name_prefix="taskspace-probe"
            )
        return self.executor

    def _check_stop(self, m: ModelPlan, lane: _Lane) -> bool:
        if m.stop_reason is not None:
            return True
        reason = self.stop_reason or lane.refused
        if reason is None and m.tracker is not None and m.tracker.converged:
            reason = f"adaptive: converged after {m.tracker.n} texts"
        if reason is not None:
            m.stop_reason = reason
            return True
        return False

    # -- one request -----------------------------------------------------------------------------
    def _reserve(self, m: ModelPlan, tokens: int, cost: float) -> bool:
        """Reserve a request's estimate against the budget; stop the run when it does not fit."""
        if self.spend is None:
            return True
        why = self.spend.reserve(tokens, cost)
        if why is None:
            return True
        if self.stop_reason is None:
            self.stop_reason = why
            logger.warning("probe: %s; no further requests are scheduled", why)
        m.stop_reason = self.stop_reason
        return False

    async def _ask(self, lane: _Lane, m: ModelPlan, i: int) -> None:
        prompt_tokens = len(m.prompt_json[i]) // 4 + 8
        est = prompt_tokens + m.out_estimate
        est_cost = 0.0
        if m.price is not None:
            est_cost = prompt_tokens * m.price[0] + m.out_estimate * m.price[1]
        if not self._reserve(m, est, est_cost):
            return
        client = lane.client
        assert client is not None and self.session is not None
        reply: Reply | None = None
        try:
            reply = await client.ask(self.session, m.body(i), est, name=m.name, index=i)
        finally:
            if self.spend is not None:
                answered = reply is not None and reply.answer is not None
                tokens, cost = (reply.tokens, _cost(m, reply)) if answered else (0, 0.0)  # type: ignore[union-attr,arg-type]
                self.spend.settle(est, est_cost, tokens, cost)
        assert reply is not None
        if reply.abandoned:
            m.stop_reason = client.refused
            return
        self._take(m, i, reply)
        if self.writer is not None and m.keys is not None:
            await self.writer.synced()  # durable before this worker sends its next request

    def _fail(self, m: ModelPlan, i: int, rec: CallRecord, cause: str) -> None:
        rec.status = "error"
        rec.cause = self.plan.redact(cause).encode("utf-8", errors="replace").decode("utf-8")
        m.record(rec)
        if self.writer is not None and m.keys is not None:
            self.writer.put_error(m.keys[i], m.name, rec.http_status, rec.cause, rec.attempts)
        m.outcome(i, None, rec.cause, "failed")
        if self.progress is not None:
            self.progress.advance(1, errors=1)

    def _take(self, m: ModelPlan, i: int, reply: Reply) -> None:
        """Record a reply, give input ``i`` its output or error, and write it to the cache: the
        answer is parsed first, so nothing is cached that cannot be read back."""
        rec = CallRecord(
            m.name,
            i,
            http_status=reply.status,
            attempts=reply.attempts,
            rate_limited=reply.rate_limited,
            latency=reply.latency,
        )
        if reply.answer is None:
            self._fail(m, i, rec, reply.cause)
            return
        try:
            out, why = m.spec.parse(reply.answer)
        except Exception as e:  # whatever the server sent, it is this input's error
            self._fail(m, i, rec, f"HTTP 200 but the answer cannot be read: {type(e).__name__}: {e}")
            return
        rec.prompt_tokens = reply.prompt_tokens or 0
        rec.completion_tokens = reply.completion_tokens or 0
        rec.cost = _cost(m, reply)
        m.record(rec)
        if self.writer is not None and m.keys is not None:
            self.writer.put_answer_json(
                m.keys[i],
                m.name,
                m.request(i),
                reply.answer_json,
                reply.prompt_tokens,
                reply.completion_tokens,
                rec.latency,
            )
        m.outcome(i, out, why, "unparseable")
        if self.progress is not None:
            self.progress.advance(
                1,
                ok=1 if out is not None else 0,
                errors=0 if out is not None else 1,
                tokens=rec.prompt_tokens + rec.completion_tokens,
                cost=rec.cost,
            )

    # -- one batch of a local model or callable --------------------------------------------------
    async def _batch(self, m: ModelPlan, idx: list[int]) -> None:
        texts = [self.plan.texts[i] for i in idx]
        pairs = None if self.plan.pairs is None else [self.plan.pairs[i] for i in idx]
        t0 = time.perf_counter()
        outs, cause = await ask_batch(m, texts, pairs, executor=self._executor, redact=self.plan.redact)
        rec = CallRecord(m.name, idx[0], count=len(idx), attempts=1, latency=time.perf_counter() - t0)
        if outs is None:
            rec.status = "error"
            rec.cause = cause
            m.record(rec)
            for i in idx:
                m.outcome(i, None, cause, "failed")
            if self.progress is not None:
                self.progress.advance(len(idx), errors=len(idx))
            return
        m.record(rec)
        why = "invalid probability row" if m.local else "the model returned None"
        ok = 0
        for i, o in zip(idx, outs, strict=True):
            m.outcome(i, o, why, "failed")
            if o is None:
                continue
            ok += 1
            if self.writer is not None and m.keys is not None:
                stored = o.tolist() if isinstance(o, np.ndarray) else o
                self.writer.put_answer(
                    m.keys[i], m.name, m.request(i), {"output": stored}, None, None, rec.latency
                )
        if self.progress is not None:
            self.progress.advance(len(idx), ok=ok, errors=len(idx) - ok)

    # -- scheduling ------------------------------------------------------------------------------
    async def _feed(self, lane: _Lane) -> None:
        q = lane.queue
        assert q is not None
        if lane.client is not None and lane.client.endpoint.group_by_prompt:
            for m in lane.models:  # one prompt's requests together: the server reuses its prefix
                for i in m.todo:
                    if self._check_stop(m, lane):
                        break
                    await q.put((m, i))
        elif lane.client is not None:
            iters = [(m, iter(m.todo)) for m in lane.models if m.todo]
            while iters:
                for entry in list(iters):
                    m, it = entry
                    i = next(it, None)
                    if i is None or self._check_stop(m, lane):
                        iters.remove(entry)
                        continue
                    await q.put((m, i))
        else:
            (m,) = lane.models
            size = m.spec.batch_size if isinstance(m.spec, CallableModel) else LOCAL_BATCH
            if m.tracker is not None:  # check convergence between batches, not after a huge one
                size = min(size, self.plan.adaptive.check_every)  # type: ignore[union-attr]
            for start in range(0, len(m.todo), size):
                if self._check_stop(m, lane):
                    break
                await q.put((m, m.todo[start : start + size]))
        for _ in range(lane.workers):
            await q.put(None)

    async def _work(self, lane: _Lane) -> None:
        q = lane.queue
        assert q is not None
        limit = self.global_limit
        while True:
            job = await q.get()
            if job is None:
                return
            m, item = job
            if self._check_stop(m, lane):
                continue
            if limit is not None:
                async with limit:
                    await (self._ask(lane, m, item) if lane.client is not None else self._batch(m, item))
            elif lane.client is not None:
                await self._ask(lane, m, item)
            else:
                await self._batch(m, item)

    async def run(self) -> ProbeResult:
        """Prepare the plan (cache look-ups included), ask what is left, return the result."""
        t0 = time.perf_counter()
        todo = self.plan.prepare("probe")
        bar = Progress(todo, enabled=self.show_progress)
        self.progress = bar if bar.shown else None
        lanes = [lane for lane in self.lanes if any(m.todo and not m.stopped() for m in lane.models)]
        try:
            if lanes:
                self._open(lanes)
                await self._execute(lanes)
        finally:
            await self._close(bar)
        return self.plan.result(
            time.perf_counter() - t0,
            stop_reason=self.stop_reason,
            budget=self.spend.as_dict() if self.spend is not None else None,
        )

    def _open(self, lanes: list[_Lane]) -> None:
        """The run's HTTP session (when it has prompted models) and cache writer."""
        http_workers = sum(lane.workers for lane in lanes if lane.client is not None)
        if http_workers:
            connector = aiohttp.TCPConnector(limit=http_workers, ttl_dns_cache=300)
            self.session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                headers={"Content-Type": "application/json"},
            )
        if self.plan.cache is not None:
            self.writer = CacheWriter(self.plan.cache.path)

    async def _close(self, bar: Progress) -> None:
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

    async def _execute(self, lanes: list[_Lane]) -> None:
        tasks: list[asyncio.Task[None]] = []
        for lane in lanes:
            lane.queue = asyncio.Queue(maxsize=2 * lane.workers)
            tasks.append(asyncio.ensure_future(self._feed(lane)))
            tasks.extend(asyncio.ensure_future(self._work(lane)) for _ in range(lane.workers))
        end = None if self.deadline is None else time.monotonic() + self.deadline
        for lane in lanes:
            if lane.client is not None:
                lane.client.deadline = end
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


def _budget(budget: Any) -> Budget | None:
    if budget is None or isinstance(budget, Budget):
        return budget
    if isinstance(budget, Mapping):
        unknown = set(budget) - {"tokens", "cost"}
        if unknown:
            raise ProbeError(f"budget keys must be 'tokens' and/or 'cost', got {sorted(unknown)}")
        return Budget(**budget)
    raise TypeError(f"budget must be a Budget or a dict with 'tokens'/'cost', got {type(budget).__name__}")


def _adaptive(adaptive: Adaptive | bool | None) -> Adaptive | None:
    if adaptive is True:
        return Adaptive()
    if adaptive is False or adaptive is None:
        return None
    if not isinstance(adaptive, Adaptive):
        raise TypeError(f"adaptive must be True, False, None or an Adaptive, got {type(adaptive).__name__}")
    return adaptive


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
    tracking = _adaptive(adaptive)
    store, own_cache = open_cache(cache)
    try:
        spending = _budget(budget)
        plan = Plan(
            models, t, pairs, cache=store, prices=prices, adaptive=tracking, cache_sampled=cache_sampled
        )
        runner = Runner(
            plan,
            budget=spending,
            deadline=None if deadline is None else float(deadline),
            concurrency=concurrency,
            progress=progress,
            seed=seed,
        )
        return await runner.run()
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
    raise ProbeError("probe_sync cannot run inside a running event loop; use `await taskspace.probe(...)`")
