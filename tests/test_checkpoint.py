"""Checkpoint resolution and loading errors, and the tiny checkpoint maker."""

from __future__ import annotations

import json
import runpy
import warnings
from pathlib import Path

import pytest

from sam3_agent.engine.checkpoint import (
    CHECKPOINT_ENV,
    DEFAULT_CHECKPOINT,
    load_sam3,
    load_sam3_tracker,
    loading_progress,
    resolve_checkpoint,
)
from sam3_agent.errors import CheckpointError, ConfigError

HOW_TO_FRAGMENTS = ("facebook/sam3", "hf auth login", "hf download", "--checkpoint", CHECKPOINT_ENV, "make_tiny")


def assert_how_to(message: str) -> None:
    for fragment in HOW_TO_FRAGMENTS:
        assert fragment in message, f"{fragment!r} missing from: {message}"


def test_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    assert resolve_checkpoint() == DEFAULT_CHECKPOINT == "facebook/sam3"
    monkeypatch.setenv(CHECKPOINT_ENV, str(tmp_path))
    assert resolve_checkpoint() == str(tmp_path)
    assert resolve_checkpoint("other/dir") == "other/dir"
    assert resolve_checkpoint(tmp_path / "x") == str(tmp_path / "x")


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with pytest.raises(CheckpointError) as err:
        load_sam3(missing)
    assert str(missing) in str(err.value) and "does not exist" in str(err.value)
    assert_how_to(str(err.value))


def test_directory_without_config(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as err:
        load_sam3(tmp_path)
    assert "config.json" in str(err.value)
    assert_how_to(str(err.value))


def test_config_of_another_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError) as err:
        load_sam3(tmp_path)
    assert "'bert'" in str(err.value) and "sam3" in str(err.value)
    assert_how_to(str(err.value))


def test_env_var_directory_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CHECKPOINT_ENV, str(tmp_path / "from-env"))
    with pytest.raises(CheckpointError, match="from-env"):
        load_sam3()


def test_sam3_config_without_weights(tmp_path: Path, tiny_checkpoint: Path) -> None:
    (tmp_path / "config.json").write_text((tiny_checkpoint / "config.json").read_text())
    with pytest.raises(CheckpointError) as err:
        load_sam3(tmp_path)
    assert "could not load SAM 3 from directory" in str(err.value)
    assert_how_to(str(err.value))


def test_hub_id_offline_gives_how_to() -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    if isinstance(huggingface_hub.try_to_load_from_cache(DEFAULT_CHECKPOINT, "config.json"), str):
        pytest.skip("facebook/sam3 is in the local hub cache: loading it would succeed offline")
    with pytest.raises(CheckpointError) as err:
        load_sam3(DEFAULT_CHECKPOINT)
    assert "hub id 'facebook/sam3'" in str(err.value)
    assert_how_to(str(err.value))


def test_tiny_checkpoint_files_and_size(tiny_checkpoint: Path) -> None:
    names = {p.name for p in tiny_checkpoint.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= names
    total = sum(p.stat().st_size for p in tiny_checkpoint.iterdir())
    assert total < 5 * 2**20
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    assert config["model_type"] == "sam3"
    processor = json.loads((tiny_checkpoint / "processor_config.json").read_text())
    assert processor["image_processor"]["size"] == {"height": 224, "width": 224}


def test_tiny_tokenizer_spells_common_words(tiny_checkpoint: Path) -> None:
    from transformers import Sam3Processor

    tokenizer = Sam3Processor.from_pretrained(tiny_checkpoint).tokenizer
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("cup laptop person red hat")["input_ids"])
    assert tokens == ["<|startoftext|>", "cup</w>", "laptop</w>", "person</w>", "red</w>", "hat</w>", "<|endoftext|>"]
    # Unknown words still tokenize, byte by byte.
    assert len(tokenizer("zebra")["input_ids"]) > 3


@pytest.mark.parametrize("image_size", [0, 100, -14])
def test_tiny_rejects_bad_image_size(tmp_path: Path, image_size: int) -> None:
    from sam3_agent.engine.tiny import make_tiny_checkpoint

    with pytest.raises(ConfigError, match="multiple of 14"):
        make_tiny_checkpoint(tmp_path, image_size=image_size)


def test_tiny_rejects_unknown_size(tmp_path: Path) -> None:
    from sam3_agent.engine.tiny import make_tiny_checkpoint

    with pytest.raises(ConfigError, match="size must be one of"):
        make_tiny_checkpoint(tmp_path, size="huge")  # type: ignore[arg-type]


def test_tool_script_writes_a_loadable_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = Path(__file__).resolve().parents[1] / "tools" / "make_tiny_checkpoint.py"
    tool = runpy.run_path(str(script))  # its main(), in-process (a subprocess would re-import torch)
    out = tmp_path / "ckpt"
    assert tool["main"]([str(out), "--image-size", "112", "--seed", "3"]) == 0
    assert "random" in capsys.readouterr().out.lower()
    model, processor, spec = load_sam3(out)
    assert spec == str(out)
    assert model.config.image_size == 112 and processor.image_processor.size["height"] == 112
    assert tool["main"]([str(tmp_path / "bad"), "--image-size", "100"]) == 2
    assert "multiple of 14" in capsys.readouterr().err


@pytest.fixture
def transformers_bars_on() -> object:
    """transformers' tqdm bars switched on (the test setup turns them off), as a user's run has them."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    with warnings.catch_warnings():  # the hub's own bars stay off (HF_HUB_DISABLE_PROGRESS_BARS), and it says so
        warnings.simplefilter("ignore", UserWarning)
        hf_logging.enable_progress_bar()
    yield
    if not was_on:
        hf_logging.disable_progress_bar()


@pytest.mark.usefixtures("transformers_bars_on")
def test_transformers_weight_bar_never_reaches_stderr(tiny_checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    from transformers import Sam3Model

    Sam3Model.from_pretrained(str(tiny_checkpoint))
    assert "Loading weights" in capsys.readouterr().err, "transformers shows its bar when loaded directly"
    load_sam3(tiny_checkpoint)
    with loading_progress(None):
        load_sam3(tiny_checkpoint)
    assert "Loading weights" not in capsys.readouterr().err


@pytest.mark.usefixtures("transformers_bars_on")
def test_weight_loading_is_told_to_the_listener(
    tiny_checkpoint: Path, tiny_tracker_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    for load, checkpoint in ((load_sam3, tiny_checkpoint), (load_sam3_tracker, tiny_tracker_checkpoint)):
        heard: list[tuple[str, int, int | None]] = []
        with loading_progress(lambda *event, heard=heard: heard.append(event)):
            load(checkpoint)
        assert heard and {desc for desc, _, _ in heard} == {"Loading weights"}
        _, done, total = heard[-1]
        assert total and done == total and [d for _, d, _ in heard] == list(range(total + 1))
    assert "Loading weights" not in capsys.readouterr().err
