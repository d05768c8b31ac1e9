"""The default probe set: pinned content, diversity, balance, determinism, API."""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import itertools
import json
import re
import sys
from pathlib import Path

import pytest
import taskspace as ts
from shared_data import DATA
from taskspace.probing.texts import (
    LATEST_PROBE_SET_VERSION,
    PROBE_SET_VERSIONS,
    probe_set,
    probe_set_categories,
)

ROOT = Path(__file__).resolve().parents[1]
FILE = Path(ts.__file__).resolve().parent / "probing" / "data" / "probe_set_v1.jsonl"
BUILD = ROOT / "tools" / "probe_set" / "build.py"

# A version is frozen: changing the file means a new version, not a new hash here.
SHA256_V1 = "a020db80aa157a95348b441c6861add378518a30498b66a946e210afe4ba4411"
SIZE_V1 = 2520


def key(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.lower()).split())


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with FILE.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_file_is_pinned():
    data = FILE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SHA256_V1, "probe set v1 changed; add a new version instead"
    assert data.endswith(b"\n") and data.count(b"\n") == SIZE_V1


def test_rows_are_well_formed(rows):
    assert len(rows) == SIZE_V1
    for i, row in enumerate(rows):
        assert set(row) == {"text", "category"}, i
        text = row["text"]
        assert isinstance(text, str) and text == text.strip() and "  " not in text, i
        assert 3 <= len(text.split()) <= 40, text
        assert "{" not in text and "}" not in text, text  # no unfilled template slot
        assert re.fullmatch(r"[a-z_]+", row["category"]), row["category"]


def test_no_duplicates_ignoring_case_and_punctuation(rows):
    keys = [key(r["text"]) for r in rows]
    assert len(set(keys)) == len(keys)


def test_diversity(rows):
    texts = [r["text"] for r in rows]
    words = [key(t).split() for t in texts]
    bigrams = [b for w in words for b in itertools.pairwise(w)]
    assert len(set(bigrams)) / len(bigrams) >= 0.3
    assert len({w for ws in words for w in ws}) >= 2500
    prefixes = collections.Counter(" ".join(w[:3]) for w in words)
    assert prefixes.most_common(1)[0][1] / len(texts) <= 0.03, prefixes.most_common(3)
    categories = collections.Counter(r["category"] for r in rows)
    assert len(categories) >= 15
    assert max(categories.values()) / len(rows) <= 0.06
    expected = {
        "review_product",
        "review_media",
        "review_restaurant",
        "review_app",
        "news_sports",
        "news_business",
        "news_science",
        "news_politics",
        "question_factoid",
        "question_howto",
        "question_opinion",
        "chat_forum",
        "instruction",
        "tweet",
        "technical",
        "customer_service",
        "sms",
        "statement_subjective",
        "statement_objective",
        "negated",
        "sarcastic",
    }
    assert set(categories) == expected
    assert sum("#" in t for t in texts) >= 50 and sum("@" in t for t in texts) >= 10
    assert sum(t.endswith("?") for t in texts) >= 300


@pytest.mark.parametrize("n", [21, 105, 210, 500, 1000, 2000])
def test_every_prefix_is_balanced(rows, n):
    counts = collections.Counter(r["category"] for r in rows[:n])
    total = collections.Counter(r["category"] for r in rows)
    for category, size in total.items():
        assert abs(counts[category] - n * size / len(rows)) <= 1.5, (category, counts[category])


def test_a_fresh_build_gives_the_same_bytes():
    if not BUILD.is_file():
        pytest.skip(f"the probe set's build script is not at {BUILD} (not a source checkout)")
    spec = importlib.util.spec_from_file_location("taskspace_probe_set_build", BUILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
        data = module.serialize(module.build())
    finally:
        sys.path[:] = saved
    assert data == FILE.read_bytes()


def test_no_text_is_taken_from_the_evaluation_data(rows):
    if not (DATA / "tasks").is_dir():
        pytest.skip(f"evaluation data not found at {DATA}")
    ours = {key(r["text"]) for r in rows}
    clashes = []
    for path in sorted(DATA.rglob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                for field in ("text", "text_pair"):
                    value = row.get(field)
                    if isinstance(value, str) and key(value) in ours:
                        clashes.append((path.parent.name, value))
    assert not clashes


def test_probe_set_api(rows):
    texts = probe_set()
    assert texts == [r["text"] for r in rows]
    assert probe_set(1) == texts and probe_set(LATEST_PROBE_SET_VERSION) == texts
    assert PROBE_SET_VERSIONS == (1,)
    assert probe_set(n=10) == texts[:10]
    texts.append("mutating the returned list does not touch the set")
    assert len(probe_set()) == SIZE_V1
    sms = probe_set(categories=["sms"])
    assert sms == [r["text"] for r in rows if r["category"] == "sms"]
    two = probe_set(categories=("sms", "tweet"), n=20)
    assert len(two) == 20 and set(two) <= {r["text"] for r in rows if r["category"] in ("sms", "tweet")}
    cats = probe_set_categories()
    assert sum(cats.values()) == SIZE_V1 and len(cats) == 21 and set(cats.values()) == {120}
    if hasattr(ts, "probe_set"):
        assert ts.probe_set(n=5) == texts[:5]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"version": 2}, ts.InvalidInputError, "no probe set version 2"),
        ({"version": 0}, ts.InvalidInputError, "shipped versions"),
        ({"version": "1"}, TypeError, "version must be an int"),
        ({"version": True}, TypeError, "version must be an int"),
        ({"n": 0}, ts.InvalidInputError, "n must be in 1..2520"),
        ({"n": 2521}, ts.InvalidInputError, "n must be in 1..2520"),
        ({"n": 2.5}, TypeError, "n must be an int"),
        ({"categories": ["sms"], "n": 121}, ts.InvalidInputError, "n must be in 1..120"),
        ({"categories": ["sms", "poetry"]}, ts.InvalidInputError, "unknown probe set categories"),
        ({"categories": "sms"}, TypeError, "not a single str"),
        ({"categories": []}, ts.InvalidInputError, "categories is empty"),
    ],
)
def test_probe_set_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=re.escape(match)):
        probe_set(**kwargs)
