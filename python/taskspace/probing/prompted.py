"""A prompted model: one (OpenAI-compatible endpoint, prompt template, decoding parameters, labels).

Ten prompts on one LLM are ten models, each with its own MTE. The OpenAI wire format (request
bodies, reading ``choices``/``logprobs``/``usage`` of chat and completions responses) lives here too.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from taskspace.errors import ProbeError
from taskspace.probing.endpoints import OpenAIEndpoint
from taskspace.probing.labels import Verbalizers

__all__ = ["Prompted", "read_response"]

_FIELD = re.compile(r"\{(text|text_pair)\}")
#: ``max_tokens`` assumed for a request's token estimate when the parameters set none.
DEFAULT_COMPLETION_ESTIMATE = 256


_json_str = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


def canonical_json(obj: Any) -> str:
    """sha256-ready JSON: sorted keys, no spaces, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


class Prompted:
    """An LLM behind an OpenAI-compatible endpoint with one prompt: one model, one MTE.

    Args:
        endpoint: the :class:`OpenAIEndpoint` (server + model + limits).
        template: the prompt, with ``{text}`` and, for pair tasks, ``{text_pair}``. Only these two
            fields are substituted, so other braces (e.g. JSON in the prompt) need no escaping.
            For a chat endpoint the rendered prompt is one user message.
        labels: label -> verbalizer words (or a list of labels, each its own verbalizer). With
            labels the model's outputs are soft label rows (from logprobs) or labels (matched in the
            answer's text), see :mod:`taskspace.probing.labels`; without, outputs are the answers'
            texts (for ``mode="text"`` MTEs).
        params: request parameters merged over the defaults — ``temperature=0`` always, and with
            labels ``max_tokens=8`` plus logprobs (chat: ``logprobs=True, top_logprobs=20``;
            completions: ``logprobs=5``, the most OpenAI's legacy endpoint allows). A value of
            ``None`` removes a default (e.g. ``{"logprobs": None, "top_logprobs": None}`` for a
            server without logprobs).
        name: the model's name in results (default ``"<model>/<first 8 hex digits of id>"``).
        system: an optional system message (chat endpoints only).

    Sampling (``temperature`` > 0 or unset, and no ``seed``) is allowed; such answers are stored in
    the cache but not served from it unless the probe is run with ``cache_sampled=True``.

    Example:
        >>> import taskspace as ts
        >>> ep = ts.OpenAIEndpoint("http://127.0.0.1:8000/v1", "llama3")
        >>> m = ts.Prompted(ep, "Review: {text}\\nSentiment (positive or negative):",
        ...                 labels={"pos": ["positive"], "neg": ["negative"]})
        >>> m.render("great film")
        'Review: great film\\nSentiment (positive or negative):'
        >>> sorted(m.params.items())
        [('logprobs', True), ('max_tokens', 8), ('temperature', 0), ('top_logprobs', 20)]
        >>> len(m.id), m.name == "llama3/" + m.id[:8]
        (64, True)
    """

    __slots__ = (
        "_id",
        "_parts",
        "_system_json",
        "endpoint",
        "name",
        "params",
        "system",
        "template",
        "verbalizers",
    )

    def __init__(
        self,
        endpoint: OpenAIEndpoint,
        template: str,
        *,
        labels: Mapping[str, str | Sequence[str]] | Sequence[str] | None = None,
        params: Mapping[str, Any] | None = None,
        name: str | None = None,
        system: str | None = None,
    ) -> None:
        if not isinstance(endpoint, OpenAIEndpoint):
            raise TypeError(f"endpoint must be an OpenAIEndpoint, got {type(endpoint).__name__}")
        if not isinstance(template, str):
            raise TypeError(f"template must be str, got {type(template).__name__}")
        if "{text}" not in template:
            raise ProbeError("template must contain {text}")
        if system is not None and not isinstance(system, str):
            raise TypeError(f"system must be str, got {type(system).__name__}")
        if system is not None and endpoint.kind != "chat":
            raise ProbeError("a system message needs a chat endpoint")
        self.endpoint = endpoint
        self.template = template
        self.system = system
        self._parts = _FIELD.split(template)  # literal, field name, literal, ...
        self._system_json = "" if system is None else f'{{"content":{_json_str(system)},"role":"system"}},'
        self.verbalizers = None if labels is None else Verbalizers(labels)
        merged: dict[str, Any] = {"temperature": 0}
        if self.verbalizers is not None:
            merged["max_tokens"] = 8
            if endpoint.kind == "chat":
                merged.update(logprobs=True, top_logprobs=20)
            else:
                merged["logprobs"] = 5  # the legacy completions API allows at most 5
        if params is not None:
            if not isinstance(params, Mapping):
                raise TypeError(f"params must be a mapping, got {type(params).__name__}")
            for k, v in params.items():
                if not isinstance(k, str):
                    raise TypeError("params keys must be str")
                if k in ("model", "messages", "prompt", "stream", "n"):
                    raise ProbeError(f"params may not set {k!r} (the probe sets it)")
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
        try:
            canonical_json(merged)
        except (TypeError, ValueError) as e:
            raise ProbeError(f"params must be JSON-serialisable without NaN: {e}") from None
        self.params: dict[str, Any] = merged
        ident = {
            "endpoint": endpoint.id,
            "model": endpoint.model,
            "template": template,
            "system": system,
            "params": merged,
            "labels": None if self.verbalizers is None else self.verbalizers.canonical(),
        }
        self._id = hashlib.sha256(canonical_json(ident).encode()).hexdigest()
        if name is None:
            name = f"{endpoint.model}/{self._id[:8]}"
        if not isinstance(name, str) or not name:
            raise ProbeError(f"name must be a non-empty str, got {name!r}")
        self.name = name

    @property
    def id(self) -> str:
        """sha256 (hex) of the canonical JSON of endpoint id, model, template, system, params, labels."""
        return self._id

    @property
    def labels(self) -> tuple[str, ...] | None:
        """The label names (the columns of soft label rows), or ``None`` for a text model."""
        return None if self.verbalizers is None else self.verbalizers.labels

    @property
    def sampled(self) -> bool:
        """Whether answers are sampled: ``temperature`` unset or > 0, and no ``seed``."""
        t = self.params.get("temperature")
        return (t is None or not isinstance(t, (int, float)) or t > 0) and "seed" not in self.params

    @property
    def uses_pairs(self) -> bool:
        return "{text_pair}" in self.template

    def __repr__(self) -> str:
        labels = "" if self.labels is None else f", labels={list(self.labels)!r}"
        return f"Prompted({self.endpoint!r}, template={self.template!r}{labels}, name={self.name!r})"

    def render(self, text: str, text_pair: str | None = None) -> str:
        """The prompt for one input."""
        parts = self._parts
        if len(parts) == 3:  # the common case: one field
            return f"{parts[0]}{text if parts[1] == 'text' else text_pair or ''}{parts[2]}"
        pair = "" if text_pair is None else text_pair
        return "".join(p if k % 2 == 0 else (text if p == "text" else pair) for k, p in enumerate(parts))

    def prompt_json(self, text: str, text_pair: str | None = None) -> str:
        """``canonical_json(self.prompt(text, text_pair))``, built directly (the probe's hot path)."""
        rendered = _json_str(self.render(text, text_pair))
        if self.endpoint.kind != "chat":
            return rendered
        return f'[{self._system_json}{{"content":{rendered},"role":"user"}}]'

    def prompt(self, text: str, text_pair: str | None = None) -> list[dict[str, str]] | str:
        """What is sent: a message list (chat) or the rendered string (completions)."""
        rendered = self.render(text, text_pair)
        if self.endpoint.kind != "chat":
            return rendered
        messages = [{"role": "user", "content": rendered}]
        if self.system is not None:
            messages.insert(0, {"role": "system", "content": self.system})
        return messages

    def body(self, prompt: list[dict[str, str]] | str) -> dict[str, Any]:
        """The JSON request body for a prompt from :meth:`prompt`."""
        key = "messages" if self.endpoint.kind == "chat" else "prompt"
        return {"model": self.endpoint.model, key: prompt, **self.params}

    def estimate_tokens(self, prompt: list[dict[str, str]] | str) -> int:
        """A rough upper estimate of a request's tokens: characters / 4 + 8, plus ``max_tokens``."""
        chars = len(prompt) if isinstance(prompt, str) else sum(len(m["content"]) + 4 for m in prompt)
        out = self.params.get("max_tokens", self.params.get("max_completion_tokens"))
        if not isinstance(out, int) or isinstance(out, bool):
            out = DEFAULT_COMPLETION_ESTIMATE
        return chars // 4 + 8 + out

    def parse(self, answer: Mapping[str, Any]) -> tuple[str | np.ndarray | None, str | None]:
        """(output, cause): the output of a normalised answer (see :func:`read_response`).

        Text models give the text. Labelled models give a soft label row from logprobs, else the
        label matched in the text, else ``(None, cause)`` — an unparseable answer.
        """
        text = answer.get("text") or ""
        if self.verbalizers is None:
            return text, None
        row = self.verbalizers.soft_label(answer.get("tokens"))
        if row is not None:
            return row, None
        label = self.verbalizers.match(text)
        if label is not None:
            return label, None
        shown = text if len(text) <= 200 else text[:200] + "…"
        return (
            None,
            f"unparseable: answer {shown!r} contains no verbalizer of {list(self.verbalizers.labels)}",
        )


#: A logprob above this is not a log-probability (a little above 0 is float rounding, read as 0).
_LOGPROB_TOLERANCE = 1e-3
#: Token counts at or above this in ``usage`` are not believed (read as not reported).
MAX_USAGE_TOKENS = 2**31


def _logprob(x: Any) -> float | None:
    """A finite log-probability <= 0, or ``None`` (absent, NaN, or -inf: probability 0); raises
    ``ValueError`` for a value that cannot be one (not a number, positive, +inf, out of range)."""
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"malformed logprobs: a logprob is a {type(x).__name__}, not a number")
    try:
        v = float(x)
    except OverflowError:
        raise ValueError("malformed logprobs: a logprob is out of range") from None
    if math.isnan(v) or v == -math.inf:
        return None
    if v > _LOGPROB_TOLERANCE:
        raise ValueError(f"malformed logprobs: logprob {v:g} is not a log-probability (> 0)")
    return min(v, 0.0)


def _list(x: Any, what: str) -> list[Any]:
    if x is None:
        return []
    if not isinstance(x, list):
        raise ValueError(f"malformed logprobs: {what} is a {type(x).__name__}, not a list")
    return x


def _chat_tokens(content: list[Any]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for t in content:
        if not isinstance(t, Mapping) or not isinstance(t.get("token"), str):
            raise ValueError("malformed logprobs.content entry")
        top = [
            [c["token"], _logprob(c.get("logprob"))]
            for c in _list(t.get("top_logprobs"), "top_logprobs")
            if isinstance(c, Mapping) and isinstance(c.get("token"), str)
        ]
        out.append([t["token"], _logprob(t.get("logprob")), top])
    return out


def _legacy_tokens(lp: Mapping[str, Any], tokens: list[Any]) -> list[list[Any]]:
    lps = _list(lp.get("token_logprobs"), "token_logprobs") or [None] * len(tokens)
    tops = _list(lp.get("top_logprobs"), "top_logprobs") or [None] * len(tokens)
    out: list[list[Any]] = []
    for i, tok in enumerate(tokens):
        if not isinstance(tok, str):
            raise ValueError("malformed logprobs.tokens entry")
        top_i = tops[i] if i < len(tops) else None
        if top_i is not None and not isinstance(top_i, Mapping):
            raise ValueError("malformed logprobs: a top_logprobs entry is not an object")
        top = [[c, _logprob(v)] for c, v in top_i.items()] if top_i else []
        out.append([tok, _logprob(lps[i]) if i < len(lps) else None, top])
    return out


def _tokens(lp: Any) -> list[list[Any]] | None:
    """Generated tokens as ``[[token, logprob, [[candidate, logprob], ...]], ...]``; logprobs are
    finite and <= 0 or ``None``. Raises ``ValueError`` for logprobs of the wrong shape or values."""
    if lp is None:
        return None
    if not isinstance(lp, Mapping):
        raise ValueError(f"malformed logprobs: a {type(lp).__name__}, not an object")
    content = lp.get("content")
    if content is not None:  # chat format (also llama.cpp's completions)
        return _chat_tokens(_list(content, "logprobs.content"))
    tokens = lp.get("tokens")
    if tokens is not None:  # legacy completions format
        return _legacy_tokens(lp, _list(tokens, "logprobs.tokens"))
    return None


def _count(x: Any) -> int | None:
    """A token count from ``usage``: an int in [0, MAX_USAGE_TOKENS), else ``None`` (not reported)."""
    if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < MAX_USAGE_TOKENS:
        return None
    return x


def read_response(data: Any) -> tuple[dict[str, Any], int | None, int | None]:
    """(answer, prompt_tokens, completion_tokens) of a chat or completions response body.

    The answer is normalised to ``{"text": str, "tokens": [...] | None, "finish_reason": str |
    None}`` whatever the endpoint kind, and holds only what JSON can store and read back: logprobs
    finite and <= 0 (NaN and -inf read as absent), token counts below :data:`MAX_USAGE_TOKENS`
    (others read as not reported), ``finish_reason`` a str or ``None``. Raises ``ValueError`` with
    the reason for a body that is not a usable completion (no ``choices``, no text, logprobs of
    the wrong type or impossible values).

    Example:
        >>> read_response({"choices": [{"message": {"content": "yes"}, "finish_reason": "stop"}],
        ...                "usage": {"prompt_tokens": 5, "completion_tokens": 1}})
        ({'text': 'yes', 'tokens': None, 'finish_reason': 'stop'}, 5, 1)
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"response is a JSON {type(data).__name__}, not an object")
    if "error" in data and "choices" not in data:
        err = data["error"]
        msg = err.get("message") if isinstance(err, Mapping) else err
        raise ValueError(f"response is an error: {str(msg)[:200]}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("response has no choices")
    choice = choices[0]
    if not isinstance(choice, Mapping):
        raise ValueError("response choice is not an object")
    if "message" in choice:
        msg = choice["message"]
        if not isinstance(msg, Mapping):
            raise ValueError(f"response message is a {type(msg).__name__}, not an object")
        text = msg.get("content")
    elif "text" in choice:
        text = choice["text"]
    else:
        raise ValueError("response choice has neither message nor text")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ValueError(f"response text is a {type(text).__name__}, not a string")
    finish = choice.get("finish_reason")
    answer = {
        "text": text,
        "tokens": _tokens(choice.get("logprobs")),
        "finish_reason": finish[:100] if isinstance(finish, str) else None,
    }
    usage = data.get("usage")
    pt = ct = None
    if isinstance(usage, Mapping):
        pt, ct = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    return answer, pt, ct
