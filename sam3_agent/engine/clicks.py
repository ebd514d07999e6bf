"""One object from clicks with SAM 3's tracker: ``ClickEngine.segment_at(image, points, labels, box)`` -> ``Instance``.

SAM 3 keeps SAM 2's promptable visual segmentation: positive / negative points and/or a box around ONE object
give that object's mask. In transformers it is ``Sam3TrackerModel`` + ``Sam3TrackerProcessor``, loaded from
the same checkpoint directory as the detector (``facebook/sam3``, model type ``sam3_video``; see
``checkpoint.load_sam3_tracker``). Two phases, as in ``Sam3Engine``:

* the image embeddings (the ViT backbone read through the tracker's own FPN neck, levels 0 and 1 projected
  by the mask decoder's ``conv_s0`` / ``conv_s1``: ``Sam3TrackerModel.get_image_embeddings``), cached per
  image content (LRU keyed by the pixel digest), so every further click on an image skips the encoder;
* per click, the prompt encoder and mask decoder: milliseconds.

Sharing with the text engine (``ClickEngine.sharing(engine)``): the detector and the tracker read ONE ViT
backbone (``facebook/sam3`` stores it once, under ``detector_model.vision_encoder.backbone``; transformers maps
it into the tracker's vision encoder) through two different necks (``detector_model.vision_encoder.neck`` and
``tracker_neck``). So the detector's cached FPN features are of no use to the tracker, but the backbone's
output is: the click engine takes it from ``Sam3Engine.vision_trunk`` (cached there; the backbone runs once
per image for text prompts and clicks together) and runs only its own neck. At load it checks that its copy
of the backbone weights equals the engine's and the image preprocessing too, then drops its copy (the
engine's module serves both); if anything differs it keeps its own backbone and shares nothing.

Multimask output, SAM 2's way: every click is decoded with ``multimask_output=True``, which gives three
candidate masks (for an ambiguous click: the whole object, a part, a sub-part) with a predicted IoU each;
the engine answers the candidate with the highest predicted IoU (``ClickPrediction.best``).

Coordinates: points (x, y) and boxes XYXY in pixels of the original image; the mask comes back as COCO RLE
of that image (``click_postprocess``, torch-free: the same upsampling as the processor's
``post_process_masks``, bilinear from the low-res logits, then the mask threshold).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from transformers import Sam3TrackerModel, Sam3TrackerProcessor

from sam3_agent.engine.checkpoint import load_sam3_tracker, resolve_checkpoint
from sam3_agent.engine.click_postprocess import ClickPrediction, instance_from_prediction
from sam3_agent.engine.feature_cache import FeatureCache, image_digest
from sam3_agent.engine.transformers_engine import Sam3Engine, resolve_device, resolve_dtype
from sam3_agent.errors import ConfigError
from sam3_agent.images import check_pil_image
from sam3_agent.schema import BoxXYXY, ClickPrompt, Instance, Point, Thresholds

log = logging.getLogger(__name__)

Embeddings = list[torch.Tensor]  # the tracker's three feature levels, high to low resolution, batch 1


class ClickEngine:
    """SAM 3's tracker: clicks (points / a box) -> one object's mask, embeddings cached per image (a ``Clicker``).

    Args:
        checkpoint: local checkpoint directory or hub id; None: $SAM3_CHECKPOINT, else ``facebook/sam3``.
        device, dtype: as ``Sam3Engine`` (None: CUDA + bfloat16 when available, else CPU + float32).
        cache_size: how many images' embeddings to keep (LRU); 0 re-encodes on every click.
        backbone_from: a ``Sam3Engine`` on the same checkpoint, device and dtype whose ViT output to share
            (``ClickEngine.sharing(engine)`` builds one so); None: the tracker runs its own backbone.

    The model loads on first use, or when ``load()`` is called; nothing is loaded at import. Thread-safe (one
    call runs at a time). ``encoder_calls`` counts image embeddings computed, ``backbone_calls`` the ViT runs
    this engine made itself (none when it shares the text engine's).
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        cache_size: int = 8,
        backbone_from: Sam3Engine | None = None,
    ) -> None:
        if cache_size < 0:
            raise ConfigError(f"cache_size must be >= 0, got {cache_size}")
        self.checkpoint = resolve_checkpoint(checkpoint)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if backbone_from is not None:
            theirs = (backbone_from.checkpoint, backbone_from.device, backbone_from.dtype)
            if theirs != (self.checkpoint, self.device, self.dtype):
                raise ConfigError(
                    f"backbone_from must run the same checkpoint, device and dtype: {theirs} vs "
                    f"{(self.checkpoint, self.device, self.dtype)} (use ClickEngine.sharing(engine))"
                )
        self.encoder_calls = 0
        self.backbone_calls = 0
        self._backbone_from = backbone_from
        self._shared: bool | None = None
        self._cache: FeatureCache[Embeddings] = FeatureCache(cache_size)
        self._lock = threading.RLock()
        self._model: Sam3TrackerModel | None = None
        self._processor: Sam3TrackerProcessor | None = None

    @classmethod
    def sharing(cls, engine: Sam3Engine, *, cache_size: int = 8) -> ClickEngine:
        """A click engine on ``engine``'s checkpoint, device and dtype that reuses its ViT output (see the module)."""
        return cls(
            engine.checkpoint, device=engine.device, dtype=engine.dtype, cache_size=cache_size, backbone_from=engine
        )

    # -- loading ---------------------------------------------------------------------------------------

    def load(self) -> ClickEngine:
        """Load the tracker now (idempotent). Raises CheckpointError (e.g. a detector-only checkpoint)."""
        self._loaded()
        return self

    def _loaded(self) -> tuple[Sam3TrackerModel, Sam3TrackerProcessor]:
        with self._lock:
            if self._model is None or self._processor is None:
                model, processor, _ = load_sam3_tracker(self.checkpoint, device=self.device, dtype=self.dtype)
                self._shared = self._backbone_from is not None and _share_backbone(
                    model, processor, self._backbone_from
                )
                self._model, self._processor = model, processor
                log.info("loaded the SAM 3 tracker from %s (backbone shared: %s)", self.checkpoint, self._shared)
            return self._model, self._processor

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def shares_backbone(self) -> bool | None:
        """Whether clicks use the text engine's ViT output (None until loaded)."""
        return self._shared

    @property
    def model(self) -> Sam3TrackerModel:
        return self._loaded()[0]

    @property
    def processor(self) -> Sam3TrackerProcessor:
        return self._loaded()[1]

    # -- the image phase -------------------------------------------------------------------------------

    @property
    def cache_hits(self) -> int:
        return self._cache.hits

    @property
    def cache_misses(self) -> int:
        return self._cache.misses

    def clear_cache(self, *, reset_counters: bool = False) -> None:
        """Forget every cached embedding; with ``reset_counters``, zero the call / hit / miss counts."""
        with self._lock:
            self._cache.clear(reset_counters=reset_counters)
            if reset_counters:
                self.encoder_calls = self.backbone_calls = 0

    def encode_image(self, image: Image.Image) -> str:
        """Compute ``image``'s embeddings unless cached; return its content digest."""
        with self._lock:
            image = check_pil_image(image)
            digest = image_digest(image)
            self._embeddings(image, digest)
            return digest

    def _embeddings(self, image: Image.Image, digest: str) -> Embeddings:
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        model, processor = self._loaded()
        with torch.inference_mode():
            if self._shared and self._backbone_from is not None:
                embeddings = embeddings_from_trunk(model, self._backbone_from.vision_trunk(image, digest))
            else:
                rgb = image if image.mode == "RGB" else image.convert("RGB")
                pixels = processor.image_processor(images=rgb, return_tensors="pt")["pixel_values"]
                embeddings = model.get_image_embeddings(pixels.to(self.device, self.dtype))
                self.backbone_calls += 1
        self.encoder_calls += 1
        self._cache.put(digest, embeddings)
        return embeddings

    # -- the click phase -------------------------------------------------------------------------------

    def predict_at(
        self,
        image: Image.Image,
        points: Sequence[Point] = (),
        labels: Sequence[int] | None = None,
        box: BoxXYXY | None = None,
    ) -> ClickPrediction:
        """The three candidate masks of a click and their predicted IoU (no threshold). Raises as ``segment_at``."""
        image = check_pil_image(image)
        prompt = ClickPrompt.of(points, labels, box)
        prompt.check_inside(image.width, image.height)
        return self._predict(image, prompt)

    def segment_at(
        self,
        image: Image.Image,
        points: Sequence[Point] = (),
        labels: Sequence[int] | None = None,
        box: BoxXYXY | None = None,
        thresholds: Thresholds | None = None,
    ) -> Instance:
        """The ONE object the clicks point at (see ``Clicker.segment_at``).

        Args:
            image: PIL image as displayed (EXIF already applied); any mode, converted to RGB.
            points: (x, y) pixels; labels: 1 on the object, 0 off it, one per point (None: all positive).
            box: XYXY pixels around the object (clipped to the image). At least one point or the box.
            thresholds: ``mask`` is the pixel probability cut (default 0.5); the score threshold does not apply.

        Returns:
            The candidate with the highest predicted IoU: id 1, ``score`` its predicted IoU, ``presence_score``
            sigmoid(object score logit), ``phrase`` ``ClickPrompt.label``; mask (COCO RLE), tight box and
            area in ``image`` pixels (area 0 and box (0, 0, 0, 0) when no pixel reaches the threshold).

        Raises:
            ImageError: not a usable PIL image. PromptError: bad clicks (checked before any model work).
            CheckpointError: the tracker could not be loaded (e.g. a detector-only checkpoint).
        """
        image = check_pil_image(image)
        prompt = ClickPrompt.of(points, labels, box)
        prompt.check_inside(image.width, image.height)
        prediction = self._predict(image, prompt)
        return instance_from_prediction(prediction, prompt, (image.height, image.width), thresholds or Thresholds())

    def _predict(self, image: Image.Image, prompt: ClickPrompt) -> ClickPrediction:
        with self._lock:
            embeddings = self._embeddings(image, image_digest(image))
            model, processor = self._loaded()
            inputs = _prompt_tensors(processor, prompt, image.width, image.height)
            tensors = {
                k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
                for k, v in inputs.items()
            }
            with torch.inference_mode():
                out = model(image_embeddings=embeddings, multimask_output=True, **tensors)
        return ClickPrediction(
            mask_logits=out.pred_masks[0, 0].float().cpu().numpy(),
            iou_scores=out.iou_scores[0, 0].float().cpu().numpy(),
            object_score_logit=float(out.object_score_logits.float().reshape(-1)[0]),
        )


def embeddings_from_trunk(model: Sam3TrackerModel, trunk: torch.Tensor) -> Embeddings:
    """``model.get_image_embeddings(pixels)`` from the ViT backbone's output instead of the pixels.

    The same steps as transformers 5.24 (``Sam3VisionModel.forward`` after the backbone, then
    ``get_image_features`` and ``get_image_embeddings``): the tracker's neck on the (B, C, H, W) token grid,
    ``conv_s0`` / ``conv_s1`` on levels 0 and 1, the no-memory embedding added to the last neck level, and the
    first three levels reshaped to ``backbone_feature_sizes``. ``tests/test_clicks_engine.py`` checks that the
    result equals ``get_image_embeddings`` exactly.
    """
    batch = trunk.shape[0]
    height, width = model.prompt_encoder.image_embedding_size
    spatial = trunk.reshape(batch, height, width, -1).permute(0, 3, 1, 2)
    levels, _ = model.vision_encoder.neck(spatial)
    maps = list(levels)
    maps[0] = model.mask_decoder.conv_s0(maps[0])
    maps[1] = model.mask_decoder.conv_s1(maps[1])
    flat = [m.flatten(2).permute(2, 0, 1) for m in maps]
    flat[-1] = flat[-1] + model.no_memory_embedding  # as transformers does: the 4th level, which zip drops
    sizes = model.backbone_feature_sizes
    return [f.permute(1, 2, 0).view(batch, -1, *size) for f, size in zip(flat, sizes, strict=False)]


def _prompt_tensors(
    processor: Sam3TrackerProcessor, prompt: ClickPrompt, width: int, height: int
) -> dict[str, torch.Tensor]:
    """Points, labels and box as ``Sam3TrackerProcessor`` builds them (scaled to its square input size)."""
    points = [[[list(point) for point in prompt.points]]] if prompt.points else None
    labels = [[list(prompt.labels)]] if prompt.points else None
    boxes = None
    if prompt.box is not None:
        x0, y0, x1, y1 = prompt.box
        boxes = [[[min(max(x0, 0.0), width), min(max(y0, 0.0), height), min(x1, width), min(y1, height)]]]
    encoded = processor(
        input_points=points,
        input_labels=labels,
        input_boxes=boxes,
        original_sizes=[[height, width]],
        return_tensors="pt",
    )
    return {k: encoded[k] for k in ("input_points", "input_labels", "input_boxes") if k in encoded}


def _share_backbone(model: Sam3TrackerModel, processor: Sam3TrackerProcessor, engine: Sam3Engine) -> bool:
    """Point ``model`` at ``engine``'s backbone if the weights and the preprocessing are the same; say whether."""
    ours, theirs = model.vision_encoder.backbone, engine.model.vision_encoder.backbone
    a, b = ours.state_dict(), theirs.state_dict()
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    same = same and processor.image_processor.to_dict() == engine.processor.image_processor.to_dict()
    if same:
        model.vision_encoder.backbone = theirs  # one copy of the ViT weights in memory
    else:
        log.warning("the tracker's backbone differs from the text engine's: clicks run their own backbone")
    return same
