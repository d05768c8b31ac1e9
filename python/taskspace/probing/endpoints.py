"""Where answers come from: OpenAI-compatible HTTP endpoints, Python callables and local models.

* :class:`OpenAIEndpoint` — an OpenAI-compatible server (OpenAI, vLLM, llama.cpp server, Ollama,
  LM Studio, TGI, ``taskspace serve-models``) and the model it serves, with its limits: concurrency,
  requests and tokens per minute, retries, timeout. It is not a model by itself: wrap it in
  :class:`taskspace.Prompted` with a prompt template.
* :class:`CallableModel` — any Python function (sync or async) from a batch of texts to outputs.
* A **local model** is any object with ``name``, ``predict(texts) -> list[str]`` and
  ``predict_proba(texts) -> (labels, probs)`` (see :class:`LocalModel`), e.g.
  ``taskspace.models.ZeroShot``; pass it to :func:`taskspace.probe` as it is.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from taskspace._checks import positive_int, positive_number
from taskspace.errors import ProbeError

__all__ = ["RETRY_STATUSES", "CallableModel", "LocalModel", "OpenAIEndpoint", "is_local_model"]

EndpointKind = Literal["chat", "completions"]
OutputMode = Literal["label", "text"]

#: HTTP statuses retried by default (with jittered exponential backoff): timeout, conflict, rate
#: limit and every server error.
RETRY_STATUSES: frozenset[int] = frozenset({408, 409, 429, *range(500, 600)})


class OpenAIEndpoint:
    """An OpenAI-compatible HTTP endpoint (``/chat/completions`` or ``/completions``) and one model.

    Args:
        base_url: the API root including the version, e.g. ``"http://127.0.0.1:8000/v1"`` (vLLM),
            ``"http://127.0.0.1:8080/v1"`` (llama.cpp server), ``"http://127.0.0.1:11434/v1"``
            (Ollama), ``"https://api.openai.com/v1"``.
        model: the model name sent in every request.
        kind: ``"chat"`` (``/chat/completions``, the prompt is one user message) or
            ``"completions"`` (``/completions``, the prompt is sent as it is).
        api_key_env: the name of an environment variable holding the API key, read when a
            request is sent and sent as ``Authorization: Bearer …``. The key itself is never
            stored on this object, in the cache, in records, logs or exception messages.
        headers: extra HTTP headers (their values are treated as secrets too: only their names
            appear in ``repr``).
        max_concurrency: requests in flight at once to this endpoint (shared by every prompted
            model on an equal endpoint in one run).
        rpm: requests per minute: no 60-second window holds more (a token bucket holding at most
            one second's worth, so requests are spread out rather than sent in a burst).
        tpm: tokens per minute (prompt + completion): each request reserves an estimate (prompt
            characters / 4 + ``max_tokens``) and the reservation is corrected from the response's
            ``usage``.
        max_retries: retries after the first attempt (so at most ``max_retries + 1`` attempts) on
            connection errors, timeouts and the statuses in ``retry_statuses``.
        timeout: seconds for one attempt (connect, send, read).
        retry_on_429: when false, a 429 fails the request at once (the endpoint still pauses for
            ``Retry-After``, to stay polite).
        backoff: base of the jittered exponential backoff: attempt k waits a uniform random time in
            ``[b·2^k / 2, b·2^k]``, at most ``backoff_max``, or longer when the server's
            ``Retry-After`` / ``retry-after-ms`` says so.
        backoff_max: cap of one backoff wait (seconds), not of ``Retry-After``.
        retry_statuses: HTTP statuses that are retried (default :data:`RETRY_STATUSES`).
        name: the server's identity in cache keys (default: ``base_url``). Answers are cached under
            ``kind:name``, so a server given a stable name (``name="local-gemma"``) keeps its cached
            answers when it moves to another host or port; without one, today's keys (made from the
            URL) are used, so caches written before this option keep serving.
        max_response_bytes: the largest response body read (default 8 MiB); a longer or endless
            body fails that request with a clear cause, so memory stays bounded.
        max_retry_after: the longest pause (seconds) a ``Retry-After`` / ``retry-after-ms`` header
            can impose (default 120, as openai-python); larger, infinite values are capped, negative or
            unreadable ones ignored. A pause that would outlast the run's ``deadline`` fails the
            request at once.
        group_by_prompt: send one prompted model's requests before the next model's on this
            endpoint (still ``max_concurrency`` at once) instead of round-robin over models, so a
            server that keeps the KV cache of a shared prompt prefix (llama.cpp, vLLM,
            ``taskspace serve-models``) reuses it.

    Two endpoints compare equal when their whole configuration is equal; equal endpoints share one
    set of limits within a run.

    Example:
        >>> import taskspace as ts
        >>> ep = ts.OpenAIEndpoint("http://127.0.0.1:8000/v1", "qwen2.5-0.5b", rpm=600, api_key_env="MY_KEY")
        >>> ep.url
        'http://127.0.0.1:8000/v1/chat/completions'
        >>> ep.id
        'chat:http://127.0.0.1:8000/v1'
        >>> ts.OpenAIEndpoint("http://127.0.0.1:8081/v1", "gemma", name="local-gemma").id
        'chat:local-gemma'
    """

    __slots__ = (
        "_headers",
        "api_key_env",
        "backoff",
        "backoff_max",
        "base_url",
        "group_by_prompt",
        "kind",
        "max_concurrency",
        "max_response_bytes",
        "max_retries",
        "max_retry_after",
        "model",
        "name",
        "retry_on_429",
        "retry_statuses",
        "rpm",
        "timeout",
        "tpm",
    )

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        kind: EndpointKind = "chat",
        api_key_env: str | None = None,
        headers: Mapping[str, str] | None = None,
        max_concurrency: int = 16,
        rpm: float | None = None,
        tpm: float | None = None,
        max_retries: int = 5,
        timeout: float = 60.0,
        retry_on_429: bool = True,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        retry_statuses: Sequence[int] | None = None,
        name: str | None = None,
        max_response_bytes: int = 8 << 20,
        max_retry_after: float = 120.0,
        group_by_prompt: bool = False,
    ) -> None:
        if not isinstance(base_url, str):
            raise TypeError(f"base_url must be str, got {type(base_url).__name__}")
        if not base_url.startswith(("http://", "https://")):
            raise ProbeError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not isinstance(model, str) or not model:
            raise ProbeError(f"model must be a non-empty str, got {model!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ProbeError(f"name must be a non-empty str, got {name!r}")
        if kind not in ("chat", "completions"):
            raise ProbeError(f"kind must be 'chat' or 'completions', got {kind!r}")
        if api_key_env is not None and (not isinstance(api_key_env, str) or not api_key_env):
            raise ProbeError("api_key_env must be the name of an environment variable (a non-empty str)")
        hdrs: dict[str, str] = {}
        for k, v in (headers or {}).items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("headers must map str to str")
            hdrs[k] = v
        if isinstance(max_retries, bool) or not isinstance(max_retries, (int, np.integer)) or max_retries < 0:
            raise ProbeError(f"max_retries must be an int >= 0, got {max_retries!r}")
        statuses = RETRY_STATUSES if retry_statuses is None else frozenset(int(s) for s in retry_statuses)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.kind: EndpointKind = kind
        self.api_key_env = api_key_env
        self._headers = hdrs
        self.max_concurrency: int = positive_int(max_concurrency, "max_concurrency", error=ProbeError)
        self.rpm: float | None = positive_number(rpm, "rpm", allow_none=True, error=ProbeError)
        self.tpm: float | None = positive_number(tpm, "tpm", allow_none=True, error=ProbeError)
        self.max_retries = int(max_retries)
        self.timeout: float = positive_number(timeout, "timeout", error=ProbeError)
        self.retry_on_429 = bool(retry_on_429)
        self.backoff: float = positive_number(backoff, "backoff", error=ProbeError)
        self.backoff_max: float = positive_number(backoff_max, "backoff_max", error=ProbeError)
        self.retry_statuses = statuses
        self.name: str = self.base_url if name is None else name
        self.max_response_bytes: int = positive_int(
            max_response_bytes, "max_response_bytes", error=ProbeError
        )
        self.max_retry_after: float = positive_number(max_retry_after, "max_retry_after", error=ProbeError)
        self.group_by_prompt = bool(group_by_prompt)

    @property
    def id(self) -> str:
        """``kind:name`` (``name`` defaults to ``base_url``) — the endpoint's part of every cache key
        (headers and keys are not)."""
        return f"{self.kind}:{self.name}"

    @property
    def url(self) -> str:
        """The URL requests are POSTed to."""
        return f"{self.base_url}/{'chat/completions' if self.kind == 'chat' else 'completions'}"

    @property
    def header_names(self) -> tuple[str, ...]:
        """Names of the extra headers (their values are not exposed)."""
        return tuple(sorted(self._headers))

    def _config(self) -> tuple[Any, ...]:
        return (
            self.base_url,
            self.model,
            self.kind,
            self.api_key_env,
            tuple(sorted(self._headers.items())),
            self.max_concurrency,
            self.rpm,
            self.tpm,
            self.max_retries,
            self.timeout,
            self.retry_on_429,
            self.backoff,
            self.backoff_max,
            tuple(sorted(self.retry_statuses)),
            self.name,
            self.max_response_bytes,
            self.max_retry_after,
            self.group_by_prompt,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OpenAIEndpoint) and other._config() == self._config()

    def __hash__(self) -> int:
        return hash(self._config())

    def __repr__(self) -> str:
        extra = []
        if self.name != self.base_url:
            extra.append(f"name={self.name!r}")
        if self.api_key_env:
            extra.append(f"api_key_env={self.api_key_env!r}")
        if self._headers:
            extra.append(f"headers=<{', '.join(self.header_names)}>")
        for name in ("rpm", "tpm"):
            if getattr(self, name) is not None:
                extra.append(f"{name}={getattr(self, name):g}")
        tail = "".join(f", {x}" for x in extra)
        return (
            f"OpenAIEndpoint({self.base_url!r}, {self.model!r}, kind={self.kind!r}, "
            f"max_concurrency={self.max_concurrency}{tail})"
        )

    def check_api_key(self) -> None:
        """Raise :class:`ProbeError` when ``api_key_env`` names a variable that is not set."""
        if self.api_key_env is not None and not os.environ.get(self.api_key_env):
            raise ProbeError(
                f"environment variable {self.api_key_env} (api_key_env of {self.model!r} at "
                f"{self.base_url}) is not set or empty"
            )

    def _request_headers(self) -> dict[str, str] | None:
        """Extra headers of one request (``None`` when there are none: the run's session sends
        ``Content-Type: application/json``); the key is read from the environment now, kept nowhere."""
        if self.api_key_env is None and not self._headers:
            return None
        headers = dict(self._headers)
        if self.api_key_env is not None:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ProbeError(f"environment variable {self.api_key_env} is not set or empty")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _secrets(self) -> list[str]:
        """Strings to redact from every cause, record and message of a run."""
        out = [v for v in self._headers.values() if len(v) >= 4]
        if self.api_key_env is not None:
            key = os.environ.get(self.api_key_env)
            if key and len(key) >= 4:
                out.append(key)
        return out


@runtime_checkable
class LocalModel(Protocol):
    """The protocol of a local classifier usable directly in :func:`taskspace.probe`.

    ``predict_proba(texts)`` returns ``(labels, probs)``: the label names (columns) and an ``(n, C)``
    float array whose rows sum to 1. The probe keeps the rows as soft labels and the names in the
    result, so the model's MTE can be built. A model that also takes second texts (pair tasks)
    accepts a ``text_pairs`` keyword in ``predict_proba``.
    """

    name: str

    def predict(self, texts: Sequence[str]) -> list[str]: ...

    def predict_proba(self, texts: Sequence[str]) -> tuple[Sequence[str], np.ndarray]: ...


def is_local_model(obj: Any) -> bool:
    """Whether ``obj`` follows the :class:`LocalModel` protocol."""
    return (
        isinstance(getattr(obj, "name", None), str)
        and callable(getattr(obj, "predict", None))
        and callable(getattr(obj, "predict_proba", None))
    )


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


class CallableModel:
    """Any Python function as a model: it maps a **list** of texts to a list of outputs.

    ``fn(texts)`` — or ``fn(texts, text_pairs)`` when the probe has second texts — receives at most
    ``batch_size`` texts and returns one output per text (a list, or an ``(n, C)`` array of label
    probabilities). An output is a label (``str``), a soft label row (a sequence of floats summing to
    1, whose columns ``labels`` names), an output text (``mode="text"``), or ``None`` for "no
    answer" (recorded as a failure). A sync ``fn`` runs in a thread pool (``max_concurrency``
    threads); an ``async def`` function is awaited (``max_concurrency`` batches at once). An
    exception, a wrong number of outputs or a timeout fails the items of that batch, with the cause.

    Args:
        fn: the function.
        name: the model's name in the result (must be unique within a run).
        mode: ``"label"`` (outputs are labels or soft label rows) or ``"text"`` (free texts); the
            mode of the model's MTE.
        labels: names of the soft-label columns (default ``"0"``, ``"1"``, …).
        batch_size: texts per call (1 for a function of one text wrapped in a list).
        max_concurrency: calls at once.
        timeout: seconds per call (``None``: no limit). A sync call that times out keeps its thread
            busy until it returns; its outputs are discarded.
        cache_id: when given, answers are stored in the probe cache under this id (choose a new id
            when the function's behaviour changes); by default a callable's answers are not cached.

    Example:
        >>> import taskspace as ts
        >>> m = ts.CallableModel(lambda texts: ["pos" if "good" in t else "neg" for t in texts], name="rule")
        >>> res = ts.probe_sync([m], ["good day", "bad day"], progress=False)
        >>> res["rule"].outputs
        ['pos', 'neg']
    """

    __slots__ = (
        "batch_size",
        "cache_id",
        "fn",
        "is_async",
        "labels",
        "max_concurrency",
        "mode",
        "name",
        "timeout",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str,
        mode: OutputMode = "label",
        labels: Sequence[str] | None = None,
        batch_size: int = 64,
        max_concurrency: int = 4,
        timeout: float | None = None,
        cache_id: str | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        if not isinstance(name, str) or not name:
            raise ProbeError(f"name must be a non-empty str, got {name!r}")
        if mode not in ("label", "text"):
            raise ProbeError(f"mode must be 'label' or 'text', got {mode!r}")
        if labels is not None:
            labels = tuple(labels)
            if not labels or not all(isinstance(x, str) for x in labels) or len(set(labels)) != len(labels):
                raise ProbeError("labels must be distinct str")
        if cache_id is not None and (not isinstance(cache_id, str) or not cache_id):
            raise ProbeError("cache_id must be a non-empty str")
        self.fn = fn
        self.name = name
        self.mode: OutputMode = mode
        self.labels: tuple[str, ...] | None = labels
        self.batch_size: int = positive_int(batch_size, "batch_size", error=ProbeError)
        self.max_concurrency: int = positive_int(max_concurrency, "max_concurrency", error=ProbeError)
        self.timeout: float | None = positive_number(timeout, "timeout", allow_none=True, error=ProbeError)
        self.cache_id = cache_id
        self.is_async = _is_async(fn)

    def __repr__(self) -> str:
        return f"CallableModel({getattr(self.fn, '__name__', type(self.fn).__name__)}, name={self.name!r}, mode={self.mode!r})"
