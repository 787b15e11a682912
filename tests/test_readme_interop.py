"""The README's five-line snnTorch -> chip energy example runs as printed (issue 16, deliverable 6)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_snntorch_to_energy_example(tmp_path, monkeypatch):
    pytest.importorskip("snntorch")
    section = README.read_text().split("## Interop: snnTorch, Norse, Sinabs, Rockpool", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) == 5
    monkeypatch.chdir(tmp_path)  # it writes out/interop
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 (our own README)
    chip = scope["report"]["chips"]["loihi2"]
    assert chip["energy_j"] > 0 and scope["report"]["samples"] == 4 and scope["report"]["steps"] == 100
    assert (tmp_path / "out" / "interop" / "energy_per_layer.png").exists()
