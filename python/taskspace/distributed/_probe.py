"""Distributed probing: (model, probe-shard) work items as Ray tasks, limits shared across workers.

The driver builds the run's :class:`~taskspace.probing.plan.Plan` exactly as :func:`taskspace.probe`
does (same models, same cache keys, same cache hits), then sends the inputs still to ask, in shards,
to Ray tasks. Each task runs the single-machine :class:`~taskspace.probing.runner.Runner` (retries,
parsing, errors, usage records) on a plan of its shard, with two changes passed to its constructor:
``limits_for=`` gives each endpoint a proxy to the run's limiter actor for that endpoint (one
:class:`~taskspace.probing.limits.EndpointLimits` for the whole cluster: RPM, TPM and the 429
pause), ``workers=`` its share of the endpoint's ``max_concurrency``; and its cache is a private
temporary file whose new rows the task reports every half second. The driver writes those rows into
the real cache as they arrive and, when a shard ends, folds its outputs, errors and call records
into its own plan (:meth:`~taskspace.probing.plan.ModelPlan.outcome`,
:meth:`~taskspace.probing.plan.ModelPlan.record`), so the result and the cache are the ones a local
run would produce, and a killed run resumes as on one machine (re-asking at most the last half
second of each running task's answers).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections import deque
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray

from taskspace import _checks
from taskspace.distributed._cluster import cluster_cpus, connect
from taskspace.errors import ProbeError
from taskspace.probing.cache import CacheWriter, ProbeCache
from taskspace.probing.endpoints import OpenAIEndpoint
from taskspace.probing.limits import EndpointLimits
from taskspace.probing.plan import ModelPlan, Plan
from taskspace.probing.progress import Progress
from taskspace.probing.result import CallRecord, ItemError, ProbeResult
from taskspace.probing.runner import Runner, check_probe_arguments, open_cache

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

    def __init__(self, m: ModelPlan, cache: ProbeCache) -> None:
        self.m, self.cache = m, cache
        self.unsent: dict[int, str] | None = None  # the keys exist once the plan is prepared
        self.errors_sent = 0

    def take(self) -> _Rows:
        """(key, request, answer, prompt_tokens, completion_tokens, latency) of new answers and
        (key, status, cause, attempts) of new errors."""
        m = self.m
        if self.unsent is None:
            self.unsent = dict(enumerate(m.keys or []))
        answers = []
        got = self.cache.get_many(self.unsent.values()) if self.unsent else {}
        for i, key in list(self.unsent.items()):
            hit = got.get(key)
            if hit is None:
                continue
            del self.unsent[i]
            answers.append(
                (key, m.request(i), hit.answer, hit.prompt_tokens, hit.completion_tokens, hit.latency)
            )
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
    with tempfile.TemporaryDirectory(prefix="taskspace-probe-") as tmp:
        cache = ProbeCache(Path(tmp) / "shard.sqlite")
        try:
            plan = Plan([spec], texts, pairs, cache=cache, prices=prices)
            runner = Runner(
                plan,
                deadline=deadline,
                seed=seed,
                workers=workers,
                limits_for=lambda _endpoint: _SharedLimits(limiter),
            )
            reader = _RowReader(plan.models[0], cache)
            res = yield from _run_reporting(runner, reader)
            rest = reader.take()
        finally:
            cache.close()
    result = res[spec.name]
    yield _Shard(
        outputs=result.outputs,
        errors=result.errors,
        skipped=result.skipped,
        records=result.records,
        labels=result.labels,
        stop_reason=result.stop_reason,
        deadline_hit=res.stop_reason is not None,
        answers=rest.answers,
        failures=rest.failures,
    )


def _run_reporting(runner: Runner, reader: _RowReader) -> Generator[_Rows, None, ProbeResult]:
    """Run ``runner`` on an event loop of its own, yielding the new cache rows every
    ``_REPORT_EVERY`` seconds; return its result. Closing the generator cancels the run (the runner
    then closes its session and flushes its cache)."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(runner.run())
    try:
        while not task.done():
            loop.run_until_complete(asyncio.wait([task], timeout=_REPORT_EVERY))
            if task.done():
                break
            rows = reader.take()
            if rows.answers or rows.failures:
                yield rows
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
        loop.close()


class _GroupShards:
    """The driver's side of one group (an endpoint's prompted models, or one local model): its
    shards still to submit, how many tasks may run at once and with how many workers each."""

    def __init__(self, models: list[ModelPlan], endpoint: OpenAIEndpoint | None, workers: int) -> None:
        self.models = models
        self.endpoint = endpoint
        self.queue: deque[tuple[ModelPlan, list[int]]] = deque()
        self.slots = 1
        self.workers = workers
        self.running = 0
        self.limiter: Any = None


def _shard_groups(plan: Plan, shard_size: int, cpus: int) -> list[_GroupShards]:
    out = []
    for g in plan.groups:
        p = _GroupShards(g.models, g.endpoint, g.workers)
        owners = [m for m in g.models if not m.stopped()]
        chunks = [
            deque(m.todo[i : i + shard_size] for i in range(0, len(m.todo), shard_size)) for m in owners
        ]
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
        out.append(p)
    return out


_Job = tuple[_GroupShards, ModelPlan, list[int]]


class _Driver:
    def __init__(
        self,
        plan: Plan,
        *,
        progress: bool,
        deadline: float | None,
        prices: Mapping[str, Any] | None,
        shard_size: int,
        cpus_per_task: int,
        seed: int | None,
    ) -> None:
        self.plan = plan
        self.prices = prices
        self.show_progress = progress
        self.deadline = deadline
        self.shard_size = shard_size
        self.cpus_per_task = cpus_per_task
        self.seed = seed
        self.stop_reason: str | None = None
        self.writer: CacheWriter | None = None
        self.bar: Progress | None = None
        self.submitted = 0
        self.specs: dict[str, Any] = {}

    def _submit(self, group: _GroupShards, end_wall: float | None) -> tuple[Any, _Job]:
        m, idx = group.queue.popleft()
        texts = [self.plan.texts[i] for i in idx]
        pairs = None if self.plan.pairs is None else [self.plan.pairs[i] for i in idx]
        seed = None if self.seed is None else self.seed * 1_000_003 + self.submitted
        self.submitted += 1
        group.running += 1
        if m.name not in self.specs:  # a local model may be large: into the object store once
            self.specs[m.name] = ray.put(m.spec)
        ref = _probe_shard.options(num_cpus=self.cpus_per_task).remote(
            self.specs[m.name], texts, pairs, group.limiter, group.workers, end_wall, self.prices, seed
        )
        return ref, (group, m, idx)

    def _fill(
        self, groups: list[_GroupShards], running: dict[Any, _Job], window: int, end_wall: float | None
    ) -> None:
        """Submit shards until ``window`` tasks run (or none is left): one task per group per turn,
        so groups share the cluster."""
        progressed = True
        while progressed and len(running) < window:
            progressed = False
            for group in groups:
                if group.queue and group.running < group.slots and len(running) < window:
                    ref, job = self._submit(group, end_wall)
                    running[ref] = job
                    progressed = True

    def _write(self, m: ModelPlan, rows: _Rows | _Shard) -> None:
        """Write a task's cache rows through to the cache (committed before anything else)."""
        if self.writer is None:
            return
        for key, request, answer, pt, ct, latency in rows.answers:
            self.writer.put_answer(key, m.name, request, answer, pt, ct, latency)
        for key, status, cause, attempts in rows.failures:
            self.writer.put_error(key, m.name, status, cause, attempts)
        self.writer.flush()

    def _fold(self, group: _GroupShards, m: ModelPlan, idx: list[int], shard: _Shard) -> None:
        """Fold a finished shard into the run: cache rows, outputs, errors, records, stops."""
        self._write(m, shard)
        outputs = _in_model_columns(m, shard)
        for t, o in enumerate(outputs):
            if o is not None:
                m.outcome(idx[t], o, None, "unparseable")
        for e in shard.errors:
            m.outcome(idx[e.index], None, e.cause, e.kind)
        for rec in shard.records:
            rec.index = idx[rec.index]
            m.record(rec)
        if shard.deadline_hit:
            self._deadline_reached()
        elif shard.stop_reason is not None:
            # The endpoint refused (401/403/404): every other request to it would fail the same way.
            for other in group.models:
                if other.stop_reason is None:
                    other.stop_reason = shard.stop_reason
            group.queue.clear()
        if self.bar is not None:
            self.bar.advance(
                len(idx) - len(shard.skipped),
                ok=sum(o is not None for o in outputs),
                errors=len(shard.errors),
                rate_limited=sum(r.rate_limited for r in shard.records),
                tokens=sum(r.prompt_tokens + r.completion_tokens for r in shard.records),
                cost=sum(r.cost for r in shard.records),
            )

    def _deadline_reached(self) -> None:
        if self.stop_reason is None:
            self.stop_reason = f"deadline of {self.deadline:g} s reached"
            logger.warning("probe: %s; shards still running return what they have", self.stop_reason)

    def execute(self, cache: ProbeCache | None) -> ProbeResult:
        """Prepare the plan, run its shards on the cluster, return the result."""
        t0 = time.perf_counter()
        todo = self.plan.prepare("probe (ray)")
        cpus = max(1, cluster_cpus() // self.cpus_per_task)
        groups = _shard_groups(self.plan, self.shard_size, cpus)
        bar = Progress(todo, enabled=self.show_progress)
        self.bar = bar if bar.shown else None
        running: dict[Any, _Job] = {}
        try:
            if cache is not None and todo:
                self.writer = CacheWriter(cache.path)
            self._drive(groups, running, 2 * cpus)
        finally:
            for gen in running:
                ray.cancel(gen)
            for group in groups:
                if group.limiter is not None:
                    ray.kill(group.limiter)
            bar.close()
            if self.writer is not None:
                writer, self.writer = self.writer, None
                writer.close()
        return self.plan.result(time.perf_counter() - t0, stop_reason=self.stop_reason)

    def _drive(self, groups: list[_GroupShards], running: dict[Any, _Job], window: int) -> None:
        """Keep ``window`` tasks running, persist their reports, fold the shards that end; stop
        submitting at the deadline and give running shards ``_GRACE`` seconds to return."""
        end = None if self.deadline is None else time.monotonic() + self.deadline
        end_wall = None if self.deadline is None else time.time() + self.deadline
        while True:
            if self.stop_reason is None:
                self._fill(groups, running, window, end_wall)
            if not running:
                return
            timeout = None if end is None else max(0.0, end - time.monotonic())
            done, _ = ray.wait(list(running), num_returns=1, timeout=timeout)
            if not done:
                if self.stop_reason is None:
                    self._deadline_reached()
                    end = time.monotonic() + _GRACE
                    continue
                logger.warning("probe: %d shards did not return after the deadline", len(running))
                return
            for gen in done:  # a task's generator with its next report ready
                group, m, idx = running[gen]
                report: _Rows | _Shard = ray.get(next(gen))  # type: ignore[arg-type,assignment]
                if isinstance(report, _Rows):
                    self._write(m, report)
                    continue
                del running[gen]
                group.running -= 1
                self._fold(group, m, idx, report)


def _in_model_columns(m: ModelPlan, shard: _Shard) -> list[Any]:
    """A shard's outputs with soft label rows in the columns of the model's first shard (a local
    model's labels come from its first answer, which differs between shards)."""
    if shard.labels is None:
        return shard.outputs
    if m.labels is None:
        m.labels = shard.labels
    if shard.labels == m.labels:
        return shard.outputs
    if set(shard.labels) != set(m.labels):
        raise ProbeError(
            f"{m.name!r} answered with labels {list(shard.labels)} on one shard and "
            f"{list(m.labels)} on another"
        )
    perm = [shard.labels.index(x) for x in m.labels]
    return [o[perm] if isinstance(o, np.ndarray) else o for o in shard.outputs]


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
                "every request); use taskspace.probe on one machine"
            )
    models, t, pairs = check_probe_arguments(models, texts, text_pairs, deadline)
    shard_size = _checks.positive_int(shard_size, "shard_size")
    cpus_per_task = _checks.positive_int(cpus_per_task, "cpus_per_task")
    store, own_cache = open_cache(cache)
    try:
        plan = Plan(models, t, pairs, cache=store, prices=prices, cache_sampled=cache_sampled)
        connect(ray_address)
        driver = _Driver(
            plan,
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
