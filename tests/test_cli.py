"""The ``taskspace`` commands end to end: probe -> embed -> select/compare -> report, demo, bad input, Ctrl-C.

Probing talks to a real aiohttp server on 127.0.0.1 started by the test (``tests/probe_server.py``),
run in a background thread so that in-process commands and subprocesses can both reach it.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from probe_server import FakeOpenAI
from taskspace.cli import COMMAND_MODULES, ExitCode, main
from taskspace.probing.cache import ProbeCache

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]


class ServerThread:
    """A FakeOpenAI server running in its own event loop on a background thread."""

    def __init__(self, **kwargs: Any) -> None:
        self.server = FakeOpenAI(**kwargs)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.__aenter__(), self.loop).result(timeout=10)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.__aexit__(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with ServerThread() as srv:
        yield srv


def probe_config(
    tmp_path: Path, base_url: str, *, n: int = 30, extra: str = "", concurrency: int = 8
) -> Path:
    path = tmp_path / "probe.toml"
    path.write_text(
        f"""
[probe_set]
version = 1
n = {n}

[output]
cache = "probe.sqlite"
outputs = "outputs.jsonl"

[limits]
concurrency = {concurrency}
deadline = 60

[endpoints.fake]
base_url = "{base_url}"
model = "fake-llm"
max_concurrency = {concurrency}
max_retries = 1
timeout = 10

[prompts.plain]
endpoint = "fake"
template = "{{text}}"
labels = {{ positive = ["positive"], negative = ["negative"] }}

[prompts.review]
endpoint = "fake"
template = "Review: {{text}} Is it good?"
labels = {{ positive = ["positive"], negative = ["negative"] }}

[models.local-zero-shot]
kind = "zero-shot"
template = "This text is {{}}."
label_descriptions = {{ positive = "good, great", negative = "bad, awful" }}
{extra}
""",
        encoding="utf-8",
    )
    return path


def write_datasets(tmp_path: Path) -> tuple[Path, Path]:
    from taskspace.datasets import builtin as datasets

    texts, labels = datasets.load("movie_sentiment")
    jsonl = tmp_path / "movies.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels, strict=True)),
        encoding="utf-8",
    )
    texts, labels = datasets.load("news_topic")
    with (tmp_path / "news.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "source"])
        w.writerows([t, y, "demo"] for t, y in zip(texts, labels, strict=True))
    return jsonl, tmp_path / "news.csv"


def test_every_command_has_help_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for module in COMMAND_MODULES:
        command = module.replace("_", "-")
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "example" in text.lower(), f"`taskspace {command} --help` shows no example"
        assert f"taskspace {command}" in text


def test_probe_embed_select_compare_report(
    tmp_path: Path, server: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    config = probe_config(tmp_path, server.base_url, n=30)
    assert main(["probe", str(config), "--quiet"]) == ExitCode.OK
    assert len(server.hits) == 60  # 2 prompts x 30 texts; the local model is not asked over HTTP
    outputs = tmp_path / "outputs.jsonl"
    header, *models = (json.loads(line) for line in outputs.read_text(encoding="utf-8").splitlines())
    assert len(header["texts"]) == 30 and header["probe_set"] == {"version": 1, "n": 30}
    by_name = {m["model"]: m for m in models}
    assert set(by_name) == {"plain", "review", "local-zero-shot"}
    # The fake server answers "positive" exactly when the text holds "good": check it arrived as such.
    for i, text in enumerate(header["texts"]):
        assert by_name["plain"]["outputs"][i] == ("positive" if "good" in text else "negative")
    assert all(o == "positive" for o in by_name["review"]["outputs"])  # its template says "good"
    assert all(isinstance(o, list) and len(o) == 2 for o in by_name["local-zero-shot"]["outputs"])

    # A re-run asks nothing: every answer comes from the cache.
    assert main(["probe", str(config), "--quiet"]) == ExitCode.OK
    assert len(server.hits) == 60

    movies, news = write_datasets(tmp_path)
    space = tmp_path / "space.sqlite"
    code = main(
        ["embed", "--space", str(space), "--dataset", str(movies), "--dataset", f"news={news}",
         "--outputs", str(outputs), "--features", "64", "--dim", "512", "--quiet"]
    )  # fmt: skip
    assert code == ExitCode.OK
    capsys.readouterr()

    assert main(["select", str(space), "--dataset", "movies", "--format", "json"]) == ExitCode.OK
    ranked = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in ranked] == [1, 2, 3]
    assert {r["candidate"] for r in ranked} == {"plain", "review", "local-zero-shot"}
    assert ranked[0]["cosine"] >= ranked[1]["cosine"] >= ranked[2]["cosine"]
    # The constant "review" model carries no task: its MTE is the zero vector, at cosine 0 exactly.
    assert next(r for r in ranked if r["candidate"] == "review")["cosine"] == 0.0

    assert main(["select", str(space), "--dataset", "movies", "-k", "1"]) == ExitCode.OK
    assert "for dataset movies the best candidate is" in capsys.readouterr().out

    assert main(["compare", str(space), "--rows", "dataset", "--columns", "model", "--format", "csv"]) == 0
    rows = list(csv.reader(capsys.readouterr().out.splitlines()))
    assert rows[0] == ["name", "local-zero-shot", "plain", "review"]
    assert [r[0] for r in rows[1:]] == ["movies", "news"]
    assert float(rows[1][3]) == 0.0 and -1 <= float(rows[1][1]) <= 1

    assert main(["compare", str(space), "--nearest", "movies", "-k", "2", "--format", "json"]) == 0
    near = json.loads(capsys.readouterr().out)
    assert len(near) == 2 and near[0]["cosine"] >= near[1]["cosine"]

    report = tmp_path / "report.html"
    assert main(["report", str(space), "--outputs", str(outputs), "--out", str(report)]) == ExitCode.OK
    html = report.read_text(encoding="utf-8")
    assert html.count("<svg") >= 2 and "Probe usage" in html and "Prompt and model selection" in html
    assert "src=" not in html and "<link" not in html  # self-contained


def test_probe_as_a_subprocess(tmp_path: Path, server: FakeOpenAI) -> None:
    config = probe_config(tmp_path, server.base_url, n=10)
    done = subprocess.run(
        [sys.executable, "-m", "taskspace", "probe", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and (tmp_path / "outputs.jsonl").is_file()


BAD_CONFIGS = [
    # (replace this, with that, expected fragments of the message)
    ("rpm", None, ["line 18", "endpoints.fake.rpm"]),  # see the test: a negative rpm is added
    ('template = "{text}"', 'template = "no field here"', ["line 23", "prompts.plain.template", "{text}"]),
    ("max_retries = 1", "max_retries = 1\ncolour = 3", ["line 19", "endpoints.fake.colour", "unknown key"]),
    ('endpoint = "fake"\ntemplate = "{text}"', 'endpoint = "nowhere"\ntemplate = "{text}"', ["line 22", "prompts.plain.endpoint", "nowhere"]),
    ("n = 5", "n = -5", ["line 4", "probe_set.n"]),
    ("n = 5", "n = 5000", ["line 4", "probe_set.n", "at most 2520"]),
    ("version = 1", "version = 7", ["line 3", "probe_set.version", "no probe set version 7"]),
    ("deadline = 60", "deadline = [60]", ["line 12", "limits.deadline"]),
    ('kind = "zero-shot"', 'kind = "few-shot"', ["line 32", "models.local-zero-shot.kind"]),
    ("[limits]", "[limits\n", ["not valid TOML", "line"]),
    ('model = "fake-llm"', 'model = "fake-llm"\napi_key_env = "sk-proj-secret"', ["line 17", "endpoints.fake.api_key_env", "not hold a key"]),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "expected"), BAD_CONFIGS)
def test_bad_config_names_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str | None, expected: list[str]
) -> None:
    config = probe_config(tmp_path, "http://127.0.0.1:9/v1", n=5)
    text = config.read_text(encoding="utf-8")
    if new is None:  # insert a bad rpm into the endpoint table
        text = text.replace("max_concurrency = 8\n", "max_concurrency = 8\nrpm = -1\n", 1)
    else:
        assert old in text
        text = text.replace(old, new, 1)
    config.write_text(text, encoding="utf-8")
    assert main(["probe", str(config)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert str(config) in err, err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert "secret" not in err  # a key pasted into the config is never echoed
    assert not (tmp_path / "probe.sqlite").exists()  # nothing was done


def test_missing_api_key_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TASKSPACE_TEST_KEY", raising=False)
    config = probe_config(tmp_path, "http://127.0.0.1:9/v1", n=5)
    text = config.read_text(encoding="utf-8").replace(
        'model = "fake-llm"', 'model = "fake-llm"\napi_key_env = "TASKSPACE_TEST_KEY"'
    )
    config.write_text(text, encoding="utf-8")
    assert main(["probe", str(config)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "TASKSPACE_TEST_KEY" in err and "endpoints.fake.api_key_env" in err and "line 17" in err


def test_bad_dataset_files_name_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = str(tmp_path / "space.sqlite")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("text,label\ngood film,pos\nbad film,\n", encoding="utf-8")
    assert main(["embed", "--space", space, "--dataset", str(bad_csv)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"{bad_csv}, line 3" in err and "'label'" in err

    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"text": "a", "label": "x"}\n{"text": 5, "label": "y"}\n', encoding="utf-8")
    assert main(["embed", "--space", space, "--dataset", str(bad_jsonl)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"{bad_jsonl}, line 2" in err and "'text'" in err

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label"\n', encoding="utf-8")
    assert main(["embed", "--space", space, "--dataset", str(broken)]) == ExitCode.USAGE
    assert f"{broken}, line 2: not valid JSON" in capsys.readouterr().err

    assert main(["embed", "--space", space, "--dataset", str(tmp_path / "missing.csv")]) == ExitCode.USAGE
    assert "no such file" in capsys.readouterr().err
    assert not Path(space).exists()  # a bad input changes nothing


def test_bad_outputs_files_name_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = {"format": "taskspace.probe-outputs/1", "probe_set": {}, "texts": ["a", "b"], "text_pairs": None}
    model = {"model": "m", "mode": "label", "labels": ["x", "y"], "outputs": [[0.2, 0.8], "x"]}
    space = str(tmp_path / "space.sqlite")
    cases = [
        ([{**header, "format": "taskspace.probing-outputs/1"}, model], "line 1: field 'format'"),
        ([header, {**model, "outputs": [[0.2], None]}], "line 2: field 'outputs'[0] of model 'm'"),
        ([header, model, model], "line 3: field 'model': 'm' appears twice"),
        ([header, {**model, "mode": "soft"}], "line 2: field 'mode'"),
        ([header], "holds no models"),
    ]
    for rows, message in cases:
        path = tmp_path / "outputs.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        assert main(["embed", "--space", space, "--outputs", str(path)]) == ExitCode.USAGE
        assert f"{path}" in (err := capsys.readouterr().err) and message in err, err
    assert not Path(space).exists()
    # A good file embeds; a model without any output is a failed run, not a usage error.
    path.write_text(json.dumps(header) + "\n" + json.dumps(model) + "\n", encoding="utf-8")
    assert main(["embed", "--space", space, "--outputs", str(path), "--dim", "256", "--quiet"]) == ExitCode.OK
    empty = {**model, "model": "silent", "outputs": [None, None], "failed": 2}
    path.write_text(json.dumps(header) + "\n" + json.dumps(empty) + "\n", encoding="utf-8")
    assert main(["embed", "--space", space, "--outputs", str(path), "--quiet"]) == ExitCode.FAILED
    assert "no outputs to embed" in capsys.readouterr().err


def test_parquet_needs_pyarrow_or_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "data.parquet"
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        path.write_bytes(b"PAR1")
        assert (
            main(["embed", "--space", str(tmp_path / "s.sqlite"), "--dataset", str(path)]) == ExitCode.USAGE
        )
        assert "pip install pyarrow" in capsys.readouterr().err
        return
    pq.write_table(pa.table({"text": ["good", "bad", "fine"], "label": ["p", "n", "p"]}), path)
    assert main(["embed", "--space", str(tmp_path / "s.sqlite"), "--dataset", str(path), "--quiet"]) == 0


def test_space_and_name_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    movies, _ = write_datasets(tmp_path)
    space = str(tmp_path / "space.sqlite")
    assert main(["embed", "--space", space, "--dataset", str(movies), "--dim", "256", "--quiet"]) == 0
    # An existing space keeps its surrogate: other options are refused.
    assert main(["embed", "--space", space, "--dataset", str(movies), "--dim", "512"]) == ExitCode.USAGE
    assert "dim=256" in capsys.readouterr().err
    assert main(["select", space, "--dataset", "nope"]) == ExitCode.USAGE
    assert "'nope'" in capsys.readouterr().err
    assert main(["select", space, "--dataset", "movies"]) == ExitCode.USAGE  # no models to rank
    assert main(["compare", str(tmp_path / "none.sqlite")]) == ExitCode.USAGE
    assert "no such space file" in capsys.readouterr().err
    assert main(["report", space, "--accuracy", str(movies)]) == ExitCode.USAGE  # JSONL is not one object
    assert "not valid JSON" in capsys.readouterr().err


def _wait_for(predicate: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery to a child needs POSIX signals")
def test_ctrl_c_keeps_the_cache_and_a_rerun_resumes(tmp_path: Path) -> None:
    with ServerThread(ok_delay=0.03) as srv:
        config = probe_config(tmp_path, srv.base_url, n=150, concurrency=2)
        text = config.read_text(encoding="utf-8")
        config.write_text(text[: text.index("[models.local-zero-shot]")], encoding="utf-8")  # HTTP only
        child = subprocess.Popen(
            [sys.executable, "-m", "taskspace", "probe", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert _wait_for(lambda: len(srv.hits) >= 40, 60), "the probe never got going"
            child.send_signal(signal.SIGINT)
            _, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        assert child.returncode == ExitCode.INTERRUPTED, err
        assert "interrupted" in err and "taskspace probe" in err and "Resume" in err
        assert not (tmp_path / "outputs.jsonl").exists()
        asked_before = len(srv.hits)
        assert asked_before < 300, "the run finished before the interrupt"

        with ProbeCache(tmp_path / "probe.sqlite") as cache:
            stored = cache.requests()
        assert 30 <= len(stored) <= asked_before  # everything stored was asked; answers reached disk
        cached = {(r["prompt"][0]["content"], r["model"]) for r in stored}
        assert len(cached) == len(stored)

        # Resume: only what is not in the cache is asked again.
        assert main(["probe", str(config), "--quiet"]) == ExitCode.OK
        rerun = srv.hits[asked_before:]
        assert len(rerun) == 300 - len(stored)
        assert not {h.text for h in rerun} & {content for content, _ in cached}
    _, *models = (json.loads(x) for x in (tmp_path / "outputs.jsonl").read_text().splitlines())
    assert all(o is not None for m in models for o in m["outputs"])


def test_demo_runs_offline_as_a_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run(
        [sys.executable, "-m", "taskspace", "demo", "--out", str(out), "--probe-texts", "60"],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    for dataset in ("movie_sentiment", "product_sentiment", "news_topic", "question_type"):
        assert f"for dataset {dataset} the best prompt is" in done.stdout
    assert "accuracy (held out)" in done.stdout and "selected / oracle" in done.stdout
    assert "probed: 1020 requests, 0 errors" in done.stderr  # 17 prompts x 60 texts over HTTP
    for name in ("space.sqlite", "outputs.jsonl", "accuracy.json", "report.html"):
        assert (out / name).is_file(), name
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 2 and "movie_sentiment" in html
    # The space it wrote works with the other commands.
    assert main(["select", str(out / "space.sqlite"), "--dataset", "news_topic", "--prefix", "topic/"]) == 0


DOC = ROOT / "docs" / "cli.md"


def test_cli_docs_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from taskspace.probing.config import load_probe_config

    text = DOC.read_text(encoding="utf-8")
    # The full probe config of the docs loads (nothing is sent while loading).
    (toml,) = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    (tmp_path / "probe.toml").write_text(toml, encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-real")
    config = load_probe_config(tmp_path / "probe.toml")
    assert [m.name for m in config.models] == ["short@openai", "short@vllm", "review", "review-zero-shot"]
    assert len(config.texts) == 500 and config.budget is not None and config.deadline == 3600
    # The Python example runs.
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {"__name__": "cli_docs"})
    assert "for dataset movies the best candidate is descriptive" in capsys.readouterr().out
    assert (tmp_path / "report.html").is_file()


def test_failed_inputs_exit_1_and_a_rerun_retries_only_them(
    tmp_path: Path, server: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = [f"text number {i}" + (" [[500]]" if i % 4 == 0 else "") for i in range(12)]
    (tmp_path / "texts.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    config = probe_config(tmp_path, server.base_url)
    text = config.read_text(encoding="utf-8").replace("version = 1\nn = 30", 'file = "texts.jsonl"')
    text = text.replace("max_retries = 1", "max_retries = 0\nbackoff = 0.01")
    config.write_text(text[: text.index("[prompts.review]")], encoding="utf-8")  # one HTTP prompt
    assert main(["probe", str(config)]) == ExitCode.FAILED
    captured = capsys.readouterr()
    assert "incomplete" in captured.err and "re-running the same command" in captured.err
    assert "9/12" in captured.out  # the summary: 9 of 12 inputs have an output
    outputs = [json.loads(x) for x in (tmp_path / "outputs.jsonl").read_text().splitlines()]
    plain = next(m for m in outputs[1:] if m["model"] == "plain")
    assert [o is None for o in plain["outputs"]] == [i % 4 == 0 for i in range(12)]
    assert plain["failed"] == 3
    hits = len(server.hits)
    assert main(["probe", str(config), "--quiet"]) == ExitCode.FAILED  # the server still fails them
    assert len(server.hits) == hits + 3  # only the failed inputs were asked again


def test_label_mode_space_from_soft_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "local.toml"
    config.write_text(
        """
[probe_set]
n = 120
[models.sentiment]
kind = "zero-shot"
template = "This review is {}."
label_descriptions = { positive = "great, I loved it", negative = "awful, I hated it" }
[models.topic]
kind = "zero-shot"
template = "This is about {}."
label_descriptions = { sports = "the team won the match", money = "the bank raised prices" }
""",
        encoding="utf-8",
    )
    assert main(["probe", str(config), "--quiet"]) == ExitCode.OK
    movies, news = write_datasets(tmp_path)
    space = tmp_path / "label.sqlite"
    args = ["embed", "--space", str(space), "--dataset", str(movies), "--dataset", str(news)]
    assert main([*args, "--outputs", str(tmp_path / "outputs.jsonl"), "--mode", "label", "--quiet"]) == 0
    assert main(["compare", str(space), "--format", "json"]) == ExitCode.OK
    matrix = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in matrix] == ["movies", "news", "sentiment", "topic"]
    assert all(abs(row[row["name"]] - 1.0) < 1e-5 for row in matrix)  # unit diagonal
    # A label-mode space refuses text-mode additions.
    assert main([*args, "--mode", "text"]) == ExitCode.USAGE
    assert "label-mode" in capsys.readouterr().err
