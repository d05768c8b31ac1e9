"""Embeddings are bit-for-bit reproducible: across processes, hash seeds and thread counts, and the
hash function is pinned by golden values."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import taskspace as ts
from taskspace import _core
from taskspace.datasets import builtin as datasets

# The script prints {key: sha256 of the bytes} for a few embeddings and encodings of built-in datasets.
SCRIPT = r"""
import hashlib, json, sys
import taskspace as ts
from taskspace.datasets import builtin as datasets

threads = int(sys.argv[1]) if len(sys.argv) > 1 else None
out = {}
for method in ("operator", "fisher"):
    sur = ts.Surrogate(features=48, dim=256, seed=12345, method=method)
    for name in ("news_topic", "question_type"):
        texts, labels = datasets.load(name)
        for mode in ("label", "text"):
            e = sur.dataset_embedding(texts, labels, mode=mode, n_threads=threads)
            out[f"{method}/{name}/{mode}"] = hashlib.sha256(e.vector.tobytes()).hexdigest()
        pairs = ts.pair_probe(texts)
        e = sur.model_embedding(texts, labels, pairs, n_threads=threads)
        out[f"{method}/{name}/pairs"] = hashlib.sha256(e.vector.tobytes()).hexdigest()
    out[f"{method}/fingerprint"] = sur.fingerprint
texts, _ = datasets.load("movie_sentiment")
enc = ts.Surrogate(features=48, dim=256, seed=12345).encode(texts, n_threads=threads)
out["encode"] = hashlib.sha256(enc.tobytes()).hexdigest()
out["hash64"] = [ts._core.hash64(t.encode()) for t in texts[:5]]
print(json.dumps(out, sort_keys=True))
"""


def _run(hash_seed: str, *args: str) -> dict:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = hash_seed
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _in_process() -> dict:
    namespace: dict = {"__name__": "determinism_script"}
    buf = io.StringIO()
    argv = sys.argv
    sys.argv = ["-c"]
    try:
        with contextlib.redirect_stdout(buf):
            exec(compile(SCRIPT, "<determinism>", "exec"), namespace)
    finally:
        sys.argv = argv
    return json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def runs() -> dict[str, dict]:
    return {
        "hashseed0": _run("0"),
        "hashseed4242_1thread": _run("4242", "1"),
        "hashseed_random_2threads": _run("random", "2"),
    }


def test_two_processes_with_different_hash_seeds_agree(runs):
    a, b, c = runs["hashseed0"], runs["hashseed4242_1thread"], runs["hashseed_random_2threads"]
    assert len(a) == 16
    assert a == b
    assert a == c


def test_processes_agree_with_this_process(runs):
    assert _in_process() == runs["hashseed0"]


def test_outputs_are_distinct(runs):
    # the hashes are of real, different vectors (not e.g. all of zero vectors)
    digests = [v for k, v in runs["hashseed0"].items() if "/" in k and not k.endswith("fingerprint")]
    assert len(set(digests)) == len(digests)


# --------------------------------------------------------------------------------------------------
# golden values
# --------------------------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1


def _hash64_ref(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK64
    h ^= h >> 33
    return h


@pytest.mark.parametrize(
    "data,expected",
    [
        (b"", 0xEFD01F60BA992926),
        (b"taskspace", 0x473D2843112E5E3D),
        ("é日本🙂".encode(), 0x9E77E763DC92676E),
    ],
)
def test_hash64_golden_values(data, expected):
    assert _hash64_ref(data) == expected
    assert _core.hash64(data) == expected


def test_hash64_takes_bytes_not_str():
    with pytest.raises(TypeError):
        _core.hash64("taskspace")  # type: ignore[arg-type]


def test_repeated_embeddings_in_one_process_are_identical():
    texts, labels = datasets.load("product_sentiment")
    digests = set()
    for _ in range(3):
        sur = ts.Surrogate(features=32, dim=128, seed=99)
        e = sur.dataset_embedding(texts, labels)
        digests.add(hashlib.sha256(e.vector.tobytes()).hexdigest())
    assert len(digests) == 1


def test_seed_changes_the_vector():
    texts, labels = datasets.load("news_topic")
    a = ts.Surrogate(features=32, dim=128, seed=1).dataset_embedding(texts, labels)
    b = ts.Surrogate(features=32, dim=128, seed=2).dataset_embedding(texts, labels)
    assert not np.array_equal(a.vector, b.vector)
