"""The wheel ships the prompt files: build it, install it without the source tree, load every prompt."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_prompts_in_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("sam3_agent-*.whl"))

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)

    expected = sorted(p.stem for p in (REPO / "prompts").glob("*.txt"))
    assert expected, "the repo has no prompt files"
    script = (
        "import sam3_agent.agent.system_prompt as sp, json;"
        "d = sp.prompts_dir();"
        "print(json.dumps({'dir': str(d), 'names': sorted(p.stem for p in d.glob('*.txt')),"
        " 'sizes': [len(sp.load_prompt(p.stem)) for p in sorted(d.glob('*.txt'))]}))"
    )
    # Run outside the repo so the source tree cannot be imported by accident.
    result = subprocess.run([python, "-c", script], check=True, capture_output=True, text=True, cwd=tmp_path)
    found = json.loads(result.stdout)
    assert str(env_dir) in found["dir"], f"prompts were not loaded from the installed wheel: {found['dir']}"
    assert found["names"] == expected
    assert all(size > 100 for size in found["sizes"])
