"""A tiny randomly initialised vision-language model, for tests of ``local:PATH`` without real weights.

``make_tiny_vlm`` writes a Qwen2.5-VL checkpoint directory (``Qwen2_5_VLForConditionalGeneration``,
``Qwen2_5_VLProcessor`` with ``Qwen2VLImageProcessor``, ``Qwen2VLVideoProcessor`` and a ``Qwen2Tokenizer``)
that loads through exactly the path real weights take: ``AutoModelForImageTextToText.from_pretrained`` and
``AutoProcessor.from_pretrained``. Qwen2.5-VL because every piece of it is built offline from the installed
transformers (no hub file is needed), and because it is the family the README suggests for real use.

Everything is small: two 32-wide vision blocks, two 64-wide text layers, images resized to at most 16 image
tokens; about 0.2 M parameters (under 1 MB on disk), loading in a fraction of a second on a CPU once
transformers is imported. Its replies are random text: it exercises code paths, not answers.

The tokenizer is a byte-level BPE trained here on the agent's own prompts and tool specs (so the long
system prompt is a few thousand tokens, not ten thousand bytes), plus Qwen's special tokens. The chat
template is written here too, in Qwen's ChatML layout, and supports ``tools`` (Hermes-style
``<tool_call>`` blocks and ``tool`` messages), so the backend's native tool path is the one exercised.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2Tokenizer,
)
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
VIDEO_PAD = "<|video_pad|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)
TOOL_TAGS = ("<tool_call>", "</tool_call>")
"""Ordinary added tokens, as in Qwen's tokenizers: decoding with ``skip_special_tokens`` keeps them."""

VOCAB_SIZE = 1024
_PATCH = 14
_MERGE = 2
_MAX_IMAGE_TOKENS = 16  # images are shrunk to at most 16 merged 28x28 patches

CHAT_TEMPLATE = r"""
{%- macro render(content) -%}
  {%- if content is string -%}{{- content -}}
  {%- elif content -%}
    {%- for part in content -%}
      {%- if part.type == 'image' or 'image' in part -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
      {%- elif part.type == 'text' -%}{{- part.text -}}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
{%- endmacro -%}
{%- if tools -%}
  {{- '<|im_start|>system\n' -}}
  {%- if messages[0].role == 'system' -%}{{- render(messages[0].content) + '\n\n' -}}{%- endif -%}
  {{- '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' -}}
  {{- 'You are provided with function signatures within <tools></tools> XML tags:\n<tools>' -}}
  {%- for tool in tools -%}{{- '\n' + (tool | tojson) -}}{%- endfor -%}
  {{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within ' -}}
  {{- '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, ' -}}
  {{- '"arguments": <args-json-object>}\n</tool_call><|im_end|>\n' -}}
{%- elif messages[0].role == 'system' -%}
  {{- '<|im_start|>system\n' + render(messages[0].content) + '<|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
  {%- if message.role == 'system' and loop.first -%}
  {%- elif message.role == 'tool' -%}
    {%- if loop.first or loop.previtem.role != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}
    {{- '\n<tool_response>\n' + render(message.content) + '\n</tool_response>' -}}
    {%- if loop.last or loop.nextitem.role != 'tool' -%}{{- '<|im_end|>\n' -}}{%- endif -%}
  {%- elif message.role == 'assistant' -%}
    {{- '<|im_start|>assistant\n' + render(message.content) -}}
    {%- for call in message.tool_calls or [] -%}
      {%- set fn = call.function if call.function is defined else call -%}
      {%- set args = fn.arguments if fn.arguments is string else (fn.arguments | tojson) -%}
      {{- '\n<tool_call>\n{"name": ' + (fn.name | tojson) + ', "arguments": ' + args + '}\n</tool_call>' -}}
    {%- endfor -%}
    {{- '<|im_end|>\n' -}}
  {%- else -%}
    {{- '<|im_start|>' + message.role + '\n' + render(message.content) + '<|im_end|>\n' -}}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
"""


def _corpus() -> list[str]:
    """Texts the BPE merges are trained on: the agent's prompts and tool specs."""
    from sam3_agent.agent.system_prompt import load_prompt
    from sam3_agent.agent.toolbox import default_tools

    specs = [json.dumps(tool.spec().model_dump(), ensure_ascii=False) for tool in default_tools()]
    prompts = [load_prompt("agent_system"), load_prompt("text_tool_protocol")]
    return [*prompts, *specs, "Query: segment the red cup. Tool result for segment_phrases: 2 masks"]


def _tokenizer() -> Qwen2Tokenizer:
    """A byte-level BPE with Qwen's pre-tokenizer, trained on ``_corpus`` and wrapped in ``Qwen2Tokenizer``."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(pattern=Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[ENDOFTEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=state["vocab"], merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.add_tokens(list(TOOL_TAGS))
    return tokenizer


def _config(tokenizer: Qwen2Tokenizer) -> Qwen2_5_VLConfig:
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": 64,
        "patch_size": _PATCH,
        "spatial_merge_size": _MERGE,
        "temporal_patch_size": 2,
        "window_size": 56,
        "fullatt_block_indexes": [1],
    }
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 32768,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [4, 6, 6]},
        "bos_token_id": ids[ENDOFTEXT],
        "eos_token_id": ids[IM_END],
        "pad_token_id": ids[ENDOFTEXT],
    }
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[VIDEO_PAD],
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=True,
    )


def _processor(tokenizer: Qwen2Tokenizer) -> Qwen2_5_VLProcessor:
    side = _PATCH * _MERGE
    size = {"shortest_edge": side * side * 4, "longest_edge": side * side * _MAX_IMAGE_TOKENS}
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=size),
        video_processor=Qwen2VLVideoProcessor(size=size),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def make_tiny_vlm(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write a randomly initialised Qwen2.5-VL checkpoint directory and return its path.

    Args:
        out_dir: directory to write (created if missing): config.json, generation_config.json,
            model.safetensors, tokenizer files, processor_config.json and chat_template.jinja.
        seed: torch seed for the random weights (same seed, same weights, same replies).
    """
    tokenizer = _tokenizer()
    config = _config(tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    eos = [tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(ENDOFTEXT)]
    model.generation_config = GenerationConfig(
        eos_token_id=eos, pad_token_id=config.text_config.pad_token_id, do_sample=False
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    _processor(tokenizer).save_pretrained(out)
    return out
