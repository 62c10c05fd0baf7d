"""Every ```python block of every guide (and of the README) runs, in order, in one namespace per
file.

Guides therefore cannot rot: a guide whose code stops working fails the suite on every backend.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDES = sorted((ROOT / "guides").glob("*.md")) + [ROOT / "README.md"]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path):
    return _BLOCK.findall(path.read_text())


def test_every_guide_has_code():
    assert GUIDES, "no guides found"
    for path in GUIDES:
        assert python_blocks(path), f"{path.name} has no ```python block"


@pytest.mark.parametrize("path", GUIDES, ids=[p.stem for p in GUIDES])
def test_guide_runs(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # guides may write files (model.save)
    namespace = {"__name__": f"guide_{path.stem}"}
    for i, block in enumerate(python_blocks(path)):
        exec(compile(block, f"{path.name}[block {i}]", "exec"), namespace)
