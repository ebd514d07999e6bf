"""Tracks as ``supervision.Detections`` (one per frame, ``tracker_id`` = track id), for users of supervision's
annotators, zones and line counters. supervision is an optional extra (``pip install "sam3-agent[interop]"``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sam3_agent.errors import ConfigError
from sam3_agent.masks import rle_decode
from sam3_agent.video.tracks import ClipTracks

if TYPE_CHECKING:
    import supervision as sv


def frame_detections(tracks: ClipTracks, index: int, *, masks: bool = True) -> sv.Detections:
    """The objects on frame ``index`` as ``sv.Detections``: xyxy boxes, confidences, ``tracker_id`` = track ids,
    ``class_id`` = the phrase's position in ``tracks.phrases`` and ``data["class_name"]`` = the phrase; with
    ``masks`` the (N, H, W) bool masks (decoded, so N full-size masks: pass ``masks=False`` for boxes only)."""
    try:
        import supervision as sv
    except ImportError:
        raise ConfigError('supervision is not installed: pip install "sam3-agent[interop]"') from None
    found = [(t, t.at(index)) for t in tracks.tracks]
    found = [(t, inst) for t, inst in found if inst is not None]
    if not found:
        return sv.Detections.empty()
    instances = [inst for _, inst in found]
    phrases = [t.phrase for t, _ in found]
    return sv.Detections(
        xyxy=np.array([inst.box for inst in instances], dtype=np.float32),
        mask=np.stack([rle_decode(inst.rle) for inst in instances]) if masks else None,
        confidence=np.array([inst.score for inst in instances], dtype=np.float32),
        class_id=np.array([tracks.phrases.index(p) for p in phrases], dtype=int),
        tracker_id=np.array([t.track_id for t, _ in found], dtype=int),
        data={"class_name": np.array(phrases)},
    )
