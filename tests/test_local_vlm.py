"""``local:PATH``: the in-process vision-language model backend, on a tiny random Qwen2.5-VL checkpoint.

The checkpoint (``sam3_agent.testing.tiny_vlm``) is written once per module and loads through the same
``from_pretrained`` path as real weights; its replies are random, so runs end by the turn limit.
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from sam3_agent.agent.chat_models import make_chat_model
from sam3_agent.agent.llm_settings import LLMSettings
from sam3_agent.agent.local_vlm import (
    DEFAULT_MAX_NEW_TOKENS,
    ENV_DEVICE,
    ENV_DTYPE,
    LocalVLMChatModel,
    clear_local_vlm_cache,
    hf_tools,
    load_key,
    load_local_vlm,
    reply_from_text,
    resolve_device_dtype,
    template_supports_tools,
    to_hf_messages,
)
from sam3_agent.agent.loop import Sam3Agent
from sam3_agent.agent.messages import (
    AssistantMessage,
    ImagePart,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    ToolSpec,
    UserMessage,
)
from sam3_agent.agent.text_protocol import INVALID_TOOL
from sam3_agent.errors import CheckpointError, ConfigError, LLMError
from sam3_agent.testing.scene import Scene, SceneObject, SceneSegmenter
from sam3_agent.testing.tiny_vlm import make_tiny_vlm

CALL_TEXT = (
    'Looking for it.\n<tool_call>\n{"name": "segment_phrases", "arguments": {"phrases": ["red cup"]}}\n</tool_call>'
)
SCENE = Scene(
    width=240,
    height=160,
    objects=[
        SceneObject("red cup", (20, 60, 60, 110), color=(200, 40, 40)),
        SceneObject("laptop", (100, 40, 200, 120), shape="box", color=(90, 90, 110)),
    ],
)
SPEC = ToolSpec(
    name="segment_phrases",
    description="Segment every object matching each phrase.",
    parameters={"type": "object", "properties": {"phrases": {"type": "array", "items": {"type": "string"}}}},
)
NO_TOOLS_TEMPLATE = (
    "{%- for m in messages -%}{{ '<|im_start|>' + m.role + '\n' }}"
    "{%- for p in m.content -%}{%- if p.type == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- else -%}{{ p.text }}{%- endif -%}{%- endfor -%}{{ '<|im_end|>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for this module: tiny-model decoding is faster so, and steady on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny random Qwen2.5-VL checkpoint directory; the process cache is emptied before and after."""
    clear_local_vlm_cache()
    yield make_tiny_vlm(tmp_path_factory.mktemp("vlm-tiny"), seed=0)
    clear_local_vlm_cache()


@pytest.fixture(scope="module")
def model(vlm_dir: Path) -> LocalVLMChatModel:
    """The chat model the factory builds for ``local:<vlm_dir>`` (default settings)."""
    chat_model = make_chat_model(LLMSettings(model=f"local:{vlm_dir}"))
    assert isinstance(chat_model, LocalVLMChatModel)
    return chat_model


class CountingModel:
    """Delegates to a chat model, recording every reply."""

    def __init__(self, inner: LocalVLMChatModel) -> None:
        self.inner = inner
        self.replies: list[AssistantMessage] = []

    def chat(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AssistantMessage:
        reply = self.inner.chat(messages, tools)
        self.replies.append(reply)
        return reply


def conversation() -> list[Message]:
    """System, user with an image, a tool call, its result, a follow-up image: every message kind."""
    image = SCENE.image()
    return [
        SystemMessage(content="You operate SAM 3."),
        UserMessage.of("Query: segment the red cup", ImagePart.from_pil(image, caption="the original image")),
        AssistantMessage(
            content="First segment.",
            tool_calls=(ToolCall(id="call_1", name="segment_phrases", arguments='{"phrases": ["red cup"]}'),),
        ),
        ToolMessage(tool_call_id="call_1", name="segment_phrases", content="found 1 mask: id 1"),
        UserMessage(content=(ImagePart.from_pil(image.resize((120, 80)), caption="overlay of mask 1"),)),
    ]


def generate_returning(chat_model: LocalVLMChatModel, text: str) -> Any:
    """A ``generate`` that answers ``text`` (tokenized with the checkpoint's tokenizer) after the prompt."""
    tokenizer = chat_model.processor.tokenizer
    reply = torch.tensor(
        [tokenizer.encode(text, add_special_tokens=False) + [tokenizer.convert_tokens_to_ids("<|im_end|>")]]
    )

    def generate(input_ids: torch.Tensor, **_: Any) -> torch.Tensor:
        return torch.cat([input_ids, reply], dim=1)

    return generate


# --- loading ---------------------------------------------------------------------------------------------------


def test_factory_loads_the_checkpoint_once(model: LocalVLMChatModel, vlm_dir: Path) -> None:
    assert type(model.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(model.processor).__name__ == "Qwen2_5_VLProcessor"
    assert model.max_new_tokens == DEFAULT_MAX_NEW_TOKENS
    assert model.model.device.type == "cpu" and model.model.dtype == torch.float32
    assert not model.uses_text_protocol  # the tiny template renders tools
    assert make_chat_model(LLMSettings(model=f"local:{vlm_dir}")) is model
    # Another spelling of the same directory and other generation settings share the loaded weights.
    other = load_local_vlm(LLMSettings(model=f"local:{vlm_dir}/.", max_tokens=8))
    assert other is not model and other.model is model.model and other.max_new_tokens == 8


def test_missing_checkpoint_dir_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        make_chat_model(LLMSettings(model=f"local:{tmp_path / 'nowhere'}"))


def test_directory_without_config_is_a_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        load_local_vlm(LLMSettings(model=f"local:{tmp_path}"))


def test_checkpoint_of_another_kind_is_a_checkpoint_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}), encoding="utf-8")
    with pytest.raises(CheckpointError, match="not a vision-language model") as info:
        load_local_vlm(LLMSettings(model=f"local:{tmp_path}"))
    assert "\n" not in str(info.value)


def test_unreachable_hub_id_is_a_checkpoint_error() -> None:
    with pytest.raises(CheckpointError, match="hub id 'no-such-vlm-id'"):
        load_local_vlm(LLMSettings(model="local:no-such-vlm-id"))  # the hub is off in tests


def test_device_and_dtype_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DEVICE, raising=False)
    monkeypatch.delenv(ENV_DTYPE, raising=False)
    expected_device = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device_dtype() == (expected_device, "bfloat16" if expected_device == "cuda" else "float32")
    monkeypatch.setenv(ENV_DEVICE, "cpu")
    monkeypatch.setenv(ENV_DTYPE, "BF16")
    assert resolve_device_dtype() == ("cpu", "bfloat16")
    assert load_key("./x").dtype == "bfloat16" and Path(load_key("./x").source).is_absolute()
    monkeypatch.setenv(ENV_DTYPE, "int3")
    with pytest.raises(ConfigError, match=ENV_DTYPE):
        resolve_device_dtype()
    monkeypatch.setenv(ENV_DTYPE, "float32")
    monkeypatch.setenv(ENV_DEVICE, "toaster")
    with pytest.raises(ConfigError, match=ENV_DEVICE):
        resolve_device_dtype()


def test_importing_the_backend_imports_no_torch() -> None:
    code = "import sys, sam3_agent.agent.local_vlm; print('torch' in sys.modules or 'transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_tool_script_writes_the_tiny_vlm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = Path(__file__).resolve().parents[1] / "tools" / "make_tiny_checkpoint.py"
    tool = runpy.run_path(str(script))
    assert tool["main"](["--vlm", str(tmp_path / "vlm")]) == 0
    assert "local:" in capsys.readouterr().out
    config = json.loads((tmp_path / "vlm" / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "qwen2_5_vl"


# --- message conversion ----------------------------------------------------------------------------------------


def test_native_conversion_keeps_images_tool_calls_and_tool_results() -> None:
    hf = to_hf_messages(conversation(), [SPEC], native=True)
    assert [m["role"] for m in hf] == ["system", "user", "assistant", "tool", "user"]
    caption, image = hf[1]["content"][1:]
    assert caption == {"type": "text", "text": "the original image"}
    assert isinstance(image["image"], Image.Image) and image["image"].size == (240, 160)
    assert image["image"].getpixel((40, 85)) == (200, 40, 40)
    assert hf[2]["tool_calls"][0]["function"] == {"name": "segment_phrases", "arguments": {"phrases": ["red cup"]}}
    assert hf[3]["content"] == [{"type": "text", "text": "found 1 mask: id 1"}] and hf[3]["name"] == "segment_phrases"
    assert hf[4]["content"][1]["image"].size == (120, 80)


def test_text_protocol_conversion_describes_tools_and_folds_results_into_user_text() -> None:
    hf = to_hf_messages(conversation(), [SPEC], native=False)
    assert [m["role"] for m in hf] == ["system", "user", "assistant", "user"]
    system = hf[0]["content"][0]["text"]
    assert system.startswith("You operate SAM 3.") and "<tool>" in system and "segment_phrases" in system
    assert "tool_calls" not in hf[2] and '<tool>{"name": "segment_phrases"' in hf[2]["content"][0]["text"]
    texts = [p["text"] for p in hf[3]["content"] if p["type"] == "text"]
    assert "Tool result for segment_phrases: found 1 mask: id 1" in texts
    assert any(p["type"] == "image" for p in hf[3]["content"])


def test_unreadable_calls_stay_visible_as_text() -> None:
    bad = AssistantMessage(
        tool_calls=(
            ToolCall(id="c1", name=INVALID_TOOL, arguments="{not json"),
            ToolCall(id="c2", name="segment_phrases", arguments='{"phrases": ['),
        )
    )
    (hf,) = to_hf_messages([bad], [SPEC], native=True)
    assert "tool_calls" not in hf
    assert (
        hf["content"][0]["text"]
        == '<tool>{not json</tool>\n<tool>{"name": "segment_phrases", "arguments": {"phrases": [}</tool>'
    )


def test_rendered_prompt_carries_tools_calls_results_and_images(model: LocalVLMChatModel) -> None:
    rendered = model.processor.apply_chat_template(
        to_hf_messages(conversation(), [SPEC], native=True), tools=hf_tools([SPEC]), add_generation_prompt=True
    )
    assert '"name": "segment_phrases"' in rendered and "<tool_response>\nfound 1 mask: id 1" in rendered
    assert rendered.count("<|image_pad|>") == 2 and rendered.endswith("<|im_start|>assistant\n")


def test_templates_that_ignore_tools_get_the_text_protocol(model: LocalVLMChatModel, vlm_dir: Path) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(vlm_dir)
    assert template_supports_tools(processor)
    processor.chat_template = NO_TOOLS_TEMPLATE
    assert not template_supports_tools(processor)
    text_model = LocalVLMChatModel(model.model, processor, max_new_tokens=4)
    assert text_model.uses_text_protocol
    rendered = processor.apply_chat_template(to_hf_messages(conversation(), [SPEC], native=False))
    assert "<tool>" in rendered and "Tool result for segment_phrases: found 1 mask" in rendered
    reply = text_model.chat(conversation(), [SPEC])
    assert isinstance(reply, AssistantMessage)


# --- parsing replies -------------------------------------------------------------------------------------------


def test_reply_text_is_parsed_into_tool_calls() -> None:
    reply = reply_from_text(CALL_TEXT)
    assert reply.content == "Looking for it."
    (call,) = reply.tool_calls
    assert call.name == "segment_phrases" and json.loads(call.arguments) == {"phrases": ["red cup"]}
    assert (
        reply_from_text('<tool>{"name": "no_match", "arguments": {"reason": "none"}}</tool>').tool_calls[0].name
        == "no_match"
    )


@pytest.mark.parametrize("text", ["", "   \n", "\x00\ufffd garbage {{{", "!!!!!!!!!!!!!!!!"])
def test_garbage_gives_a_reply_without_calls(text: str) -> None:
    reply = reply_from_text(text)
    assert reply.tool_calls == ()


def test_broken_block_gives_an_invalid_call() -> None:
    (call,) = reply_from_text("<tool_call>segment everything!</tool_call>").tool_calls
    assert call.name == INVALID_TOOL


def test_generated_tokens_are_decoded_and_parsed(model: LocalVLMChatModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model.model, "generate", generate_returning(model, CALL_TEXT))
    reply = model.chat(conversation(), [SPEC])
    (call,) = reply.tool_calls  # <tool_call> tags survive decoding with skip_special_tokens
    assert call.name == "segment_phrases" and json.loads(call.arguments) == {"phrases": ["red cup"]}
    assert reply.content == "Looking for it."


def test_generation_failure_is_an_llm_error(model: LocalVLMChatModel, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: Any) -> torch.Tensor:
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(model.model, "generate", broken)
    with pytest.raises(LLMError, match="device-side assert"):
        model.chat(conversation(), [SPEC])


# --- the whole agent -------------------------------------------------------------------------------------------


def test_the_agent_runs_on_the_random_model_until_the_turn_limit(model: LocalVLMChatModel) -> None:
    llm = CountingModel(model)  # the random model rambles (whitespace) up to 512 new tokens a turn
    answer = Sam3Agent(SceneSegmenter(SCENE), llm=llm, max_turns=3).run(SCENE.image(), "segment the red cup")
    assert answer.status in ("gave_up", "answered", "no_match")
    if answer.status == "gave_up":
        assert len(llm.replies) == 3 and "after 3 turns" in answer.text
    assert all(isinstance(reply, AssistantMessage) for reply in llm.replies)
