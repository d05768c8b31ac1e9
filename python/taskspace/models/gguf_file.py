"""Reading a GGUF model file: its metadata, its vocabulary and its weights as float32 arrays.

GGUF is llama.cpp's single-file model format: a header of typed key/value metadata (the vocabulary
among it) and tensor descriptions, then the tensors. This module reads the header itself from a
memory map (one numpy view per numeric array: a 262k-token vocabulary reads in a fraction of a
second) and lets the ``gguf`` package (``pip install "taskspace[llm]"``) dequantize each tensor
(Q4_K, Q5_0, Q6_K, Q8_0, Q4_1, ...) with numpy when it is asked for. It checks the file before
anything heavy happens and names what is wrong.
"""

from __future__ import annotations

import os
import struct
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


_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


class _Cursor:
    """Reads GGUF's little-endian header fields from a memory map."""

    def __init__(self, buf: memoryview) -> None:
        self.buf, self.at = buf, 0

    def scalar(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.buf, self.at)
        self.at += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.scalar("<Q")
        text = bytes(self.buf[self.at : self.at + n]).decode("utf-8", errors="replace")
        self.at += n
        return text

    def value(self, kind: int) -> Any:
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item, n = self.scalar("<I"), self.scalar("<Q")
            if item in _SCALARS and item != 7:  # numbers: one numpy view instead of n reads
                dtype = np.dtype(_SCALARS[item])
                out = np.frombuffer(self.buf, dtype=dtype, count=n, offset=self.at)
                self.at += n * dtype.itemsize
                return out
            return [self.value(item) for _ in range(n)]
        if kind not in _SCALARS:
            raise ValueError(f"unknown GGUF value type {kind}")
        return self.scalar(_SCALARS[kind])


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]  # as llama.cpp lists it: ne0 (contiguous) first
    qtype: int
    offset: int


@dataclass(frozen=True)
class GGUFFile:
    """An opened GGUF file: ``metadata`` (key -> value; arrays as lists or numpy arrays) and its
    tensors, read from a memory map on demand."""

    path: Path
    architecture: str
    metadata: dict[str, Any]
    tensors: dict[str, _Tensor]
    data: np.ndarray  # the file's bytes (memory-mapped)

    def hparam(self, key: str, default: Any = None) -> Any:
        """``{architecture}.{key}`` from the metadata (e.g. ``"block_count"``)."""
        return self.metadata.get(f"{self.architecture}.{key}", default)

    def array(self, key: str) -> list[Any]:
        """A metadata array (the vocabulary's tokens, scores, types or merges); [] when absent."""
        value = self.metadata.get(key)
        return [] if value is None else list(value.tolist() if isinstance(value, np.ndarray) else value)

    def tensor_names(self) -> list[str]:
        return list(self.tensors)

    def weight(self, name: str) -> np.ndarray:
        """The tensor as float32, shaped as llama.cpp lists it reversed (rows = output features)."""
        gguf = _gguf_module()
        t = self.tensors.get(name)
        if t is None:
            raise InvalidInputError(f"{self.path}: the model has no tensor {name!r}")
        qtype = gguf.GGMLQuantizationType(t.qtype)
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        rows = int(np.prod(t.shape[1:], dtype=np.int64))
        nbytes = rows * (t.shape[0] // block) * size
        if t.offset + nbytes > self.data.size:
            raise InvalidInputError(
                f"{self.path}: tensor {name!r} runs past the end of the file (truncated?)"
            )
        raw = self.data[t.offset : t.offset + nbytes].reshape(rows, -1)
        if qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            raw = raw.view(np.float32 if qtype == gguf.GGMLQuantizationType.F32 else np.float16)
            return np.asarray(raw, dtype=np.float32).reshape(tuple(reversed(t.shape)))
        out = gguf.quants.dequantize(raw, qtype)
        return np.asarray(out, dtype=np.float32).reshape(tuple(reversed(t.shape)))


def _read_header(data: np.ndarray) -> tuple[dict[str, Any], dict[str, _Tensor]]:
    cur = _Cursor(memoryview(data))
    if bytes(cur.buf[:4]) != _MAGIC:
        raise ValueError("no GGUF magic")
    cur.at = 4
    version = cur.scalar("<I")
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} is not supported (2 or 3)")
    n_tensors, n_kv = cur.scalar("<Q"), cur.scalar("<Q")
    metadata = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.scalar("<I"))
    infos = []
    for _ in range(n_tensors):
        name = cur.string()
        dims = tuple(int(cur.scalar("<Q")) for _ in range(cur.scalar("<I")))
        infos.append((name, dims, cur.scalar("<I"), cur.scalar("<Q")))
    align = int(metadata.get("general.alignment", 32))
    start = (cur.at + align - 1) // align * align
    tensors = {name: _Tensor(name, dims, qtype, start + offset) for name, dims, qtype, offset in infos}
    return metadata, tensors


def open_gguf(path: str | os.PathLike[str]) -> GGUFFile:
    """Open and check a GGUF file: it exists, starts with the GGUF magic, and holds a supported
    architecture. Raises :class:`~taskspace.InvalidInputError` naming the path otherwise."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InvalidInputError(f"GGUF model file {str(p)!r} does not exist")
    with p.open("rb") as f:
        if f.read(4) != _MAGIC:
            raise InvalidInputError(f"{p} is not a GGUF file (it does not start with the GGUF magic bytes)")
    _gguf_module()
    data = np.memmap(p, dtype=np.uint8, mode="r")
    try:
        metadata, tensors = _read_header(data)
    except (ValueError, struct.error, UnicodeDecodeError) as e:
        raise InvalidInputError(f"{p}: not a readable GGUF file: {e}") from None
    arch = metadata.get("general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise InvalidInputError(
            f"{p}: architecture {arch!r} is not supported by taskspace's GGUF runtime "
            f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    return GGUFFile(p, arch, metadata, tensors, data)
