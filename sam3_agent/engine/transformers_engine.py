"""In-process SAM 3 on Hugging Face transformers: ``Sam3Engine`` implements the ``Segmenter`` protocol.

Two phases, as in segment-anything's predictor: ``encode_image`` runs the vision backbone (about 85% of
SAM 3's compute) once per image content and caches its features (LRU keyed by a pixel digest);
``segment`` runs prompts on the cached features, several prompts in one forward pass (the features are
expanded to batch k, not copied; work that reads no prompt runs once per pass, see ``PromptFreeSharing``).
Repeated phrases and exemplar refinements on one image therefore never re-run the backbone;
``backbone_calls``, ``cache_hits`` and ``cache_misses`` count that.

Conventions: images are PIL images as displayed (already EXIF-transposed: ``sam3_agent.images.load_image``);
exemplar boxes are XYXY pixels of that image; instances come back in its pixel coordinates.
This module, ``prompt_sharing``, ``checkpoint``, ``tiny``, ``tiny_tracker`` and ``clicks`` (the click tracker)
are the only ones importing torch / transformers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import Sam3Model, Sam3Processor
from transformers.models.sam3.modeling_sam3 import Sam3ImageSegmentationOutput, Sam3VisionEncoderOutput

from sam3_agent.engine.checkpoint import load_sam3, resolve_checkpoint
from sam3_agent.engine.feature_cache import FeatureCache, image_digest
from sam3_agent.engine.postprocess import instances_from_logits
from sam3_agent.engine.prompt_sharing import PromptFreeSharing
from sam3_agent.engine.protocol import number_instances
from sam3_agent.errors import ConfigError
from sam3_agent.images import check_pil_image
from sam3_agent.schema import Instance, Prompt, Thresholds

log = logging.getLogger(__name__)

VISUAL_PROMPT_TEXT = "visual"  # the text Sam3Processor gives SAM 3 for a box-only prompt
BOX_PAD = -10  # Sam3Processor's pad value for boxes and their labels; Sam3Model masks label -10 out

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device``, or CUDA when available, else CPU.

    Raises:
        ConfigError: an unknown device string, or a CUDA device this process cannot see (checked here, before
            any weight is loaded, instead of failing inside torch).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device must be like 'cpu', 'cuda' or 'cuda:1', got {device!r}") from exc
    if resolved.type == "cuda":
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible == 0:
            raise ConfigError(f"device {str(device)!r} was asked for, but no CUDA device is visible: use --device cpu")
        if resolved.index is not None and resolved.index >= visible:
            raise ConfigError(f"device {str(device)!r} does not exist: {visible} CUDA device(s) are visible")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``dtype``, or bfloat16 on CUDA and float32 elsewhere. Raises ConfigError for an unknown name."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype).lower().removeprefix("torch.")]
    except KeyError:
        raise ConfigError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}") from None


def box_prompt_tensors(prompts: Sequence[Prompt], width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exemplar boxes of ``prompts`` in SAM 3's input format, as ``Sam3Processor`` builds them.

    XYXY pixels, clipped to the image, are divided by (width, height) and turned into (cx, cy, w, h).
    Prompts with fewer boxes are padded with coordinates and labels ``BOX_PAD``.

    Returns:
        boxes (k, n, 4) float32 and labels (k, n) int64 (1 positive, 0 negative, -10 padding), where k is
        ``len(prompts)`` and n their largest number of boxes.
    """
    n = max(len(p.boxes) for p in prompts)
    boxes = torch.full((len(prompts), n, 4), float(BOX_PAD))
    labels = torch.full((len(prompts), n), BOX_PAD, dtype=torch.int64)
    scale = torch.tensor([width, height, width, height], dtype=torch.float64)
    for i, prompt in enumerate(prompts):
        if not prompt.boxes:
            continue
        xyxy = torch.tensor([b.box for b in prompt.boxes], dtype=torch.float64)
        xyxy = torch.minimum(xyxy.clamp(min=0.0), scale) / scale
        x0, y0, x1, y1 = xyxy.unbind(-1)
        boxes[i, : len(prompt.boxes)] = torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], -1).float()
        labels[i, : len(prompt.boxes)] = torch.tensor([int(b.positive) for b in prompt.boxes])
    return boxes, labels


def instances_from_outputs(
    pred_logits: torch.Tensor,
    presence_logit: torch.Tensor,
    pred_masks: torch.Tensor,
    image_size: tuple[int, int],
    thresholds: Thresholds,
    phrase: str,
) -> list[Instance]:
    """The engine's post-processing of one prompt's SAM 3 outputs (any device / dtype).

    Args:
        pred_logits: (Q,) query logits. presence_logit: (1,) or () presence logit.
        pred_masks: (Q, h, w) low-res mask logits over the square-resized image.
        image_size: (height, width) of the original image. thresholds, phrase: as ``instances_from_logits``.

    Scores, sigmoid(query) * sigmoid(presence), are computed and thresholded where the tensors live; only
    the kept masks are moved to the CPU and upsampled (``postprocess.instances_from_logits``).
    """
    presence = torch.sigmoid(presence_logit.float()).reshape(())
    scores = torch.sigmoid(pred_logits.float()) * presence
    if pred_masks.device.type != "cpu" or pred_masks.dtype != torch.float32:
        keep = torch.nonzero(scores >= thresholds.score).squeeze(1)
        pred_masks, scores = pred_masks[keep].float().cpu(), scores[keep].cpu()
    # On the CPU in float32 the arrays are views: only the kept masks are ever read.
    return instances_from_logits(
        pred_masks.numpy(), scores.numpy(), image_size, thresholds, phrase, presence_score=float(presence)
    )


@dataclass(frozen=True)
class RawPrediction:
    """SAM 3's raw outputs for one prompt over all Q queries (CPU, float32).

    ``pred_boxes`` are XYXY normalised to [0, 1] over the image; ``pred_masks`` are low-resolution mask
    logits over the square-resized image (288x288 for 1008x1008 inputs).
    """

    pred_logits: np.ndarray  # (Q,)
    presence_logit: float
    pred_boxes: np.ndarray  # (Q, 4)
    pred_masks: np.ndarray  # (Q, h, w)


@dataclass(frozen=True)
class _Features:
    vision: Sam3VisionEncoderOutput  # batch 1, on the engine's device
    image_size: tuple[int, int]  # (height, width) of the original image


class Sam3Engine:
    """SAM 3 segmentation with a backbone-feature cache and batched prompts (a ``Segmenter``).

    Args:
        checkpoint: local checkpoint directory or hub id; None: $SAM3_CHECKPOINT, else ``facebook/sam3``.
        device: torch device; None: CUDA if available, else CPU.
        dtype: parameter dtype (torch dtype or name); None: bfloat16 on CUDA, float32 on CPU.
        cache_size: how many images' backbone features to keep (LRU); 0 re-encodes on every call.
        max_batch: most prompts run in one forward pass.

    The model loads on first use, or when ``load()`` is called. Thread-safe (one call runs at a time).
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        cache_size: int = 8,
        max_batch: int = 16,
    ) -> None:
        if cache_size < 0:
            raise ConfigError(f"cache_size must be >= 0, got {cache_size}")
        if max_batch < 1:
            raise ConfigError(f"max_batch must be >= 1, got {max_batch}")
        self.checkpoint = resolve_checkpoint(checkpoint)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.max_batch = max_batch
        self.backbone_calls = 0
        self._cache: FeatureCache[_Features] = FeatureCache(cache_size)
        self._lock = threading.RLock()
        self._model: Sam3Model | None = None
        self._processor: Sam3Processor | None = None
        self._sharing: PromptFreeSharing | None = None

    # -- loading ---------------------------------------------------------------------------------------

    def load(self) -> Sam3Engine:
        """Load model and processor now (idempotent). Raises CheckpointError with how-to-get-weights text."""
        self._loaded()
        return self

    def _loaded(self) -> tuple[Sam3Model, Sam3Processor]:
        with self._lock:
            if self._model is None or self._processor is None:
                self._model, self._processor, _ = load_sam3(self.checkpoint, device=self.device, dtype=self.dtype)
                self._sharing = PromptFreeSharing(self._model)
                log.info("loaded SAM 3 from %s on %s (%s)", self.checkpoint, self.device, self.dtype)
            return self._model, self._processor

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> Sam3Model:
        """The ``Sam3Model`` (loads it if needed)."""
        return self._loaded()[0]

    @property
    def processor(self) -> Sam3Processor:
        """The ``Sam3Processor`` (loads it if needed)."""
        return self._loaded()[1]

    @property
    def query_cap(self) -> int:
        """The detector's object queries (200 in the released SAM 3): no pass returns more instances per prompt.
        Results near it may be saturated; ``sam3_agent.engine.tiling.TiledSegmenter`` segments past it."""
        return int(self.model.config.detr_decoder_config.num_queries)

    # -- the backbone phase ----------------------------------------------------------------------------

    @property
    def cache_hits(self) -> int:
        return self._cache.hits

    @property
    def cache_misses(self) -> int:
        return self._cache.misses

    @property
    def cached_images(self) -> list[str]:
        """Digests of the images whose features are cached, least recently used first."""
        return self._cache.keys()

    def clear_cache(self, *, reset_counters: bool = False) -> None:
        """Forget every cached image's features; with ``reset_counters``, zero the call / hit / miss counts."""
        with self._lock:
            self._cache.clear(reset_counters=reset_counters)
            if reset_counters:
                self.backbone_calls = 0

    def encode_image(self, image: Image.Image) -> str:
        """Run the vision backbone on ``image`` unless its features are cached; return its content digest."""
        with self._lock:
            digest = image_digest(check_pil_image(image))
            self._features(image, digest)
            return digest

    def vision_trunk(self, image: Image.Image, digest: str | None = None) -> torch.Tensor:
        """The ViT backbone's output for ``image`` (batch 1, tokens, width), from the feature cache: the backbone
        runs only on a miss. SAM 3's tracker reads this same backbone through its own neck
        (``sam3_agent.engine.clicks``). ``digest``: the image's ``image_digest`` when the caller has it."""
        with self._lock:
            image = check_pil_image(image)
            return self._features(image, digest or image_digest(image)).vision.last_hidden_state

    def _features(self, image: Image.Image, digest: str) -> _Features:
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        model, processor = self._loaded()
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        pixels = processor.image_processor(images=rgb, return_tensors="pt")["pixel_values"]
        with torch.inference_mode():
            vision = model.get_vision_features(pixel_values=pixels.to(self.device, self.dtype))
        self.backbone_calls += 1
        # Keep what prompt passes read, and the ViT trunk's output for the click tracker (``vision_trunk``: about
        # 10% more memory than the FPN levels); not the per-layer hidden_states.
        kept = Sam3VisionEncoderOutput(
            last_hidden_state=vision.last_hidden_state,
            fpn_hidden_states=tuple(vision.fpn_hidden_states),
            fpn_position_encoding=tuple(vision.fpn_position_encoding),
        )
        features = _Features(vision=kept, image_size=(image.height, image.width))
        self._cache.put(digest, features)
        return features

    # -- the prompt phase ------------------------------------------------------------------------------

    def predict(self, image: Image.Image, prompts: Sequence[Prompt]) -> list[RawPrediction]:
        """Raw SAM 3 outputs for each prompt, all queries, no thresholds (for evaluation and tests)."""
        (outputs,) = self._outputs([(check_pil_image(image), list(prompts))])
        return [
            RawPrediction(
                pred_logits=logits.float().cpu().numpy(),
                presence_logit=float(presence.float().reshape(())),
                pred_boxes=boxes.float().cpu().numpy(),
                pred_masks=masks.float().cpu().numpy(),
            )
            for logits, presence, boxes, masks in outputs
        ]

    def segment(
        self, image: Image.Image, prompts: Sequence[Prompt], thresholds: Thresholds | None = None
    ) -> list[list[Instance]]:
        """Segment every instance matching each prompt (see ``Segmenter.segment``).

        Args:
            image: PIL image as displayed (EXIF already applied); any mode, converted to RGB.
            prompts: phrases and/or exemplar boxes (XYXY pixels of ``image``).
            thresholds: None means ``Thresholds()`` (score 0.5, mask 0.5, no NMS).

        Returns:
            Per prompt, instances with score = sigmoid(query logit) * sigmoid(presence logit) >= the
            score threshold, sorted by score, masks (RLE) / boxes / areas in ``image`` pixels, ids 1..N across
            the prompts (``number_instances``: the first prompt's 1..k, the next one's k+1.., ...),
            ``presence_score`` = sigmoid(presence logit), ``phrase`` = ``prompt.label``.

        Raises:
            ImageError: not a usable PIL image. PromptError: an exemplar box is inverted or outside.
            CheckpointError: the model could not be loaded.
        """
        return self.segment_batch([(image, prompts, thresholds)])[0]

    def segment_batch(
        self,
        requests: Sequence[tuple[Image.Image, Sequence[Prompt], Thresholds | None]],
        *,
        digests: Sequence[str] | None = None,
    ) -> list[list[list[Instance]]]:
        """``segment`` for several (image, prompts, thresholds) requests at once, in as few passes as possible.

        For a server gathering the prompts of many clients. Prompts of different images share a forward pass:
        each prompt's own image features are stacked along the batch dimension (a chunk of one image only is
        expanded, not copied). The backbone runs at most once per distinct image, not at all for cached ones.
        Text-only prompts of every image go together; prompts with exemplar boxes go together per image size
        (their boxes are normalised by it); at most ``max_batch`` prompts per pass.

        ``digests``, when the caller already knows them (the server's image ids), are the images'
        ``image_digest`` values, the feature-cache keys; hashing the pixels again is then skipped. A digest
        that is not the image's own would make it share another image's features: pass real digests only.

        Returns:
            Per request, what ``segment(image, prompts, thresholds)`` returns for it.

        Raises:
            ImageError, PromptError: as ``segment``, for the first bad request (nothing runs then).
        """
        jobs = [(check_pil_image(im), list(ps), th or Thresholds()) for im, ps, th in requests]
        outputs = self._outputs([(image, prompts) for image, prompts, _ in jobs], digests)
        return [
            number_instances(
                [
                    instances_from_outputs(logits, presence, masks, (im.height, im.width), thresholds, prompt.label)
                    for prompt, (logits, presence, _boxes, masks) in zip(prompts, per_prompt, strict=True)
                ]
            )
            for (im, prompts, thresholds), per_prompt in zip(jobs, outputs, strict=True)
        ]

    def _outputs(
        self, jobs: Sequence[tuple[Image.Image, list[Prompt]]], digests: Sequence[str] | None = None
    ) -> list[list[tuple[torch.Tensor, ...]]]:
        """Per job and prompt: (pred_logits (Q,), presence_logits (1,), pred_boxes (Q, 4), pred_masks (Q, h, w)).

        The one grouping path: text-only prompts of every image share passes; prompts with exemplar boxes share
        passes per image size (a box-free prompt must not share a pass with box prompts: the geometry encoder
        adds a token); at most ``max_batch`` prompts per pass. Every exemplar box is checked before anything
        runs, and an image without prompts is not encoded.
        """
        if digests is not None and len(digests) != len(jobs):
            raise ValueError(f"expected one digest per request, got {len(digests)} for {len(jobs)} requests")
        for image, prompts in jobs:
            for box in (box for prompt in prompts for box in prompt.boxes):
                box.check_inside(image.width, image.height)
        results: dict[tuple[int, int], tuple[torch.Tensor, ...]] = {}
        with self._lock:
            features = self._job_features(jobs, digests)
            groups: dict[tuple[int, int] | None, list[tuple[int, int]]] = {}
            for r, (_, prompts) in enumerate(jobs):
                for p, prompt in enumerate(prompts):
                    groups.setdefault(features[r].image_size if prompt.boxes else None, []).append((r, p))
            for members in groups.values():
                for start in range(0, len(members), self.max_batch):
                    chunk = members[start : start + self.max_batch]
                    out = self._forward(_stacked([features[r] for r, _ in chunk]), [jobs[r][1][p] for r, p in chunk])
                    for j, key in enumerate(chunk):
                        results[key] = tuple(t[j] for t in (out.pred_logits, out.presence_logits, out.pred_boxes))
                        results[key] += (out.pred_masks[j],)
        return [[results[(r, p)] for p in range(len(prompts))] for r, (_, prompts) in enumerate(jobs)]

    def _job_features(
        self, jobs: Sequence[tuple[Image.Image, list[Prompt]]], digests: Sequence[str] | None
    ) -> dict[int, _Features]:
        """Each prompted job's image features; the backbone runs at most once per distinct image."""
        by_digest: dict[str, _Features] = {}
        features: dict[int, _Features] = {}
        for r, (image, prompts) in enumerate(jobs):
            if not prompts:
                continue
            digest = digests[r] if digests is not None else image_digest(image)
            if digest not in by_digest:
                by_digest[digest] = self._features(image, digest)
            features[r] = by_digest[digest]
        return features

    def _forward(self, features: _Features, prompts: list[Prompt]) -> Sam3ImageSegmentationOutput:
        """One forward pass of ``prompts`` (all with boxes, or none) on one image's cached features."""
        model, processor = self._loaded()
        k = len(prompts)
        context = model.config.text_config.max_position_embeddings
        tokens = processor.tokenizer(
            [p.text or VISUAL_PROMPT_TEXT for p in prompts],
            padding="max_length",
            max_length=context,
            truncation=True,
            return_tensors="pt",
        )
        inputs = {
            "input_ids": tokens["input_ids"].to(self.device),
            "attention_mask": tokens["attention_mask"].to(self.device),
        }
        if prompts[0].boxes:
            height, width = features.image_size
            boxes, labels = box_prompt_tensors(prompts, width, height)
            inputs["input_boxes"] = boxes.to(self.device, self.dtype)
            inputs["input_boxes_labels"] = labels.to(self.device)
        one_image = features.vision.fpn_hidden_states[0].shape[0] == 1  # else stacked per prompt (segment_batch)
        vision = Sam3VisionEncoderOutput(
            fpn_hidden_states=tuple(t.expand(k, *t.shape[1:]) for t in features.vision.fpn_hidden_states),
            fpn_position_encoding=tuple(t.expand(k, *t.shape[1:]) for t in features.vision.fpn_position_encoding),
        )
        sharing = self._sharing.engine_pass(k, one_image=one_image) if self._sharing else nullcontext()
        with sharing, torch.inference_mode():
            return model(vision_embeds=vision, **inputs)


def _stacked(parts: Sequence[_Features]) -> _Features:
    """The features of a pass: one image's as they are (expanded per prompt later, not copied), else each
    prompt's own image features concatenated along the batch dimension."""
    first = parts[0]
    if all(f is first for f in parts):
        return first
    vision = Sam3VisionEncoderOutput(
        fpn_hidden_states=tuple(map(torch.cat, zip(*(f.vision.fpn_hidden_states for f in parts), strict=True))),
        fpn_position_encoding=tuple(map(torch.cat, zip(*(f.vision.fpn_position_encoding for f in parts), strict=True))),
    )
    return _Features(vision=vision, image_size=first.image_size)
