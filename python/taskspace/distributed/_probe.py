"""Distributed probing: (model, probe-shard) work items as Ray tasks, limits shared across workers.

The driver plans the run exactly as :func:`taskspace.probe` does (same models, same cache keys, same
cache hits), then sends the inputs still to ask, in shards, to Ray tasks. Each task runs the
single-machine runner (:mod:`taskspace.probing.runner`: retries, parsing, errors, usage records) on
its shard, with two changes: its endpoint limits are a proxy to the run's limiter actor for that
endpoint (one :class:`~taskspace.probing.limits.EndpointLimits` for the whole cluster: RPM, TPM and
the 429 pause), and its cache is a private temporary file whose new rows the task reports every
half second. The driver writes those rows into the real cache as they arrive and, when a shard
ends, folds its outputs, errors and call records into its own run, so the result and the cache are
the ones a local run would produce, and a killed run resumes as on one machine (re-asking at most
the last half second of each running task's answers).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray

from taskspace.distributed._cluster import cluster_cpus, connect, positive_int
from taskspace.errors import ProbeError
from taskspace.probing.cache import CacheWriter, ProbeCache, request_key_from
from taskspace.probing.endpoints import OpenAIEndpoint
from taskspace.probing.limits import EndpointLimits
from taskspace.probing.progress import Progress
from taskspace.probing.result import CallRecord, ItemError, ProbeResult
from taskspace.probing.runner import (  # the single-machine runner, reused as it is
    _Model,
    _Run,
    check_probe_arguments,
    open_cache,
)

__all__ = ["probe"]

logger = logging.getLogger("taskspace.probing")
#: Seconds between a running task's reports of new answers to the driver (which writes them to the
#: cache at once): a killed driver loses at most this much of each running task's answers.
_REPORT_EVERY = 0.5
#: After the deadline, how long the driver waits for running shards to return what they have
#: (each shard stops at the deadline by itself).
_GRACE = 30.0


@ray.remote(num_cpus=0)
class _Limiter:
    """One endpoint's limits for the whole cluster: every worker probing the endpoint waits here."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self._limits = EndpointLimits(rpm, tpm)
        self._pauses = 0

    async def acquire(self, tokens: int) -> None:
        await self._limits.acquire(tokens)

    async def pause(self, seconds: float) -> None:
        self._pauses += 1
        self._limits.pause(seconds)

    async def reconcile(self, reserved: int, actual: int) -> None:
        self._limits.reconcile(reserved, actual)

    async def pauses(self) -> int:
        """How many 429 pauses workers reported."""
        return self._pauses


class _SharedLimits:
    """:class:`EndpointLimits`' interface for the runner, backed by a :class:`_Limiter` actor."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    def try_acquire(self, tokens: int) -> bool:
        return False  # the runner then awaits acquire(), which asks the actor

    async def acquire(self, tokens: int) -> None:
        await self._actor.acquire.remote(tokens)

    def pause(self, seconds: float) -> None:
        self._actor.pause.remote(seconds)  # fire and forget: the worker backs off by itself too

    def reconcile(self, reserved: int, actual: int | None) -> None:
        if actual is not None:
            self._actor.reconcile.remote(reserved, actual)


@dataclass
class _Shard:
    """What a task sends back: the shard's outputs (shard-local indices) and its cache rows."""

    outputs: list[Any]
    errors: list[ItemError] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    records: list[CallRecord] = field(default_factory=list)
    labels: tuple[str, ...] | None = None
    stop_reason: str | None = None
    deadline_hit: bool = False
    answers: list[tuple[Any, ...]] = field(default_factory=list)
    failures: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class _Rows:
    """Cache rows a running task has produced since its last report."""

    answers: list[tuple[Any, ...]]
    failures: list[tuple[Any, ...]]


class _RowReader:
    """Reads the rows of a task's private cache that were not reported yet."""

    def __init__(self, m: _Model, cache: ProbeCache, texts: list[str], pairs: list[str] | None) -> None:
        self.m, self.cache, self.texts, self.pairs = m, cache, texts, pairs
        self.unsent: dict[int, str] | None = None  # the keys exist once the runner has planned
        self.errors_sent = 0

    def take(self) -> _Rows:
        """(key, request, answer, prompt_tokens, completion_tokens, latency) of new answers and
        (key, status, cause, attempts) of new errors."""
        m = self.m
        if self.unsent is None:
            self.unsent = dict(enumerate((m.keys if m.http else m.cache_keys) or []))
        answers = []
        got = self.cache.get_many(self.unsent.values()) if self.unsent else {}
        for i, key in list(self.unsent.items()):
            hit = got.get(key)
            if hit is None:
                continue
            del self.unsent[i]
            if m.http:
                request = m.canonical[i]
            else:
                pair = None if self.pairs is None else self.pairs[i]
                request = request_key_from(m.key_prefix, None, [self.texts[i], pair])[1]
            answers.append((key, request, hit.answer, hit.prompt_tokens, hit.completion_tokens, hit.latency))
        errors = self.cache.errors()[self.errors_sent :]
        self.errors_sent += len(errors)
        failures = [(e["key"], e["status"], e["cause"], e["attempts"]) for e in errors]
        return _Rows(answers, failures)


@ray.remote
def _probe_shard(
    spec: Any,
    texts: list[str],
    pairs: list[str] | None,
    limiter: Any,
    workers: int,
    end_wall: float | None,
    prices: Mapping[str, Any] | None,
    seed: int | None,
) -> Iterator[_Rows | _Shard]:
    """Probe one shard with the local runner; yield new cache rows every ``_REPORT_EVERY`` seconds
    while it runs (so the driver can persist them at once), then the shard's :class:`_Shard`."""
    deadline = None
    if end_wall is not None:
        deadline = end_wall - time.time()
        if deadline <= 0:
            yield _Shard([None] * len(texts), skipped=list(range(len(texts))), deadline_hit=True)
            return
    loop = asyncio.new_event_loop()
    task: asyncio.Task[Any] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="taskspace-probe-") as tmp:
            cache = ProbeCache(Path(tmp) / "shard.sqlite")
            try:
                run = _Run(
                    [spec],
                    texts,
                    pairs,
                    cache=cache,
                    progress=False,
                    budget=None,
                    deadline=deadline,
                    prices=prices,
                    adaptive=None,
                    cache_sampled=False,
                    concurrency=None,
                    seed=seed,
                )
                for g in run.groups:
                    g.workers = workers
                    if g.endpoint is not None:
                        g.limits = _SharedLimits(limiter)  # type: ignore[assignment]
                task = loop.create_task(run.run())
                reader = _RowReader(run.models[0], cache, texts, pairs)
                while not task.done():
                    loop.run_until_complete(asyncio.wait([task], timeout=_REPORT_EVERY))
                    if task.done():
                        break
                    rows = reader.take()
                    if rows.answers or rows.failures:
                        yield rows
                result = task.result()[spec.name]
                rest = reader.take()
            finally:
                if task is not None and not task.done():  # cancelled: let the runner clean up
                    task.cancel()
                    loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
                cache.close()
    finally:
        loop.close()
    yield _Shard(
        outputs=result.outputs,
        errors=result.errors,
        skipped=result.skipped,
        records=result.records,
        labels=result.labels,
        stop_reason=result.stop_reason,
        deadline_hit=run.stop_reason is not None,
        answers=rest.answers,
        failures=rest.failures,
    )


class _Plan:
    """The driver's side of one group (an endpoint's prompted models, or one local model)."""

    def __init__(self, models: list[_Model], endpoint: OpenAIEndpoint | None, workers: int) -> None:
        self.models = models
        self.endpoint = endpoint
        self.queue: deque[tuple[_Model, list[int]]] = deque()
        self.slots = 1
        self.workers = workers
        self.running = 0
        self.limiter: Any = None


def _plans(run: _Run, shard_size: int, cpus: int) -> list[_Plan]:
    plans = []
    for g in run.groups:
        p = _Plan(g.models, g.endpoint, g.workers)
        chunks = [
            deque(m.todo[i : i + shard_size] for i in range(0, len(m.todo), shard_size))
            for m in g.models
            if not m.stopped()
        ]
        owners = [m for m in g.models if not m.stopped()]
        while any(chunks):  # round-robin over the group's models, as the local feeder does
            for m, q in zip(owners, chunks, strict=True):
                if q:
                    p.queue.append((m, q.popleft()))
        if not p.queue:
            continue
        if g.endpoint is not None:
            # The endpoint's max_concurrency is shared out: slots tasks x workers each <= the limit.
            p.slots = min(g.endpoint.max_concurrency, cpus, len(p.queue))
            p.workers = max(1, g.endpoint.max_concurrency // p.slots)
            p.limiter = _Limiter.remote(g.endpoint.rpm, g.endpoint.tpm)  # type: ignore[attr-defined]
        else:
            p.slots = min(cpus, len(p.queue))
        plans.append(p)
    return plans


class _Driver:
    def __init__(
        self,
        run: _Run,
        *,
        progress: bool,
        deadline: float | None,
        prices: Mapping[str, Any] | None,
        shard_size: int,
        cpus_per_task: int,
        seed: int | None,
    ) -> None:
        self.run = run
        self.prices = prices
        self.show_progress = progress
        self.deadline = deadline
        self.shard_size = shard_size
        self.cpus_per_task = cpus_per_task
        self.seed = seed
        self.writer: CacheWriter | None = None
        self.bar: Progress | None = None
        self.submitted = 0
        self.specs: dict[str, Any] = {}

    def _submit(self, plan: _Plan, end_wall: float | None) -> tuple[Any, tuple[_Plan, _Model, list[int]]]:
        m, idx = plan.queue.popleft()
        texts = [self.run.texts[i] for i in idx]
        pairs = None if self.run.pairs is None else [self.run.pairs[i] for i in idx]
        seed = None if self.seed is None else self.seed * 1_000_003 + self.submitted
        self.submitted += 1
        plan.running += 1
        if m.name not in self.specs:  # a local model may be large: into the object store once
            self.specs[m.name] = ray.put(m.spec)
        ref = _probe_shard.options(num_cpus=self.cpus_per_task).remote(
            self.specs[m.name], texts, pairs, plan.limiter, plan.workers, end_wall, self.prices, seed
        )
        return ref, (plan, m, idx)

    def _write(self, m: _Model, rows: _Rows | _Shard) -> None:
        """Write a task's cache rows through to the cache (committed before anything else)."""
        if self.writer is None:
            return
        for key, request, answer, pt, ct, latency in rows.answers:
            self.writer.put_answer(key, m.name, request, answer, pt, ct, latency)
        for key, status, cause, attempts in rows.failures:
            self.writer.put_error(key, m.name, status, cause, attempts)
        self.writer.flush()

    def _fold(self, plan: _Plan, m: _Model, idx: list[int], shard: _Shard) -> None:
        run = self.run
        self._write(m, shard)
        outputs = shard.outputs
        if shard.labels is not None:
            if m.labels is None:
                m.labels = shard.labels
            elif shard.labels != m.labels:
                if set(shard.labels) != set(m.labels):
                    raise ProbeError(
                        f"{m.name!r} answered with labels {list(shard.labels)} on one shard and "
                        f"{list(m.labels)} on another"
                    )
                perm = [shard.labels.index(x) for x in m.labels]
                outputs = [o[perm] if isinstance(o, np.ndarray) else o for o in outputs]
        for t, o in enumerate(outputs):
            if o is not None:
                run._outcome(m, idx[t], o, None, "unparseable")
        for e in shard.errors:
            run._outcome(m, idx[e.index], None, e.cause, e.kind)
        for rec in shard.records:
            rec.index = idx[rec.index]
            run._record(m, rec)
        if shard.deadline_hit:
            self._deadline_reached()
        elif shard.stop_reason is not None:
            # The endpoint refused (401/403/404): every other request to it would fail the same way.
            for other in plan.models:
                if other.stop_reason is None:
                    other.stop_reason = shard.stop_reason
            plan.queue.clear()
        if self.bar is not None:
            errors = len(shard.errors)
            self.bar.advance(
                len(idx) - len(shard.skipped),
                ok=sum(o is not None for o in outputs),
                errors=errors,
                rate_limited=sum(r.rate_limited for r in shard.records),
                tokens=sum(r.prompt_tokens + r.completion_tokens for r in shard.records),
                cost=sum(r.cost for r in shard.records),
            )

    def _deadline_reached(self) -> None:
        if self.run.stop_reason is None:
            self.run.stop_reason = f"deadline of {self.deadline:g} s reached"
            logger.warning("probe: %s; shards still running return what they have", self.run.stop_reason)

    def execute(self, cache: ProbeCache | None) -> ProbeResult:
        run = self.run
        t0 = time.perf_counter()
        todo = run._start("probe (ray)")
        cpus = max(1, cluster_cpus() // self.cpus_per_task)
        plans = _plans(run, self.shard_size, cpus)
        window = 2 * cpus
        bar = Progress(todo, enabled=self.show_progress)
        self.bar = bar if bar.shown else None
        end = None if self.deadline is None else time.monotonic() + self.deadline
        end_wall = None if self.deadline is None else time.time() + self.deadline
        running: dict[Any, tuple[_Plan, _Model, list[int]]] = {}
        try:
            if cache is not None and todo:
                self.writer = CacheWriter(cache.path)
            while True:
                if run.stop_reason is None:
                    progressed = True
                    while progressed and len(running) < window:
                        progressed = False
                        for plan in plans:  # one task per group per turn: groups share the cluster
                            if plan.queue and plan.running < plan.slots and len(running) < window:
                                ref, job = self._submit(plan, end_wall)
                                running[ref] = job
                                progressed = True
                if not running:
                    break
                timeout = None if end is None else max(0.0, end - time.monotonic())
                done, _ = ray.wait(list(running), num_returns=1, timeout=timeout)
                if not done:
                    if run.stop_reason is None:
                        self._deadline_reached()
                        end = time.monotonic() + _GRACE
                        continue
                    logger.warning("probe: %d shards did not return after the deadline", len(running))
                    break
                for gen in done:  # a task's generator with its next report ready
                    plan, m, idx = running[gen]
                    report: _Rows | _Shard = ray.get(next(gen))  # type: ignore[arg-type,assignment]
                    if isinstance(report, _Rows):
                        self._write(m, report)
                        continue
                    del running[gen]
                    plan.running -= 1
                    self._fold(plan, m, idx, report)
        finally:
            for gen in running:
                ray.cancel(gen)
            for plan in plans:
                if plan.limiter is not None:
                    ray.kill(plan.limiter)
            bar.close()
            if self.writer is not None:
                writer, self.writer = self.writer, None
                writer.close()
        return run._result(time.perf_counter() - t0)


def probe(
    models: Any,
    texts: Sequence[str],
    *,
    text_pairs: Sequence[str] | None = None,
    cache: str | os.PathLike[str] | ProbeCache | None = None,
    progress: bool = True,
    deadline: float | None = None,
    prices: Mapping[str, Any] | None = None,
    cache_sampled: bool = False,
    seed: int | None = None,
    ray_address: str | None = None,
    shard_size: int = 256,
    cpus_per_task: int = 1,
    budget: Any = None,
    adaptive: Any = None,
    concurrency: Any = None,
) -> ProbeResult:
    """:func:`taskspace.probe` on a Ray cluster: the same result type, cache and resume rules.

    Each model's inputs not found in the cache are cut into shards of ``shard_size`` texts; each
    (model, shard) is a Ray task that runs the local runner on it. An endpoint's limits hold for the
    whole cluster: its ``max_concurrency`` is shared out among the tasks probing it (at most that
    many requests in flight in total), and its RPM / TPM buckets and the pause after a 429 live in
    one limiter actor that every worker waits on. Answers travel back with each finished shard; the
    driver writes them (and recorded errors) to ``cache``, so after a crash only the shards that
    were in flight are asked again. API keys are read from each worker's environment (set them
    where ``ray start`` runs); they never travel with a task.

    ``text_pairs``, ``cache``, ``progress``, ``deadline``, ``prices``, ``cache_sampled`` and
    ``seed`` mean what they mean for :func:`taskspace.probe`. ``budget``, ``adaptive`` and
    ``concurrency`` are not supported across a cluster (they need run-wide state at every request)
    and raise :class:`~taskspace.probing.ProbeError`. ``cpus_per_task`` is the Ray CPUs each shard
    task reserves.

    Returns:
        A :class:`taskspace.probing.ProbeResult`, as :func:`taskspace.probe` returns; call records of
        a local model's batch cover the batch's inputs within one shard.

    Example:
        >>> import taskspace as ts, taskspace.distributed as tsd
        >>> m = ts.CallableModel(lambda batch: [t.upper() for t in batch], name="upper", mode="text")
        >>> tsd.probe([m], ["a", "b"], progress=False)["upper"].outputs  # doctest: +SKIP
        ['A', 'B']
    """
    for name, value in (("budget", budget), ("adaptive", adaptive), ("concurrency", concurrency)):
        if value is not None and value is not False:
            raise ProbeError(
                f"{name}= is not supported by taskspace.distributed.probe (it needs run-wide state at "
                "every request); use taskspace.probing on one machine"
            )
    models, t, pairs = check_probe_arguments(models, texts, text_pairs, deadline)
    shard_size = positive_int(shard_size, "shard_size")
    cpus_per_task = positive_int(cpus_per_task, "cpus_per_task")
    store, own_cache = open_cache(cache)
    try:
        run = _Run(
            models,
            t,
            pairs,
            cache=store,
            progress=False,
            budget=None,
            deadline=None,
            prices=prices,
            adaptive=None,
            cache_sampled=cache_sampled,
            concurrency=None,
            seed=seed,
        )
        connect(ray_address)
        driver = _Driver(
            run,
            progress=progress,
            deadline=None if deadline is None else float(deadline),
            prices=prices,
            shard_size=shard_size,
            cpus_per_task=cpus_per_task,
            seed=seed,
        )
        return driver.execute(store)
    finally:
        if own_cache and store is not None:
            store.close()
