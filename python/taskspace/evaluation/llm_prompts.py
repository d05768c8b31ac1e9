"""The prompts of the real-LLM experiment, written down once: tasks, wordings, verbalizers, ids, split.

Eight tasks of ``--data DIR`` (three sentiment tasks, topic, subjectivity, spam, offensive language, NLI).
Each task has one wording (:class:`Wording`: an instruction, a vague and an off-task question, the
input block, four demonstrations, the verbalizers and alternative verbalizers), and every task gets
the same twelve prompt kinds (:data:`KINDS`), each for a real reason:

===================  ==========================================================================
``good``             the instruction, then the input, ``Answer:``
``after``            the input first, then the instruction (same words, other order)
``vague``            a vague question that names no label
``off_task``         a question about something else, read with the task's verbalizers
``bare``             no instruction: the input and a cue word (``Sentiment:``)
``fewshot_right``    the instruction and four demonstrations with their right labels
``fewshot_wrong``    the same demonstrations with wrong (rotated) labels
``swapped``          ``good`` read with rotated verbalizers (label i scored by label i+1's words)
``swapped_fewshot``  ``fewshot_right`` read with rotated verbalizers
``alt_words``        ``good`` read with other verbalizers (``good``/``bad`` instead of ``positive``/…)
``chat_good``        ``good``'s instruction and input as a chat message (chat models only)
``chat_vague``       ``vague`` as a chat message (chat models only)
===================  ==========================================================================

``swapped``, ``swapped_fewshot`` and ``alt_words`` cost **no model call**: they are the same
requests as their ``base`` prompt, read with another verbalizer mapping (the harness permutes or
re-reads the cached answers). Sentiment tasks on reviews (``sst2``, ``cr``) share one wording, so
their probe-set answers are asked once.

**The development / final split** (:func:`split`) is fixed here, before any result exists: within a
task, prompt ids are ordered by ``sha256("taskspace-llm-split-v1:" + id)`` and the first half is the
development half. It depends on nothing but the ids.

Example:
    >>> from taskspace.evaluation.llm_prompts import prompt_pool, split
    >>> [p.id for p in prompt_pool("sst2_movie_sentiment")][:3]
    ['sst2_movie_sentiment/good', 'sst2_movie_sentiment/after', 'sst2_movie_sentiment/vague']
    >>> dev, final = split("sst2_movie_sentiment")
    >>> len(dev), len(final), sorted(dev + final) == sorted(p.id for p in prompt_pool("sst2_movie_sentiment"))
    (6, 6, True)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "KINDS",
    "TASKS",
    "TOP_LOGPROBS",
    "PromptSpec",
    "Wording",
    "prompt_pool",
    "split",
]

#: Candidates per position asked for in ``logprobs`` (the server's and OpenAI's maximum).
TOP_LOGPROBS = 20
#: Salt of the development / final split; a new salt is a new split (and must be said so).
SPLIT_SALT = "taskspace-llm-split-v1"

Verbs = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class Wording:
    """How one task is asked: label -> verbalizers (the first word is the one demonstrations
    use), alternative verbalizers, the input block (``{text}``/``{text_pair}``), instruction, vague
    and off-task questions, the cue word of ``bare`` and four demonstrations ``(text, pair, label)``."""

    labels: Verbs
    alt: Verbs
    block: str
    instruction: str
    vague: str
    off_task: str
    cue: str
    demos: tuple[tuple[str, str | None, str], ...]


@dataclass(frozen=True)
class PromptSpec:
    """One candidate prompt: its id, task, kind, template, verbalizers, whether it is a chat
    message, and for free variants the ``base`` prompt whose answers it re-reads (else ``None``)."""

    id: str
    task: str
    kind: str
    template: str
    labels: Verbs
    chat: bool = False
    base: str | None = None

    @property
    def request_id(self) -> str:
        """The prompt whose requests answer this one (itself, or its ``base``)."""
        return self.base or self.id


_REVIEWS = Wording(
    labels={"negative": ["negative", "bad", "terrible"], "positive": ["positive", "good", "great"]},
    alt={"negative": ["bad", "poor"], "positive": ["good", "nice"]},
    block="Review: {text}",
    instruction="Is the sentiment of this review positive or negative?",
    vague="What do you make of this?",
    off_task="Is this text written in English?",
    cue="Sentiment",
    demos=(
        ("A moving, beautifully acted film that stays with you.", None, "positive"),
        ("The battery died after two days and support never answered.", None, "negative"),
        ("Works exactly as described and the price was fair.", None, "positive"),
        ("A dull, lifeless mess from start to finish.", None, "negative"),
    ),
)

WORDINGS: dict[str, Wording] = {
    "sst2_movie_sentiment": _REVIEWS,
    "cr_product_sentiment": _REVIEWS,
    "tweet_sentiment": Wording(
        labels={
            "negative": ["negative", "bad"],
            "neutral": ["neutral", "neither", "mixed"],
            "positive": ["positive", "good"],
        },
        alt={"negative": ["sad", "angry"], "neutral": ["okay", "fine"], "positive": ["happy", "glad"]},
        block="Tweet: {text}",
        instruction="Is the sentiment of this tweet positive, negative or neutral?",
        vague="What about this one?",
        off_task="Does this tweet mention a place?",
        cue="Sentiment",
        demos=(
            ("Best concert of my life last night!! #blessed", None, "positive"),
            ("The 8:15 train is delayed again. Every single day.", None, "negative"),
            ("New episode drops on Friday at 9pm.", None, "neutral"),
            ("So happy for my sister, she got the job :)", None, "positive"),
        ),
    ),
    "ag_news_topic": Wording(
        labels={
            "world": ["world", "politics", "international"],
            "sports": ["sports", "sport"],
            "business": ["business", "economy", "finance"],
            "sci/tech": ["science", "technology", "tech"],
        },
        alt={
            "world": ["global", "foreign"],
            "sports": ["football", "games"],
            "business": ["markets", "money"],
            "sci/tech": ["computers", "research"],
        },
        block="Article: {text}",
        instruction="Is this news article about world, sports, business or science?",
        vague="Tell me about this.",
        off_task="Is this article good news or bad news?",
        cue="Topic",
        demos=(
            ("Rebels and government agree to a ceasefire after talks in Geneva.", None, "world"),
            ("Striker scores twice as United win the cup final.", None, "sports"),
            ("Shares of the retailer fall 8% after weak quarterly earnings.", None, "business"),
            ("New chip design doubles battery life of smartphones, researchers say.", None, "sci/tech"),
        ),
    ),
    "subj_subjectivity": Wording(
        labels={"subjective": ["subjective", "opinion"], "objective": ["objective", "fact", "factual"]},
        alt={"subjective": ["personal", "feeling"], "objective": ["neutral", "plot"]},
        block="Sentence: {text}",
        instruction="Is this sentence subjective (an opinion) or objective (a fact)?",
        vague="Any thoughts?",
        off_task="Is this sentence long or short?",
        cue="Type",
        demos=(
            ("The film is a joyless, overlong slog.", None, "subjective"),
            ("After the war, Tom returns to his hometown to find his farm sold.", None, "objective"),
            ("I found its humour sharp and its heart even sharper.", None, "subjective"),
            ("The story follows two sisters who run a bakery in Lyon.", None, "objective"),
        ),
    ),
    "sms_spam": Wording(
        labels={"not spam": ["no", "ham", "legitimate"], "spam": ["yes", "spam"]},
        alt={"not spam": ["normal", "personal"], "spam": ["advert", "scam"]},
        block="Message: {text}",
        instruction="Is this text message spam? Answer yes or no.",
        vague="What is this?",
        off_task="Is this message about food? Answer yes or no.",
        cue="Spam",
        demos=(
            ("WINNER!! You have won a £1000 prize. Call 09061701461 now to claim.", None, "spam"),
            ("Running 10 min late, save me a seat", None, "not spam"),
            ("Free entry to our weekly draw! Text WIN to 80086 to enter.", None, "spam"),
            ("Can you pick up milk on the way home?", None, "not spam"),
        ),
    ),
    "tweet_offensive": Wording(
        labels={"not offensive": ["no", "fine", "polite"], "offensive": ["yes", "offensive", "rude"]},
        alt={"not offensive": ["clean", "harmless"], "offensive": ["insulting", "abusive"]},
        block="Tweet: {text}",
        instruction="Is this tweet offensive? Answer yes or no.",
        vague="Thoughts?",
        off_task="Is this tweet about sports? Answer yes or no.",
        cue="Offensive",
        demos=(
            ("@user you are a pathetic idiot and everyone knows it", None, "offensive"),
            ("@user thanks for the lovely evening, see you soon", None, "not offensive"),
            ("@user shut up, nobody cares about your stupid opinion", None, "offensive"),
            ("@user the new park by the river looks great", None, "not offensive"),
        ),
    ),
    "rte_nli": Wording(
        labels={"entailment": ["yes", "true", "entailment"], "not entailment": ["no", "false", "not"]},
        alt={"entailment": ["correct", "right"], "not entailment": ["wrong", "incorrect"]},
        block="Premise: {text}\nHypothesis: {text_pair}",
        instruction="Does the premise entail the hypothesis? Answer yes or no.",
        vague="What do you say?",
        off_task="Is the hypothesis shorter than the premise? Answer yes or no.",
        cue="Entailed",
        demos=(
            (
                "The company hired forty new engineers last spring.",
                "The company hired engineers.",
                "entailment",
            ),
            ("The museum is closed on Mondays.", "The museum opened a new wing.", "not entailment"),
            ("Maria won the city marathon in 2019.", "Maria took part in a marathon.", "entailment"),
            ("The bridge was built in 1932.", "The bridge was demolished in 1932.", "not entailment"),
        ),
    ),
}
#: The experiment's tasks (directories of ``--data DIR/tasks``), in probing order.
TASKS: tuple[str, ...] = tuple(WORDINGS)
#: Prompt kinds in pool order (the first ``n`` of a pool are used when fewer are asked for).
KINDS: tuple[str, ...] = (
    "good",
    "after",
    "vague",
    "off_task",
    "bare",
    "fewshot_right",
    "fewshot_wrong",
    "swapped",
    "swapped_fewshot",
    "alt_words",
    "chat_good",
    "chat_vague",
)


def rotated(labels: Verbs) -> dict[str, list[str]]:
    """Label i verbalized by label i+1's words (cyclically): the swapped mapping."""
    names = list(labels)
    return {name: list(labels[names[(i + 1) % len(names)]]) for i, name in enumerate(names)}


def _demos(w: Wording, *, wrong: bool) -> str:
    names = list(w.labels)
    out = []
    for text, pair, label in w.demos:
        shown = names[(names.index(label) + 1) % len(names)] if wrong else label
        block = w.block.replace("{text}", text).replace("{text_pair}", pair or "")
        out.append(f"{block}\nAnswer: {w.labels[shown][0]}\n\n")
    return "".join(out)


def _templates(w: Wording) -> dict[str, str]:
    ask = f"\n\n{w.block}\nAnswer:"
    return {
        "good": w.instruction + ask,
        "after": f"{w.block}\n{w.instruction}\nAnswer:",
        "vague": w.vague + ask,
        "off_task": w.off_task + ask,
        "bare": f"{w.block}\n{w.cue}:",
        "fewshot_right": f"{w.instruction}\n\n{_demos(w, wrong=False)}{w.block}\nAnswer:",
        "fewshot_wrong": f"{w.instruction}\n\n{_demos(w, wrong=True)}{w.block}\nAnswer:",
        "chat_good": f"{w.instruction}\n\n{w.block}",
        "chat_vague": f"{w.vague}\n\n{w.block}",
    }


def prompt_pool(task: str) -> list[PromptSpec]:
    """Every candidate prompt of ``task`` (a name in :data:`TASKS`), in :data:`KINDS` order."""
    if task not in WORDINGS:
        raise ValueError(f"unknown task {task!r}; expected one of {list(TASKS)}")
    w = WORDINGS[task]
    tpl = _templates(w)
    free = {
        "swapped": ("good", rotated(w.labels)),
        "swapped_fewshot": ("fewshot_right", rotated(w.labels)),
        "alt_words": ("good", w.alt),
    }
    pool = []
    for kind in KINDS:
        pid = f"{task}/{kind}"
        if kind in free:
            base, labels = free[kind]
            pool.append(PromptSpec(pid, task, kind, tpl[base], labels, base=f"{task}/{base}"))
        else:
            pool.append(PromptSpec(pid, task, kind, tpl[kind], w.labels, chat=kind.startswith("chat_")))
    return pool


def split(task: str) -> tuple[list[str], list[str]]:
    """(development ids, final ids) of ``task``'s pool: ids ordered by a salted sha256, first half
    development. Fixed by the ids alone, before any answer is seen."""
    ids = [p.id for p in prompt_pool(task)]
    order = sorted(ids, key=lambda i: hashlib.sha256(f"{SPLIT_SALT}:{i}".encode()).hexdigest())
    half = (len(order) + 1) // 2
    dev = set(order[:half])
    return [i for i in ids if i in dev], [i for i in ids if i not in dev]
