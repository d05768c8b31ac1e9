"""Files written by the code before the floor-plan change still work: the same probe-cache keys, a
run served entirely from an old cache, an old outputs file, an old space file.

The fixtures in ``tests/fixtures/legacy/`` were made once by ``make_legacy.py`` with the old code
(its docstring says how); the tests read copies and never change them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import socket
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import taskspace as ts
from taskspace.probing.cache import key_prefix, prompt_request_key, request_key

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
REQUESTS = json.loads((LEGACY / "requests.json").read_text(encoding="utf-8"))
SPACE = json.loads((LEGACY / "space.json").read_text(encoding="utf-8"))


def make_legacy() -> ModuleType:
    """The fixture maker as a module, for its ``models()`` and ``URL`` (its ``main`` is not run)."""
    spec = importlib.util.spec_from_file_location("make_legacy", LEGACY / "make_legacy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plain(outputs: list[Any]) -> list[Any]:
    return [o.tolist() if isinstance(o, np.ndarray) else o for o in outputs]


def copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copyfile(LEGACY / name, target)
    return target


def test_fixtures_are_consistent(tmp_path: Path) -> None:
    """The cache file holds exactly the keys ``requests.json`` lists, each the sha256 of its request."""
    db = sqlite3.connect(copy("probe_cache.sqlite", tmp_path))  # a WAL database writes beside itself
    try:
        rows = db.execute("SELECT key, request FROM answers").fetchall()
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    finally:
        db.close()
    assert sorted(k for k, _ in rows) == REQUESTS["keys"]
    assert all(hashlib.sha256(request.encode()).hexdigest() == key for key, request in rows)
    assert tables == REQUESTS["tables"]


def test_same_probe_cache_keys() -> None:
    legacy = make_legacy()
    assert legacy.URL == REQUESTS["url"]
    keys = []
    for model in legacy.models():
        endpoint = model.endpoint
        prefix = key_prefix(endpoint.id, endpoint.model, model.params)
        for text in REQUESTS["texts"]:
            prompt_json = model.prompt_json(text, None)
            key, canonical = request_key(
                endpoint.id, endpoint.model, json.loads(prompt_json), model.params, [text, None]
            )
            # The probe's hot path (the prompt already in canonical JSON) makes the same key.
            assert prompt_request_key(prefix, prompt_json, text, None) == (key, canonical)
            keys.append(key)
    assert sorted(keys) == REQUESTS["keys"]


def _port_is_free(url: str) -> bool:
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) != 0


def test_an_old_cache_serves_every_answer(tmp_path: Path) -> None:
    if not _port_is_free(REQUESTS["url"]):
        pytest.skip(f"something listens on {REQUESTS['url']}: this test needs nothing there")
    legacy = make_legacy()
    cache = copy("probe_cache.sqlite", tmp_path)
    result = ts.probe_sync(legacy.models(), REQUESTS["texts"], cache=cache, progress=False)
    n = len(REQUESTS["keys"])
    assert result.usage.calls == result.usage.cached == n and result.usage.errors == 0
    assert result.stop_reason is None
    for name, want in REQUESTS["outputs"].items():
        m = result[name]
        assert m.n_ok == len(REQUESTS["texts"]) and m.n_failed == 0
        assert plain(m.outputs) == want


def test_an_old_outputs_file_loads(tmp_path: Path) -> None:
    result = ts.ProbeResult.load(LEGACY / "outputs.jsonl")
    assert list(result.models) == list(REQUESTS["outputs"])
    assert result.probe_set == {"version": "legacy", "n": len(REQUESTS["texts"])}
    assert result.usage.calls == len(REQUESTS["keys"])
    for name, want in REQUESTS["outputs"].items():
        m = result[name]
        assert list(m.texts) == REQUESTS["texts"] and m.text_pairs is None
        assert m.labels == ("pos", "neg") and m.counts == {"failed": 0, "unparseable": 0, "skipped": 0}
        got = plain(m.outputs)
        for g, w in zip(got, want, strict=True):  # soft rows are stored to 7 decimals
            assert g == w if isinstance(w, str) else g == pytest.approx(w, abs=1e-7)
    # Saving it again gives the same bytes: a file the old reader reads as it read the original.
    result.save(tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_bytes() == (LEGACY / "outputs.jsonl").read_bytes()


def test_an_old_space_file_opens(tmp_path: Path) -> None:
    with ts.TaskSpace.open(copy("space.sqlite", tmp_path)) as space:
        assert space.fingerprint == SPACE["fingerprint"]
        assert {k: space.surrogate.config[k] for k in SPACE["surrogate"]} == SPACE["surrogate"]
        vectors = {n: hashlib.sha256(space.get(n).vector.tobytes()).hexdigest() for n in space.names()}
        assert vectors == SPACE["vectors"]
        for name, want in SPACE["nearest"].items():
            got = [[a, round(float(s), 6)] for a, s in space.nearest(name, k=3)]
            assert got == want
