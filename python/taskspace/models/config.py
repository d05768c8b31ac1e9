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

    [models.gemma]                         # a GGUF language model (pip install "taskspace[llm]")
    gguf = "~/.cache/taskspace-models/gemma-3-270m-q4_k_m.gguf"  # relative to this file, or ~ / absolute
    n_threads = 1                          # optional: BLAS threads (default 1)
    n_ctx = 2048                           # optional: longest prompt + answer in tokens

GGUF keys: ``gguf``, ``n_threads``, ``n_ctx`` (``kind = "gguf"`` may be given; the file is opened
and checked when the config is loaded, so a wrong path fails before the server starts). Zero-shot
keys: ``template``, ``label_descriptions``, ``temperature``. In-context keys:
``demonstrations`` or ``demonstrations_file`` (exactly one), ``k``, ``labels``, ``temperature``,
``smoothing``. Unknown keys are errors (they are usually typos). All models use the built-in
default encoder; use the Python API for another encoder.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from taskspace import _toml
from taskspace.datasets.files import jsonl_rows, line_error
from taskspace.errors import InvalidInputError
from taskspace.models.gguf_model import GGUFModel
from taskspace.models.in_context import InContext
from taskspace.models.prompt_model import PromptModel
from taskspace.models.zero_shot import ZeroShot

__all__ = ["load_models", "model_from_table"]

_GGUF_KEYS = {"kind", "gguf", "n_threads", "n_ctx"}
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


def load_models(path: str | Path) -> dict[str, PromptModel | GGUFModel]:
    """The models a TOML config defines, by name (in file order).

    Raises :class:`~taskspace.InvalidInputError` naming the file and the model for anything wrong
    in it, and ``FileNotFoundError`` when a file is missing.

    Example:
        >>> import pathlib, tempfile
        >>> from taskspace.models.config import load_models
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
        config = _toml.loads(raw.decode("utf-8"))
    except (_toml.TOMLDecodeError, UnicodeDecodeError) as e:
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
            models[name] = model_from_table(name, table, path.parent)
        except (InvalidInputError, TypeError) as e:
            raise InvalidInputError(f"{where}: {e}") from e
    return models


def model_from_table(name: str, table: dict[str, Any], base: Path) -> PromptModel | GGUFModel:
    """The model one ``[models.NAME]`` table describes (see the module doc for the keys); a
    ``demonstrations_file`` is read relative to ``base``. Raises
    :class:`~taskspace.InvalidInputError` or ``TypeError`` (naming the key) for a wrong table and
    ``FileNotFoundError`` for a missing file; the caller adds where the table is.

    Example:
        >>> from pathlib import Path
        >>> table = {"kind": "zero-shot", "template": "It is {}.", "label_descriptions": {"hot": "hot", "cold": "cold"}}
        >>> model_from_table("weather", table, Path(".")).name
        'weather'
    """
    kind = table.get("kind", "gguf" if "gguf" in table else None)
    if kind == "gguf":
        return _gguf(name, table, base)
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
            inline = _demonstrations(base / file)
        return InContext(
            inline,
            k=table.get("k", 5),
            labels=table.get("labels"),
            name=name,
            temperature=table.get("temperature", 0.1),
            smoothing=table.get("smoothing", 0.01),
        )
    raise InvalidInputError(f"kind must be 'zero-shot', 'in-context' or 'gguf', got {kind!r}")


def _gguf(name: str, table: dict[str, Any], base: Path) -> GGUFModel:
    _known(table, _GGUF_KEYS)
    file = table.get("gguf")
    if not isinstance(file, str):
        raise TypeError(f"gguf must be a path (str), got {type(file).__name__}")
    path = Path(file).expanduser()
    return GGUFModel(
        path if path.is_absolute() else base / path,
        n_threads=table.get("n_threads", 1),
        n_ctx=table.get("n_ctx", 2048),
        name=name,
    )


def _known(table: dict[str, Any], keys: set[str]) -> None:
    unknown = set(table) - keys
    if unknown:
        raise InvalidInputError(f"unknown keys {sorted(unknown)!r}; allowed: {sorted(keys)!r}")


def _demonstrations(path: Path) -> list[dict[str, Any]]:
    """The ``{"text", "label"}`` rows of a demonstrations file (JSON Lines)."""
    if not path.is_file():  # load_models promises FileNotFoundError for a missing file
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    demos = []
    for number, row in jsonl_rows(path):
        if not {"text", "label"} <= set(row):
            raise line_error(path, number, "expected an object with 'text' and 'label'")
        demos.append({"text": row["text"], "label": row["label"]})
    if not demos:
        raise InvalidInputError(f"{path} has no demonstrations")
    return demos
