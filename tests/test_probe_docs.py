"""The runnable examples of docs/probe.md (```python blocks; ```py blocks need a real LLM server) run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "probe.md"

pytestmark = pytest.mark.timeout(60)


def test_probe_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("taskspace.models.server")
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "docs/probe.md has no runnable example"
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {"__name__": "probe_docs"})
    assert (tmp_path / "probe.sqlite").is_file()
