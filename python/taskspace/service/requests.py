"""Reading the service's request bodies into typed values, and the error a bad request gets.

Every function here either returns a checked value or raises :class:`ApiError` with a stable
``code`` and a message that names the field; nothing here touches the space. The bounds come from
:class:`~taskspace.service.limits.Limits`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from taskspace.embedding.task_embedding import TaskEmbedding
from taskspace.errors import TaskspaceError
from taskspace.service.limits import Limits

__all__ = [
    "ADD_FIELDS",
    "EMBED_FIELDS",
    "ERROR_CODE",
    "PAIR_FIELDS",
    "SEARCH_FIELDS",
    "SELECT_FIELDS",
    "AddRequest",
    "ApiError",
    "EmbedRequest",
    "Pairs",
    "SearchRequest",
    "SelectRequest",
    "TasksQuery",
    "invalid",
    "parse_add",
    "parse_embed",
    "parse_json",
    "parse_search",
    "parse_select",
    "parse_tasks_query",
    "read_pairs",
    "reject_unknown",
]

#: The fields that describe pairs to embed (see :func:`read_pairs`).
PAIR_FIELDS = frozenset({"pairs", "texts", "outputs", "text_pairs", "mode"})
#: The fields each endpoint takes.
EMBED_FIELDS = PAIR_FIELDS | {"kind", "name"}
SEARCH_FIELDS = frozenset({"name", "vector", "embedding", "fingerprint", "k", "kind"})
SELECT_FIELDS = PAIR_FIELDS | {"dataset", "embedding", "candidates"}
ADD_FIELDS = PAIR_FIELDS | {"embedding", "name", "kind", "meta", "replace"}
#: Where an error response keeps its code for the metrics (typed keys exist from aiohttp 3.12 on).
ERROR_CODE: Any = web.ResponseKey("error_code", str) if hasattr(web, "ResponseKey") else "error_code"
_KINDS = ("dataset", "model")


class ApiError(Exception):
    """An error answered as ``{"error": {"code": code, "message": message}}`` with HTTP ``status``."""

    def __init__(self, status: int, code: str, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.close = close  # the connection cannot carry another request (a body was cut short)

    def response(self) -> web.Response:
        """The JSON error response (``WWW-Authenticate`` on a 401; the code kept under :data:`ERROR_CODE`)."""
        body = json.dumps({"error": {"code": self.code, "message": self.message}})
        response = web.json_response(text=body, status=self.status)
        if self.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="taskspace"'
        if self.close:
            response.force_close()
        response[ERROR_CODE] = self.code
        return response


def invalid(message: str) -> ApiError:
    """A 400 ``invalid_request`` error."""
    return ApiError(400, "invalid_request", message)


# -- typed requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pairs:
    """Inputs of a task to embed, as the library takes them."""

    texts: list[Any]
    outputs: list[Any]
    text_pairs: list[Any] | None
    mode: str | None  # None: the space's mode ("label" for an empty space)


@dataclass(frozen=True)
class EmbedRequest:
    """``POST /v1/embed``: embed ``pairs`` as a task of ``kind`` named ``name``."""

    pairs: Pairs
    kind: str
    name: str


@dataclass(frozen=True)
class SearchRequest:
    """``POST /v1/search``: the ``k`` nearest tasks (of ``kind``) to a name, a vector or an embedding.

    ``fingerprint`` is the surrogate a bare vector comes from, when the client said so."""

    query: str | np.ndarray | TaskEmbedding
    k: int
    kind: str | None
    fingerprint: str | None


@dataclass(frozen=True)
class SelectRequest:
    """``POST /v1/select``: rank ``candidates`` for a dataset given by name or embedding (``dataset``),
    or as pairs to embed first (``pairs``); exactly one of the two is set."""

    dataset: str | TaskEmbedding | None
    pairs: Pairs | None
    candidates: list[Any] | None


@dataclass(frozen=True)
class AddRequest:
    """``POST /v1/tasks``: store ``embedding``, or embed ``pairs`` as ``name`` first; exactly one of
    ``embedding`` and ``pairs`` is set."""

    replace: bool
    embedding: TaskEmbedding | None
    pairs: Pairs | None
    name: str = ""
    kind: str = "dataset"
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class TasksQuery:
    """``GET /v1/tasks``: one page of the stored names (of ``kind``)."""

    kind: str | None
    offset: int
    limit: int


# -- parsing each endpoint's body ---------------------------------------------------------------------


def parse_embed(body: dict[str, Any], limits: Limits) -> EmbedRequest:
    """The body of ``POST /v1/embed`` (already limited to :data:`EMBED_FIELDS`)."""
    kind = _choice(body, "kind", _KINDS, "dataset")
    name = _string(body, "name", default="") or ""
    return EmbedRequest(read_pairs(body, limits, "/v1/embed"), kind, name)


def parse_search(body: dict[str, Any], limits: Limits) -> SearchRequest:
    """The body of ``POST /v1/search`` (already limited to :data:`SEARCH_FIELDS`)."""
    k = _int(body.get("k", 5), "k", 1, limits.max_k)
    kind = _choice(body, "kind", (None, *_KINDS), None)
    which = _one_of(body, ("name", "vector", "embedding"), "/v1/search")
    if "fingerprint" in body and which != "vector":
        raise invalid("'fingerprint' goes with 'vector' (a name or an embedding carries its own)")
    fingerprint = _string(body, "fingerprint")
    query: Any = body[which]
    if which == "name" and not isinstance(query, str):
        raise invalid(f"'name' must be a string, got {type(query).__name__}")
    if which == "vector":
        query = _vector(query, "vector")
    if which == "embedding":
        query = _embedding(query)
    return SearchRequest(query, k, kind, fingerprint)


def parse_select(body: dict[str, Any], limits: Limits) -> SelectRequest:
    """The body of ``POST /v1/select`` (already limited to :data:`SELECT_FIELDS`)."""
    candidates = body.get("candidates")
    if candidates is not None:
        candidates = _batch(candidates, "candidates", limits)
    which = _one_of(body, ("dataset", "embedding", "pairs", "texts"), "/v1/select")
    if which not in ("dataset", "embedding"):
        return SelectRequest(None, read_pairs(body, limits, "/v1/select"), candidates)
    extra = sorted(set(body) & PAIR_FIELDS)
    if extra:
        raise invalid(f"/v1/select: {extra} go with 'pairs' or 'texts', not with {which!r}")
    if which == "embedding":
        return SelectRequest(_embedding(body["embedding"]), None, candidates)
    dataset = _string(body, "dataset")
    if dataset is None:
        raise invalid("'dataset' must be a string (a stored name), got null")
    return SelectRequest(dataset, None, candidates)


def parse_add(body: dict[str, Any], limits: Limits) -> AddRequest:
    """The body of ``POST /v1/tasks`` (already limited to :data:`ADD_FIELDS`)."""
    replace = body.get("replace", False)
    if not isinstance(replace, bool):
        raise invalid(f"'replace' must be true or false, got {replace!r}")
    if "embedding" in body:
        clash = sorted(set(body) & (PAIR_FIELDS | {"name", "kind", "meta"}))
        if clash:
            raise invalid(f"'embedding' carries its own name, kind and meta; drop {clash}")
        return AddRequest(replace, _embedding(body["embedding"]), None)
    name = _string(body, "name")
    if not name:
        raise invalid("POST /v1/tasks needs a non-empty 'name'")
    _check_lengths([name], "name", limits)
    kind = _choice(body, "kind", _KINDS, "dataset")
    meta = body.get("meta", {})
    if not isinstance(meta, dict):
        raise invalid(f"'meta' must be an object, got {type(meta).__name__}")
    return AddRequest(replace, None, read_pairs(body, limits, "POST /v1/tasks"), name, kind, meta)


def parse_tasks_query(query: Any) -> TasksQuery:
    """The query string of ``GET /v1/tasks`` (``kind``, ``offset``, ``limit``)."""
    unknown = sorted(set(query) - {"kind", "offset", "limit"})
    if unknown:
        raise invalid(f"GET /v1/tasks takes the query parameters kind, offset, limit; not {unknown}")
    kind = _choice(dict(query), "kind", (None, *_KINDS), None)
    offset = _int(_query_int(query, "offset", 0), "offset", 0, 2**62)
    limit = _int(_query_int(query, "limit", 1000), "limit", 1, 100_000)
    return TasksQuery(kind, offset, limit)


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object (400 ``bad_json`` otherwise)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", f"the body must be a JSON object, got {type(body).__name__}")
    return body


def reject_unknown(body: dict[str, Any], allowed: frozenset[str], endpoint: str) -> None:
    """Refuse a body with a field ``endpoint`` does not take (a typo must not be ignored)."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid(f"{endpoint} does not take the field(s) {unknown}; it takes {sorted(allowed)}")


# -- pairs ------------------------------------------------------------------------------------------


def read_pairs(body: dict[str, Any], limits: Limits, endpoint: str) -> Pairs:
    """``{"pairs": [[input, output], ...]}`` (input: a text or [text, text_pair]) or
    ``{"texts": [...], "outputs": [...], "text_pairs": [...]}``, plus an optional ``mode``."""
    mode = _choice(body, "mode", (None, "label", "text"), None)
    if "pairs" in body:
        for other in ("texts", "outputs", "text_pairs"):
            if other in body:
                raise invalid(f"{endpoint}: give 'pairs' or 'texts' with 'outputs', not both ({other!r})")
        texts, outputs, text_pairs = _split_pairs(_batch(body["pairs"], "pairs", limits))
    elif "texts" in body:
        texts = _batch(body["texts"], "texts", limits)
        if "outputs" not in body:
            raise invalid(f"{endpoint}: 'texts' needs 'outputs' (labels, label distributions or texts)")
        outputs = _batch(body["outputs"], "outputs", limits)
        text_pairs = (
            None if body.get("text_pairs") is None else _batch(body["text_pairs"], "text_pairs", limits)
        )
    else:
        raise invalid(f"{endpoint} needs 'pairs', or 'texts' with 'outputs'")
    _check_lengths(texts, "texts", limits)
    _check_lengths(outputs, "outputs", limits)
    if text_pairs is not None:
        _check_lengths(text_pairs, "text_pairs", limits)
    return Pairs(texts, outputs, text_pairs, mode)


def _split_pairs(rows: list[Any]) -> tuple[list[Any], list[Any], list[Any] | None]:
    """Texts, outputs and second texts (``None`` when no input is a [text, text_pair])."""
    texts: list[Any] = []
    second: list[Any] = []
    outputs: list[Any] = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != 2:
            raise invalid(f"pairs[{i}] must be [input, output], got {json.dumps(row)[:80]}")
        x, y = row
        if isinstance(x, list):
            if len(x) != 2:
                raise invalid(f"pairs[{i}][0] must be a text or [text, text_pair]")
            texts.append(x[0])
            second.append(x[1])
        else:
            texts.append(x)
        outputs.append(y)
    if second and len(second) != len(texts):
        raise invalid("pairs mix single texts and [text, text_pair] inputs; use one form")
    return texts, outputs, second or None


# -- single fields ----------------------------------------------------------------------------------


def _one_of(body: dict[str, Any], names: tuple[str, ...], endpoint: str) -> str:
    given = [n for n in names if n in body]
    if len(given) != 1:
        choices = " or ".join(repr(n) for n in names)
        got = f"got {given}" if given else "got none"
        raise invalid(f"{endpoint} needs exactly one of {choices}; {got}")
    return given[0]


def _string(body: dict[str, Any], name: str, *, default: str | None = None) -> str | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{name!r} must be a string, got {type(value).__name__}")
    return value


def _choice(body: dict[str, Any], name: str, choices: tuple[Any, ...], default: Any) -> Any:
    value = body.get(name, default)
    if value not in choices:
        raise invalid(f"{name!r} must be one of {list(choices)}, got {value!r}")
    return value


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name!r} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise invalid(f"{name!r} must be in {lo}..{hi}, got {value}")
    return value


def _query_int(q: Any, name: str, default: int) -> Any:
    value = q.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise invalid(f"query parameter {name!r} must be an integer, got {value!r}") from None


def _batch(value: Any, name: str, limits: Limits) -> list[Any]:
    if not isinstance(value, list):
        raise invalid(f"{name!r} must be a list, got {type(value).__name__}")
    if not value:
        raise invalid(f"{name!r} is empty")
    if len(value) > limits.max_batch:
        raise ApiError(
            413, "batch_too_large", f"{name!r} holds {len(value)} items; the limit is {limits.max_batch}"
        )
    return value


def _check_lengths(values: list[Any], name: str, limits: Limits) -> None:
    for i, v in enumerate(values):
        if isinstance(v, str) and len(v) > limits.max_text_chars:
            raise ApiError(
                413,
                "text_too_long",
                f"{name}[{i}] has {len(v)} characters; the limit is {limits.max_text_chars}",
            )


_F32_MAX = float(np.finfo(np.float32).max)


def _vector(value: Any, name: str) -> np.ndarray:
    """A JSON list of numbers as float32; every element a finite number within float32's range."""
    if not isinstance(value, list) or not value:
        raise invalid(f"{name!r} must be a non-empty list of numbers, got {json.dumps(value)[:40]}")
    for i, x in enumerate(value):
        if type(x) not in (int, float):  # bool, None, str, list are not numbers here
            raise invalid(f"{name!r}[{i}] must be a number, got {json.dumps(x)[:40]}")
    try:
        v = np.array(value, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        v = np.array([float(x) if abs(x) < 2**1000 else np.inf for x in value], dtype=np.float64)
    bad = np.flatnonzero(~(np.abs(v) <= _F32_MAX))
    if bad.size:
        i = int(bad[0])
        raise invalid(
            f"{name!r}[{i}] = {str(value[i])[:40]} is not a finite float32 number (|x| <= {_F32_MAX:.4g})"
        )
    return v.astype(np.float32)


def _embedding(value: Any) -> TaskEmbedding:
    if not isinstance(value, dict):
        raise invalid(f"'embedding' must be an object (as /v1/embed returns), got {type(value).__name__}")
    try:
        return TaskEmbedding.from_dict(value)
    except (TaskspaceError, TypeError) as e:
        raise invalid(f"'embedding': {e}") from None
