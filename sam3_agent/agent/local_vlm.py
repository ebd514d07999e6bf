"""``ChatModel`` over a vision-language model run in-process with transformers (``--llm-model local:PATH``).

``PATH`` is a checkpoint directory (e.g. ``hf download Qwen/Qwen2.5-VL-3B-Instruct --local-dir ./qwen``) or a
hub id; it is loaded with ``AutoModelForImageTextToText`` and ``AutoProcessor``, ONCE per process and per
(checkpoint, device, dtype): ``load_local_vlm`` caches it, so surfaces that build a chat model per question
(the Gradio demo) never reload it.

The conversation goes through the model's own chat template. When that template renders ``tools`` (and
tool calls and ``tool`` messages), the tools are passed natively as JSON-schema function specs; otherwise
they are described in the system prompt with the text protocol (``text_protocol.to_text_protocol``). Either
way the reply's ``<tool>`` / ``<tool_call>`` blocks are parsed with ``text_protocol.parse_tool_calls``;
output that holds no readable call comes back as a reply without calls (the agent loop nudges the model and
its turn limit ends the run), never as an exception. Decoding is greedy (sampling only when the settings'
temperature is above 0), at most ``settings.max_tokens`` new tokens (default ``DEFAULT_MAX_NEW_TOKENS``).

Environment variables:

* ``SAM3_AGENT_LLM_DEVICE``: torch device for the model (default ``cuda`` when available, else ``cpu``);
* ``SAM3_AGENT_LLM_DTYPE``: parameter dtype, ``bfloat16`` / ``float16`` / ``float32`` (default bfloat16
  on CUDA, float32 elsewhere).

Nothing heavy is imported at import time: torch and transformers are imported when a model is loaded.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from sam3_agent.agent.llm_settings import LLMSettings
from sam3_agent.agent.messages import (
    AssistantMessage,
    ContentPart,
    ImagePart,
    Message,
    SystemMessage,
    ToolMessage,
    ToolSpec,
    UserMessage,
)
from sam3_agent.agent.text_protocol import INVALID_TOOL, parse_tool_calls, serialize_tool_call, to_text_protocol
from sam3_agent.engine.checkpoint import looks_like_path
from sam3_agent.errors import CheckpointError, ConfigError, ImageError, LLMError

ENV_DEVICE = "SAM3_AGENT_LLM_DEVICE"
ENV_DTYPE = "SAM3_AGENT_LLM_DTYPE"
DEFAULT_MAX_NEW_TOKENS = 512

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}

# Names the tool-support probe looks for in a rendered template (unlikely to appear by accident).
_PROBE_TOOL = "sam3_probe_tool"
_PROBE_RESULT = "sam3-probe-result"

HFMessage = dict[str, Any]


@dataclass(frozen=True)
class LoadKey:
    """What identifies one loaded model in the process cache: normalised checkpoint, device, dtype name."""

    source: str
    device: str
    dtype: str


@dataclass(frozen=True)
class _Loaded:
    """Weights and processor shared by every chat model on one ``LoadKey``; ``lock`` serialises generation."""

    model: Any
    processor: Any
    native_tools: bool
    lock: threading.Lock


class LocalVLMChatModel:
    """``ChatModel`` generating replies with an in-process transformers vision-language model.

    Build it with :func:`load_local_vlm` (cached); the constructor takes an already loaded model and
    processor. ``native_tools`` None probes the chat template (see :func:`template_supports_tools`).
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        name: str = "local model",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        native_tools: bool | None = None,
        lock: threading.Lock | None = None,
    ) -> None:
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        native = template_supports_tools(processor) if native_tools is None else native_tools
        self._loaded = _Loaded(model, processor, native, lock or threading.Lock())
        self.name = name
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature

    @property
    def model(self) -> Any:
        """The transformers model (``AutoModelForImageTextToText``), in eval mode."""
        return self._loaded.model

    @property
    def processor(self) -> Any:
        """The transformers processor (``AutoProcessor``) whose chat template renders the conversation."""
        return self._loaded.processor

    @property
    def uses_text_protocol(self) -> bool:
        """True when tools are described in the system prompt rather than passed to the chat template."""
        return not self._loaded.native_tools

    def sibling(self, *, name: str, max_new_tokens: int, temperature: float) -> LocalVLMChatModel:
        """A chat model with other generation settings on the same weights (nothing is reloaded)."""
        loaded = self._loaded
        return LocalVLMChatModel(
            loaded.model,
            loaded.processor,
            name=name,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            native_tools=loaded.native_tools,
            lock=loaded.lock,
        )

    def chat(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> AssistantMessage:
        """One turn: render the conversation with the chat template, generate, parse the tool calls.

        Raises ``LLMError`` when the conversation cannot be rendered or generation fails.
        """
        native = self._loaded.native_tools
        try:
            conversation = to_hf_messages(messages, tools, native=native)
        except ImageError as exc:
            raise LLMError(f"cannot pass an image of the conversation to the local model {self.name}: {exc}") from exc
        specs = hf_tools(tools) if native and tools else None
        return reply_from_text(self._generate(conversation, specs))

    def _generate(self, conversation: list[HFMessage], specs: list[dict[str, Any]] | None) -> str:
        """Greedy (or sampled) generation; the new tokens decoded without special tokens."""
        import torch

        model, processor = self._loaded.model, self._loaded.processor
        try:
            with self._loaded.lock, torch.inference_mode():
                inputs = processor.apply_chat_template(
                    conversation,
                    tools=specs,
                    add_generation_prompt=True,
                    tokenize=True,
                    return_dict=True,
                    return_tensors="pt",
                )
                inputs = inputs.to(model.device, dtype=model.dtype)
                output = model.generate(**inputs, generation_config=self._generation_config())
                new_tokens = output[0, inputs["input_ids"].shape[-1] :]
                return str(processor.decode(new_tokens, skip_special_tokens=True))
        except Exception as exc:  # template, processor, CUDA and generation errors come in many types
            what = f"{type(exc).__name__}: {_one_line(exc)}"
            raise LLMError(f"the local model {self.name} failed to generate a reply: {what}") from exc

    def _generation_config(self) -> Any:
        """The checkpoint's generation config with our length and decoding choice (sampling flags cleared
        for greedy decoding, so transformers does not warn about them)."""
        config = copy.deepcopy(self._loaded.model.generation_config)
        config.max_new_tokens = self.max_new_tokens
        if self.temperature > 0:
            config.do_sample = True
            config.temperature = self.temperature
        else:
            config.do_sample = False
            config.temperature = config.top_p = config.top_k = None
        return config


# --- loading ---------------------------------------------------------------------------------------------------

_CACHE_LOCK = threading.Lock()
_LOADED: dict[LoadKey, LocalVLMChatModel] = {}
_CHAT_MODELS: dict[tuple[LoadKey, str, int, float], LocalVLMChatModel] = {}


def load_local_vlm(settings: LLMSettings) -> LocalVLMChatModel:
    """The chat model for ``local:PATH`` settings, loading the checkpoint only the first time in the process.

    Equal settings give the same object; settings differing only in ``max_tokens`` / ``temperature`` share
    the loaded weights. Device and dtype come from ``SAM3_AGENT_LLM_DEVICE`` / ``SAM3_AGENT_LLM_DTYPE``.

    Raises:
        ConfigError: ``settings`` is not a ``local:`` model, or the device / dtype variables are invalid.
        CheckpointError: the checkpoint is missing, unreadable, or not a vision-language model.
    """
    key = load_key(settings.local_path)
    max_new_tokens = settings.max_tokens or DEFAULT_MAX_NEW_TOKENS
    chat_key = (key, settings.model, max_new_tokens, settings.temperature)
    with _CACHE_LOCK:
        if chat_key not in _CHAT_MODELS:
            base = _LOADED.get(key)
            if base is None:
                base = _LOADED[key] = _load(key, settings.model)
            _CHAT_MODELS[chat_key] = base.sibling(
                name=settings.model, max_new_tokens=max_new_tokens, temperature=settings.temperature
            )
        return _CHAT_MODELS[chat_key]


def clear_local_vlm_cache() -> None:
    """Forget every loaded model (tests; freeing memory). The next ``load_local_vlm`` loads again."""
    with _CACHE_LOCK:
        _LOADED.clear()
        _CHAT_MODELS.clear()


def load_key(path: str) -> LoadKey:
    """The cache key for checkpoint ``path``: local paths made absolute, plus the resolved device and dtype."""
    spec = path.strip()
    if not spec:
        raise CheckpointError("local model path is empty: expected --llm-model local:PATH (a directory or hub id)")
    source = str(Path(spec).expanduser().resolve()) if looks_like_path(spec) else spec
    device, dtype = resolve_device_dtype()
    return LoadKey(source=source, device=device, dtype=dtype)


def resolve_device_dtype() -> tuple[str, str]:
    """(device, dtype name) from the environment, else CUDA + bfloat16 when available, else CPU + float32."""
    from sam3_agent.engine.transformers_engine import resolve_device

    device_text = os.environ.get(ENV_DEVICE, "").strip()
    try:
        device = resolve_device(device_text or None)
    except ConfigError as exc:
        raise ConfigError(f"{ENV_DEVICE}={device_text!r}: {exc}") from None
    dtype_text = os.environ.get(ENV_DTYPE, "").strip().lower()
    if dtype_text and dtype_text not in _DTYPES:
        raise ConfigError(f"{ENV_DTYPE}={dtype_text!r} is not one of {sorted(_DTYPES)}")
    dtype = _DTYPES[dtype_text] if dtype_text else ("bfloat16" if device.type == "cuda" else "float32")
    return str(device), dtype


def _load(key: LoadKey, name: str) -> LocalVLMChatModel:
    """Load model and processor for ``key``; every failure becomes a one-line ``CheckpointError``."""
    is_local = looks_like_path(key.source)
    if is_local:
        _check_local_dir(Path(key.source), name)
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    where = f"directory {key.source!r}" if is_local else f"hub id {key.source!r}"
    try:
        config = AutoConfig.from_pretrained(key.source)
        _check_vlm_config(config, name)
        model = AutoModelForImageTextToText.from_pretrained(key.source, dtype=getattr(torch, key.dtype))
        processor = AutoProcessor.from_pretrained(key.source)
    except CheckpointError:
        raise
    except Exception as exc:  # transformers / huggingface_hub raise many types (OSError, ValueError, HTTP, offline)
        raise CheckpointError(f"could not load {name} from {where}: {type(exc).__name__}: {_one_line(exc)}") from exc
    _check_processor(processor, name)
    try:
        model = model.to(key.device).eval()
    except Exception as exc:  # e.g. CUDA out of memory, no such device
        raise CheckpointError(f"could not move {name} to {key.device}: {type(exc).__name__}: {_one_line(exc)}") from exc
    return LocalVLMChatModel(model, processor, name=name)


def _check_local_dir(directory: Path, name: str) -> None:
    if not directory.is_dir():
        raise CheckpointError(f"{name}: checkpoint directory {str(directory)!r} does not exist or is not a directory")
    if not (directory / "config.json").is_file():
        raise CheckpointError(f"{name}: {str(directory)!r} has no config.json, so it is not a transformers checkpoint")


def _check_vlm_config(config: Any, name: str) -> None:
    """Raise CheckpointError unless ``AutoModelForImageTextToText`` knows the config's model type."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    model_type = getattr(config, "model_type", None)
    if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise CheckpointError(
            f"{name} is a {model_type!r} checkpoint, not a vision-language model that "
            "AutoModelForImageTextToText can load (e.g. Qwen2.5-VL, Qwen3-VL, Gemma 3, SmolVLM)"
        )


def _check_processor(processor: Any, name: str) -> None:
    if not hasattr(processor, "image_processor") or not hasattr(processor, "apply_chat_template"):
        raise CheckpointError(f"{name} has no image processor: AutoProcessor loaded a {type(processor).__name__}")
    if not getattr(processor, "chat_template", None):
        raise CheckpointError(f"{name} has no chat template (chat_template.jinja / chat_template.json)")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


# --- chat template ---------------------------------------------------------------------------------------------


def template_supports_tools(processor: Any) -> bool:
    """Whether the processor's chat template renders tool specs, assistant tool calls and ``tool`` messages.

    Rendered without tokenizing, on a probe conversation; templates that ignore ``tools`` (Qwen2.5-VL's,
    Gemma 3's) or raise on the ``tool`` role give False, and the text protocol is used instead.
    """
    spec = ToolSpec(name=_PROBE_TOOL, description="probe", parameters={"type": "object", "properties": {}})
    call = {"type": "function", "function": {"name": _PROBE_TOOL, "arguments": {}}}
    conversation: list[HFMessage] = [
        {"role": "system", "content": [_text("system")]},
        {"role": "user", "content": [_text("question")]},
        {"role": "assistant", "content": [], "tool_calls": [call]},
        {"role": "tool", "name": _PROBE_TOOL, "content": [_text(_PROBE_RESULT)]},
    ]
    try:
        rendered = processor.apply_chat_template(
            conversation, tools=hf_tools([spec]), add_generation_prompt=True, tokenize=False
        )
    except Exception:  # a template that cannot render tools or the tool role
        return False
    return isinstance(rendered, str) and rendered.count(_PROBE_TOOL) >= 2 and _PROBE_RESULT in rendered


def hf_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """Our tool specs as the JSON-schema function specs chat templates take (OpenAI's layout)."""
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]


def to_hf_messages(messages: Sequence[Message], tools: Sequence[ToolSpec], *, native: bool) -> list[HFMessage]:
    """Our history in the HF chat format: content as lists of ``text`` / ``image`` (PIL) parts.

    ``native``: tool calls become ``tool_calls`` entries and results ``tool`` messages; otherwise the history
    is first rewritten with ``to_text_protocol`` (tool instructions in the system prompt, calls as ``<tool>``
    text, results as user text).
    """
    history = list(messages) if native else to_text_protocol(messages, tools)
    return [_hf_message(message) for message in history]


def _hf_message(message: Message) -> HFMessage:
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": [_text(message.content)]}
    if isinstance(message, UserMessage):
        return {"role": "user", "content": _hf_parts(message.content)}
    if isinstance(message, ToolMessage):
        return {
            "role": "tool",
            "name": message.name,
            "tool_call_id": message.tool_call_id,
            "content": [_text(message.content)],
        }
    return _hf_assistant(message)


def _hf_assistant(message: AssistantMessage) -> HFMessage:
    """Calls whose arguments are a JSON object go in ``tool_calls``; unreadable ones stay visible as text."""
    pieces = [message.content.strip()] if message.content and message.content.strip() else []
    calls: list[dict[str, Any]] = []
    for call in message.tool_calls:
        arguments = _json_object(call.arguments) if call.name != INVALID_TOOL else None
        if arguments is None:
            pieces.append(serialize_tool_call(call))
        else:
            calls.append({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}})
    out: HFMessage = {"role": "assistant", "content": [_text("\n".join(pieces))] if pieces else []}
    if calls:
        out["tool_calls"] = calls
    return out


def _hf_parts(parts: Sequence[ContentPart]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, ImagePart):
            if part.caption:
                out.append(_text(part.caption))
            out.append({"type": "image", "image": decode_data_url(part.data_url)})
        else:
            out.append(_text(part.text))
    return out


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def decode_data_url(data_url: str) -> Image.Image:
    """The RGB PIL image of a PNG / JPEG ``data:`` URL (``ImagePart.data_url``); raises ``ImageError``."""
    from sam3_agent.images import load_image

    return load_image(data_url)


def reply_from_text(text: str) -> AssistantMessage:
    """The assistant message for generated ``text``: its ``<tool>`` / ``<tool_call>`` blocks as calls, the
    rest as content. Text without a readable block gives a message without calls; it never raises."""
    if not text.strip():
        return AssistantMessage(content=None)
    prose, calls = parse_tool_calls(text)
    return AssistantMessage(content=prose, tool_calls=tuple(calls))
