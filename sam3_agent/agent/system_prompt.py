"""Load the prompt text files.

In a wheel they live at ``sam3_agent/prompts/`` (hatchling force-includes the top-level ``prompts/``
folder there); in a source checkout or editable install they are read from ``<repo>/prompts/``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

_REPO_PROMPTS = Path(__file__).resolve().parents[2] / "prompts"


def prompts_dir() -> Path:
    """The folder holding the prompt files of this installation."""
    packaged = resources.files("sam3_agent") / "prompts"
    if packaged.is_dir():
        return Path(str(packaged))
    if _REPO_PROMPTS.is_dir():
        return _REPO_PROMPTS
    raise FileNotFoundError(f"no prompts folder: looked in {packaged} and {_REPO_PROMPTS}")


@cache
def load_prompt(name: str) -> str:
    """Text of ``prompts/<name>.txt``; raises FileNotFoundError naming the folder searched."""
    folder = prompts_dir()
    path = folder / f"{name}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in folder.glob("*.txt"))
        raise FileNotFoundError(f"no prompt named {name!r} in {folder}; available: {available}")
    return path.read_text(encoding="utf-8")
