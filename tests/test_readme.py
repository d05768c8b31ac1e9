"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code in blocks:  # the blocks build on each other, as a reader would run them
        exec(compile(code, str(README), "exec"), namespace)
    assert (tmp_path / "reviews.json").is_file()
    assert abs(namespace["dte"].similarity(namespace["same"]) - 1.0) < 1e-5
