"""Build taskspace's default probe set from hand-written templates and slot fillers.

Every sentence template and every slot filler in this folder was written for taskspace by its
authors; nothing is copied from a dataset or any other text. The build is fully deterministic (its
own SplitMix64 generator, no ``random``, no hashing of Python objects), so the same sources always
give the same file, byte for byte.

Run from the repository root::

    python tools/probe_set/build.py            # writes python/taskspace/probing/data/probe_set_v1.jsonl
    python tools/probe_set/build.py --check    # fails if the shipped file differs from a fresh build

Template syntax: ``{slot}`` is replaced by a filler drawn from the category's ``slots[slot]``;
``{^slot}`` capitalises the filler's first letter; ``{slot#2}`` draws another filler of the same slot
(distinct from the other occurrences when the slot has enough fillers). Texts are deduplicated
ignoring case, punctuation and spacing. Each category fills its quota round-robin over its
templates (one new text per template per round), so no template dominates. The final order
interleaves the categories by stratified positions with seeded jitter: any prefix of the file is a
near-balanced sample of all categories.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import conversation  # noqa: E402
import news  # noqa: E402
import questions  # noqa: E402
import reviews  # noqa: E402
import service  # noqa: E402
import statements  # noqa: E402

VERSION = 1
#: Texts per category.
QUOTA = 120
OUTPUT = HERE.parents[1] / "python" / "taskspace" / "probing" / "data" / f"probe_set_v{VERSION}.jsonl"
MODULES = (reviews, news, questions, conversation, service, statements)
_MASK = (1 << 64) - 1
_SLOT = re.compile(r"\{(\^?)(\w+)(#\d+)?\}")
_MAX_ATTEMPTS = 40


class SplitMix64:
    """Steele, Lea and Flood's SplitMix64: a tiny, fully specified 64-bit generator."""

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.next() % n

    def uniform(self) -> float:
        return (self.next() >> 11) / float(1 << 53)

    def shuffle(self, items: list) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


def seed_of(*parts: str) -> int:
    digest = hashlib.sha256(":".join(("taskspace-probe-set", str(VERSION), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def dedup_key(text: str) -> str:
    """Texts that differ only in case, punctuation or spacing are duplicates."""
    return " ".join(re.sub(r"[\W_]+", " ", text.lower()).split())


def fill(template: str, slots: dict[str, list[str]], rng: SplitMix64) -> str:
    used: dict[str, set[str]] = {}

    def one(match: re.Match[str]) -> str:
        caps, name = match.group(1), match.group(2)
        choices = slots[name]
        taken = used.setdefault(name, set())
        fresh = [c for c in choices if c not in taken] or choices
        value = fresh[rng.below(len(fresh))]
        taken.add(value)
        return value[:1].upper() + value[1:] if caps else value

    return _SLOT.sub(one, template)


def check_category(name: str, spec: dict) -> None:
    templates, slots = spec["templates"], spec.get("slots", {})
    if len(set(templates)) != len(templates):
        raise ValueError(f"{name}: duplicate templates")
    for t in templates:
        for m in _SLOT.finditer(t):
            if m.group(2) not in slots:
                raise ValueError(f"{name}: template {t!r} uses unknown slot {m.group(2)!r}")
        if "{" in _SLOT.sub("", t) or "}" in _SLOT.sub("", t):
            raise ValueError(f"{name}: malformed placeholder in {t!r}")
    for slot, fillers in slots.items():
        if len(set(fillers)) != len(fillers):
            dupes = sorted({f for f in fillers if fillers.count(f) > 1})
            raise ValueError(f"{name}: slot {slot!r} has duplicate fillers {dupes}")


def generate_category(name: str, spec: dict, quota: int, seen: set[str]) -> list[str]:
    """``quota`` new texts of one category, round-robin over its templates."""
    check_category(name, spec)
    rng = SplitMix64(seed_of(name))
    templates = list(spec["templates"])
    slots = spec.get("slots", {})
    rng.shuffle(templates)
    active = list(range(len(templates)))
    out: list[str] = []
    while len(out) < quota:
        if not active:
            raise ValueError(f"{name}: templates exhausted after {len(out)} of {quota} texts")
        still = []
        for i in active:
            if len(out) == quota:
                still.append(i)
                continue
            for _ in range(_MAX_ATTEMPTS):
                text = " ".join(fill(templates[i], slots, rng).split())
                key = dedup_key(text)
                if key not in seen:
                    seen.add(key)
                    out.append(text)
                    still.append(i)
                    break
        active = still
    return out


def categories() -> dict[str, dict]:
    specs: dict[str, dict] = {}
    for module in MODULES:
        for name, spec in module.CATEGORIES.items():
            if name in specs:
                raise ValueError(f"category {name!r} is defined twice")
            specs[name] = spec
    return specs


def build() -> list[tuple[str, str]]:
    """(text, category) rows in their final, stratified order."""
    seen: set[str] = set()
    keyed: list[tuple[float, str, str]] = []
    for name, spec in categories().items():
        texts = generate_category(name, spec, QUOTA, seen)
        rng = SplitMix64(seed_of(name, "order"))
        rng.shuffle(texts)
        # Item i of a category sits at stratified position (i + jitter) / quota, so every prefix of
        # the merged list holds each category in proportion.
        keyed.extend(((i + rng.uniform()) / len(texts), name, t) for i, t in enumerate(texts))
    keyed.sort()
    return [(t, name) for _, name, t in keyed]


def serialize(rows: Iterable[tuple[str, str]]) -> bytes:
    lines = [json.dumps({"text": t, "category": c}, ensure_ascii=False) for t, c in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def stats(rows: list[tuple[str, str]]) -> str:
    specs = categories()
    n_templates = sum(len(s["templates"]) for s in specs.values())
    bigrams: list[tuple[str, str]] = []
    for t, _ in rows:
        words = dedup_key(t).split()
        bigrams.extend(itertools.pairwise(words))
    return (
        f"{len(rows)} texts, {len(specs)} categories, {n_templates} templates, "
        f"distinct word bigrams {len(set(bigrams))}/{len(bigrams)} = {len(set(bigrams)) / len(bigrams):.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify the shipped file instead of writing it")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where to write (default: {OUTPUT})")
    args = parser.parse_args(argv)
    rows = build()
    data = serialize(rows)
    if args.check:
        if not args.output.is_file() or args.output.read_bytes() != data:
            print(
                f"{args.output} differs from a fresh build; run python tools/probe_set/build.py",
                file=sys.stderr,
            )
            return 1
        print(f"{args.output} is up to date: {stats(rows)}")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(f"wrote {args.output}: {stats(rows)}; sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
