"""A ``Sam3VideoInferenceSession`` fed one frame at a time, holding only what the next frame can read.

transformers' session keeps every preprocessed frame (3x1008x1008 floats, 12 MB each) and, per object and
frame, the tracker's outputs: a 1008x1008 float mask (``high_res_masks``), low-res mask logits, the memory
features and the object pointer. Left alone, a clip of N frames holds N of each. ``prune(session, t)`` drops,
after frame ``t``, everything tracking forward from ``t + 1`` never reads again (read in transformers 5.24's
``Sam3TrackerVideoModel``: ``_gather_memory_frame_outputs``, ``_get_object_pointers``,
``_select_closest_cond_frames``), so the results are those of the whole-video path while memory stays flat:

- frames before ``t`` (features of ``t`` are cached by the model itself, one frame);
- masks (``high_res_masks``, ``pred_masks``) of frames before ``t``: only read on their own frame;
- memory features older than the ``num_maskmem - 1`` frames the memory attention looks back at, except on the
  ``max_cond_frame_num`` latest conditioning frames (the ones ``_select_closest_cond_frames`` picks when
  tracking forward);
- non-conditioning outputs older than the ``max_object_pointers_in_encoder - 1`` frames whose object pointers
  are read (conditioning frames keep their pointer: every earlier one is read; a pointer is one vector);
- per-frame bookkeeping (mask inputs, tracked-frame marks, frame-wise scores, suppressed ids) of past frames.

Only module of ``sam3_agent.video`` besides ``engine`` that imports torch / transformers.
"""

from __future__ import annotations

from transformers.models.sam3_video.modeling_sam3_video import Sam3VideoInferenceSession

_FRAME_MASKS = ("high_res_masks", "pred_masks")
_MEMORY = ("maskmem_features", "maskmem_pos_enc")


class StreamedSession(Sam3VideoInferenceSession):
    """A session whose frames are added one by one (``add_new_frame``) and pruned, but which tells the model the
    clip's planned length: the tracker scales its object-pointer positions by ``min(num_frames, 16)``, as the
    whole-video path does."""

    def __init__(self, planned_frames: int, **kwargs: object) -> None:
        super().__init__(video=None, **kwargs)
        self.planned_frames = planned_frames
        self.frames_added = 0

    @property
    def num_frames(self) -> int | None:
        return max(self.planned_frames, self.frames_added)

    def add_new_frame(self, pixel_values, frame_idx: int | None = None) -> int:
        self.frames_added += 1
        return super().add_new_frame(pixel_values, frame_idx)


def prune(session: Sam3VideoInferenceSession, frame_idx: int, *, num_maskmem: int, max_pointers: int, max_cond: int):
    """Drop what tracking forward from ``frame_idx + 1`` never reads (see the module docstring)."""
    for past in [f for f in session.processed_frames or {} if f < frame_idx]:
        del session.processed_frames[past]
    memory_from = frame_idx + 1 - (num_maskmem - 1)
    pointers_from = frame_idx + 1 - (max_pointers - 1)
    for outputs in session.output_dict_per_obj.values():
        cond = outputs["cond_frame_outputs"]
        kept_cond = set(sorted(cond)[-max_cond:]) if max_cond > 0 else set(cond)
        for f, out in cond.items():
            _strip(out, f, frame_idx, keep_memory=f in kept_cond or f >= memory_from)
        non_cond = outputs["non_cond_frame_outputs"]
        for f in [f for f in non_cond if f < pointers_from]:
            del non_cond[f]
        for f, out in non_cond.items():
            _strip(out, f, frame_idx, keep_memory=f >= memory_from)
    for per_obj in (*session.mask_inputs_per_obj.values(), *session.frames_tracked_per_obj.values()):
        for f in [f for f in per_obj if f < frame_idx]:
            del per_obj[f]
    for per_frame in (session.obj_id_to_tracker_score_frame_wise, session.suppressed_obj_ids):
        for f in [f for f in per_frame if f < frame_idx]:
            del per_frame[f]


def _strip(out: dict, f: int, frame_idx: int, *, keep_memory: bool) -> None:
    if f < frame_idx:
        for key in _FRAME_MASKS:
            out.pop(key, None)
    if not keep_memory:
        for key in _MEMORY:
            out.pop(key, None)


def held_frames(session: Sam3VideoInferenceSession) -> int:
    """How many preprocessed frames the session holds."""
    return len(session.processed_frames or {})


def held_outputs(session: Sam3VideoInferenceSession) -> int:
    """How many per-frame tracker outputs holding a mask or memory features the session holds, over all objects."""
    return sum(
        any(key in out for key in _FRAME_MASKS + _MEMORY)
        for outputs in session.output_dict_per_obj.values()
        for kind in ("cond_frame_outputs", "non_cond_frame_outputs")
        for out in outputs[kind].values()
    )
