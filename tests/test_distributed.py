"""taskspace.distributed on a local Ray instance (2 CPUs) started by this module.

Every distributed result is compared with the single-machine function on the same inputs: top-k
and threshold search bit for bit, embeddings bit for bit, and probing against a real aiohttp server
on 127.0.0.1 (a 429 pause shared across workers, resume from the cache after a partial run).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install taskspace[ray])")

import taskspace as ts  # noqa: E402
import taskspace.distributed as tsd  # noqa: E402
from probe_server import FakeOpenAI  # noqa: E402
from taskspace.errors import ProbeError  # noqa: E402
from taskspace.probing.cache import ProbeCache  # noqa: E402

KEY_ENV, API_KEY = "TASKSPACE_RAY_TEST_KEY", "sk-test-ray-0123456789"
DOC = Path(__file__).resolve().parents[1] / "docs" / "distributed.md"

pytestmark = [
    pytest.mark.timeout(120),
]

# The test module is not importable on Ray's workers: ship its functions by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    if ray.is_initialized():  # another module left a connection: start from a known cluster
        ray.shutdown()
    # Workers inherit the environment Ray starts with: the API key a probe test uses.
    os.environ[KEY_ENV] = API_KEY
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            yield
        finally:
            ray.shutdown()
    finally:
        del os.environ[KEY_ENV]


# -- search ----------------------------------------------------------------------------------------


def _vectors() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((403, 24)).astype(np.float32)
    x[11] = x[3]  # exact ties: the smaller id must come first
    x[12] = x[3]
    x[40] = 0.0  # a degenerate task: similarity 0 with everything, itself included
    # Rounded copies of a few rows: many equal scores across blocks.
    x[200:230] = np.round(x[200:230])
    x[300:330] = np.round(x[200:230])
    y = rng.standard_normal((259, 24)).astype(np.float32)
    y[5] = x[3]
    return x, y


@pytest.mark.parametrize(
    ("which", "k", "exclude_self", "block_rows"),
    [
        ("self", 7, False, 64),
        ("self", 7, True, 64),
        ("self", 1, True, 17),
        ("cross", 5, False, 50),
        ("self", 600, True, 128),  # more than the candidates: padded with -1 / -inf
        ("few", 4, True, 17),  # 10 query rows: the kernel's direct path, as locally
        ("few-cross", 4, False, 17),
    ],
)
def test_topk_equals_local(which: str, k: int, exclude_self: bool, block_rows: int) -> None:
    x, y = _vectors()
    a, b = {"self": (x, None), "cross": (x, y), "few": (x[:10], None), "few-cross": (x[:10], y)}[which]
    local = ts.similarity(a, b, top_k=k, exclude_self=exclude_self)
    dist = tsd.topk(a, b, k, exclude_self=exclude_self, block_rows=block_rows)
    assert dist.ids.dtype == np.int64 and dist.scores.dtype == np.float32
    np.testing.assert_array_equal(dist.ids, local.ids)
    np.testing.assert_array_equal(dist.scores, local.scores)


def test_topk_ties_and_self() -> None:
    x, _ = _vectors()
    res = tsd.topk(x, k=3, exclude_self=True, block_rows=20)
    assert res.ids[3].tolist()[:2] == [11, 12]  # equal scores: smaller id first
    assert res.ids[11].tolist()[:2] == [3, 12]
    assert not (res.ids == np.arange(len(x))[:, None]).any()  # never itself
    assert (res.scores[40] == 0).all()


def test_topk_takes_task_embeddings() -> None:
    sur = ts.Surrogate(features=32, dim=64)
    embs = [
        sur.dataset_embedding([f"w{i} a", f"w{i} b", "c", "d"], ["x", "y", "x", "y"], name=str(i))
        for i in range(20)
    ]
    local = ts.similarity(embs, top_k=3, exclude_self=True)
    dist = tsd.topk(embs, k=3, exclude_self=True, block_rows=17)
    np.testing.assert_array_equal(dist.ids, local.ids)
    other = ts.Surrogate(features=32, dim=64, seed=1).dataset_embedding(["a", "b"], ["x", "y"])
    with pytest.raises(ts.FingerprintMismatchError):
        tsd.topk(embs, [other], k=1)


def _cat(blocks: list[ts.Pairs]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.concatenate([getattr(p, f) for p in blocks]) for f in ("i", "j", "scores"))  # type: ignore[return-value]


@pytest.mark.parametrize("cross", [False, True])
def test_pairs_above_equals_local(cross: bool) -> None:
    x, y = _vectors()
    b = y if cross else None
    local = _cat(list(ts.pairs_above(x, b, threshold=0.25)))
    blocks = list(tsd.pairs_above(x, b, threshold=0.25, block_rows=70))
    assert len(blocks) == 6  # 403 rows in blocks of 70, one block per row block, in order
    dist = _cat(blocks)
    assert len(local[0]) > 1000
    for got, want in zip(dist, local, strict=True):
        np.testing.assert_array_equal(got, want)
    if not cross:
        assert (dist[0] < dist[1]).all()


def test_search_bad_input() -> None:
    x, y = _vectors()
    with pytest.raises(ts.InvalidInputError, match="k must be >= 1"):
        tsd.topk(x, k=0)
    with pytest.raises(TypeError, match="k must be an int"):
        tsd.topk(x, k=2.5)  # type: ignore[arg-type]
    with pytest.raises(ts.InvalidInputError, match="exclude_self"):
        tsd.topk(x, y, k=2, exclude_self=True)
    with pytest.raises(ts.InvalidInputError, match="block_rows must be >= 17"):
        tsd.topk(x, k=2, block_rows=4)
    with pytest.raises(ts.InvalidInputError, match="dimension mismatch"):
        tsd.topk(x, y[:, :5], k=2)
    bad = x.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ts.InvalidInputError, match="NaN"):
        tsd.topk(bad, k=2)
    with pytest.raises(ts.InvalidInputError, match="finite"):
        tsd.pairs_above(x, threshold=float("nan"))
    with pytest.raises(TypeError, match="ray_address"):
        tsd.topk(x, k=2, ray_address=5)  # type: ignore[arg-type]


# -- embeddings ------------------------------------------------------------------------------------


def _pairs_data(n: int) -> tuple[list[str], list[str], list[str]]:
    topics = ["cats", "the stock market", "a football match", "rain tomorrow", "my new phone"]
    texts = [
        f"post {i}: something about {topics[i % 5]} and {['love', 'hate'][i % 2]} {i * 7 % 11}"
        for i in range(n)
    ]
    # The first 700 rows (more than one 512-row piece) use only two of the three labels.
    labels = [["pos", "neg"][i % 2] if i < 700 else ["pos", "neg", "meh"][i % 3] for i in range(n)]
    seconds = [f"reply {i % 13}" for i in range(n)]
    return texts, labels, seconds


@pytest.mark.parametrize("shards", [1, 3, 8, 50])
def test_model_embedding_is_bit_identical(shards: int) -> None:
    sur = ts.Surrogate(features=64, dim=512)
    texts, labels, _ = _pairs_data(2100)
    local = sur.model_embedding(texts, labels, name="m")
    dist = tsd.model_embedding(sur, texts, labels, name="m", shards=shards)
    np.testing.assert_array_equal(dist.vector, local.vector)
    assert (dist.kind, dist.n, dist.name, dist.fingerprint) == ("model", 2100, "m", sur.fingerprint)


def test_embeddings_bit_identical_in_every_mode() -> None:
    sur = ts.Surrogate(features=48, dim=256, method="fisher")
    texts, labels, seconds = _pairs_data(1300)
    rng = np.random.default_rng(3)
    soft = rng.dirichlet(np.ones(4), size=len(texts))
    outs = [t.upper()[::-1] for t in texts]
    cases = [
        (sur.model_embedding(texts, soft), tsd.model_embedding(sur, texts, soft, shards=4)),
        (
            sur.model_embedding(texts, outs, seconds, mode="text"),
            tsd.model_embedding(sur, texts, outs, seconds, mode="text", shards=2),
        ),
        (
            sur.dataset_embedding(texts, labels, seconds, name="d"),
            tsd.dataset_embedding(sur, texts, labels, seconds, name="d", shards=3),
        ),
    ]
    for local, dist in cases:
        np.testing.assert_array_equal(dist.vector, local.vector)
        assert dist == local
    merged = tsd.stats(sur, texts, labels, shards=3)
    assert merged.labels == ("meh", "neg", "pos") and merged.n == 1300


def test_embedding_bad_input() -> None:
    sur = ts.Surrogate(features=16, dim=32)
    with pytest.raises(TypeError, match="Surrogate"):
        tsd.model_embedding("sur", ["a"], ["x"])  # type: ignore[arg-type]
    with pytest.raises(ts.InvalidInputError, match="shards must be >= 1"):
        tsd.model_embedding(sur, ["a", "b"], ["x", "y"], shards=0)
    with pytest.raises(ts.InvalidInputError, match="empty"):
        tsd.model_embedding(sur, [], [])
    with pytest.raises(ts.InvalidInputError):
        tsd.model_embedding(sur, ["a", "b"], ["x"])
    with pytest.raises(TypeError, match="str"):
        tsd.model_embedding(sur, "a text", ["x"])  # type: ignore[arg-type]


# -- probing ---------------------------------------------------------------------------------------


class ServerThread:
    """Runs a FakeOpenAI server on its own event loop in a thread (the probe driver blocks)."""

    def __init__(self, server: FakeOpenAI) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.__aenter__(), self.loop).result(timeout=30)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.__aexit__(None, None, None), self.loop).result(
            timeout=30
        )
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


LABELS = {"positive": ["positive"], "negative": ["negative"]}


def _prompted(
    base_url: str, name: str, *, labels: bool = True, concurrency: int = 4, key: str | None = None
) -> ts.Prompted:
    ep = ts.OpenAIEndpoint(base_url, "fake", api_key_env=key, max_concurrency=concurrency, backoff=0.05)
    return ts.Prompted(ep, "{text}", labels=LABELS if labels else None, name=name)


def _same_outputs(a: Any, b: Any) -> bool:
    return all(
        (x is None and y is None) or (isinstance(x, str) and x == y) or np.array_equal(x, y)
        for x, y in zip(a, b, strict=True)
    )


def test_probe_equals_local_probe(tmp_path: Path) -> None:
    texts = [f"text {i} is {'good' if i % 3 else 'bad'}" for i in range(40)]

    def shout(batch: list[str]) -> list[str]:
        return [t.upper() for t in batch]

    with ServerThread(FakeOpenAI()) as srv:

        def models() -> list[Any]:
            return [
                _prompted(srv.base_url, "labels", key=KEY_ENV),
                _prompted(srv.base_url, "texts", labels=False, key=KEY_ENV),
                ts.CallableModel(shout, name="shout", mode="text", batch_size=8, cache_id="shout-v1"),
            ]

        local = ts.probe_sync(models(), texts, cache=tmp_path / "local.sqlite", progress=False)
        n_local = len(srv.hits)
        dist = tsd.probe(models(), texts, cache=tmp_path / "ray.sqlite", progress=False, shard_size=7)
        assert len(srv.hits) == 2 * n_local == 2 * 80  # each prompt asked once per text, per run
        # Workers read the key from their own environment; it is sent, never stored.
        assert {h.auth for h in srv.hits} == {f"Bearer {API_KEY}"}
    assert API_KEY.encode() not in (tmp_path / "ray.sqlite").read_bytes()
    assert isinstance(dist, type(local))
    for name in ("labels", "texts", "shout"):
        assert _same_outputs(dist[name].outputs, local[name].outputs), name
        assert dist[name].errors == local[name].errors == []
        assert dist[name].labels == local[name].labels
        # Every input covered by exactly one successful call (a callable's batches follow shards).
        covered = [
            sorted(i for r in res[name].records for i in range(r.index, r.index + r.count))
            for res in (dist, local)
        ]
        assert covered[0] == covered[1] == list(range(40))
        assert all(r.status == "ok" for r in dist[name].records)
    assert dist.usage.total_tokens == local.usage.total_tokens > 0
    # The driver wrote the same cache rows a local run writes.
    with ProbeCache(tmp_path / "local.sqlite") as a, ProbeCache(tmp_path / "ray.sqlite") as b:
        key = lambda r: repr(sorted(r.items()))  # noqa: E731
        assert sorted(map(key, a.requests())) == sorted(map(key, b.requests()))
        assert len(b) == 120


class OnePause(FakeOpenAI):
    """Answers 429 (Retry-After) once: to the first request after both shards' texts were seen."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(ok_delay=0.05, retry_after="2", **kw)
        self.seen: set[str] = set()
        self.fired = False

    def _mode(self, n: int, text: str) -> str:
        self.seen.add(text.split(":")[0])
        if not self.fired and self.seen >= {"s0", "s1"}:
            self.fired = True
            return "429"
        return "ok"


def test_probe_429_pause_is_shared_by_workers(tmp_path: Path) -> None:
    texts = [f"s{i // 30}: text {i}" for i in range(60)]  # two shards of 30: s0 and s1
    with ServerThread(OnePause()) as srv:
        m = _prompted(srv.base_url, "m", concurrency=2)  # 2 tasks x 1 worker each
        res = tsd.probe([m], texts, cache=tmp_path / "p.sqlite", progress=False, shard_size=30)
        hits = list(srv.hits)
    assert srv.fired, "both shards never ran at the same time"
    assert res["m"].n_ok == 60 and res.usage.rate_limited == 1
    (t429,) = [h.t for h in hits if h.mode == "429"]
    shard_429 = next(h.text.split(":")[0] for h in hits if h.mode == "429")
    other = [h.t - t429 for h in hits if not h.text.startswith(shard_429)]
    # The worker that never got a 429 pauses too: nothing from it during the Retry-After window
    # (a request already in flight may land just after the 429), and it resumes afterwards.
    assert not [dt for dt in other if 0.5 < dt < 1.8], other
    assert [dt for dt in other if dt >= 1.8]
    mine = [h.t - t429 for h in hits if h.text.startswith(shard_429) and h.mode == "ok"]
    assert not [dt for dt in mine if 0 < dt < 1.8]


class RefuseAfter(FakeOpenAI):
    """Answers the first ``limit`` requests, then 401 (a fatal status) until ``limit`` is None."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit: int | None = limit

    def _mode(self, n: int, text: str) -> str:
        return "401" if self.limit is not None and n >= self.limit else "ok"


def test_probe_resumes_from_the_cache(tmp_path: Path) -> None:
    texts = [f"text {i} {'good' if i % 2 else 'bad'}" for i in range(30)]
    cache = tmp_path / "probe.sqlite"
    with ServerThread(RefuseAfter(12)) as srv:
        first = tsd.probe([_prompted(srv.base_url, "m")], texts, cache=cache, progress=False, shard_size=5)
        asked_first = {h.text for h in srv.hits if h.mode == "ok"}
        assert first["m"].n_ok == len(asked_first) == 12
        assert first["m"].stop_reason is not None and "401" in first["m"].stop_reason
        assert first["m"].skipped  # the rest was never asked
        srv.limit = None
        n_before = len(srv.hits)
        second = tsd.probe([_prompted(srv.base_url, "m")], texts, cache=cache, progress=False, shard_size=5)
        asked_second = [h.text for h in srv.hits[n_before:]]
        # Only what the first run did not answer, each once.
        assert sorted(asked_second) == sorted(set(texts) - asked_first)
        assert second.usage.cached == 12 and second["m"].usage.ok == 18
        assert second["m"].n_ok == 30 and second["m"].stop_reason is None
        # A single-machine run reads the same cache and asks nothing.
        n_before = len(srv.hits)
        local = ts.probe_sync([_prompted(srv.base_url, "m")], texts, cache=cache, progress=False)
        assert len(srv.hits) == n_before
    assert _same_outputs(local["m"].outputs, second["m"].outputs)
    expected = ["positive" if "good" in t else "negative" for t in texts]
    assert second["m"].outputs == expected


KILLED_DRIVER = """
import sys, ray, taskspace as ts, taskspace.distributed as tsd
base_url, cache, address = sys.argv[1:4]
ray.init(address=address, log_to_driver=False, configure_logging=False)
ep = ts.OpenAIEndpoint(base_url, "fake", api_key_env=None, max_concurrency=2)
m = ts.Prompted(ep, "{text}", labels={"positive": ["positive"], "negative": ["negative"]}, name="m")
texts = [f"text {i} {'good' if i % 2 else 'bad'}" for i in range(60)]
tsd.probe([m], texts, cache=cache, progress=False, shard_size=30)
"""


def test_probe_killed_driver_resumes(tmp_path: Path) -> None:
    texts = [f"text {i} {'good' if i % 2 else 'bad'}" for i in range(60)]
    cache = tmp_path / "killed.sqlite"
    address = ray.get_runtime_context().gcs_address
    with ServerThread(FakeOpenAI(ok_delay=0.2)) as srv:
        # Two shards of 30 texts at 5 answers/s each: neither finishes before the kill, so every
        # cached answer was streamed to the driver and written while its task was still running.
        proc = subprocess.Popen([sys.executable, "-c", KILLED_DRIVER, srv.base_url, str(cache), address])
        try:
            n_cached = 0
            for _ in range(600):  # at most 60 s
                if cache.exists():
                    with ProbeCache(cache) as c:
                        n_cached = len(c)
                if n_cached >= 4 or proc.poll() is not None:
                    break
                time.sleep(0.1)
        finally:
            proc.kill()
            proc.wait(timeout=30)
        assert 4 <= n_cached < 60
        for _ in range(120):  # Ray stops the dead driver's tasks: wait until the server is quiet
            n = len(srv.hits)
            time.sleep(0.5)
            if len(srv.hits) == n:
                break
        srv.ok_delay = 0.0
        with ProbeCache(cache) as c:
            n_cached = len(c)
        n_before = len(srv.hits)
        res = tsd.probe([_prompted(srv.base_url, "m", concurrency=2)], texts, cache=cache, progress=False)
        asked = [h.text for h in srv.hits[n_before:]]
    assert len(asked) == len(set(asked)) == 60 - n_cached  # only what the killed run had not saved
    assert res.usage.cached == n_cached and res["m"].n_ok == 60
    assert res["m"].outputs == ["positive" if "good" in t else "negative" for t in texts]


def test_probe_deadline_keeps_what_was_answered(tmp_path: Path) -> None:
    texts = [f"text {i}" for i in range(40)]
    with ServerThread(FakeOpenAI(ok_delay=0.25)) as srv:
        m = _prompted(srv.base_url, "m", concurrency=2)  # 2 requests at a time, 8 per second at most
        res = tsd.probe([m], texts, cache=tmp_path / "d.sqlite", progress=False, shard_size=10, deadline=1)
        n_hits = len(srv.hits)
    assert res.stop_reason == "deadline of 1 s reached"
    assert res["m"].n_ok < 40 and n_hits < 40
    assert sorted(res["m"].ok_indices() + res["m"].skipped) == list(range(40))
    with ProbeCache(tmp_path / "d.sqlite") as cache:
        assert len(cache) == res["m"].n_ok  # every answer received before the deadline is kept


def test_probe_bad_options() -> None:
    m = ts.CallableModel(lambda b: ["x"] * len(b), name="c")
    for option in ("budget", "adaptive", "concurrency"):
        value = {"budget": {"tokens": 10}, "adaptive": True, "concurrency": 2}[option]
        with pytest.raises(ProbeError, match=f"{option}= is not supported"):
            tsd.probe([m], ["a"], **{option: value})
    with pytest.raises(ts.InvalidInputError, match="shard_size must be >= 1"):
        tsd.probe([m], ["a"], shard_size=0)
    with pytest.raises(ProbeError, match="deadline"):
        tsd.probe([m], ["a"], deadline=-1)


# -- command line: --ray on probe, embed and compare -----------------------------------------------


def test_cli_ray_flag_gives_the_local_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from taskspace.cli import main
    from taskspace.datasets import builtin as datasets
    from taskspace.probing.result import ProbeResult
    from taskspace.space.task_space import TaskSpace

    for name in ("movie_sentiment", "news_topic"):
        texts, labels = datasets.load(name)[:2]
        rows = [json.dumps({"text": t, "label": str(y)}) for t, y in zip(texts, labels, strict=True)]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with ServerThread(FakeOpenAI()) as srv:
        (tmp_path / "probe.toml").write_text(
            "[probe_set]\nversion = 1\nn = 30\n\n"
            '[output]\ncache = "probe.sqlite"\noutputs = "outputs.jsonl"\n\n'
            f'[endpoints.fake]\nbase_url = "{srv.base_url}"\nmodel = "fake"\nmax_concurrency = 2\n\n'
            '[prompts.p]\nendpoint = "fake"\ntemplate = "{text}"\n'
            'labels = { positive = ["positive"], negative = ["negative"] }\n',
            encoding="utf-8",
        )
        cfg = str(tmp_path / "probe.toml")
        assert main(["probe", cfg, "--quiet", "--ray"]) == 0  # --ray [ADDRESS] after CONFIG
        assert len(srv.hits) == 30
        local_cache = str(tmp_path / "local-cache.sqlite")
        out_local = str(tmp_path / "local.jsonl")
        assert main(["probe", cfg, "--quiet", "--cache", local_cache, "--outputs", out_local]) == 0
    got, want = ProbeResult.load(tmp_path / "outputs.jsonl"), ProbeResult.load(out_local)
    assert _same_outputs(got.models["p"].outputs, want.models["p"].outputs)
    assert len(got.models["p"].outputs) == 30

    spaces = {}
    for tag, extra in (("ray", ["--ray"]), ("local", [])):
        space = str(tmp_path / f"{tag}.sqlite")
        args = ["embed", "--space", space, "--features", "32", "--dim", "256", "--quiet"]
        args += ["--dataset", str(tmp_path / "movie_sentiment.jsonl")]
        args += ["--dataset", str(tmp_path / "news_topic.jsonl"), "--outputs", out_local]
        assert main(args + extra) == 0
        spaces[tag] = space
    with TaskSpace.open(spaces["ray"]) as a, TaskSpace.open(spaces["local"]) as b:
        assert a.names() == b.names() and len(a) == 3
        for name in a.names():
            np.testing.assert_array_equal(a.get(name).vector, b.get(name).vector)

    capsys.readouterr()
    assert main(["compare", spaces["ray"], "--format", "json", "--ray"]) == 0
    with_ray = capsys.readouterr().out
    assert main(["compare", spaces["ray"], "--format", "json"]) == 0
    assert with_ray == capsys.readouterr().out


# -- packaging and docs ----------------------------------------------------------------------------


def test_import_taskspace_does_not_import_ray_and_missing_ray_is_explained() -> None:
    code = (
        "import sys, taskspace\n"
        "assert 'ray' not in sys.modules\n"
        "sys.modules['ray'] = None\n"
        "try:\n"
        "    import taskspace.distributed\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install taskspace[ray]" in out.stdout


def test_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "docs/distributed.md has no runnable example"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {"__name__": "distributed_docs"})
