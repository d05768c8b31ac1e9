"""Local models from a TOML file (the config of ``taskspace serve-models``).

Format: one table per model under ``[models.NAME]``; NAME is the name the server answers to (the
``model`` of a request). Keys mirror the Python constructors' arguments::

    [models.review-zero-shot]
    kind = "zero-shot"
    template = "This review is {}."
    temperature = 0.05                     # optional
    [models.review-zero-shot.label_descriptions]
    positive = ["good", "great, I loved it"]
    negative = "bad, I hated it"

    [models.review-few-shot]
    kind = "in-context"
    k = 3                                  # optional (default 5)
    labels = ["positive", "negative"]      # optional: label set and column order
    demonstrations = [
      { text = "I loved every minute of it", label = "positive" },
      { text = "a waste of money", label = "negative" },
    ]

    [models.topic-few-shot]
    kind = "in-context"
    demonstrations_file = "topic_demos.jsonl"  # {"text": ..., "label": ...} per line, relative to this file

Zero-shot keys: ``template``, ``label_descriptions``, ``temperature``. In-context keys:
``demonstrations`` or ``demonstrations_file`` (exactly one), ``k``, ``labels``, ``temperature``,
``smoothing``. Unknown keys are errors (they are usually typos). All models use the built-in
default encoder; use the Python API for another encoder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from taskspace.errors import InvalidInputError
from taskspace.models.in_context import InContext
from taskspace.models.prompt_model import PromptModel
from taskspace.models.zero_shot import ZeroShot

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["load_models"]

_ZERO_SHOT_KEYS = {"kind", "template", "label_descriptions", "temperature"}
_IN_CONTEXT_KEYS = {
    "kind",
    "demonstrations",
    "demonstrations_file",
    "k",
    "labels",
    "temperature",
    "smoothing",
}


def load_models(path: str | Path) -> dict[str, PromptModel]:
    """The models a TOML config defines, by name (in file order).

    Raises :class:`~taskspace.InvalidInputError` naming the file and the model for anything wrong
    in it, and ``FileNotFoundError`` when a file is missing.

    Example:
        >>> import pathlib, tempfile
        >>> from taskspace.models import load_models
        >>> config = '''
        ... [models.mood]
        ... kind = "zero-shot"
        ... template = "I feel {}."
        ... label_descriptions = { happy = "happy and glad", sad = "sad and low" }
        ... '''
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = pathlib.Path(tmp) / "models.toml"
        ...     _ = path.write_text(config)
        ...     models = load_models(path)
        >>> list(models), models["mood"].predict(["so glad today"])
        (['mood'], ['happy'])
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        config = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"{path} is not valid TOML: {e}") from None
    unknown = set(config) - {"models"}
    if unknown:
        raise InvalidInputError(
            f"{path}: unknown top-level keys {sorted(unknown)!r} (expected [models.NAME] tables)"
        )
    tables = config.get("models")
    if not isinstance(tables, dict) or not tables:
        raise InvalidInputError(f"{path} defines no models; add at least one [models.NAME] table")
    models: dict[str, PromptModel] = {}
    for name, table in tables.items():
        where = f"{path}: [models.{name}]"
        if not isinstance(table, dict):
            raise InvalidInputError(f"{where} must be a table")
        try:
            models[name] = _model(name, table, path.parent)
        except (InvalidInputError, TypeError) as e:
            raise InvalidInputError(f"{where}: {e}") from e
    return models


def _model(name: str, table: dict[str, Any], base: Path) -> PromptModel:
    kind = table.get("kind")
    if kind == "zero-shot":
        _known(table, _ZERO_SHOT_KEYS)
        for key in ("template", "label_descriptions"):
            if key not in table:
                raise InvalidInputError(f"a zero-shot model needs {key!r}")
        return ZeroShot(
            table["template"],
            table["label_descriptions"],
            name=name,
            temperature=table.get("temperature", 0.05),
        )
    if kind == "in-context":
        _known(table, _IN_CONTEXT_KEYS)
        inline: Any = table.get("demonstrations")
        file = table.get("demonstrations_file")
        if (inline is None) == (file is None):
            raise InvalidInputError(
                "an in-context model needs exactly one of 'demonstrations' and 'demonstrations_file'"
            )
        if file is not None:
            if not isinstance(file, str):
                raise TypeError(f"demonstrations_file must be a path (str), got {type(file).__name__}")
            inline = _jsonl(base / file)
        return InContext(
            inline,
            k=table.get("k", 5),
            labels=table.get("labels"),
            name=name,
            temperature=table.get("temperature", 0.1),
            smoothing=table.get("smoothing", 0.01),
        )
    raise InvalidInputError(f"kind must be 'zero-shot' or 'in-context', got {kind!r}")


def _known(table: dict[str, Any], keys: set[str]) -> None:
    unknown = set(table) - keys
    if unknown:
        raise InvalidInputError(f"unknown keys {sorted(unknown)!r}; allowed: {sorted(keys)!r}")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    demos = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidInputError(f"{path}, line {number}: not valid JSON: {e}") from None
            if not isinstance(row, dict) or not {"text", "label"} <= set(row):
                raise InvalidInputError(f"{path}, line {number}: expected an object with 'text' and 'label'")
            demos.append({"text": row["text"], "label": row["label"]})
    if not demos:
        raise InvalidInputError(f"{path} has no demonstrations")
    return demos
