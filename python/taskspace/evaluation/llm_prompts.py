"""The prompts of the real-LLM experiment: templates, verbalizers and the tasks they serve.

Tasks: the seven sentiment tasks (one shared set of templates, read with each task's label set:
binary, three-way or five-way verbalizers) and ``rte_nli`` (its own templates; probed with
:func:`taskspace.pair_probe` pairs). The prompts are deliberately mixed: good and swapped label
descriptions, right and wrong demonstrations, paraphrases, and off-task questions. Each prompt is a
:class:`taskspace.Prompted` model on the server's ``completions`` endpoint whose soft label is read
from the first generated token's ``logprobs``.

Example:
    >>> from taskspace.evaluation.llm_prompts import prompts_for_task
    >>> [p.name for p in prompts_for_task("sst2_movie_sentiment", "http://127.0.0.1:1/v1", n=2)]
    ['sentiment/chat_pos_neg', 'sentiment/review_colon']
"""

from __future__ import annotations

from collections.abc import Sequence

from taskspace.evaluation.llama_server import MODEL_ALIAS
from taskspace.probing.endpoints import OpenAIEndpoint
from taskspace.probing.prompted import Prompted

__all__ = ["LABEL_SETS", "TASKS", "TEMPLATES", "TOP_LOGPROBS", "endpoint", "prompts_for_task"]

#: Candidates per position asked for in ``logprobs``: enough that the verbalizers are listed even
#: when the model would rather say something else.
TOP_LOGPROBS = 50

_NEG = ["negative", "bad", "terrible", "awful"]
_POS = ["positive", "good", "great", "excellent"]
LABEL_SETS: dict[str, dict[str, list[str]]] = {
    "binary": {"negative": _NEG, "positive": _POS},
    "ternary": {"negative": _NEG, "neutral": ["neutral", "okay", "mixed"], "positive": _POS},
    "five": {
        "very negative": ["terrible", "awful", "horrible"],
        "negative": ["negative", "bad", "poor"],
        "neutral": ["neutral", "okay", "mixed", "average"],
        "positive": ["positive", "good", "nice"],
        "very positive": ["great", "excellent", "amazing", "wonderful"],
    },
    "nli": {"entailment": ["yes", "true", "entailment"], "not entailment": ["no", "false", "not"]},
}
#: Task -> (template family, label set). Label names equal the task's labels.
TASKS: dict[str, tuple[str, str]] = {
    # In probing order: one task of each family first, so a run cut short still covers both.
    "sst2_movie_sentiment": ("sentiment", "binary"),
    "rte_nli": ("nli", "nli"),
    "mr_movie_sentiment": ("sentiment", "binary"),
    "cr_product_sentiment": ("sentiment", "binary"),
    "tweet_sentiment": ("sentiment", "ternary"),
    "sst5_movie_sentiment": ("sentiment", "five"),
    "mpqa_opinion_polarity": ("sentiment", "binary"),
    "amazon_electronics_sentiment": ("sentiment", "binary"),
}


def _chat(user: str) -> str:
    """SmolLM2's ChatML turn, written out so the completions endpoint sees exactly this prompt."""
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


_SENT_DEMOS = (
    ("What a wonderful, moving film. I loved it.", "positive"),
    ("The battery died after two days and support never answered.", "negative"),
    ("Great value, works exactly as described.", "positive"),
    ("A dull, lifeless mess from start to finish.", "negative"),
)
_FLIP = {"positive": "negative", "negative": "positive", "yes": "no", "no": "yes"}


def _demos(demos: Sequence[tuple[str, str]], *, flip: bool, key: str = "Text") -> str:
    return "".join(f"{key}: {t}\nAnswer: {_FLIP[a] if flip else a}\n\n" for t, a in demos)


# Ten or more templates per family; the first ``prompts_per_task`` are used. Instructions come first
# where the prompt allows it, so llama.cpp reuses the evaluated prefix from the previous request.
TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "sentiment": (
        (
            "chat_pos_neg",
            _chat("Is the sentiment of this text positive or negative? Answer with one word.\n\n{text}"),
        ),
        ("review_colon", "Review: {text}\nSentiment:"),
        (
            "fewshot_right",
            "Decide whether each text is positive or negative.\n\n"
            + _demos(_SENT_DEMOS, flip=False)
            + "Text: {text}\nAnswer:",
        ),
        (
            "fewshot_wrong",
            "Decide whether each text is positive or negative.\n\n"
            + _demos(_SENT_DEMOS, flip=True)
            + "Text: {text}\nAnswer:",
        ),
        (
            "chat_scale",
            _chat(
                "How does the writer feel? Answer with one word: terrible, bad, okay, good or great.\n\n{text}"
            ),
        ),
        (
            "swapped_description",
            "Answer 'positive' if the text below is sad, angry or critical, and 'negative' if it is happy or full "
            "of praise.\n\nText: {text}\nAnswer:",
        ),
        ("cloze_overall", "{text}\nOverall, the opinion in this text is"),
        ("chat_liked", _chat("Did the author like it? Answer with one word, good or bad.\n\n{text}")),
        (
            "off_topic_section",
            "Which section of a newspaper does this text belong in?\n\nText: {text}\nSection:",
        ),
        ("question_after", "{text}\nQuestion: Is this positive or negative?\nAnswer:"),
        ("cloze_all_in_all", "{text} All in all, it was"),
        ("chat_critic", _chat("You are a film and product critic. Rate this in one word.\n\n{text}")),
    ),
    "nli": (
        ("true_false", "{text}\nQuestion: {text_pair} True or false?\nAnswer:"),
        (
            "chat_entail",
            _chat(
                "Premise: {text}\nHypothesis: {text_pair}\n\nDoes the premise entail the hypothesis? Answer yes or no."
            ),
        ),
        (
            "fewshot_right",
            "Does the first sentence imply the second? Answer yes or no.\n\n"
            "First: The company hired forty new engineers last spring.\nSecond: The company hired engineers.\n"
            "Answer: yes\n\nFirst: The museum is closed on Mondays.\nSecond: The museum opened a new wing.\n"
            "Answer: no\n\nFirst: {text}\nSecond: {text_pair}\nAnswer:",
        ),
        (
            "fewshot_wrong",
            "Does the first sentence imply the second? Answer yes or no.\n\n"
            "First: The company hired forty new engineers last spring.\nSecond: The company hired engineers.\n"
            "Answer: no\n\nFirst: The museum is closed on Mondays.\nSecond: The museum opened a new wing.\n"
            "Answer: yes\n\nFirst: {text}\nSecond: {text_pair}\nAnswer:",
        ),
        (
            "swapped_description",
            "Answer 'no' if the second sentence follows from the first, and 'yes' if it does not.\n\n"
            "First: {text}\nSecond: {text_pair}\nAnswer:",
        ),
        (
            "claim_evidence",
            "Evidence: {text}\nClaim: {text_pair}\nIs the claim true given the evidence? Answer:",
        ),
        (
            "chat_passage_question",
            _chat(
                "Read the passage and answer with yes or no.\n\nPassage: {text}\n\nQuestion: Is it true that {text_pair}"
            ),
        ),
        (
            "off_task_length",
            "First: {text}\nSecond: {text_pair}\nIs the second text shorter than the first? Answer:",
        ),
        (
            "same_topic",
            "Are these two texts about the same topic? Answer yes or no.\n\nText 1: {text}\nText 2: {text_pair}\nAnswer:",
        ),
        ("hypothesis_first", "{text_pair}\nIs that right, given this: {text}\nAnswer (yes or no):"),
        (
            "chat_contradict",
            _chat("Do these two sentences contradict each other? Answer yes or no.\n\n{text}\n{text_pair}"),
        ),
        ("based_on", "{text}\nBased on the text above, is it true that {text_pair}? Answer:"),
    ),
}


def endpoint(base_url: str) -> OpenAIEndpoint:
    """The probe layer's view of the server: the completions API, two requests in flight (the server
    answers one at a time; the second hides the client's turn-around)."""
    return OpenAIEndpoint(
        base_url, MODEL_ALIAS, kind="completions", max_concurrency=2, timeout=120.0, max_retries=3
    )


def prompts_for_task(task: str, base_url: str, *, n: int = 10) -> list[Prompted]:
    """The first ``n`` prompted models for ``task`` (a key of :data:`TASKS`) on the server at ``base_url``.

    Prompts ask for one token (``max_tokens=1``, greedy) with :data:`TOP_LOGPROBS` candidates; the
    soft label is read from them. Sentiment tasks share templates (and so cached answers); only
    their verbalizers differ.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    family, label_set = TASKS[task]
    templates = TEMPLATES[family]
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= len(templates):
        raise ValueError(f"prompts per task must be an int in 2..{len(templates)}, got {n!r}")
    ep = endpoint(base_url)
    params = {"max_tokens": 1, "logprobs": TOP_LOGPROBS, "temperature": 0}
    return [
        Prompted(ep, tpl, labels=LABEL_SETS[label_set], params=params, name=f"{family}/{name}")
        for name, tpl in templates[:n]
    ]
