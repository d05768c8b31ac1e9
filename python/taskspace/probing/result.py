"""What a probe run returns: outputs aligned with the texts, per-call records, usage, errors, summary."""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from taskspace.embedding.surrogate import Surrogate, TaskStats
from taskspace.embedding.task_embedding import TaskEmbedding, warn_if_degenerate
from taskspace.errors import ProbeError

__all__ = ["CallRecord", "ItemError", "ModelResult", "ProbeResult", "Usage"]

Output = str | np.ndarray | None
_USAGE_COUNTS = ("calls", "ok", "cached", "errors", "retries", "rate_limited")


@dataclass(slots=True)
class CallRecord:
    """One call: an HTTP request (with its retries), a cache hit, or one batch of a local model.

    Attributes:
        model: the model's name.
        index: the (first) input index; a local batch covers ``index .. index + count - 1``.
        count: inputs covered (1 for a request).
        status: ``"ok"`` (answered), ``"cached"`` (served from the cache) or ``"error"``.
        http_status: the last HTTP status (``None`` for connection errors, caches and local calls).
        attempts: attempts made (1 + retries).
        rate_limited: how many attempts got a 429.
        latency: seconds from the first attempt to the end (0 for a cache hit).
        prompt_tokens, completion_tokens: from the response's ``usage`` (0 when not reported).
        cost: from the price table (0 without one).
        cause: why it failed (``None`` when it did not).
    """

    model: str
    index: int
    count: int = 1
    status: Literal["ok", "cached", "error"] = "ok"
    http_status: int | None = None
    attempts: int = 0
    rate_limited: int = 0
    latency: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cause: str | None = None

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)


@dataclass(frozen=True, slots=True)
class ItemError:
    """One input without an output: ``kind`` is ``"failed"`` (the call failed) or ``"unparseable"``
    (the answer matched no label)."""

    index: int
    kind: Literal["failed", "unparseable"]
    cause: str


@dataclass(slots=True)
class Usage:
    """Totals over calls (of one model, or of a whole run).

    ``latency_quantiles`` holds ``(p50, p95)`` as read from a saved outputs file, which stores the
    quantiles but not the latencies; it answers :attr:`latency_p50`/:attr:`latency_p95` while
    :attr:`latencies` is empty.
    """

    calls: int = 0
    ok: int = 0
    cached: int = 0
    errors: int = 0
    retries: int = 0
    rate_limited: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_total: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)
    latency_quantiles: tuple[float, float] | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Usage:
        """The usage :meth:`as_dict` described (missing keys count 0); the latency quantiles are
        kept as given, the latencies themselves are not in the dict."""
        out = cls(cost=float(d.get("cost") or 0.0))
        for name in (*_USAGE_COUNTS, "prompt_tokens", "completion_tokens"):
            setattr(out, name, int(d.get(name) or 0))
        out.latency_quantiles = (float(d.get("latency_p50") or 0.0), float(d.get("latency_p95") or 0.0))
        return out

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def latency_p50(self) -> float:
        if not self.latencies:
            return self.latency_quantiles[0] if self.latency_quantiles else 0.0
        return statistics.median(self.latencies)

    @property
    def latency_p95(self) -> float:
        if not self.latencies:
            return self.latency_quantiles[1] if self.latency_quantiles else 0.0
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(0.95 * len(xs)))]

    def add(self, r: CallRecord) -> None:
        self.calls += 1
        if r.status == "ok":
            self.ok += 1
        elif r.status == "cached":
            self.cached += 1
        else:
            self.errors += 1
        self.retries += r.retries
        self.rate_limited += r.rate_limited
        self.prompt_tokens += r.prompt_tokens
        self.completion_tokens += r.completion_tokens
        self.cost += r.cost
        if r.status != "cached":
            self.latency_total += r.latency
            self.latencies.append(r.latency)

    def merge(self, other: Usage) -> Usage:
        out = Usage()
        for u in (self, other):
            for name in _USAGE_COUNTS:
                setattr(out, name, getattr(out, name) + getattr(u, name))
            out.prompt_tokens += u.prompt_tokens
            out.completion_tokens += u.completion_tokens
            out.cost += u.cost
            out.latency_total += u.latency_total
            out.latencies.extend(u.latencies)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "ok": self.ok,
            "cached": self.cached,
            "errors": self.errors,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost": self.cost,
            "latency_p50": self.latency_p50,
            "latency_p95": self.latency_p95,
        }


@dataclass(eq=False)
class ModelResult:
    """One model's outputs on the probe texts.

    Attributes:
        name: the model's name.
        mode: ``"label"`` or ``"text"`` — the mode of its MTE.
        labels: label names: the columns of soft label rows (``None`` for text models and for
            callables that return plain labels).
        outputs: aligned with the texts. Label models: a soft label row (float64 array, columns
            :attr:`labels`) or a label (``str``, when an answer had no usable logprobs); text models:
            the answer's text. ``None`` where there is no output (see :attr:`errors`,
            :attr:`skipped`).
        errors: the inputs whose call failed or whose answer was unparseable, with the cause.
        skipped: inputs never asked (budget, deadline, adaptive stop, cancelled endpoint), in order.
        stop_reason: why this model stopped early (``None`` when every input was asked).
        records: one :class:`CallRecord` per call.
        usage: totals of :attr:`records`.
        adaptive: with adaptive probing, ``{"converged": bool, "texts_used": int, "cosines": [...]}``.
        meta: extra JSON-serialisable information stored with the model in an outputs file
            (endpoint, template, family, ...).
        counts: ``{"failed": n, "unparseable": n, "skipped": n}`` when only the counts are known
            (a result loaded from an outputs file, which has no per-input errors); ``None`` when
            :attr:`errors` and :attr:`skipped` are complete.
    """

    name: str
    mode: Literal["label", "text"]
    labels: tuple[str, ...] | None
    texts: Sequence[str] = field(repr=False)
    text_pairs: Sequence[str] | None = field(repr=False)
    outputs: list[Output] = field(repr=False)
    errors: list[ItemError] = field(default_factory=list, repr=False)
    skipped: list[int] = field(default_factory=list, repr=False)
    stop_reason: str | None = None
    records: list[CallRecord] = field(default_factory=list, repr=False)
    usage: Usage = field(default_factory=Usage)
    adaptive: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict, repr=False)
    counts: dict[str, int] | None = field(default=None, repr=False)

    @property
    def n_ok(self) -> int:
        """Inputs with an output."""
        return sum(o is not None for o in self.outputs)

    @property
    def n_unparseable(self) -> int:
        """Inputs whose answer matched no label."""
        if self.counts is not None:
            return self.counts.get("unparseable", 0)
        return sum(e.kind == "unparseable" for e in self.errors)

    @property
    def n_failed(self) -> int:
        """Inputs whose call failed."""
        if self.counts is not None:
            return self.counts.get("failed", 0)
        return sum(e.kind == "failed" for e in self.errors)

    @property
    def n_skipped(self) -> int:
        """Inputs never asked (see :attr:`skipped`)."""
        if self.counts is not None:
            return self.counts.get("skipped", 0)
        return len(self.skipped)

    def ok_indices(self) -> list[int]:
        return [i for i, o in enumerate(self.outputs) if o is not None]

    def probs(self) -> np.ndarray:
        """``(n, C)`` label probabilities (labels as one-hot rows), NaN rows where there is no output."""
        if self.mode != "label" or self.labels is None:
            raise ProbeError(f"{self.name!r} has no named label columns (mode {self.mode!r})")
        out = np.full((len(self.outputs), len(self.labels)), np.nan)
        col = {label: j for j, label in enumerate(self.labels)}
        for i, o in enumerate(self.outputs):
            if isinstance(o, np.ndarray):
                out[i] = o
            elif isinstance(o, str):
                out[i] = 0.0
                out[i, col[o]] = 1.0
        return out

    def predictions(self) -> list[str | None]:
        """The most likely label per input (``None`` where there is no output)."""
        if self.mode != "label":
            raise ProbeError(f"{self.name!r} is a text model")
        out: list[str | None] = []
        for o in self.outputs:
            if isinstance(o, np.ndarray):
                if self.labels is None:
                    raise ProbeError(f"{self.name!r} returned soft labels without label names")
                out.append(self.labels[int(np.argmax(o))])
            else:
                out.append(o)
        return out

    def embedding_inputs(
        self, mode: Literal["label", "text"] | None = None
    ) -> tuple[list[str], list[str] | None, Any]:
        """``(texts, text_pairs, outputs)`` of the inputs that have an output, ready for
        :meth:`Surrogate.stats` or :meth:`Surrogate.model_embedding`; failed, unparseable and
        skipped inputs are dropped.

        Label models give soft label rows (labels without logprobs become one-hot rows), or plain
        labels when no row is soft. ``mode`` overrides the model's mode (``"text"`` gives a label
        model's most likely label names, to embed as text).
        """
        mode = mode or self.mode
        keep = self.ok_indices()
        if not keep:
            raise ProbeError(f"model {self.name!r} has no outputs to embed ({len(self.outputs)} inputs)")
        texts = [self.texts[i] for i in keep]
        pairs = None if self.text_pairs is None else [self.text_pairs[i] for i in keep]
        kept = [self.outputs[i] for i in keep]
        outputs: Any
        if mode == "text":
            outputs = [o if isinstance(o, str) else self._label_of(o) for o in kept]
        elif any(isinstance(o, np.ndarray) for o in kept):
            outputs = self.probs()[keep]
        else:
            outputs = kept
        return texts, pairs, outputs

    def stats(self, surrogate: Surrogate, *, mode: Literal["label", "text"] | None = None) -> TaskStats:
        """The surrogate's statistics of this model's answers (see :meth:`embedding_inputs`)."""
        if not isinstance(surrogate, Surrogate):
            raise TypeError(f"surrogate must be a Surrogate, got {type(surrogate).__name__}")
        texts, pairs, outputs = self.embedding_inputs(mode)
        return surrogate.stats(texts, outputs, text_pairs=pairs, mode=mode or self.mode)  # type: ignore[arg-type]

    def embedding(
        self,
        surrogate: Surrogate,
        *,
        mode: Literal["label", "text"] | None = None,
        name: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> TaskEmbedding:
        """The model's MTE from the inputs that have an output (see :meth:`embedding_inputs`);
        the number dropped is in ``meta``. Warns (:class:`~taskspace.DegenerateTaskWarning`) when
        the answers carry no information."""
        stats = self.stats(surrogate, mode=mode)
        info = {
            "model": self.name,
            "probe_texts": len(self.outputs),
            "used": stats.n,
            "dropped": len(self.outputs) - stats.n,
            **dict(meta or {}),
        }
        e = surrogate.embed(stats, name=self.name if name is None else name, kind="model", meta=info)
        return warn_if_degenerate(e)

    def _label_of(self, o: Output) -> str:
        assert isinstance(o, np.ndarray)
        if self.labels is None:
            raise ProbeError(f"{self.name!r} returned soft labels without label names")
        return self.labels[int(np.argmax(o))]

    def summary_row(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "outputs": self.n_ok,
            "of": len(self.outputs),
            "failed": self.n_failed,
            "unparseable": self.n_unparseable,
            "skipped": self.n_skipped,
            **{k: v for k, v in self.usage.as_dict().items() if k not in ("latency_p50", "latency_p95")},
            "stop": self.stop_reason or "",
        }


@dataclass(eq=False)
class ProbeResult:
    """The result of :func:`taskspace.probe`: ``result[name]`` is a :class:`ModelResult`.

    Attributes:
        models: name -> :class:`ModelResult`, in the order the models were given.
        usage: totals over every call of the run.
        stop_reason: why the run stopped early (budget, deadline), or ``None``.
        elapsed: wall-clock seconds of the run.
        budget: the budget given, with what was spent.
        probe_set: which probe texts these are (``{"version": 1, "n": 500}``, or a file), as
            stored in an outputs file.
    """

    models: dict[str, ModelResult]
    usage: Usage
    stop_reason: str | None
    elapsed: float
    budget: dict[str, Any] | None = None
    probe_set: dict[str, Any] = field(default_factory=dict)

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        probe_set: Mapping[str, Any] | None = None,
        meta: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Write the result as an outputs file (``taskspace.probe-outputs/1``, the file
        ``taskspace probe`` writes), atomically: a reader sees the old file or the new one.

        ``probe_set`` describes the probe texts (default: :attr:`probe_set`); ``meta`` maps model
        names to extra JSON-serialisable information stored with them, over each model's
        :attr:`ModelResult.meta`. Soft label rows are stored to 7 decimals.

        Example:
            >>> import pathlib, tempfile
            >>> import taskspace as ts
            >>> from taskspace.models.in_context import InContext
            >>> model = InContext([("good", "pos"), ("bad", "neg")], k=1, name="icl")
            >>> result = ts.probe_sync([model], ["so good", "so bad"], progress=False)
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     result.save(pathlib.Path(tmp) / "outputs.jsonl", probe_set={"n": 2})
            ...     loaded = ts.ProbeResult.load(pathlib.Path(tmp) / "outputs.jsonl")
            >>> loaded["icl"].predictions() == result["icl"].predictions(), loaded.probe_set
            (True, {'n': 2})
        """
        from taskspace.probing.outputs import save_outputs

        save_outputs(self, path, probe_set=probe_set, meta=meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ProbeResult:
        """Read an outputs file written by :meth:`save` (or by ``taskspace probe``).

        Outputs, labels, usage totals, stop reasons, each model's ``meta`` and the counts of
        failed, unparseable and skipped inputs (:attr:`ModelResult.counts`) come back; per-call
        records do not (the file does not keep them). Raises
        :class:`~taskspace.InvalidInputError` naming the file, line and field for anything wrong.
        """
        from taskspace.probing.outputs import load_outputs

        return load_outputs(path)

    def __getitem__(self, name: str) -> ModelResult:
        try:
            return self.models[name]
        except KeyError:
            raise KeyError(f"no model named {name!r} in this result; models: {list(self.models)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def __contains__(self, name: object) -> bool:
        return name in self.models

    @property
    def records(self) -> list[CallRecord]:
        return [r for m in self.models.values() for r in m.records]

    def embeddings(self, surrogate: Surrogate, **kwargs: Any) -> dict[str, TaskEmbedding]:
        """Every model's MTE (see :meth:`ModelResult.embedding`), by name."""
        return {name: m.embedding(surrogate, **kwargs) for name, m in self.models.items()}

    def summary(self) -> str:
        """A plain-text table: per model outputs, failures, tokens, cost; then totals and stops."""
        rows = [m.summary_row() for m in self.models.values()]
        cols = [
            ("model", "model"),
            ("outputs", "ok"),
            ("failed", "failed"),
            ("unparseable", "unparseable"),
            ("skipped", "skipped"),
            ("cached", "cached"),
            ("retries", "retries"),
            ("rate_limited", "429s"),
            ("total_tokens", "tokens"),
            ("cost", "cost"),
        ]

        def cell(row: dict[str, Any], key: str) -> str:
            v = row[key]
            if key == "outputs":
                return f"{v}/{row['of']}"
            if key == "cost":
                return f"{v:.4f}"
            return str(v)

        table = [[h for _, h in cols]] + [[cell(r, k) for k, _ in cols] for r in rows]
        widths = [max(len(r[j]) for r in table) for j in range(len(cols))]
        lines = [
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True))
            )
            for r in table
        ]
        u = self.usage
        lines.append(
            f"{u.calls} calls ({u.cached} cached, {u.errors} failed, {u.retries} retries, "
            f"{u.rate_limited} rate-limited) in {self.elapsed:.2f} s; {u.total_tokens} tokens, cost {u.cost:.4f}"
        )
        if self.stop_reason:
            lines.append(f"stopped early: {self.stop_reason}")
        for r in rows:
            if r["stop"] and r["stop"] != self.stop_reason:
                lines.append(f"{r['model']}: {r['stop']}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        stop = f", stopped: {self.stop_reason}" if self.stop_reason else ""
        return (
            f"<ProbeResult {len(self.models)} models, {self.usage.calls} calls, {self.elapsed:.2f} s{stop}>"
        )
