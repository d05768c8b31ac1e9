"""A compact, persistable search index for many long task embeddings: projected HNSW + int8 re-rank.

:class:`CompactIndex` holds each item three ways:

* **int8 codes with a per-vector scale** (``dim + 4`` bytes): the unit vector ``u`` as
  ``round(u / s)`` with ``s = max|u| / 127``. Scores from the codes are within ~1e-4 of the exact
  cosine at dim 4,096 (the quantisation error of each coordinate is at most ``s / 2`` and they add up
  like a random walk), so they re-rank candidates; the caller recomputes the final cosines exactly.
* **a seeded random projection** to ``proj_dim`` (default 256) dimensions, float16 (``2 * proj_dim``
  bytes): scanned exactly when a search is restricted to few items (``allowed_ids``);
* **an hnswlib graph** per partition (a :class:`~taskspace.space.task_space.TaskSpace` uses one per
  kind, so a ``kind`` filter costs nothing) over the projected vectors, float32 (``4 * proj_dim +
  8 * M`` bytes plus hnswlib's overhead).

A search walks the graph for a pool of ``pool`` candidates (the projection blurs fine distinctions,
the pool makes up for it), re-ranks them with the codes and returns the best. ``allowed_ids`` is
applied without any Python call per visited node: a small allowed set is scanned exactly (projected
vectors, then codes); a large one widens the pool by the inverse of its share and filters the pool.

Persistence (:meth:`CompactIndex.save` / :meth:`CompactIndex.load`): a directory with ``index.json``
(format, parameters, ``generation`` — the caller's change counter — and each file's size and CRC-32)
and the data files. Codes, projected vectors and scales are **append-only** files: a save appends the
rows added since the save the index was loaded from (or writes a new set of files, with a new
lineage name, when another process saved meanwhile), fsyncs, and only then renames the new manifest
over the old one; the graphs are written under new names. A crash at any point leaves the old
manifest, which names only bytes that were already committed. Codes and projected vectors are loaded
memory-mapped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import uuid
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np

from taskspace.errors import InvalidInputError

__all__ = ["CompactIndex"]

FORMAT = "taskspace.CompactIndex/1"
MANIFEST = "index.json"
_CHUNK = 1 << 24
#: Default candidates re-ranked per search (see the module docstring and docs/search.md for the
#: recall measurements that chose it).
POOL = 200
#: Searches over at most this many items (after filters) scan the projected vectors instead.
SCAN_MAX = 4_096


def projection(dim: int, proj_dim: int, seed: int) -> np.ndarray | None:
    """The seeded Gaussian projection ``(dim, proj_dim)``, or ``None`` when ``proj_dim >= dim``."""
    if proj_dim >= dim:
        return None
    rng = np.random.default_rng(np.random.PCG64(seed))
    return (rng.standard_normal((dim, proj_dim)) / np.sqrt(proj_dim)).astype(np.float32)


def quantize(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes and float32 scales of unit rows (a zero row gets scale 0 and zero codes)."""
    peak = np.abs(units).max(axis=1) if units.shape[1] else np.zeros(units.shape[0], np.float32)
    scales = (peak / 127.0).astype(np.float32)
    safe = np.where(scales > 0, scales, 1.0).astype(np.float32)
    codes = np.rint(units / safe[:, None]).clip(-127, 127).astype(np.int8)
    return codes, scales


class _Rows:
    """A growable 2-D array whose first rows may be a read-only memory map of a file."""

    def __init__(self, width: int, dtype: Any, base: np.ndarray | None = None) -> None:
        self.width = width
        self.dtype = np.dtype(dtype)
        self.base = base if base is not None else np.zeros((0, width), dtype=self.dtype)
        self.tail = np.zeros((0, width), dtype=self.dtype)
        self.n_tail = 0

    def __len__(self) -> int:
        return self.base.shape[0] + self.n_tail

    def append(self, rows: np.ndarray) -> None:
        need = self.n_tail + rows.shape[0]
        if need > self.tail.shape[0]:
            grown = np.zeros((max(need, 2 * self.tail.shape[0], 1024), self.width), dtype=self.dtype)
            grown[: self.n_tail] = self.tail[: self.n_tail]
            self.tail = grown
        self.tail[self.n_tail : need] = rows
        self.n_tail = need

    def take(self, labels: np.ndarray) -> np.ndarray:
        nb = self.base.shape[0]
        if labels.size == 0 or int(labels.max()) < nb:
            return self.base[labels]
        if int(labels.min()) >= nb:
            return self.tail[labels - nb]
        out = np.empty((labels.shape[0], self.width), dtype=self.dtype)
        low = labels < nb
        out[low] = self.base[labels[low]]
        out[~low] = self.tail[labels[~low] - nb]
        return out

    def slice(self, start: int, stop: int) -> np.ndarray:
        return self.take(np.arange(start, stop))


class CompactIndex:
    """Items under int64 ids, in partitions, searched by cosine with an exact-enough re-rank.

    The caller gives unit vectors (zero rows are kept but never found) and receives, for a query,
    ids with scores from the int8 codes (within ~1e-4 of the exact cosine at dim 4,096); the
    :class:`~taskspace.space.task_space.TaskSpace` recomputes the cosines of what it returns from its
    float32 rows. Not thread-safe on its own (the TaskSpace serialises calls).

    Example:
        >>> import numpy as np
        >>> from taskspace.search.compact import CompactIndex
        >>> rng = np.random.default_rng(0)
        >>> x = rng.standard_normal((500, 64)).astype(np.float32)
        >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
        >>> index = CompactIndex(64, proj_dim=32)
        >>> index.add(np.arange(500) + 1, np.zeros(500, np.uint8), x)
        >>> ids, scores = index.search(x[7], 3, parts=(0,))
        >>> int(ids[0]), round(float(scores[0]), 2)
        (8, 1.0)
    """

    def __init__(
        self,
        dim: int,
        *,
        proj_dim: int = 256,
        seed: int = 0,
        M: int = 16,
        ef_construction: int = 100,
        pool: int = POOL,
        scan_max: int = SCAN_MAX,
        n_parts: int = 2,
        n_threads: int | None = None,
    ) -> None:
        self.dim = int(dim)
        self.proj_dim = min(int(proj_dim), self.dim)
        self.seed = int(seed)
        self.M = int(M)
        self.ef_construction = int(ef_construction)
        self.pool = int(pool)
        self.scan_max = int(scan_max)
        self.n_parts = int(n_parts)
        self.n_threads = n_threads or os.cpu_count() or 1
        self._proj = projection(self.dim, self.proj_dim, self.seed)
        self.codes = _Rows(self.dim, np.int8)
        self.projected = _Rows(self.proj_dim, np.float16)
        self.scales = np.zeros(0, np.float32)
        self.ids = np.zeros(0, np.int64)
        self.part = np.zeros(0, np.uint8)
        self.live = np.zeros(0, bool)
        self.zero = np.zeros(0, bool)
        self._label_of: dict[int, int] = {}
        self._graphs: list[hnswlib.Index | None] = [None] * self.n_parts
        self._counts = [0] * self.n_parts  # live, non-zero items per partition
        self.lineage = uuid.uuid4().hex[:16]
        self.saved_labels = 0  # rows of the append-only files that are on disk under `lineage`
        self._saved_crc: dict[str, int] = {}

    # -- size ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._label_of)

    def __contains__(self, rowid: object) -> bool:
        return rowid in self._label_of

    @property
    def n_labels(self) -> int:
        return self.ids.shape[0]

    def count(self, part: int) -> int:
        """Live, searchable (non-zero) items of one partition."""
        return self._counts[part]

    def is_zero(self, rowid: int) -> bool:
        return bool(self.zero[self._label_of[rowid]])

    def part_of(self, rowid: int) -> int:
        return int(self.part[self._label_of[rowid]])

    def bytes_per_item(self) -> dict[str, int]:
        """Bytes per item: codes + scale, projected copy, graph (estimated from hnswlib's layout)."""
        graph = 4 * self.proj_dim + 8 * self.M + 4 * self.M * 2 + 16
        return {"codes": self.dim + 4, "projected": 2 * self.proj_dim, "graph": graph, "ids": 8 + 3}

    # -- changes ---------------------------------------------------------------------------------------
    def project(self, units: np.ndarray) -> np.ndarray:
        return units if self._proj is None else units @ self._proj

    def add(self, ids: Sequence[int] | np.ndarray, parts: np.ndarray, units: np.ndarray) -> None:
        """Add items (ids not yet present; unit rows, zero rows allowed)."""
        ids = np.asarray(ids, dtype=np.int64)
        m = ids.shape[0]
        if m == 0:
            return
        parts = np.asarray(parts, dtype=np.uint8)
        units = np.ascontiguousarray(units, dtype=np.float32)
        start = self.n_labels
        labels = np.arange(start, start + m)
        codes, scales = quantize(units)
        proj = self.project(units)
        zero = scales == 0
        self.codes.append(codes)
        self.projected.append(proj.astype(np.float16))
        self.scales = np.concatenate([self.scales, scales])
        self.ids = np.concatenate([self.ids, ids])
        self.part = np.concatenate([self.part, parts])
        self.live = np.concatenate([self.live, np.ones(m, bool)])
        self.zero = np.concatenate([self.zero, zero])
        self._label_of.update(zip(ids.tolist(), labels.tolist(), strict=True))
        for p in range(self.n_parts):
            sel = (parts == p) & ~zero
            if sel.any():
                self._graph_add(p, proj[sel], labels[sel])

    def _graph_add(self, p: int, vectors: np.ndarray, labels: np.ndarray) -> None:
        g = self._graphs[p]
        if g is None:
            g = self._graphs[p] = hnswlib.Index(space="cosine", dim=self.proj_dim)
            g.init_index(
                max_elements=max(1024, labels.shape[0]), M=self.M, ef_construction=self.ef_construction
            )
        need = g.element_count + labels.shape[0]
        if need > g.get_max_elements():
            g.resize_index(max(need, 2 * g.get_max_elements()))
        g.add_items(vectors, labels, num_threads=self.n_threads)
        self._counts[p] += labels.shape[0]

    def remove(self, ids: Sequence[int] | np.ndarray) -> None:
        """Remove items (unknown ids are ignored)."""
        for rowid in np.asarray(ids, dtype=np.int64).tolist():
            label = self._label_of.pop(rowid, None)
            if label is None:
                continue
            self.live[label] = False
            if not self.zero[label]:
                p = int(self.part[label])
                g = self._graphs[p]
                assert g is not None
                g.mark_deleted(label)
                self._counts[p] -= 1

    # -- search ----------------------------------------------------------------------------------------
    def scores(self, labels: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Cosines from the int8 codes of ``labels`` with the unit query ``q``."""
        out = np.zeros(labels.shape[0], np.float32)
        for s in range(0, labels.shape[0], 1024):  # blocks: the float32 copy stays small
            block = labels[s : s + 1024]
            out[s : s + 1024] = (self.codes.take(block).astype(np.float32) @ q) * self.scales[block]
        return out

    def search(
        self,
        q: np.ndarray,
        k: int,
        *,
        parts: Sequence[int],
        allowed_ids: np.ndarray | None = None,
        exclude: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best ids (and code scores, best first) for the unit query ``q``."""
        labels = self._candidates(q, k + (exclude is not None), parts, allowed_ids)
        if exclude is not None and exclude in self._label_of:
            labels = labels[labels != self._label_of[exclude]]
        s = self.scores(labels, q)
        top = np.argsort(-s, kind="stable")[:k]
        return self.ids[labels[top]], s[top]

    def _candidates(
        self, q: np.ndarray, k: int, parts: Sequence[int], allowed_ids: np.ndarray | None
    ) -> np.ndarray:
        """Labels of the items to re-rank: a scan when few items qualify, else a pool from the graphs."""
        total = sum(self._counts[p] for p in parts)
        if allowed_ids is not None:
            allowed = self._allowed_labels(allowed_ids, parts)
            if allowed.shape[0] <= max(self.scan_max, k):
                return self._scan(q, allowed, k)
            share = allowed.shape[0] / max(total, 1)
            pool = self._pool_labels(q, int(min(total, max(self.pool, k) / share * 1.5)), parts)
            hit = pool[np.isin(pool, allowed)]
            if hit.shape[0] >= min(max(self.pool, k), allowed.shape[0]):
                return hit
            return self._scan(q, allowed, k)  # the widened pool fell short: scan the allowed set
        if total <= max(self.scan_max, k):
            return self._scan(q, self._part_labels(parts), k)
        return self._pool_labels(q, max(self.pool, k), parts)

    def _part_labels(self, parts: Sequence[int]) -> np.ndarray:
        mask = self.live & ~self.zero & np.isin(self.part, np.asarray(parts, dtype=np.uint8))
        return np.flatnonzero(mask)

    def _allowed_labels(self, allowed_ids: np.ndarray, parts: Sequence[int]) -> np.ndarray:
        got = [self._label_of.get(i) for i in np.asarray(allowed_ids, dtype=np.int64).tolist()]
        labels = np.array(sorted({g for g in got if g is not None}), dtype=np.int64)
        if labels.size == 0:
            return labels
        keep = ~self.zero[labels] & np.isin(self.part[labels], np.asarray(parts, dtype=np.uint8))
        return labels[keep]

    def _scan(self, q: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
        """The labels to re-rank: all of them when at most ``scan_max``, else the ``pool`` best by an
        exact scan of their projected vectors."""
        keep = max(self.pool, k)
        if labels.shape[0] <= max(keep, self.scan_max):
            return labels  # few enough to re-rank every one with the codes: exact to ~1e-4
        pq = self.project(q[None, :])[0].astype(np.float32)
        s = self.projected.take(labels).astype(np.float32) @ pq
        return labels[np.argpartition(-s, keep - 1)[:keep]]

    def _pool_labels(self, q: np.ndarray, pool: int, parts: Sequence[int]) -> np.ndarray:
        pq = self.project(q[None, :]).astype(np.float32)
        found = []
        for p in parts:
            g, n = self._graphs[p], self._counts[p]
            if g is None or n == 0:
                continue
            kk = min(pool, n)
            g.set_ef(max(kk, 64))
            try:
                labels, _ = g.knn_query(pq, kk, 1)
            except RuntimeError:  # too few reachable live items (many deletions): scan this part
                labels = self._scan(q, self._part_labels((p,)), kk)[None, :]
            found.append(labels[0].astype(np.int64))
        return np.concatenate(found) if found else np.zeros(0, np.int64)

    def neighbours(self, labels: np.ndarray, k: int, part: int) -> np.ndarray:
        """Graph neighbours (labels, ``(len(labels), k)``) of stored items of one partition, batched."""
        g = self._graphs[part]
        assert g is not None
        kk = min(k, self._counts[part])
        vecs = self.projected.take(labels).astype(np.float32)
        g.set_ef(max(kk, 64))
        found, _ = g.knn_query(vecs, kk, self.n_threads)
        return found.astype(np.int64)

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, directory: Path, *, generation: int, meta: dict[str, Any]) -> bool:
        """Write to ``directory`` (see the module docstring), under an exclusive lock file; ``False``
        (nothing written) when it already holds a save of this generation or a later one."""
        directory.mkdir(parents=True, exist_ok=True)
        with _locked(directory):
            try:
                on_disk = _read_manifest_or_none(directory)
            except InvalidInputError:
                on_disk = None  # a damaged save is replaced
            same = on_disk is not None and on_disk.get("meta") == meta
            if same and int(on_disk.get("generation", -1)) >= generation:
                return False
            ours = on_disk is not None and on_disk.get("lineage") == self.lineage
            if not ours or on_disk.get("labels") != self.saved_labels:
                if self.saved_labels:  # another process saved meanwhile: start a new set of files
                    self.lineage = uuid.uuid4().hex[:16]
                self.saved_labels = 0
                self._saved_crc = {}
            files = self._write_rows(directory)
            files.update(self._write_graphs(directory, generation))
            manifest = {
                "format": FORMAT,
                "generation": int(generation),
                "lineage": self.lineage,
                **self._params(),
                "labels": self.n_labels,
                "count": len(self),
                "meta": meta,
                "files": files,
            }
            _write_json_atomic(directory / MANIFEST, manifest)
            keep = {MANIFEST, *(f["name"] for f in files.values()), ".lock"}
            for old in directory.iterdir():
                if old.name not in keep:
                    old.unlink(missing_ok=True)
        self.saved_labels = self.n_labels
        return True

    def _params(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "proj_dim": self.proj_dim,
            "seed": self.seed,
            "M": self.M,
            "ef_construction": self.ef_construction,
        }

    def _write_rows(self, directory: Path) -> dict[str, Any]:
        """Append the rows added since the last save to the append-only files; whole small files."""
        out: dict[str, Any] = {}
        start = self.saved_labels
        for key, rows in (("codes", self.codes), ("projected", self.projected)):
            name = f"{key}-{self.lineage}.bin"
            new = np.ascontiguousarray(rows.slice(start, self.n_labels)).tobytes()
            size = start * rows.width * rows.dtype.itemsize
            path = directory / name
            with open(path, "r+b" if path.exists() else "w+b") as fh:
                fh.truncate(size)  # drop bytes a crashed save left past the committed end
                fh.seek(size)
                fh.write(new)
                fh.flush()
                os.fsync(fh.fileno())
            crc = zlib.crc32(new, self._saved_crc.get(key, 0))
            self._saved_crc[key] = crc
            out[key] = {"name": name, "size": size + len(new), "crc32": crc}
        table = {
            "scales": self.scales,
            "ids": self.ids,
            "part": self.part,
            "live": self.live,
            "zero": self.zero,
        }
        for key, arr in table.items():
            out[key] = _write_blob(directory, key, np.ascontiguousarray(arr).tobytes())
        return out

    def _write_graphs(self, directory: Path, generation: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p, g in enumerate(self._graphs):
            if g is None:
                continue
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
            os.close(fd)
            try:
                g.save_index(tmp)
                out[f"graph{p}"] = _commit_blob(
                    Path(tmp), directory, f"graph{p}-{generation}-{uuid.uuid4().hex[:8]}"
                )
            finally:
                Path(tmp).unlink(missing_ok=True)
        return out

    @classmethod
    def load(
        cls, directory: Path, *, n_threads: int | None = None, **params: Any
    ) -> tuple[CompactIndex, int, dict]:
        """``(index, generation, meta)`` from a save; :class:`InvalidInputError` when it is missing,
        of other parameters than ``params``, or any file is truncated or corrupt."""
        manifest = _read_manifest_or_none(directory)
        if manifest is None:
            raise InvalidInputError(f"{directory}: no saved index")
        try:
            index = cls(
                n_threads=n_threads,
                **{k: manifest[k] for k in ("dim", "proj_dim", "seed", "M", "ef_construction")},
                **params,
            )
            files, n = manifest["files"], int(manifest["labels"])
            generation, meta, lineage = (
                int(manifest["generation"]),
                manifest["meta"],
                str(manifest["lineage"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInputError(f"{directory}/{MANIFEST}: damaged ({e!r})") from None
        index._load_files(directory, files, n)
        index.lineage, index.saved_labels = lineage, n
        index._saved_crc = {k: int(files[k]["crc32"]) for k in ("codes", "projected")}
        return index, generation, meta

    def _load_files(self, directory: Path, files: dict[str, Any], n: int) -> None:
        small = {"scales": np.float32, "ids": np.int64, "part": np.uint8, "live": bool, "zero": bool}
        for key, dtype in small.items():
            arr = np.frombuffer(_checked(directory, files.get(key), key), dtype=dtype).copy()
            if arr.shape[0] != n:
                raise InvalidInputError(f"{directory}: {key} holds {arr.shape[0]} rows, expected {n}")
            setattr(self, key, arr)
        for key, rows in (("codes", self.codes), ("projected", self.projected)):
            entry = files.get(key)
            path = _checked(directory, entry, key, whole=False)
            if entry["size"] != n * rows.width * rows.dtype.itemsize:
                raise InvalidInputError(f"{directory}: {key} has the wrong size for {n} rows")
            rows.base = np.memmap(path, dtype=rows.dtype, mode="r", shape=(n, rows.width)) if n else rows.base
        live = np.flatnonzero(self.live)
        self._label_of = dict(zip(self.ids[live].tolist(), live.tolist(), strict=True))
        if len(self._label_of) != live.shape[0] or self.part.max(initial=0) >= self.n_parts:
            raise InvalidInputError(f"{directory}: the id map repeats ids or names an unknown partition")
        for p in range(self.n_parts):
            sel = self.live & ~self.zero & (self.part == p)
            self._counts[p] = int(sel.sum())
            entry = files.get(f"graph{p}")
            if entry is None:
                if self._counts[p] or (~self.zero & (self.part == p)).any():
                    raise InvalidInputError(f"{directory}: the graph of partition {p} is missing")
                continue
            path = _checked(directory, entry, f"graph{p}", whole=False)
            g = hnswlib.Index(space="cosine", dim=self.proj_dim)
            try:
                g.load_index(str(path), max_elements=max(1024, n))
            except (RuntimeError, ValueError, MemoryError) as e:
                raise InvalidInputError(f"{path}: hnswlib cannot read it ({e})") from None
            if g.element_count != int((~self.zero & (self.part == p)).sum()):
                raise InvalidInputError(f"{path}: holds {g.element_count} items, the manifest disagrees")
            self._graphs[p] = g


# -- files ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    with open(directory / ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _crc_file(path: Path, size: int) -> int:
    crc, left = 0, size
    with open(path, "rb") as fh:
        while left > 0:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                break
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
    return crc


def _checked(directory: Path, entry: Any, what: str, *, whole: bool = True) -> Any:
    """The bytes (``whole``) or the path of a data file after its size and CRC-32 check."""
    if not isinstance(entry, dict) or not {"name", "size", "crc32"} <= set(entry):
        raise InvalidInputError(f"{directory}/{MANIFEST}: no valid entry for {what}")
    name = entry["name"]
    if not isinstance(name, str) or Path(name).name != name or name.startswith("."):
        raise InvalidInputError(f"{directory}/{MANIFEST}: invalid file name for {what}")
    path = directory / name
    try:
        size = path.stat().st_size
    except OSError:
        raise InvalidInputError(f"{directory}: the {what} file {name} is missing") from None
    # Append-only files may carry bytes past the committed end (a crashed save): only the committed
    # prefix counts. Other files must have exactly the recorded size.
    if size < entry["size"] or (size != entry["size"] and what not in ("codes", "projected")):
        raise InvalidInputError(f"{directory}: the {what} file {name} is truncated ({size} bytes)")
    if _crc_file(path, entry["size"]) != entry["crc32"]:
        raise InvalidInputError(f"{directory}: the {what} file {name} is corrupt (CRC-32 mismatch)")
    return path.read_bytes() if whole else path


def _commit_blob(tmp: Path, directory: Path, stem: str) -> dict[str, Any]:
    size = tmp.stat().st_size
    crc = _crc_file(tmp, size)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    name = f"{stem}.bin"
    os.replace(tmp, directory / name)
    return {"name": name, "size": size, "crc32": crc}


def _write_blob(directory: Path, key: str, data: bytes) -> dict[str, Any]:
    crc = zlib.crc32(data)
    name = f"{key}-{crc:08x}-{len(data)}.bin"
    path = directory / name
    if not (path.exists() and path.stat().st_size == len(data) and _crc_file(path, len(data)) == crc):
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    return {"name": name, "size": len(data), "crc32": crc}


def _write_json_atomic(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _read_manifest_or_none(directory: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise InvalidInputError(f"{directory}/{MANIFEST}: unreadable ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInputError(f"{directory}: not a {FORMAT} index")
    return manifest
