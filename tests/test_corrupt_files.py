"""Corrupt and forged files: a space file (SQLite) and an Index save, damaged the way a disk, a bad
copy or a forger would damage them. Each must give a clear :class:`InvalidInputError` naming what
is wrong, never a wrong answer. Forged saves have their sizes and sha256 fixed up in ``index.json``,
so only the content checks can catch them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import taskspace as ts
from taskspace.errors import InvalidInputError
from taskspace.search.index import Index

DIM = 32


# -- the space file -------------------------------------------------------------------------------------


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    path = tmp_path / "space.sqlite"
    sur = ts.Surrogate(features=16, dim=DIM)
    with ts.TaskSpace(sur, path) as space:
        space.add(sur.dataset_embedding(["good", "bad", "fine"], ["+", "-", "+"], name="reviews"))
        space.add(sur.model_embedding(["nice", "awful", "ok"], ["y", "n", "y"], name="clf"))
        space.add(sur.model_embedding(["nice", "awful", "ok"], ["n", "y", "n"], name="victim"))
    return path


def _sql(path: Path, statement: str, *args: object) -> None:
    db = sqlite3.connect(path)
    db.execute(statement, args)
    db.commit()
    db.close()


def _blob(values: np.ndarray) -> bytes:
    return values.astype("<f4").tobytes()


SPACE_DAMAGE: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "NaN vector",
        lambda p: _sql(
            p, "UPDATE embeddings SET vector = ? WHERE name = 'victim'", _blob(np.full(DIM, np.nan))
        ),
        r"'victim'.*non-finite",
    ),
    (
        "one infinity",
        lambda p: _sql(
            p,
            "UPDATE embeddings SET vector = ? WHERE name = 'victim'",
            _blob(np.r_[np.ones(DIM - 1), np.inf]),
        ),
        r"'victim'.*non-finite.*index 31",
    ),
    (
        "short blob",
        lambda p: _sql(p, "UPDATE embeddings SET vector = ? WHERE name = 'victim'", _blob(np.ones(DIM - 1))),
        r"'victim'.*124 bytes, expected 128",
    ),
    (
        "long blob",
        lambda p: _sql(p, "UPDATE embeddings SET vector = ? WHERE name = 'victim'", _blob(np.ones(DIM + 1))),
        r"'victim'.*132 bytes, expected 128",
    ),
    (
        "text for a vector",
        lambda p: _sql(p, "UPDATE embeddings SET vector = 'abc' WHERE name = 'victim'"),
        r"'victim'.*no bytes",
    ),
    (
        "negative n",
        lambda p: _sql(p, "UPDATE embeddings SET n = -3 WHERE name = 'victim'"),
        r"'victim'.*n = -3",
    ),
    (
        "unknown mode",
        lambda p: _sql(p, "UPDATE embeddings SET mode = 'xyz' WHERE name = 'victim'"),
        r"'victim'.*mode",
    ),
    (
        "mixed modes",
        lambda p: _sql(p, "UPDATE embeddings SET mode = 'text' WHERE name = 'victim'"),
        r"'victim'.*text mode.*one mode",
    ),
    (
        "meta not JSON",
        lambda p: _sql(p, "UPDATE embeddings SET meta = '{' WHERE name = 'victim'"),
        r"'victim'.*metadata",
    ),
    (
        "meta not an object",
        lambda p: _sql(p, "UPDATE embeddings SET meta = '[1]' WHERE name = 'victim'"),
        r"'victim'.*meta",
    ),
    (
        "name a blob",
        lambda p: _sql(p, "UPDATE embeddings SET name = x'ff00' WHERE name = 'victim'"),
        r"no valid name",
    ),
    (
        "surrogate config damaged",
        lambda p: _sql(p, "UPDATE taskspace_space SET value = '{\"features\": ' WHERE key = 'surrogate'"),
        r"surrogate is damaged",
    ),
    ("not SQLite", lambda p: p.write_bytes(b"this is not a database" * 100), r"not a readable taskspace"),
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[:1500]), r"space"),
]


@pytest.mark.parametrize(("what", "damage", "message"), SPACE_DAMAGE, ids=[d[0] for d in SPACE_DAMAGE])
def test_a_damaged_space_file_is_refused_naming_the_row(
    space_file: Path, what: str, damage: Callable[[Path], None], message: str
) -> None:
    assert ts.TaskSpace.open(space_file).nearest("reviews", k=1)  # intact, it answers
    for side in ("-wal", "-shm"):
        Path(f"{space_file}{side}").unlink(missing_ok=True)
    damage(space_file)
    # Names and vectors are checked where a search reads them, a row's other columns where the row
    # is read: opening a large space does not read every row.
    with pytest.raises(InvalidInputError, match=message):
        with ts.TaskSpace.open(space_file) as space:  # never answers wrongly
            space.nearest("reviews", k=3)
            space.get("victim")


def test_nan_written_while_open_is_refused_on_the_next_call(space_file: Path) -> None:
    with ts.TaskSpace.open(space_file) as space:
        assert space.select("reviews")
        _sql(
            space_file, "UPDATE embeddings SET vector = ? WHERE name = 'victim'", _blob(np.full(DIM, np.nan))
        )
        with pytest.raises(InvalidInputError, match=r"'victim'.*non-finite"):
            space.select("reviews")  # another connection's change is re-read, and checked


@pytest.mark.parametrize("field", ["name", "model", "prompt", "dataset"])
def test_lone_surrogates_are_refused_before_anything_is_stored(space_file: Path, field: str) -> None:
    sur = ts.Surrogate(features=16, dim=DIM)
    bad = "bad\udc80name"
    name, meta = (bad, {}) if field == "name" else ("fine", {field: bad})
    e = sur.dataset_embedding(["good", "bad"], ["+", "-"], name=name, meta=meta)
    with ts.TaskSpace.open(space_file) as space:
        n = len(space)
        with pytest.raises(InvalidInputError, match="lone surrogate"):
            space.add(e)
        assert len(space) == n and "fine" not in space
        with pytest.raises(KeyError):
            space.get(bad)
        with pytest.raises(KeyError):
            space.remove(bad)
    with ts.TaskSpace.open(space_file) as space:  # the file is as it was
        assert len(space) == n


# -- the Index save --------------------------------------------------------------------------------------


def _index(dim: int, n: int, seed: int, ids_from: int = 100) -> Index:
    rng = np.random.default_rng(seed)
    index = Index(dim=dim)
    index.add(rng.standard_normal((n, dim)).astype(np.float32), np.arange(ids_from, ids_from + n))
    return index


def _refit(directory: Path, key: str, name: str, data: bytes) -> None:
    """Put ``data`` in the save as its ``key`` file, with index.json's name, size and sha256 fixed up."""
    old = directory / json.loads((directory / "index.json").read_text())[key]["name"]
    old.unlink()
    (directory / name).write_bytes(data)
    _manifest(
        directory, **{key: {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}}
    )


def _manifest(directory: Path, **changes: object) -> None:
    path = directory / "index.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def _graph_bytes(directory: Path) -> bytes:
    return next(directory.glob("graph-*")).read_bytes()


def _other_save(tmp: Path, dim: int, n: int, seed: int) -> Path:
    other = tmp / f"other-{dim}-{n}-{seed}"
    _index(dim, n, seed).save(other)
    return other


def _vectors_with(directory: Path, change: Callable[[np.ndarray], None]) -> bytes:
    import io

    vectors = np.load(next(directory.glob("vectors-*")))
    change(vectors)
    out = io.BytesIO()
    np.save(out, vectors, allow_pickle=False)
    return out.getvalue()


def _set(row: int, value: float) -> Callable[[np.ndarray], None]:
    def change(v: np.ndarray) -> None:
        v[row] = value

    return change


INDEX_DAMAGE: list[tuple[str, Callable[[Path, Path], None], str]] = [
    (
        "graph of another dim",
        lambda d, t: _refit(d, "graph", "graph-x.hnsw", _graph_bytes(_other_save(t, 48, 60, 1))),
        r"dim 48, index.json says 32",
    ),
    (
        "graph of another count",
        lambda d, t: _refit(d, "graph", "graph-x.hnsw", _graph_bytes(_other_save(t, 32, 61, 1))),
        r"61 items, index.json says 60",
    ),
    (
        "graph of another index, same shape",
        lambda d, t: _refit(d, "graph", "graph-x.hnsw", _graph_bytes(_other_save(t, 32, 60, 2))),
        r"not the saved vector",
    ),
    (
        "truncated graph",
        lambda d, t: _refit(d, "graph", "graph-x.hnsw", _graph_bytes(d)[:-100]),
        r"truncated|cannot read",
    ),
    ("graph of 10 bytes", lambda d, t: _refit(d, "graph", "graph-x.hnsw", b"0123456789"), r"too short"),
    (
        "NaN vector",
        lambda d, t: _refit(d, "vectors", "vectors-x.npy", _vectors_with(d, _set(3, np.nan))),
        r"row 3.*non-finite",
    ),
    (
        "vector not unit",
        lambda d, t: _refit(d, "vectors", "vectors-x.npy", _vectors_with(d, _set(4, 0.5))),
        r"vector 4 has norm",
    ),
    (
        "vectors not .npy",
        lambda d, t: _refit(d, "vectors", "vectors-x.npy", b"\x93NUMPY garbage"),
        r"not a vectors file",
    ),
    ("count forged", lambda d, t: _manifest(d, count=59), r"live mask disagrees"),
    ("labels forged", lambda d, t: _manifest(d, labels=61), r"id map holds 60 entries, expected 61"),
    ("dim forged", lambda d, t: _manifest(d, dim=33), r"expected float32 \(60, 33\)"),
    ("M forged", lambda d, t: _manifest(d, M=8), r"built with M = 16, index.json says 8"),
    ("ids repeated", lambda d, t: _manifest(d, ids_int64_le_base64=_repeated_ids()), r"repeats ids"),
    ("manifest not JSON", lambda d, t: (d / "index.json").write_text("{"), r"not valid JSON"),
    ("manifest missing", lambda d, t: (d / "index.json").unlink(), r"holds no index.json"),
    ("graph missing", lambda d, t: next(d.glob("graph-*")).unlink(), r"graph file .* is missing"),
    ("vectors missing", lambda d, t: next(d.glob("vectors-*")).unlink(), r"vectors file .* is missing"),
    ("graph flipped byte", lambda d, t: _flip(next(d.glob("graph-*"))), r"truncated or corrupt"),
    ("field of wrong type", lambda d, t: _manifest(d, dim="32"), r"dim"),
]


def _repeated_ids() -> str:
    import base64

    return base64.b64encode(np.full(60, 7, dtype="<i8").tobytes()).decode()


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("what", "damage", "message"), INDEX_DAMAGE, ids=[d[0] for d in INDEX_DAMAGE])
def test_a_damaged_or_forged_index_save_is_refused(
    tmp_path: Path, what: str, damage: Callable[[Path, Path], None], message: str
) -> None:
    directory = tmp_path / "saved"
    _index(DIM, 60, 0).save(directory)
    query = np.random.default_rng(9).standard_normal(DIM).astype(np.float32)
    good = Index.load(directory).search(query, k=5).ids.tolist()
    assert good == _index(DIM, 60, 0).search(query, k=5).ids.tolist()
    damage(directory, tmp_path)
    with pytest.raises(InvalidInputError, match=message):
        Index.load(directory).search(query, k=5)


def test_a_save_with_tombstones_still_loads_and_answers(tmp_path: Path) -> None:
    index = _index(DIM, 60, 0)
    index.remove([100, 130, 159])
    index.save(tmp_path / "saved")
    loaded = Index.load(tmp_path / "saved")
    query = np.random.default_rng(3).standard_normal((4, DIM)).astype(np.float32)
    assert loaded.search(query, k=7).ids.tolist() == index.search(query, k=7).ids.tolist()
    shutil.rmtree(tmp_path / "saved")
