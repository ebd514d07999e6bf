"""In-process SAM 3 video tracking on transformers: ``Sam3VideoEngine`` implements ``VideoTracker``.

Built on ``Sam3VideoModel`` / ``Sam3VideoProcessor``: each text phrase is a prompt of one inference session
(the backbone runs once per frame for all phrases; the detector runs per phrase on its features), and the
model's detector + memory tracker give every object a stable id, with the hot-start heuristics that drop
ghost and duplicate tracks and periodic re-conditioning on confident detections.

Streaming, bounded memory: frames are decoded one at a time (``Clip.frames``), preprocessed and handed to the
session (``StreamedSession``, stored on the CPU), and after each frame the session is pruned of what later
frames never read (``sam3_agent.video.session.prune``), so memory does not grow with the clip. The model's
outputs are held back ``hotstart_delay`` frames (as ``propagate_in_video_iterator`` does: objects the hot start
removes are hidden), then post-processed and converted to COCO RLE at once (``TrackCollector``); no dense mask
outlives its frame. ``last_stats`` says what a run held at its peak.

Presence: SAM 3's presence head scores each phrase on each frame; a phrase whose best score over the sampled
frames stays below ``TrackOptions.presence`` yields no track. Per-frame instance score: the tracker's score of
the object on that frame (the detection score on the frame it is found), cut at ``TrackOptions.score``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from sam3_agent.engine.checkpoint import resolve_checkpoint
from sam3_agent.engine.transformers_engine import resolve_device, resolve_dtype
from sam3_agent.errors import Cancelled, PromptError, VideoError
from sam3_agent.masks import rle_encode_many
from sam3_agent.schema import MAX_PHRASE_CHARS
from sam3_agent.video.checkpoint import load_sam3_video
from sam3_agent.video.collect import TrackCollector
from sam3_agent.video.frames import Clip
from sam3_agent.video.protocol import ProgressFn, TrackOptions
from sam3_agent.video.session import StreamedSession, held_frames, held_outputs, prune
from sam3_agent.video.tracks import ClipTracks, SampledFrame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackStats:
    """What the last ``track`` run did: frames decoded and, at its peak, preprocessed frames and per-frame
    tracker outputs (masks / memory features, over all objects) the session held."""

    frames: int = 0
    peak_frames_held: int = 0
    peak_outputs_held: int = 0
    objects: int = 0


def check_phrases(phrases: Sequence[str]) -> tuple[str, ...]:
    """The phrases to track, whitespace-normalised, duplicates dropped (first kept), in order.

    Raises:
        PromptError: no phrase, a phrase that is not text, empty, or longer than ``MAX_PHRASE_CHARS``.
    """
    if isinstance(phrases, str):
        phrases = [phrases]
    names: list[str] = []
    for i, phrase in enumerate(phrases, start=1):
        if not isinstance(phrase, str):
            raise PromptError(f"phrase {i} must be text, got {type(phrase).__name__}")
        name = " ".join(phrase.split())
        if not name:
            raise PromptError(f"phrase {i} is empty: give a short noun phrase such as 'car'")
        if len(name) > MAX_PHRASE_CHARS:
            raise PromptError(f"phrase {i} has {len(name)} characters, more than the {MAX_PHRASE_CHARS} allowed")
        if name not in names:
            names.append(name)
    if not names:
        raise PromptError("give at least one noun phrase to track")
    return tuple(names)


class Sam3VideoEngine:
    """SAM 3 tracking of text phrases through clips (a ``VideoTracker``).

    Args:
        checkpoint: local checkpoint directory or hub id of the full SAM 3 (model type ``sam3_video``); None:
            $SAM3_CHECKPOINT, else ``facebook/sam3``.
        device: torch device; None: CUDA if available, else CPU. A CUDA device this process cannot see is a
            ConfigError (before anything loads).
        dtype: parameter dtype; None: bfloat16 on CUDA, float32 on CPU.
        offload_state: keep the tracker's per-object memory on the CPU too (frames always are); slower on a GPU,
            for many objects on a small one.

    The model loads on first use, or with ``Sam3VideoEngine.load(...)``. One ``track`` runs at a time.
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        offload_state: bool = False,
    ) -> None:
        self.checkpoint = resolve_checkpoint(checkpoint)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.offload_state = offload_state
        self.last_stats = TrackStats()
        self._lock = threading.RLock()
        self._model = None
        self._processor = None

    @classmethod
    def load(
        cls,
        checkpoint: str | Path | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        offload_state: bool = False,
    ) -> Sam3VideoEngine:
        """An engine with its model loaded now. Raises CheckpointError / ConfigError as the constructor and
        ``sam3_agent.video.checkpoint.load_sam3_video`` do."""
        engine = cls(checkpoint, device=device, dtype=dtype, offload_state=offload_state)
        engine._loaded()
        return engine

    def _loaded(self):
        with self._lock:
            if self._model is None:
                self._model, self._processor, _ = load_sam3_video(self.checkpoint, device=self.device, dtype=self.dtype)
            return self._model, self._processor

    def track(
        self,
        clip: Clip,
        phrases: Sequence[str],
        options: TrackOptions | None = None,
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> ClipTracks:
        """Track every instance of each phrase through the selected frames of ``clip`` (see ``VideoTracker``).

        Raises:
            PromptError: no phrase or a bad one, before anything is loaded or decoded.
            VideoError: a frame fails to decode, or no frame of the clip is in the selection.
            Cancelled: ``cancel`` was set (checked before each frame).
            CheckpointError: the model could not be loaded (first use).
        """
        names = check_phrases(phrases)
        options = options or TrackOptions()
        with self._lock:
            model, processor = self._loaded()
            run = _Run(self, model, processor, clip, names, options)
            return run.go(progress, cancel)


class _Run:
    """One ``track`` call: the session, the presence hook, the hot-start buffer and the collector."""

    def __init__(self, engine: Sam3VideoEngine, model, processor, clip: Clip, names: tuple[str, ...], options):
        self.engine, self.model, self.processor, self.clip, self.names = engine, model, processor, clip, names
        self.options: TrackOptions = options
        self.planned = len(clip.plan(options.frames))
        state_device = "cpu" if engine.offload_state else engine.device
        self.session = StreamedSession(
            self.planned,
            video_height=clip.info.height,
            video_width=clip.info.width,
            inference_device=engine.device,
            inference_state_device=state_device,
            video_storage_device="cpu",
            dtype=engine.dtype,
        )
        processor.add_text_prompt(self.session, list(names))
        self.collector = TrackCollector(names)
        self.sampled: list[SampledFrame] = []
        self.presence: dict[int, list[float]] = {}  # session frame index -> presence per phrase, until emitted
        self.buffer: list = []
        self.stats = TrackStats()
        self._calls: list[float] = []
        tracker = model.tracker_model.config
        self._window = {
            "num_maskmem": tracker.num_maskmem,
            "max_pointers": tracker.max_object_pointers_in_encoder,
            "max_cond": tracker.max_cond_frame_num,
        }

    def go(self, progress: ProgressFn | None, cancel: threading.Event | None) -> ClipTracks:
        hook = self.model.detector_model.register_forward_hook(self._presence_hook)
        try:
            frames = self.clip.frames(self.options.frames)
            for k, (sampled, image) in enumerate(_checked(frames, cancel, self.planned)):
                self._step(k, sampled, image)
                if progress is not None:
                    progress(k + 1, max(self.planned, k + 1))
            while self.buffer:
                self._emit(self.buffer.pop(0))
        finally:
            frames.close()
            hook.remove()
            self.engine.last_stats = self.stats
        if not self.sampled:
            raise VideoError(f"no frame of {self.clip.name!r} is in the selected time range")
        return ClipTracks(
            video=self.clip.info,
            phrases=self.names,
            frames=tuple(self.sampled),
            tracks=self.collector.tracks(self.options),
        )

    def _presence_hook(self, module, args, output) -> None:
        self._calls.append(float(output.presence_logits.float().sigmoid().flatten()[0]))

    @torch.inference_mode()
    def _step(self, k: int, sampled: SampledFrame, image: Image.Image) -> None:
        pixels = self.processor.video_processor(videos=[image], return_tensors="pt").pixel_values_videos[0]
        self.session.add_new_frame(pixels, k)
        self._calls.clear()
        out = self.model(inference_session=self.session, frame_idx=k)
        if len(self._calls) != len(self.names):
            raise RuntimeError(f"expected {len(self.names)} detector calls on frame {k}, saw {len(self._calls)}")
        self.presence[k] = list(self._calls)
        for name, score in zip(self.names, self._calls, strict=True):
            self.collector.saw_presence(name, score)
        self.sampled.append(sampled)
        delay = self.model.hotstart_delay
        if delay > 0:
            self.buffer.append(out)
            self.session.hotstart_removed_obj_ids.update(out.removed_obj_ids)
            if len(self.buffer) >= delay:
                self._emit(self.buffer.pop(0))
        else:
            self._emit(out)
        prune(self.session, k, **self._window)
        self._count(k)

    def _emit(self, out) -> None:
        """Post-process one frame's outputs and keep its masks as RLE (the dense masks go at once)."""
        result = self.processor.postprocess_outputs(self.session, out)
        k = out.frame_idx
        sampled, presence = self.sampled[k], self.presence.pop(k)
        ids = result["object_ids"].tolist()
        if not ids:
            return
        rles = rle_encode_many(result["masks"].cpu().numpy())
        phrase_of = {obj: text for text, objs in result["prompt_to_obj_ids"].items() for obj in objs}
        detection_scores = result["scores"].tolist()
        for obj, rle, detection in zip(ids, rles, detection_scores, strict=True):
            phrase = phrase_of[obj]
            score = out.obj_id_to_tracker_score.get(obj, detection)
            self.collector.add(obj, phrase, sampled, rle, score, presence[self.names.index(phrase)])

    def _count(self, k: int) -> None:
        s = self.stats
        self.stats = TrackStats(
            frames=k + 1,
            peak_frames_held=max(s.peak_frames_held, held_frames(self.session)),
            peak_outputs_held=max(s.peak_outputs_held, held_outputs(self.session)),
            objects=self.session.max_obj_id + 1,
        )


def _checked(frames: Iterator, cancel: threading.Event | None, planned: int) -> Iterator:
    """``frames``, checking ``cancel`` before each one is decoded."""
    done = 0
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"tracking was cancelled after {done} of {planned} frames")
        try:
            item = next(frames)
        except StopIteration:
            return
        yield item
        done += 1
