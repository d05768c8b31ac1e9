"""The TOML config of ``taskspace probe``: models, prompts, endpoints, limits, probe set, files.

Format (every table optional except that there must be at least one model)::

    [probe_set]
    version = 1                  # the built-in probe set (default), or:
    # file = "probe.jsonl"       # {"text": ...} per line (optional "text_pair"), or a .txt file
    n = 500                      # optional: the first n texts (any prefix of the built-in set is balanced)

    [output]
    cache = "probe.sqlite"       # SQLite answer cache (resume = re-run); relative to this file
    outputs = "outputs.jsonl"    # the outputs file `taskspace embed` reads

    [limits]
    concurrency = 64             # calls in flight across all models
    deadline = 3600              # seconds; what is still running then is cancelled
    budget = { tokens = 2_000_000, cost = 5.0 }
    [limits.prices]              # per 1M tokens, by prompt name or endpoint model
    "gpt-4o-mini" = { prompt = 0.15, completion = 0.60 }

    [endpoints.openai]           # an OpenAI-compatible server and one model
    base_url = "https://api.openai.com/v1"
    model = "gpt-4o-mini"
    kind = "chat"                # or "completions"
    api_key_env = "OPENAI_API_KEY"   # the NAME of the variable holding the key, never the key
    max_concurrency = 8
    rpm = 500
    tpm = 200_000
    timeout = 30
    max_retries = 5
    # optional: name = "local-gemma" (the server's name in cache keys, default base_url, so a moved
    # server keeps its cache), max_response_bytes, max_retry_after, group_by_prompt = true

    [prompts.short]              # one prompted model = endpoint + template (+ labels)
    endpoint = "openai"          # or endpoints = ["openai", "local-vllm"]: one model per endpoint
    template = "{text}\\nSentiment (positive or negative):"
    labels = { positive = ["positive", "good"], negative = ["negative", "bad"] }
    params = { max_tokens = 4 }  # optional request parameters
    system = "You are a careful annotator."   # optional (chat only)

    [models.review-zero-shot]    # a local prompt-driven model, same keys as `taskspace serve-models`
    kind = "zero-shot"
    template = "This review is {}."
    label_descriptions = { positive = "great, loved it", negative = "awful, hated it" }

A prompt used with several endpoints is named ``PROMPT@ENDPOINT``; with one, ``PROMPT``.
Every mistake raises :class:`ProbeConfigError` naming the file, the line and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskspace import _toml
from taskspace.errors import InvalidInputError, TaskspaceError
from taskspace.probing.endpoints import OpenAIEndpoint
from taskspace.probing.prompted import Prompted
from taskspace.probing.runner import Budget

__all__ = ["ProbeConfig", "ProbeConfigError", "load_probe_config"]

_TOP = {"probe_set", "output", "limits", "endpoints", "prompts", "models"}
_PROBE_SET = {"version", "file", "n"}
_OUTPUT = {"cache", "outputs"}
_LIMITS = {"concurrency", "deadline", "budget", "prices"}
_ENDPOINT = {
    "base_url",
    "model",
    "kind",
    "api_key_env",
    "headers",
    "max_concurrency",
    "rpm",
    "tpm",
    "timeout",
    "max_retries",
    "retry_on_429",
    "backoff",
    "backoff_max",
    "name",
    "max_response_bytes",
    "max_retry_after",
    "group_by_prompt",
}
_PROMPT = {"endpoint", "endpoints", "template", "labels", "params", "system"}


class ProbeConfigError(InvalidInputError):
    """A probe config is invalid; the message names the file, the line and the field."""


@dataclass
class ProbeConfig:
    """A loaded probe config: what to probe, with what, where to keep the answers."""

    path: Path
    models: list[Any]
    texts: list[str]
    text_pairs: list[str] | None
    probe_set: dict[str, Any]
    cache: Path
    outputs: Path
    concurrency: int | None = None
    deadline: float | None = None
    budget: Budget | None = None
    prices: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)

    def limits(self) -> dict[str, Any]:
        """The ``[limits]`` table as keyword arguments of :func:`taskspace.probe`."""
        return {
            "budget": self.budget,
            "deadline": self.deadline,
            "prices": self.prices or None,
            "concurrency": self.concurrency,
        }


class _Locator:
    """Finds the line of a table or key in the TOML source (tomllib keeps no positions)."""

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.lines = source.splitlines()

    def line(self, table: tuple[str, ...], key: str | None = None) -> int | None:
        start = self._table(table) if table else 0
        if start is None:  # an inline or dotted table: look for the name anywhere
            return self._key(key or table[-1], 0)
        if key is None:
            return start or None
        return self._key(key, start) or start or None

    def _table(self, table: tuple[str, ...]) -> int | None:
        parts = [rf"(?:\"{re.escape(t)}\"|'{re.escape(t)}'|{re.escape(t)})" for t in table]
        pattern = re.compile(r"^\s*\[\s*" + r"\s*\.\s*".join(parts) + r"\s*\]")
        for number, text in enumerate(self.lines, start=1):
            if pattern.match(text):
                return number
        return None

    def _key(self, key: str, start: int) -> int | None:
        pattern = re.compile(rf"^\s*(?:\"{re.escape(key)}\"|'{re.escape(key)}'|{re.escape(key)})\s*=")
        inline = re.compile(rf"[{{,]\s*(?:\"{re.escape(key)}\"|{re.escape(key)})\s*=")
        for number in range(start + 1, len(self.lines) + 1):
            text = self.lines[number - 1]
            if number > start + 1 and start and text.lstrip().startswith("["):
                break
            if pattern.match(text) or inline.search(text):
                return number
        return None

    def error(self, table: tuple[str, ...], key: str | None, message: str) -> ProbeConfigError:
        number = self.line(table, key)
        where = f"line {number}" if number else "(line unknown)"
        name = ".".join((*table, key) if key else table) or "(top level)"
        return ProbeConfigError(f"{self.path}, {where}, field {name}: {message}")


def _culprit(table: Mapping[str, Any], message: str) -> str | None:
    """The key of ``table`` an error message is about: the one it starts with, else the first it
    names (the message comes from a constructor that knows only its argument names)."""
    keys = sorted(table, key=len, reverse=True)  # "max_tokens" before "max"
    return next((k for k in keys if message.startswith(k)), None) or next(
        (k for k in keys if k in message), None
    )


def _table(loc: _Locator, config: Mapping[str, Any], key: str, allowed: set[str]) -> dict[str, Any]:
    value = config.get(key, {})
    if not isinstance(value, dict):
        raise loc.error((), key, f"must be a table, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise loc.error((key,), unknown[0], f"unknown key; allowed: {', '.join(sorted(allowed))}")
    return value


def _number(loc: _Locator, table: tuple[str, ...], key: str, value: Any, *, integer: bool) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not float(value) > 0:
        what = "a positive integer" if integer else "a positive number"
        raise loc.error(table, key, f"must be {what}, got {value!r}")
    return value


def _path(loc: _Locator, table: tuple[str, ...], key: str, value: Any, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise loc.error(table, key, f"must be a file path (a string), got {value!r}")
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _probe_texts(
    loc: _Locator, table: dict[str, Any], base: Path
) -> tuple[list[str], list[str] | None, dict]:
    from taskspace.datasets.files import read_texts
    from taskspace.probing.texts import probe_set

    n = table.get("n")
    if n is not None:
        n = _number(loc, ("probe_set",), "n", n, integer=True)
    if "file" in table and "version" in table:
        raise loc.error(("probe_set",), "file", "give either 'file' or 'version', not both")
    if "file" in table:
        file = _path(loc, ("probe_set",), "file", table["file"], base)
        try:
            texts, pairs = read_texts(file)
        except InvalidInputError as e:
            raise loc.error(("probe_set",), "file", str(e)) from None
        if n is not None:
            texts = texts[:n]
            pairs = None if pairs is None else pairs[:n]
        return texts, pairs, {"file": str(file), "n": len(texts)}
    version = table.get("version", 1)
    try:
        texts = probe_set(version=version)
    except (TaskspaceError, TypeError) as e:
        raise loc.error(("probe_set",), "version", str(e)) from None
    if n is not None:
        if n > len(texts):
            raise loc.error(
                ("probe_set",), "n", f"must be at most {len(texts)} (the texts of version {version})"
            )
        texts = texts[:n]
    return texts, None, {"version": version, "n": len(texts)}


def _endpoint(loc: _Locator, name: str, table: Any) -> OpenAIEndpoint:
    where = ("endpoints", name)
    if not isinstance(table, dict):
        raise loc.error(("endpoints",), name, "must be a table")
    unknown = sorted(set(table) - _ENDPOINT)
    if unknown:
        raise loc.error(where, unknown[0], f"unknown key; allowed: {', '.join(sorted(_ENDPOINT))}")
    for key in ("base_url", "model"):
        if key not in table:
            raise loc.error(where, None, f"missing required key {key!r}")
    env = table.get("api_key_env")
    if isinstance(env, str) and (env.startswith(("sk-", "Bearer ")) or len(env) > 64):
        raise loc.error(
            where, "api_key_env", "must name an environment variable (e.g. OPENAI_API_KEY), not hold a key"
        )
    try:
        return OpenAIEndpoint(**table)
    except (TaskspaceError, TypeError) as e:
        raise loc.error(where, _culprit(table, str(e)), str(e)) from None


def _prompts(
    loc: _Locator, prompts: dict[str, Any], endpoints: dict[str, OpenAIEndpoint]
) -> tuple[list[Prompted], dict[str, dict[str, Any]]]:
    models: list[Prompted] = []
    meta: dict[str, dict[str, Any]] = {}
    for name, table in prompts.items():
        where = ("prompts", name)
        if not isinstance(table, dict):
            raise loc.error(("prompts",), name, "must be a table")
        unknown = sorted(set(table) - _PROMPT)
        if unknown:
            raise loc.error(where, unknown[0], f"unknown key; allowed: {', '.join(sorted(_PROMPT))}")
        if ("endpoint" in table) == ("endpoints" in table):
            raise loc.error(where, None, "needs exactly one of 'endpoint' (a name) and 'endpoints' (a list)")
        key = "endpoint" if "endpoint" in table else "endpoints"
        names = [table[key]] if key == "endpoint" else table[key]
        if not isinstance(names, list) or not names or not all(isinstance(x, str) for x in names):
            raise loc.error(where, key, "must name endpoints defined in [endpoints.NAME] tables")
        if "template" not in table:
            raise loc.error(where, None, "missing required key 'template'")
        for ep_name in names:
            if ep_name not in endpoints:
                known = ", ".join(endpoints) or "none defined"
                raise loc.error(where, key, f"no endpoint named {ep_name!r} (endpoints: {known})")
            full = name if len(names) == 1 else f"{name}@{ep_name}"
            try:
                models.append(
                    Prompted(
                        endpoints[ep_name],
                        table["template"],
                        labels=table.get("labels"),
                        params=table.get("params"),
                        name=full,
                        system=table.get("system"),
                    )
                )
            except (TaskspaceError, TypeError) as e:
                field_name = next(
                    (k for k in ("template", "labels", "params", "system") if k in str(e)), None
                )
                raise loc.error(where, field_name, str(e)) from None
            meta[full] = {
                "endpoint": ep_name,
                "base_url": endpoints[ep_name].base_url,
                "endpoint_model": endpoints[ep_name].model,
                "template": table["template"],
                "prompt": name,
            }
    return models, meta


def _local_models(loc: _Locator, tables: dict[str, Any], base: Path) -> list[Any]:
    # The table format is serve-models' (taskspace.models.config); its per-model builder is reused.
    from taskspace.models.config import model_from_table

    out = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise loc.error(("models",), name, "must be a table")
        try:
            out.append(model_from_table(name, table, base))
        except (TaskspaceError, TypeError, OSError) as e:
            raise loc.error(("models", name), _culprit(table, str(e)), str(e)) from None
    return out


def load_probe_config(path: str | Path) -> ProbeConfig:
    """Load and check a probe config (see the module doc for the format).

    Raises :class:`ProbeConfigError` (an :class:`~taskspace.InvalidInputError`) naming the file,
    line and field at fault; nothing is sent anywhere while loading. Environment variables named by
    ``api_key_env`` must be set.
    """
    p = Path(path)
    if not p.is_file():
        raise ProbeConfigError(f"{p}: no such config file")
    source = p.read_bytes().decode("utf-8", errors="replace")
    loc = _Locator(p, source)
    try:
        config = _toml.loads(source)
    except _toml.TOMLDecodeError as e:
        raise ProbeConfigError(f"{p}: not valid TOML: {e}") from None
    unknown = sorted(set(config) - _TOP)
    if unknown:
        raise loc.error((), unknown[0], f"unknown top-level key; allowed: {', '.join(sorted(_TOP))}")
    base = p.parent
    texts, pairs, set_info = _probe_texts(loc, _table(loc, config, "probe_set", _PROBE_SET), base)
    output = _table(loc, config, "output", _OUTPUT)
    cache = _path(loc, ("output",), "cache", output.get("cache", "probe.sqlite"), base)
    outputs = _path(loc, ("output",), "outputs", output.get("outputs", "outputs.jsonl"), base)
    limits = _limits(loc, _table(loc, config, "limits", _LIMITS))
    models, meta = _models(loc, config, base)
    _check_prompted(loc, models, meta, pairs)
    return ProbeConfig(
        path=p,
        models=models,
        texts=texts,
        text_pairs=pairs,
        probe_set=set_info,
        cache=cache,
        outputs=outputs,
        meta=meta,
        **limits,
    )


def _limits(loc: _Locator, limits: dict[str, Any]) -> dict[str, Any]:
    """The ``[limits]`` table checked: concurrency, deadline, budget and prices, as
    :class:`ProbeConfig` fields."""
    concurrency = limits.get("concurrency")
    if concurrency is not None:
        concurrency = _number(loc, ("limits",), "concurrency", concurrency, integer=True)
    deadline = limits.get("deadline")
    if deadline is not None:
        deadline = float(_number(loc, ("limits",), "deadline", deadline, integer=False))
    budget = None
    if "budget" in limits:
        b = limits["budget"]
        if not isinstance(b, dict) or not b or set(b) - {"tokens", "cost"}:
            raise loc.error(("limits",), "budget", "must be a table with 'tokens' and/or 'cost'")
        try:
            budget = Budget(tokens=b.get("tokens"), cost=b.get("cost"))
        except TaskspaceError as e:
            raise loc.error(("limits",), "budget", str(e)) from None
    prices = limits.get("prices", {})
    if not isinstance(prices, dict):
        raise loc.error(("limits",), "prices", "must be a table: model -> { prompt = ..., completion = ... }")
    for model, entry in prices.items():
        ok = isinstance(entry, dict) and set(entry) == {"prompt", "completion"}
        ok = ok and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in entry.values()
        )
        if not ok:
            raise loc.error(
                ("limits", "prices"), model, "must be { prompt = X, completion = Y } in money per 1M tokens"
            )
    return {"concurrency": concurrency, "deadline": deadline, "budget": budget, "prices": prices}


def _models(
    loc: _Locator, config: Mapping[str, Any], base: Path
) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    """The prompted models (``[endpoints]`` x ``[prompts]``) then the local ones (``[models]``),
    with where each came from; every endpoint must be used and every name unique."""
    endpoints_table = config.get("endpoints", {})
    if not isinstance(endpoints_table, dict):
        raise loc.error((), "endpoints", "must hold [endpoints.NAME] tables")
    endpoints = {name: _endpoint(loc, name, t) for name, t in endpoints_table.items()}
    prompts_table = config.get("prompts", {})
    if not isinstance(prompts_table, dict):
        raise loc.error((), "prompts", "must hold [prompts.NAME] tables")
    prompted, meta = _prompts(loc, prompts_table, endpoints)
    local_table = config.get("models", {})
    if not isinstance(local_table, dict):
        raise loc.error((), "models", "must hold [models.NAME] tables")
    local = _local_models(loc, local_table, base)
    for m in local:
        meta[m.name] = {"local": m.kind}
    unused = sorted(set(endpoints) - {m["endpoint"] for m in meta.values() if "endpoint" in m})
    if unused:
        raise loc.error(
            ("endpoints", unused[0]), None, "is used by no prompt ([prompts.NAME] endpoint = ...)"
        )
    models = [*prompted, *local]
    if not models:
        raise ProbeConfigError(
            f"{loc.path}: defines no models; add [prompts.NAME] tables (with [endpoints.NAME]) or "
            "[models.NAME] tables"
        )
    names = [m.name for m in models]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise loc.error(("models",), dup, "the same name is used by a prompt and a local model")
    return models, meta


def _check_prompted(
    loc: _Locator, models: list[Any], meta: dict[str, dict[str, Any]], pairs: list[str] | None
) -> None:
    """Every prompt's template fits the probe set (``{text_pair}`` iff it has pairs) and every
    endpoint's API key variable is set."""
    for m in models:
        if not isinstance(m, Prompted):
            continue
        if m.uses_pairs and pairs is None:
            raise loc.error(
                ("prompts", meta[m.name]["prompt"]),
                "template",
                "uses {text_pair} but the probe set has no text_pair",
            )
        if not m.uses_pairs and pairs is not None:
            raise loc.error(
                ("prompts", meta[m.name]["prompt"]),
                "template",
                "has no {text_pair} but the probe set has text pairs",
            )
        try:
            m.endpoint.check_api_key()
        except TaskspaceError as e:
            raise loc.error(("endpoints", meta[m.name]["endpoint"]), "api_key_env", str(e)) from None
