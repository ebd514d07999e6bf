"""Shared test setup: no hub access, a tiny random SAM 3 checkpoint, and the ``gpu`` marker.

The hub is switched off before anything imports huggingface_hub, so a test that would download fails
fast instead of hanging. ``tiny_checkpoint`` is written once per session and loads through the same
``from_pretrained`` path as the real weights; its masks and scores are random.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` when CUDA is unavailable (torch is imported only if such tests exist)."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny randomly initialised SAM 3 checkpoint (224x224 input, 20 queries)."""
    from sam3_agent.engine.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("sam3-tiny"), seed=0)


@pytest.fixture(scope="session")
def tiny_tracker_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random SAM 3 checkpoint in the full layout of facebook/sam3 (detector + tracker, model type
    sam3_video): it loads as ``Sam3Model`` and as ``Sam3TrackerModel`` (clicks)."""
    from sam3_agent.engine.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("sam3-tiny-tracker"), seed=0, tracker=True)


@pytest.fixture(scope="session")
def _session_engine(tiny_checkpoint: Path):
    from sam3_agent.engine.transformers_engine import Sam3Engine

    return Sam3Engine(tiny_checkpoint, device="cpu", dtype="float32").load()


@pytest.fixture
def engine(_session_engine) -> Iterator:
    """A loaded CPU ``Sam3Engine`` on ``tiny_checkpoint`` with an empty cache and zeroed counters."""
    _session_engine.clear_cache(reset_counters=True)
    yield _session_engine
    _session_engine.clear_cache(reset_counters=True)


LLM_ENV = (
    "SAM3_AGENT_LLM_MODEL",
    "SAM3_AGENT_LLM_BASE_URL",
    "SAM3_AGENT_LLM_API_KEY",
    "SAM3_AGENT_LLM_TOOL_MODE",
    "SAM3_AGENT_LLM_TIMEOUT",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "SAM3_CHECKPOINT",
)


@pytest.fixture
def no_llm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No language model or checkpoint configured in the environment: a fresh machine."""
    for name in LLM_ENV:
        monkeypatch.delenv(name, raising=False)
