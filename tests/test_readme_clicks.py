"""The README's clicks example runs as written, on the tiny random full checkpoint (detector + tracker)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"


def clicks_example() -> str:
    section = README.read_text().split("## Clicks: one object by points or a box", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's clicks section has no python code block"
    return match.group(1)


def test_clicks_example_runs(tiny_tracker_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (200, 240, 3), dtype=np.uint8)).save("photo.jpg")
    (tmp_path / "sam3").symlink_to(tiny_tracker_checkpoint, target_is_directory=True)
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(clicks_example(), "README clicks example", "exec"), namespace)
    assert namespace["mug"].phrase == "clicked object (1 positive point, 1 negative point)"
    assert namespace["box"].rle.size == (200, 240)
    assert namespace["clicks"].encoder_calls == 1 and namespace["engine"].backbone_calls == 1
    assert namespace["clicks"].shares_backbone is True
