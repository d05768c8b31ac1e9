"""The OpenAI-compatible model server, against a real aiohttp server on 127.0.0.1 and a real client."""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import taskspace as ts
from taskspace.datasets import builtin as datasets
from taskspace.models import InContext, ZeroShot
from taskspace.models.server import LOGPROB_FLOOR, create_app, model_server

TEXTS, LABELS = datasets.load("product_sentiment")
ZS = ZeroShot("This review is {}.", {"positive": "great, I love it", "negative": "terrible, I hate it"})
ICL = InContext(list(zip(TEXTS, LABELS, strict=True))[:20], k=3)
MODELS = {"zs": ZS, "icl": ICL}


class CountingModel:
    """Wraps a model and records every predict_proba call (to see batching) from any thread."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls: list[int] = []
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def predict_proba(self, texts):
        with self.lock:
            self.calls.append(len(texts))
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            return self.model.predict_proba(texts)
        finally:
            with self.lock:
                self.active -= 1


class BrokenModel:
    def predict_proba(self, texts):
        raise RuntimeError("the model broke")


def run_with_server(
    models: dict[str, Any], work: Callable[[aiohttp.ClientSession, str], Awaitable[Any]]
) -> Any:
    async def main() -> Any:
        async with model_server(models) as base_url, aiohttp.ClientSession() as session:
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
            return await work(session, base_url)

    return asyncio.run(main())


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    async with session.post(url, data=data, headers={"Content-Type": "application/json"}) as r:
        assert r.content_type == "application/json"
        return r.status, await r.json()


def chat_body(text: str, model: str = "zs", **extra: Any) -> dict[str, Any]:
    messages = [{"role": "system", "content": "Classify the review."}, {"role": "user", "content": text}]
    return {"model": model, "messages": messages, **extra}


def test_models_listing():
    async def work(session, base):
        async with session.get(f"{base}/models") as r:
            listing = await r.json()
        async with session.get(f"{base}/models/icl") as r:
            one = await r.json()
        async with session.get(f"{base}/models/nope") as r:
            missing = r.status, await r.json()
        async with session.get(base.removesuffix("/v1") + "/health") as r:
            health = await r.json()
        return listing, one, missing, health

    listing, one, missing, health = run_with_server(MODELS, work)
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == ["zs", "icl"]
    assert all(m["object"] == "model" for m in listing["data"])
    assert one["id"] == "icl"
    assert missing[0] == 404 and missing[1]["error"]["code"] == "model_not_found"
    assert health == {"status": "ok"}


def test_chat_completions_answer_with_the_predicted_label_and_logprobs():
    texts = TEXTS[:12]

    async def work(session, base):
        out = []
        for model in ("zs", "icl"):
            for text in texts:
                status, body = await post(
                    session, f"{base}/chat/completions", chat_body(text, model, logprobs=True)
                )
                assert status == 200, body
                out.append(body)
        status, plain = await post(
            session, f"{base}/chat/completions", chat_body(texts[0], temperature=0.7, seed=3)
        )
        assert status == 200
        return out, plain

    bodies, plain = run_with_server(MODELS, work)
    for i, (name, model) in enumerate(MODELS.items()):
        labels, probs = model.predict_proba(texts)
        for j, body in enumerate(bodies[i * len(texts) : (i + 1) * len(texts)]):
            assert body["object"] == "chat.completion" and body["model"] == name
            choice = body["choices"][0]
            answer = choice["message"]["content"]
            assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
            assert answer == model.predict([texts[j]])[0]
            first = choice["logprobs"]["content"][0]
            assert first["token"] == answer
            top = first["top_logprobs"]
            assert [t["token"] for t in top] == sorted(labels, key=lambda lab: -probs[j, labels.index(lab)])
            for entry in top:
                assert set(entry) == {"token", "logprob", "bytes"}
                assert entry["bytes"] == list(entry["token"].encode())
                expected = max(math.log(probs[j, labels.index(entry["token"])]), LOGPROB_FLOOR)
                assert entry["logprob"] == pytest.approx(expected, abs=1e-9)
            assert first["logprob"] == top[0]["logprob"]
            assert sum(math.exp(t["logprob"]) for t in top) == pytest.approx(1.0, abs=1e-9)
            usage = body["usage"]
            assert usage["prompt_tokens"] == len("Classify the review.".split()) + len(texts[j].split())
            assert usage["completion_tokens"] == len(answer.split())
            assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert plain["choices"][0]["logprobs"] is None
    assert plain["choices"][0]["message"]["content"] == ZS.predict([texts[0]])[0]


def test_chat_takes_the_last_user_message_and_text_parts():
    async def work(session, base):
        body = {
            "model": "zs",
            "messages": [
                {"role": "user", "content": "terrible, I hate it"},
                {"role": "assistant", "content": "negative"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "great,"}, {"type": "text", "text": "I love it"}],
                },
            ],
            "n": 3,
        }
        return await post(session, f"{base}/chat/completions", body)

    status, body = run_with_server(MODELS, work)
    assert status == 200
    assert [c["message"]["content"] for c in body["choices"]] == ["positive"] * 3
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert body["usage"]["completion_tokens"] == 3


def test_completions_with_logprobs_and_batched_prompts():
    texts = TEXTS[20:26]

    async def work(session, base):
        single = await post(
            session, f"{base}/completions", {"model": "icl", "prompt": texts[0], "logprobs": 5}
        )
        batch = await post(
            session, f"{base}/completions", {"model": "icl", "prompt": texts, "logprobs": 0, "n": 2}
        )
        plain = await post(
            session, f"{base}/completions", {"model": "zs", "prompt": texts[0], "max_tokens": 1}
        )
        return single, batch, plain

    (s1, single), (s2, batch), (s3, plain) = run_with_server(MODELS, work)
    assert s1 == s2 == s3 == 200
    labels, probs = ICL.predict_proba(texts)
    choice = single["choices"][0]
    assert single["object"] == "text_completion"
    assert choice["text"] == ICL.predict(texts[:1])[0]
    lp = choice["logprobs"]
    assert lp["tokens"] == [choice["text"]] and lp["text_offset"] == [0]
    top = lp["top_logprobs"][0]
    assert set(top) == set(labels)
    for label, value in top.items():
        assert value == pytest.approx(max(math.log(probs[0, labels.index(label)]), LOGPROB_FLOOR), abs=1e-9)
    assert lp["token_logprobs"][0] == max(top.values())
    assert single["usage"] == {
        "prompt_tokens": len(texts[0].split()),
        "completion_tokens": len(choice["text"].split()),
        "total_tokens": len(texts[0].split()) + len(choice["text"].split()),
    }
    assert [c["index"] for c in batch["choices"]] == list(range(2 * len(texts)))
    assert [c["text"] for c in batch["choices"]] == [y for y in ICL.predict(texts) for _ in range(2)]
    assert batch["usage"]["prompt_tokens"] == sum(len(t.split()) for t in texts)
    assert plain["choices"][0]["logprobs"] is None


def test_concurrent_requests_are_batched_and_answered_correctly():
    counting = CountingModel(ZS)
    texts = [f"{t} (copy {i})" for i, t in enumerate(TEXTS * 3)]

    async def work(session, base):
        async def one(text):
            return await post(session, f"{base}/completions", {"model": "m", "prompt": text})

        return await asyncio.gather(*(one(t) for t in texts))

    results = run_with_server({"m": counting}, work)
    assert all(status == 200 for status, _ in results)
    assert [body["choices"][0]["text"] for _, body in results] == ZS.predict(texts)
    assert sum(counting.calls) == len(texts)
    assert len(counting.calls) < len(texts), "concurrent requests were not batched"
    assert max(counting.calls) <= 256 and counting.max_active == 1


@pytest.mark.parametrize(
    ("path", "body", "status", "match"),
    [
        ("/chat/completions", b"{not json", 400, "not valid JSON"),
        ("/chat/completions", [1, 2], 400, "must be a JSON object"),
        ("/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, 400, "lacks 'model'"),
        ("/chat/completions", chat_body("x", model="gpt-9"), 404, "does not exist"),
        ("/chat/completions", chat_body("x", model=7), 400, "'model' must be a string"),
        ("/chat/completions", {"model": "zs"}, 400, "'messages' must be a non-empty list"),
        ("/chat/completions", {"model": "zs", "messages": []}, 400, "non-empty list"),
        ("/chat/completions", {"model": "zs", "messages": ["hi"]}, 400, r"messages\[0\] must be an object"),
        (
            "/chat/completions",
            {"model": "zs", "messages": [{"role": "system", "content": "x"}]},
            400,
            "no user message",
        ),
        (
            "/chat/completions",
            {"model": "zs", "messages": [{"role": "user", "content": 5}]},
            400,
            "content must be",
        ),
        (
            "/chat/completions",
            {"model": "zs", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            400,
            "only hold text parts",
        ),
        ("/chat/completions", chat_body("x", logprobs="yes"), 400, "'logprobs' must be true or false"),
        ("/chat/completions", chat_body("x", logprobs=True, top_logprobs=50), 400, "'top_logprobs' must be"),
        ("/chat/completions", chat_body("x", n=0), 400, "'n' must be"),
        ("/chat/completions", chat_body("x", max_tokens=0), 400, "'max_tokens' must be"),
        ("/chat/completions", chat_body("x", stream=True), 400, "streaming is not supported"),
        ("/completions", {"model": "zs"}, 400, "'prompt' must be"),
        ("/completions", {"model": "zs", "prompt": []}, 400, "'prompt' must be"),
        ("/completions", {"model": "zs", "prompt": [1, 2, 3]}, 400, "'prompt' must be"),
        (
            "/completions",
            {"model": "zs", "prompt": "x", "logprobs": True},
            400,
            "'logprobs' must be an integer",
        ),
        ("/completions", {"model": "zs", "prompt": "x", "echo": True}, 400, "'echo' is not supported"),
        ("/completions", {"model": "nope", "prompt": "x"}, 404, "served models: zs, icl"),
        ("/embeddings", {"model": "zs", "input": "x"}, 404, "Not Found"),
    ],
)
def test_bad_requests_get_clear_json_errors(path, body, status, match):
    got_status, got = run_with_server(MODELS, lambda session, base: post(session, base + path, body))
    assert got_status == status
    error = got["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert re.search(match, error["message"]), error["message"]


def test_wrong_method_and_oversized_body():
    async def work(session, base):
        async with session.get(f"{base}/chat/completions") as r:
            wrong = r.status, await r.json()
        big = io.BytesIO(json.dumps({"model": "zs", "prompt": "x" * (9 * 1024 * 1024)}).encode())
        async with session.post(f"{base}/completions", data=big) as r:
            large = r.status, await r.json()
        return wrong, large

    (s1, wrong), (s2, large) = run_with_server(MODELS, work)
    assert s1 == 405 and "Method Not Allowed" in wrong["error"]["message"]
    assert s2 == 413 and "too large" in large["error"]["message"]


def test_a_failing_model_gives_a_500_and_the_server_keeps_serving(caplog):
    async def work(session, base):
        broken = await post(session, f"{base}/completions", {"model": "broken", "prompt": "x"})
        fine = await post(session, f"{base}/completions", {"model": "zs", "prompt": "great, I love it"})
        return broken, fine

    (s1, broken), (s2, fine) = run_with_server({"broken": BrokenModel(), "zs": ZS}, work)
    assert s1 == 500 and broken["error"]["type"] == "server_error"
    assert "the model broke" not in broken["error"]["message"]  # internals stay in the server log
    assert "the model broke" in caplog.text
    assert s2 == 200 and fine["choices"][0]["text"] == "positive"


def test_server_arguments_are_checked():
    async def start(models: Any, **kwargs: Any) -> None:
        async with model_server(models, **kwargs):
            pass

    with pytest.raises(ts.InvalidInputError, match="no authentication"):
        asyncio.run(start(MODELS, host="0.0.0.0"))
    with pytest.raises(ts.InvalidInputError, match="port must be"):
        asyncio.run(start(MODELS, port=70000))
    with pytest.raises(ts.InvalidInputError, match="models is empty"):
        create_app({})
    with pytest.raises(TypeError, match="nor has a predict_proba"):
        create_app({"x": object()})
    with pytest.raises(TypeError, match="mapping"):
        create_app([ZS])
    with pytest.raises(ts.InvalidInputError, match="non-empty str"):
        create_app({"": ZS})


def test_model_names_with_slashes():
    async def work(session, base):
        async with session.get(f"{base}/models/org/model") as r:
            card = await r.json()
        status, body = await post(session, f"{base}/completions", {"model": "org/model", "prompt": "great"})
        return card, status, body

    card, status, body = run_with_server({"org/model": ZS}, work)
    assert card["id"] == "org/model" and status == 200 and body["model"] == "org/model"


# -- the command line -----------------------------------------------------------------------------------
CONFIG = """
[models.review-zs]
kind = "zero-shot"
template = "This review is {}."
label_descriptions = { positive = ["great, I love it"], negative = "terrible, I hate it" }

[models.review-icl]
kind = "in-context"
k = 1
demonstrations = [
  { text = "I loved every minute of it", label = "positive" },
  { text = "a waste of money", label = "negative" },
]
"""


def _cli(*args: str, **kwargs: Any) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "taskspace", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kwargs,
    )


def test_cli_serve_models_end_to_end(tmp_path):
    config = tmp_path / "models.toml"
    config.write_text(CONFIG)
    proc = _cli("serve-models", str(config), "--port", "0")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "2 models (review-zs, review-icl)" in line, line + (proc.stderr.read() if proc.stderr else "")
        base = line.strip().rsplit(" ", 1)[-1]
        assert base.startswith("http://127.0.0.1:") and base.endswith("/v1")

        async def work():
            async with aiohttp.ClientSession() as session:
                a = await post(
                    session, f"{base}/chat/completions", chat_body("I loved it", "review-icl", logprobs=True)
                )
                b = await post(session, f"{base}/completions", {"model": "review-zs", "prompt": "terrible"})
                return a, b

        (s1, a), (s2, b) = asyncio.run(work())
        assert s1 == s2 == 200
        assert a["choices"][0]["message"]["content"] == "positive"
        assert {t["token"] for t in a["choices"][0]["logprobs"]["content"][0]["top_logprobs"]} == {
            "positive",
            "negative",
        }
        assert b["choices"][0]["text"] == "negative"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_cli_serve_models_refuses_remote_hosts_and_bad_configs(tmp_path, capsys):
    from taskspace.cli import main

    config = tmp_path / "models.toml"
    config.write_text(CONFIG)
    bad = tmp_path / "bad.toml"
    bad.write_text("[models.x]\nkind = 'zero-shot'\n")
    for args, expected in [
        (["serve-models", str(config), "--host", "0.0.0.0"], "--allow-remote"),
        (["serve-models", str(config), "--host", "192.168.1.10"], "no authentication"),
        (["serve-models", str(tmp_path / "absent.toml")], "absent.toml"),
        (["serve-models", str(config), "--port", "99999"], "port must be"),
        (["serve-models", str(bad)], "needs 'template'"),
    ]:
        assert main(args) == 2
        assert expected in capsys.readouterr().err


def test_cli_help_has_an_example_and_demo_still_works(tmp_path):
    proc = _cli("serve-models", "--help")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "example" in out and "[models." in out and "--allow-remote" in out
    from taskspace.cli import main

    assert main(["demo", "--mode", "label", "--out", str(tmp_path), "--probe-texts", "40", "--quiet"]) == 0


def test_logprob_floor_keeps_json_finite():
    class Certain:
        def predict_proba(self, texts):
            return ["yes", "no"], np.tile([1.0, 0.0], (len(texts), 1))

    status, body = run_with_server(
        {"c": Certain()}, lambda s, b: post(s, f"{b}/chat/completions", chat_body("x", "c", logprobs=True))
    )
    assert status == 200
    top = body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    assert top == [
        {"token": "yes", "logprob": 0.0, "bytes": list(b"yes")},
        {"token": "no", "logprob": LOGPROB_FLOOR, "bytes": list(b"no")},
    ]


# -- the offline path: serve-models + probe + embed -------------------------------------------------------
def test_offline_path_http_probe_matches_the_local_model():
    if not all(hasattr(ts, name) for name in ("Prompted", "OpenAIEndpoint", "probe", "probe_set")):
        pytest.skip(
            "the probe layer (taskspace.Prompted, OpenAIEndpoint, probe, probe_set) is not in this build"
        )
    texts = ts.probe_set(n=210)
    other = ZeroShot(
        "This review is {}.", {"positive": "cheap price, fast delivery", "negative": "slow, expensive"}
    )
    served = {"zs": ZS, "other": other}

    async def main():
        async with model_server(served) as base_url:
            prompted = [
                ts.Prompted(
                    ts.OpenAIEndpoint(base_url, name, kind=kind),
                    "{text}",
                    labels=list(ZS.labels),
                    name=f"{name}-{kind}",
                )
                for name in served
                for kind in ("chat", "completions")
            ]
            return await ts.probe([*prompted, ZS], texts, progress=False)

    result = asyncio.run(main())
    direct = ZS.predict_proba(texts)[1]
    for name in ("zs-chat", "zs-completions"):
        assert not result[name].errors
        np.testing.assert_allclose(np.array(result[name].outputs, dtype=float), direct, atol=1e-9)
    sur = ts.Surrogate(features=64, dim=1024)
    embs = result.embeddings(sur)
    assert embs["zs-chat"].similarity(embs[ZS.name]) == pytest.approx(1.0, abs=1e-5)
    assert embs["zs-completions"].similarity(embs[ZS.name]) == pytest.approx(1.0, abs=1e-5)
    assert embs["other-chat"].similarity(embs["zs-chat"]) < 0.99


def test_docs_models_md_examples_run(tmp_path, monkeypatch):
    """docs/models.md: the config serves through the CLI, and every Python example runs as written."""
    if not all(hasattr(ts, name) for name in ("Prompted", "OpenAIEndpoint", "probe_sync", "probe_set")):
        pytest.skip(
            "the probe layer (taskspace.Prompted, OpenAIEndpoint, probe_sync, probe_set) is not in this build"
        )
    doc = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text(encoding="utf-8")
    (config,) = re.findall(r"```toml\n(.*?)```", doc, flags=re.S)
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert len(blocks) == 3
    (tmp_path / "models.toml").write_text(config)
    (tmp_path / "topic_demos.jsonl").write_text(
        '{"text": "the team won the final", "label": "sports"}\n{"text": "shares fell", "label": "business"}\n'
    )
    monkeypatch.chdir(tmp_path)
    proc = _cli("serve-models", "models.toml", "--port", "0")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "4 models" in line, line
        base = line.strip().rsplit(" ", 1)[-1]
        for code in blocks:
            code = code.replace("http://127.0.0.1:8000/v1", base)
            exec(compile(code, "docs/models.md", "exec"), {})
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert (tmp_path / "probe.sqlite").is_file()
