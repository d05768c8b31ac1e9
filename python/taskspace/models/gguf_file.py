"""Reading a GGUF model file: its metadata, its vocabulary and its weights as float32 arrays.

GGUF is llama.cpp's single-file model format. The ``gguf`` package (``pip install "taskspace[llm]"``)
parses it and dequantizes every llama.cpp quantization (Q4_K, Q5_0, Q6_K, Q8_0, Q4_1, ...) with
numpy; this module checks the file before anything heavy happens and names what is wrong.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taskspace.errors import InvalidInputError

__all__ = ["SUPPORTED_ARCHITECTURES", "GGUFFile", "open_gguf"]

#: Transformer families the numpy runtime implements.
SUPPORTED_ARCHITECTURES = ("llama", "gemma3", "qwen2")
_MAGIC = b"GGUF"


def _gguf_module() -> Any:
    try:
        import gguf
    except ImportError:
        raise ImportError(
            "GGUF models need the optional runtime: pip install 'taskspace[llm]' (the gguf and tokenizers packages)"
        ) from None
    return gguf


@dataclass(frozen=True)
class GGUFFile:
    """An opened GGUF file: ``metadata`` (key -> value, vocabulary arrays excluded) and lazy tensors."""

    path: Path
    architecture: str
    metadata: dict[str, Any]
    _reader: Any

    def hparam(self, key: str, default: Any = None) -> Any:
        """``{architecture}.{key}`` from the metadata (e.g. ``"block_count"``)."""
        return self.metadata.get(f"{self.architecture}.{key}", default)

    def array(self, key: str) -> list[Any]:
        """A metadata array (the vocabulary's tokens, scores, types or merges); [] when absent."""
        field = self._reader.fields.get(key)
        if field is None:
            return []
        if field.types and field.types[-1].name == "STRING":
            return [bytes(field.parts[i]).decode("utf-8", errors="replace") for i in field.data]
        return [field.parts[i][0].item() for i in field.data]

    def tensor_names(self) -> list[str]:
        return [t.name for t in self._reader.tensors]

    def weight(self, name: str) -> np.ndarray:
        """The tensor as float32, shaped as llama.cpp lists it reversed (rows = output features)."""
        gguf = _gguf_module()
        for t in self._reader.tensors:
            if t.name == name:
                return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        raise InvalidInputError(f"{self.path}: the model has no tensor {name!r}")


def _scalar(field: Any) -> Any:
    try:
        return field.contents()
    except Exception:  # an array of a kind we do not need as metadata
        return None


def open_gguf(path: str | os.PathLike[str]) -> GGUFFile:
    """Open and check a GGUF file: it exists, starts with the GGUF magic, and holds a supported
    architecture. Raises :class:`~taskspace.InvalidInputError` naming the path otherwise."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InvalidInputError(f"GGUF model file {str(p)!r} does not exist")
    with p.open("rb") as f:
        if f.read(4) != _MAGIC:
            raise InvalidInputError(f"{p} is not a GGUF file (it does not start with the GGUF magic bytes)")
    gguf = _gguf_module()
    try:
        reader = gguf.GGUFReader(str(p))
    except Exception as e:  # the reader raises plain ValueErrors and struct errors on corrupt files
        raise InvalidInputError(f"{p}: not a readable GGUF file: {e}") from None
    metadata = {
        k: _scalar(f)
        for k, f in reader.fields.items()
        if not (
            k.startswith("tokenizer.ggml.")
            and k.rsplit(".", 1)[-1] in ("tokens", "scores", "token_type", "merges")
        )
    }
    arch = metadata.get("general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise InvalidInputError(
            f"{p}: architecture {arch!r} is not supported by taskspace's GGUF runtime "
            f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    return GGUFFile(p, arch, metadata, reader)
