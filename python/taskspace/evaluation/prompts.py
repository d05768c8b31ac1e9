"""The candidate prompts of the prompt-selection experiment, as local prompt-driven models.

For each task: :class:`~taskspace.models.ZeroShot` prompts (good, bare, partial, swapped and
irrelevant label descriptions under paraphrased templates) and :class:`~taskspace.models.InContext`
prompts (right, noisy, random and rotated demonstrations of several sizes). Demonstrations are
sampled with seeded generators, so the same seed gives the same prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from taskspace.evaluation.data import Task
from taskspace.models.in_context import InContext
from taskspace.models.prompt_model import PromptModel
from taskspace.models.zero_shot import ZeroShot
from taskspace.probing.endpoints import CallableModel

__all__ = ["DESCRIPTIONS", "build_prompt_models", "prompt_callable", "prompt_family"]

_SENTIMENT2 = {
    "negative": "bad, awful, terrible, boring, disappointing, I hated it",
    "positive": "good, great, excellent, wonderful, enjoyable, I loved it",
}
#: Label descriptions written for each label set of the prompt-selection tasks.
DESCRIPTIONS: dict[str, dict[str, str]] = {
    "mr_movie_sentiment": _SENTIMENT2,
    "sst2_movie_sentiment": _SENTIMENT2,
    "cr_product_sentiment": _SENTIMENT2,
    "amazon_electronics_sentiment": _SENTIMENT2,
    "mpqa_opinion_polarity": _SENTIMENT2,
    "sst5_movie_sentiment": {
        "very negative": "awful, terrible, the worst, unbearable, I hated it",
        "negative": "bad, dull, disappointing, weak, tedious",
        "neutral": "okay, average, mixed, so-so, neither good nor bad",
        "positive": "good, nice, enjoyable, solid, likable",
        "very positive": "excellent, brilliant, a masterpiece, superb, I loved it",
    },
    "tweet_sentiment": {
        "negative": "bad, sad, angry, hate, awful, terrible",
        "neutral": "news, information, an announcement, a plain fact, a schedule",
        "positive": "good, great, happy, love, awesome, excited",
    },
    "subj_subjectivity": {
        "subjective": "an opinion, I think, beautiful, boring, brilliant, a critic's judgement",
        "objective": "the plot, a story about a man who, events, when he, she discovers, they travel",
    },
    "trec_question_type": {
        "abbreviation": "what does the abbreviation stand for, an acronym, short for",
        "description": "what is, how does, why, a definition, describe, explain",
        "entity": "what kind of thing, which animal, what color, what object, what sport",
        "human": "who, which person, what person, whose name, who invented",
        "location": "where, which country, what city, what place, in which state",
        "numeric": "how many, how much, when, what year, how long, what number",
    },
    "ag_news_topic": {
        "world": "world news, government, war, president, country, election, international",
        "sports": "sports, game, team, match, season, win, player, coach",
        "business": "business, company, market, stocks, economy, profits, oil prices",
        "sci/tech": "science, technology, software, internet, computer, space, research",
    },
    "sms_spam": {
        "not spam": "a personal message to a friend, see you later, ok, I am home, love you",
        "spam": "free prize, win cash, call now, txt, claim your reward, urgent offer",
    },
    "tweet_emotion": {
        "anger": "angry, furious, hate, annoyed, rage, so mad",
        "joy": "happy, joy, fun, laughing, a great day, delighted",
        "optimism": "hope, optimistic, believe, the future, it will get better",
        "sadness": "sad, depressed, crying, lonely, I miss, heartbroken",
    },
}
_TEMPLATES = {
    "review": ("This review is {}.", "The sentiment of this text is {}.", "{}"),
    "generic": ("This text is about {}.", "{}", "In one word: {}."),
}
_IRRELEVANT = (
    "sunny weather, rain, clouds, temperature",
    "a recipe, flour, sugar, baking",
    "a car engine, tires, brakes, fuel",
    "a garden, flowers, soil, watering",
    "a piano, violin, melody, concert",
    "a hiking trail, mountains, a map",
)


def _zero_shot_prompts(task: Task) -> list[tuple[str, str, dict[str, str]]]:
    """(prompt name, template, descriptions): good/bare/partial/swapped/irrelevant x templates."""
    good = DESCRIPTIONS[task.name]
    labels = list(task.labels)
    kind = "review" if "sentiment" in task.name or "polarity" in task.name else "generic"
    t = _TEMPLATES[kind]
    rotate = {lab: labels[(j + 1) % len(labels)] for j, lab in enumerate(labels)}
    names = {lab: lab for lab in labels}
    first = {lab: good[lab].split(",")[0] for lab in labels}
    swapped = {lab: good[rotate[lab]] for lab in labels}
    swapped_names = {lab: rotate[lab] for lab in labels}
    irrelevant = {lab: _IRRELEVANT[j % len(_IRRELEVANT)] for j, lab in enumerate(labels)}
    return [
        ("zs/good/t0", t[0], good),
        ("zs/good/t1", t[1], good),
        ("zs/good/t2", t[2], good),
        ("zs/names/t0", t[0], names),
        ("zs/names/t1", t[1], names),
        ("zs/first-word/t0", t[0], first),
        ("zs/swapped/t0", t[0], swapped),
        ("zs/swapped/t2", t[2], swapped),
        ("zs/swapped-names/t1", t[1], swapped_names),
        ("zs/irrelevant/t0", t[0], irrelevant),
    ]


def _in_context_prompts(task: Task, seed: int) -> list[tuple[str, list[tuple[str, str]], int]]:
    """(prompt name, demonstrations, k): right, noisy, random-label and rotated demonstrations."""
    labels = list(task.labels)
    by_label: dict[str, list[int]] = {lab: [] for lab in labels}
    for i, y in enumerate(task.train.labels):
        by_label[y].append(i)
    texts = task.train.texts

    def sample(per_label: int, salt: int) -> list[tuple[str, str]]:
        rng = np.random.default_rng([seed, salt])
        demos: list[tuple[str, str]] = []
        for lab in labels:
            idx = by_label[lab]
            if idx:
                pick = rng.choice(len(idx), size=min(per_label, len(idx)), replace=False)
                demos.extend((texts[idx[int(j)]], lab) for j in sorted(pick))
        return demos

    def noisy(demos: list[tuple[str, str]], fraction: float, salt: int) -> list[tuple[str, str]]:
        rng = np.random.default_rng([seed, salt, 1])
        flip = rng.random(len(demos)) < fraction
        out = []
        for (x, y), f in zip(demos, flip, strict=True):
            if f:
                others = [lab for lab in labels if lab != y]
                y = others[int(rng.integers(len(others)))]
            out.append((x, y))
        return out

    rotate = {lab: labels[(j + 1) % len(labels)] for j, lab in enumerate(labels)}
    d8 = sample(8, 2)
    shuffled_rng = np.random.default_rng([seed, 6])
    random_labels = [(x, labels[int(shuffled_rng.integers(len(labels)))]) for x, _ in sample(8, 6)]
    return [
        ("icl/right-4/k3", sample(4, 1), 3),
        ("icl/right-8/k5", d8, 5),
        ("icl/right-16/k9", sample(16, 3), 9),
        ("icl/right-2/k1", sample(2, 4), 1),
        ("icl/noise-25-16/k9", noisy(sample(16, 5), 0.25, 5), 9),
        ("icl/noise-50-8/k5", noisy(d8, 0.5, 2), 5),
        ("icl/random-labels-8/k5", random_labels, 5),
        ("icl/rotated-8/k5", [(x, rotate[y]) for x, y in d8], 5),
    ]


def build_prompt_models(task: Task, encoder: Any, *, seed: int = 0) -> dict[str, PromptModel]:
    """The candidate prompted models of a task: ``{prompt name: ZeroShot | InContext}``."""
    models: dict[str, PromptModel] = {}
    for name, template, desc in _zero_shot_prompts(task):
        models[name] = ZeroShot(template, {lab: desc[lab] for lab in task.labels}, encoder=encoder)
    for name, demos, k in _in_context_prompts(task, seed):
        models[name] = InContext(demos, k=k, labels=task.labels, encoder=encoder)
    return models


def prompt_callable(
    model: Any, name: str, labels: Sequence[str], *, cache: bool, mode: str = "label", batch_size: int = 256
) -> CallableModel:
    """A prompt model as the probe layer's model: soft labels (``mode="label"``) or label names
    (``"text"``), cached under the model's own name when ``cache``."""

    def soft(texts: Sequence[str]) -> list[Any]:
        _, p = model.predict_proba(texts)
        return list(p)

    def hard(texts: Sequence[str]) -> list[str]:
        return model.predict(texts)

    return CallableModel(
        soft if mode == "label" else hard,
        name=name,
        mode=mode,  # type: ignore[arg-type]
        labels=list(labels) if mode == "label" else None,
        cache_id=f"evaluate/prompt/{model.name}" if cache else None,
        batch_size=batch_size,
        max_concurrency=2,
    )


def prompt_family(prompt: str) -> str:
    """``"zero-shot"`` or ``"in-context"``: the model family of a prompt name."""
    return "zero-shot" if prompt.startswith("zs/") else "in-context"
