"""Randomly initialised SAM 3 checkpoints, for tests and benchmarks without the gated real weights.

``make_tiny_checkpoint`` writes a directory that loads through exactly the ``from_pretrained`` path real
weights take (``Sam3Model``, ``Sam3Processor`` with ``Sam3ImageProcessor`` and a ``CLIPTokenizer``). Its
masks and scores are random: it exercises code paths, not segmentation quality.

By default it holds the detector alone (model type ``sam3``). With ``tracker=True`` it has the layout of the
real ``facebook/sam3`` directory (model type ``sam3_video``: detector, tracker and the tracker's neck; see
``sam3_agent.engine.tiny_tracker``), which also loads as ``Sam3TrackerModel`` + ``Sam3TrackerProcessor``: the
click engine's path (``sam3_agent.engine.clicks``).

With ``video=True`` it is that layout sized so ``Sam3VideoModel`` can also track through clips (the video
engine, ``sam3_agent.video.engine``): transformers 5.24's video memory attention takes 64-channel memories
(``kv_in_dim=64`` is fixed in ``Sam3TrackerVideoMemoryAttentionLayer``) and splits each object pointer into
64-wide tokens, so the tracker's width must be a multiple of 64 above 64 (128 here) and its memory 64 wide.
Its detection thresholds are lowered (random scores sit near 0.25) and its tracker's object score raised, so
that random weights still start tracks and follow them.

Sizes:

* ``"tiny"``: 224x224 input, two-layer 32-wide towers, 20 queries; about 300 K parameters (1 MB), a
  forward pass takes milliseconds on a CPU. For unit tests.
* ``"mid"``: the real input geometry (1008x1008, patch 14, 24-token windows, 72x72 tokens, 288x288
  masks, 200 queries) with narrower and shallower towers, sized so that the vision backbone takes about
  85% of a text-prompted forward pass, as in the real 848 M-parameter model. For benchmarks.

The tokenizer is a byte-level CLIP BPE built here: every byte is a token (so any text tokenizes) plus
merges that make whole tokens of a few common words ("cup", "laptop", "person", "red", "hat", ...).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPTokenizer, Sam3Config, Sam3Model, Sam3Processor
from transformers.models.sam3.configuration_sam3 import Sam3VisionConfig, Sam3ViTConfig
from transformers.models.sam3.image_processing_sam3 import Sam3ImageProcessor

from sam3_agent.errors import ConfigError

Size = Literal["tiny", "mid"]

# Words the tokenizer spells as single tokens (any other text still tokenizes, byte by byte).
_WORDS = (  # noqa: SIM905 (a list literal would take 40 lines)
    "a the of and with on in left right red blue green black white hat cup mug laptop person people man woman "
    "child dog cat car bus bicycle chair table bottle apple banana phone book plant shirt striped visual object"
).split()

_TEXT_CONTEXT = 32  # Sam3Processor pads text to 32 tokens


@dataclass(frozen=True)
class _Dims:
    image_size: int
    vit_hidden: int
    vit_layers: int
    vit_heads: int
    window: int
    global_layers: tuple[int, ...]
    hidden: int  # FPN / geometry / DETR / mask decoder width
    heads: int
    detr_layers: int
    queries: int
    text_hidden: int
    text_layers: int


_DIMS: dict[str, _Dims] = {
    "tiny": _Dims(
        image_size=224,
        vit_hidden=32,
        vit_layers=2,
        vit_heads=2,
        window=8,
        global_layers=(1,),
        hidden=32,
        heads=2,
        detr_layers=1,
        queries=20,
        text_hidden=32,
        text_layers=2,
    ),
    "mid": _Dims(
        image_size=1008,
        vit_hidden=384,
        vit_layers=10,
        vit_heads=6,
        window=24,
        global_layers=(4, 9),
        hidden=64,
        heads=4,
        detr_layers=2,
        queries=200,
        text_hidden=256,
        text_layers=4,
    ),
}


def _apply_bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """BPE as CLIP runs it: repeatedly merge the adjacent pair of lowest rank."""
    parts = [*word[:-1], word[-1] + "</w>"]
    while len(parts) > 1:
        pairs = [(ranks.get(pair, len(ranks)), i) for i, pair in enumerate(itertools.pairwise(parts))]
        rank, i = min(pairs)
        if rank == len(ranks):
            break
        parts = [*parts[:i], parts[i] + parts[i + 1], *parts[i + 2 :]]
    return parts


def _bpe_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level CLIP BPE: 256 byte symbols, the same with the end-of-word mark, merges spelling _WORDS."""
    symbols = sorted(ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for symbol in symbols + [s + "</w>" for s in symbols]:
        vocab[symbol] = len(vocab)
    ranks: dict[tuple[str, str], int] = {}
    for word in _WORDS:
        # Earlier merges win; append merges of what is left until the word is one token.
        while len(parts := _apply_bpe(word, ranks)) > 1:
            ranks[(parts[0], parts[1])] = len(ranks)
            vocab.setdefault(parts[0] + parts[1], len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return vocab, sorted(ranks, key=ranks.__getitem__)


def _config(dims: _Dims, vocab_size: int, bos: int, eos: int) -> Sam3Config:
    grid = dims.image_size // 14
    backbone = Sam3ViTConfig(
        hidden_size=dims.vit_hidden,
        intermediate_size=dims.vit_hidden * 4,
        num_hidden_layers=dims.vit_layers,
        num_attention_heads=dims.vit_heads,
        image_size=dims.image_size,
        patch_size=14,
        window_size=dims.window,
        global_attn_indexes=list(dims.global_layers),
        pretrain_image_size=dims.image_size,
    )
    vision = Sam3VisionConfig(
        backbone_config=backbone,
        fpn_hidden_size=dims.hidden,
        backbone_feature_sizes=[[4 * grid, 4 * grid], [2 * grid, 2 * grid], [grid, grid]],
    )
    text = {
        "model_type": "clip_text_model",
        "vocab_size": vocab_size,
        "hidden_size": dims.text_hidden,
        "intermediate_size": dims.text_hidden * 4,
        "projection_dim": dims.text_hidden,
        "num_hidden_layers": dims.text_layers,
        "num_attention_heads": max(dims.text_hidden // 64, 2),
        "max_position_embeddings": _TEXT_CONTEXT,
        "hidden_act": "gelu",
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": eos,
    }
    common = {"hidden_size": dims.hidden, "num_attention_heads": dims.heads, "intermediate_size": dims.hidden * 4}
    return Sam3Config(
        vision_config=vision,
        text_config=text,
        geometry_encoder_config={**common, "num_layers": 1},
        detr_encoder_config={**common, "num_layers": dims.detr_layers},
        detr_decoder_config={**common, "num_layers": dims.detr_layers, "num_queries": dims.queries},
        mask_decoder_config={"hidden_size": dims.hidden, "num_attention_heads": dims.heads},
    )


def make_tiny_checkpoint(
    out_dir: str | Path,
    *,
    seed: int = 0,
    image_size: int | None = None,
    size: Size = "tiny",
    tracker: bool = False,
    video: bool = False,
) -> Path:
    """Write a randomly initialised SAM 3 checkpoint directory and return its path.

    Args:
        out_dir: directory to write (created if missing): config.json, model.safetensors, tokenizer
            files and processor_config.json.
        seed: torch seed for the random weights (same seed, same weights).
        image_size: square input size in pixels, a multiple of 14 (default 224 for "tiny", 1008 for "mid").
        size: "tiny" (unit tests) or "mid" (benchmarks); see the module docstring.
        tracker: also write the SAM 3 tracker (points / boxes -> one mask), in the real checkpoint's
            ``sam3_video`` layout; the detector alone when False.
        video: the full layout (as ``tracker``) at widths ``Sam3VideoModel`` can run on clips; see the module
            docstring. Implies ``tracker``.

    Raises:
        ConfigError: unknown size or an image size that is not a positive multiple of 14.
    """
    if size not in _DIMS:
        raise ConfigError(f"size must be one of {sorted(_DIMS)}, got {size!r}")
    dims = _DIMS[size]
    if image_size is not None:
        if image_size <= 0 or image_size % 14:
            raise ConfigError(f"image_size must be a positive multiple of 14 (the patch size), got {image_size}")
        dims = _Dims(**{**dims.__dict__, "image_size": image_size})
    if video:
        dims = _Dims(**{**dims.__dict__, "hidden": max(dims.hidden, _VIDEO_HIDDEN)})
    vocab, merges = _bpe_vocab()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    config = _config(dims, len(vocab), bos=vocab["<|startoftext|>"], eos=vocab["<|endoftext|>"])
    mask_side = 4 * (dims.image_size // 14)
    image_processor = Sam3ImageProcessor(
        size={"height": dims.image_size, "width": dims.image_size},
        mask_size={"height": mask_side, "width": mask_side},
    )
    out = Path(out_dir)
    if video:
        _save_video_checkpoint(out, config, dims, image_processor, tokenizer, seed)
        return out
    if tracker:
        from sam3_agent.engine.tiny_tracker import save_full_checkpoint

        kwargs = {"hidden": dims.hidden, "heads": dims.heads, "seed": seed}
        save_full_checkpoint(out, config, image_processor=image_processor, tokenizer=tokenizer, **kwargs)
        return out
    torch.manual_seed(seed)
    model = Sam3Model(config).eval()
    processor = Sam3Processor(image_processor=image_processor, tokenizer=tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


_VIDEO_HIDDEN = 128  # the smallest tracker width transformers' video memory takes (see the module docstring)
_VIDEO_SETTINGS = {  # Sam3VideoConfig fields of the tiny video checkpoint (defaults in transformers' comments)
    "score_threshold_detection": 0.2,  # 0.5: random detections score about 0.25
    "new_det_thresh": 0.2,  # 0.7
    "det_nms_thresh": 0.0,  # 0.1; off: every random query passes, and transformers' mask NMS is (Q, Q, h*w) in memory
    "max_num_objects": 4,  # 10000: a few random tracks keep tests fast
    "hotstart_delay": 4,  # 15: outputs are held back this many frames; short clips still stream
    "hotstart_unmatch_thresh": 2,  # 8 (must be <= hotstart_delay)
    "hotstart_dup_thresh": 2,  # 8
    "recondition_every_nth_frame": 8,  # 16: short clips still recondition
}


def _save_video_checkpoint(
    out: Path,
    detector: Sam3Config,
    dims: _Dims,
    image_processor: Sam3ImageProcessor,
    tokenizer: CLIPTokenizer,
    seed: int,
) -> None:
    """Write a random ``Sam3VideoModel`` (detector + tracker with a 64-wide video memory) and its processor."""
    from safetensors.torch import save_file
    from transformers import Sam3VideoConfig, Sam3VideoModel
    from transformers.models.sam2_video.video_processing_sam2_video import Sam2VideoVideoProcessor
    from transformers.models.sam3_video.processing_sam3_video import Sam3VideoProcessor

    from sam3_agent.engine.tiny_tracker import tracker_config

    tracker = tracker_config(dims.image_size, dims.hidden, dims.heads)
    tracker["memory_encoder_output_channels"] = 64
    tracker["vision_config"] = detector.vision_config.to_dict()
    config = Sam3VideoConfig(
        detector_config=detector.to_dict(),
        tracker_config=tracker,
        low_res_mask_size=4 * (dims.image_size // 14),
        **_VIDEO_SETTINGS,
    )
    config.architectures = ["Sam3VideoModel"]
    torch.manual_seed(seed)
    model = Sam3VideoModel(config).eval()
    with torch.no_grad():  # random object scores sit at 0.5, where SAM 2's tracker drops the mask: say "still there"
        model.tracker_model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(2.0)
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    # Not model.save_pretrained: in transformers 5.24 it writes tracker_model.tracker_model.* keys (see tiny_tracker).
    weights = {name: tensor.detach().contiguous().clone() for name, tensor in model.state_dict().items()}
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    video_processor = Sam2VideoVideoProcessor(
        image_mean=list(image_processor.image_mean),
        image_std=list(image_processor.image_std),
        size={"height": dims.image_size, "width": dims.image_size},
    )
    Sam3VideoProcessor(
        image_processor=image_processor, video_processor=video_processor, tokenizer=tokenizer
    ).save_pretrained(out)
