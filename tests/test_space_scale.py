"""TaskSpace at scale (small N here): bulk add/remove, the persisted index and its change log,
another process's writes, a damaged index, SIGKILL during writes and saves, recall of the compact
index against exact search, filtered search, and k-NN duplicates."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import taskspace as ts
from taskspace.search.compact import CompactIndex
from taskspace.space import changelog

DIM = 512


@pytest.fixture(scope="module")
def sur() -> ts.Surrogate:
    return ts.Surrogate(features=16, dim=DIM)


def clustered(n: int, seed: int, d: int = DIM) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(n // 50, 1), d))
    x = centers[rng.integers(0, len(centers), n)] + 0.5 * rng.standard_normal((n, d))
    return x.astype(np.float32)


def embs(
    sur: ts.Surrogate, vectors: np.ndarray, prefix: str = "e", *, kinds: str = "dm"
) -> list[ts.TaskEmbedding]:
    return [
        ts.TaskEmbedding(
            vector=v,
            fingerprint=sur.fingerprint,
            mode="text",
            method="operator",
            name=f"{prefix}{i}",
            kind="dataset" if kinds[i % len(kinds)] == "d" else "model",
        )
        for i, v in enumerate(vectors)
    ]


def exact(space: ts.TaskSpace, q: np.ndarray, k: int, kind: str | None = None) -> list[str]:
    names = space.names(kind)
    rows = np.stack([space.info(n).vector for n in names])
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-30)
    s = rows @ (q / np.linalg.norm(q))
    return [names[i] for i in np.argsort(-s, kind="stable")[:k]]


def recall(space: ts.TaskSpace, queries: np.ndarray, k: int = 10, kind: str | None = None) -> float:
    hits = 0
    for q in queries:
        got = {n for n, _ in space.nearest(q, k=k, kind=kind)}
        hits += len(got & set(exact(space, q, k, kind)))
    return hits / (k * len(queries))


def gen(path: Path) -> int:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        return changelog.generation(db)
    finally:
        db.close()


# -- bulk add and remove -------------------------------------------------------------------------------


def test_add_many_is_all_or_nothing(tmp_path, sur):
    path = tmp_path / "s.sqlite"
    space = ts.TaskSpace(sur, path)
    good = embs(sur, clustered(20, 1))
    space.add_many(good[:10])
    before = gen(path)
    nan = good[10].vector.copy()
    nan[3] = np.nan
    bad_batches = {
        ts.FingerprintMismatchError: [*good[10:15], dataclasses.replace(good[15], fingerprint="0" * 16)],
        ts.InvalidInputError: [good[10], good[11], good[10]],  # a name twice
    }
    for error, batch in bad_batches.items():
        with pytest.raises(error):
            space.add_many(batch)
    nan_e = embs(sur, good[10].vector[None, :], "nan")[0]
    object.__setattr__(nan_e, "vector", nan)  # TaskEmbedding refuses NaN; a damaged object may not
    with pytest.raises(ts.InvalidInputError, match="finite"):
        space.add_many([*good[10:15], nan_e])
    with pytest.raises(ts.InvalidInputError, match="already in the space"):
        space.add_many([*good[10:15], good[3]])  # a clash, replace=False
    with pytest.raises(KeyError):
        space.remove_many([good[0].name, "absent"])
    assert len(space) == 10 and gen(path) == before  # nothing was written
    space.add_many([*good[10:], good[3]], replace=True)
    assert len(space) == 20
    space.remove_many([e.name for e in good[:5]])
    assert sorted(space.names()) == sorted(e.name for e in good[5:])
    space.close()


# -- the persisted index -------------------------------------------------------------------------------


def test_reopen_loads_the_saved_index_and_catches_up_from_the_log(tmp_path, sur, caplog):
    path = tmp_path / "s.sqlite"
    both = clustered(620, 2)
    x, held_out = both[:600], both[600:]
    with ts.TaskSpace(sur, path, index_threshold=0) as space:
        space.add_many(embs(sur, x))
        space.save_index()
    assert (tmp_path / "s.sqlite.index" / "index.json").is_file()
    with ts.TaskSpace(sur, path, index_threshold=0) as writer:  # changes after the save: in the log only
        writer.add_many(embs(sur, clustered(30, 3), "late"))
        writer.remove_many(["e0", "e1"])
    caplog.set_level(logging.INFO, logger="taskspace.space")
    space = ts.TaskSpace(sur, path, index_threshold=0)
    assert not [r for r in caplog.records if "rebuilding" in r.getMessage()]
    assert space._index.generation == gen(path)
    assert "e0" not in space and "late7" in space
    assert recall(space, held_out) >= 0.95
    # Another process's write of one embedding: caught up by the next call, not rebuilt.
    reader_index = space._index.index
    with ts.TaskSpace(sur, path, index_threshold=0) as other:
        other.add(embs(sur, x[5:6] * 1.0, "foreign")[0])
    assert space.nearest(x[5], k=1)[0][0] in {"foreign0", "e5"}
    assert space._index.index is reader_index and "foreign0" in space
    space.close()


@pytest.mark.parametrize("damage", ["truncate", "flip", "manifest", "delete"])
def test_a_damaged_index_is_rebuilt_and_logged(tmp_path, sur, caplog, damage):
    path = tmp_path / "s.sqlite"
    x = clustered(400, 5)
    with ts.TaskSpace(sur, path, index_threshold=0) as space:
        space.add_many(embs(sur, x))
        space.save_index()
        want = [space.nearest(q, k=10) for q in x[:5]]
    directory = tmp_path / "s.sqlite.index"
    codes = next(directory.glob("codes-*.bin"))
    if damage == "truncate":
        os.truncate(codes, codes.stat().st_size - 100)
    elif damage == "flip":
        data = bytearray(codes.read_bytes())
        data[1000] ^= 0x55
        codes.write_bytes(bytes(data))
    elif damage == "manifest":
        (directory / "index.json").write_text("{not json")
    else:
        next(directory.glob("graph1-*.bin")).unlink()
    caplog.set_level(logging.WARNING, logger="taskspace.space")
    with ts.TaskSpace(sur, path, index_threshold=0) as space:
        assert [r for r in caplog.records if "rebuilding" in r.getMessage()]
        got = [space.nearest(q, k=10) for q in x[:5]]
    for g, w in zip(got, want, strict=True):
        assert len({n for n, _ in g} & {n for n, _ in w}) >= 9
        np.testing.assert_allclose(sorted(s for _, s in g), sorted(s for _, s in w), atol=1e-3)


_CHILD = """
import sys, numpy as np, taskspace as ts
sys.path.insert(0, {tests!r})
from test_space_scale import embs, clustered
sur = ts.Surrogate(features=16, dim={dim})
space = ts.TaskSpace(sur, {path!r}, index_threshold=0)
print("ready", flush=True)
for i in range(10_000):
    space.add_many(embs(sur, clustered(50, 100 + i), f"k{{i}}-"))
    if {save} and i % 2:
        space.save_index()
    print(i, flush=True)
"""


@pytest.mark.parametrize("save", [False, True], ids=["add_many", "save"])
def test_sigkill_during_writes_keeps_committed_rows_and_a_consistent_index(tmp_path, sur, save):
    path = tmp_path / "s.sqlite"
    with ts.TaskSpace(sur, path, index_threshold=0) as space:
        space.add_many(embs(sur, clustered(100, 6), "base"))
        space.save_index()
    code = _CHILD.format(tests=str(Path(__file__).parent), dim=DIM, path=str(path), save=save)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    child.stdout.readline()  # one batch committed
    time.sleep(0.05 + 0.3 * np.random.default_rng().random())
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    with ts.TaskSpace(sur, path, index_threshold=0) as space:
        names = space.names()
        batches = {n.split("-")[0] for n in names if "-" in n}
        # Whole batches only: every batch present has its 50 rows.
        assert all(sum(n.startswith(b + "-") for n in names) == 50 for b in batches)
        assert space._index.generation == gen(path)
        ids = {space.info(n).id for n in names}
        index = space._index.index
        assert set(index.ids[index.live].tolist()) == ids
        held_out = clustered(50, 100)[::5] + 0.1  # near the first batch (same centre, other noise)
        assert recall(space, held_out) >= 0.95


# -- the compact index ------------------------------------------------------------------------------------


def test_compact_index_recall_and_filters():
    both = clustered(3_030, 8, d=1024)
    x, queries = both[:3_000], both[3_000:]
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    index = CompactIndex(1024, scan_max=256)
    index.add(np.arange(3_000) + 10, (np.arange(3_000) % 2).astype(np.uint8), u)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    hits = total = 0
    for share in (0.001, 0.05, 0.5, None):
        allowed = None if share is None else rng.choice(3_000, max(int(3_000 * share), 3), replace=False) + 10
        for q in queries:
            got, _ = index.search(q, 10, parts=(0, 1), allowed_ids=allowed)
            cand = np.arange(3_000) if allowed is None else allowed - 10
            want = cand[np.argsort(-(u[cand] @ q))[:10]] + 10
            assert allowed is None or set(got.tolist()) <= set(allowed.tolist())
            hits += len(set(got.tolist()) & set(want.tolist()))
            total += len(want)
    assert hits / total >= 0.95
    got, _ = index.search(queries[0], 10, parts=(1,))
    assert all(i % 2 == 1 for i in (got - 10).tolist())  # partition 1 only


def test_duplicates_by_graph_pass_match_exact(sur):
    x = clustered(1_500, 10)
    rng = np.random.default_rng(1)
    copies = x[:40] + 0.02 * rng.standard_normal((40, DIM)).astype(np.float32)
    space = ts.TaskSpace(sur, index_threshold=0)
    space.add_many(embs(sur, x) + embs(sur, copies, "copy"))
    want = space.duplicates(0.95, exact=True)
    got = space.duplicates(0.95, exact=False)
    assert len(want) >= 40
    pairs = {(a, b) for a, b, _ in want}
    assert len({(a, b) for a, b, _ in got} & pairs) >= 0.95 * len(want)
    assert {(a, b) for a, b, _ in got} <= pairs  # confirmed with exact cosines: nothing below the threshold
