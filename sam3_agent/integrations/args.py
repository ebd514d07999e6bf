"""Arguments of the tools sam3-agent offers to other agents: ``sam3_segment``, ``sam3_count``, ``sam3_ask``, and
``sam3_track_video`` / ``sam3_ask_video`` where a video tracker is configured.

One definition serves every integration: the LangChain tools use these models as ``args_schema``, the
OpenAI function-calling schemas are their JSON Schemas, and the MCP tools declare their parameters with
the same annotated types. Boxes are ``[x0, y0, x1, y1]`` in pixels of the image as given (XYXY, the max
corner exclusive). Descriptions are written for the calling model.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from sam3_agent.agent.tools import json_schema
from sam3_agent.engine.tiling import TileMode
from sam3_agent.schema import MAX_PHRASE_CHARS, BoxArg
from sam3_agent.video.protocol import DEFAULT_MAX_FRAMES

IMAGE_HELP = (
    "the image: a file path (relative to the allowed image folder, or absolute inside it), a data: URL, "
    "or base64-encoded PNG/JPEG/GIF/WebP/BMP/TIFF bytes"
)

# Tool descriptions, written for the calling model (the same in every integration).
SEGMENT_DESCRIPTION = (
    "Find and segment EVERY instance of short noun phrases in an image with SAM 3 (e.g. ['red cup', 'laptop']), "
    "optionally guided by exemplar boxes. Returns counts, ids, scores and boxes [x0, y0, x1, y1] in pixels. "
    "Phrases must be simple concepts, not relations ('cup', not 'cup left of the laptop')."
)
COUNT_DESCRIPTION = (
    "Count the distinct objects matching a short noun phrase (and/or exemplar boxes) in an image with SAM 3; "
    "overlapping duplicate masks are merged. Returns the count and each object's id, score and box."
)
_ASK_LEAD = (
    "Answer a question about an image that needs finding, relating or counting objects, e.g. 'how many cups "
    "are left of the laptop?' or 'the second cup from the left'. Returns the answer, the count if one was "
    "asked, and the selected objects."
)
_ASK_PLANNER = (
    "No language model is configured, so a built-in planner answers: it understands only common query shapes "
    "such as 'segment the cups', 'find the red cup', 'how many cups are there?', 'how many cups are left of "
    "the laptop?', 'the second cup from the left'. Other questions come back with status 'gave_up' and a "
    "reason, or are taken as a noun phrase to find: ask in such a shape, or use sam3_segment / sam3_count."
)
ASK_LLM_DESCRIPTION = f"{_ASK_LEAD} A vision agent (a language model) segments with SAM 3 and reasons about the masks."
"""``sam3_ask`` where a language model answers."""
ASK_PLANNER_DESCRIPTION = f"{_ASK_LEAD} {_ASK_PLANNER}"
"""``sam3_ask`` where no language model is configured and the built-in planner answers."""
ASK_DESCRIPTION = (
    f"{_ASK_LEAD} A vision agent segments with SAM 3 and reasons about the masks. Without a configured "
    "language model a built-in planner answers instead, and it understands only common query shapes ('segment "
    "the cups', 'how many cups are left of the laptop?', 'the second cup from the left'); other questions come "
    "back with status 'gave_up'."
)
"""``sam3_ask`` when it is not known which answers (schemas exported without a service)."""


def arguments_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a tool's arguments as offered to other agents: the model's schema without pydantic's
    ``title`` noise and without the class docstring (the tool has its own description); unknown keys refused."""
    schema = json_schema(model)
    schema.pop("description", None)
    return schema


def ask_description(planner: bool) -> str:
    """The ``sam3_ask`` description for a service answered by the built-in planner, or by a language model."""
    return ASK_PLANNER_DESCRIPTION if planner else ASK_LLM_DESCRIPTION


ImageRef = Annotated[str, Field(min_length=1, description=IMAGE_HELP)]
Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Phrases = Annotated[
    list[Phrase],
    Field(
        max_length=8,
        description="0 to 8 short noun phrases, e.g. ['red cup', 'laptop']; each is segmented separately",
    ),
]
PositiveBoxes = Annotated[
    list[BoxArg],
    Field(max_length=16, description="boxes around examples of the wanted objects: find all objects like them"),
]
NegativeBoxes = Annotated[
    list[BoxArg], Field(max_length=16, description="boxes around look-alikes that must not be returned")
]
ScoreThreshold = Annotated[
    float | None,
    Field(ge=0.0, le=1.0, description="keep instances scoring at least this (default: the server's, usually 0.5)"),
]
MaskThreshold = Annotated[
    float | None, Field(ge=0.0, le=1.0, description="mask pixel probability cut (default: the server's, 0.5)")
]
Tile = Annotated[
    TileMode | None,
    Field(
        description="tiled segmentation for crowds and large images (SAM 3 finds at most ~200 objects per pass): "
        "'always', 'never', or 'auto' (the default: tiles images longer than 2016 px and results near that limit)"
    ),
]
CountPhrase = Annotated[
    str | None,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=120),
    Field(description="the noun phrase of the objects to count, e.g. 'person'"),
]
Question = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    Field(description="the question about the image, e.g. 'how many cups are left of the laptop?'"),
]


class ToolArgs(BaseModel):
    """Base of the tools' arguments: unknown keys are refused, and null for an optional argument means its
    default (strict function-calling schemas make the model send every argument, null where it has none)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {k: v for k, v in data.items() if v is not None or k not in fields or fields[k].is_required()}


class SegmentArgs(ToolArgs):
    """``sam3_segment``: every instance of each phrase, optionally guided by exemplar boxes.

    The exemplar boxes apply to every phrase; with no phrase they form one box-only prompt, which needs
    at least one positive box.
    """

    image: ImageRef
    phrases: Phrases = []
    positive_boxes: PositiveBoxes = []
    negative_boxes: NegativeBoxes = []
    score_threshold: ScoreThreshold = None
    mask_threshold: MaskThreshold = None
    tile: Tile = None

    @model_validator(mode="after")
    def _has_prompt(self) -> SegmentArgs:
        if not self.phrases and not self.positive_boxes:
            raise ValueError("give at least one phrase or one positive box")
        return self


class CountArgs(ToolArgs):
    """``sam3_count``: the de-duplicated number of objects matching a phrase and/or exemplar boxes."""

    image: ImageRef
    phrase: CountPhrase = None
    positive_boxes: PositiveBoxes = []
    negative_boxes: NegativeBoxes = []
    score_threshold: ScoreThreshold = None
    tile: Tile = None

    @model_validator(mode="after")
    def _has_prompt(self) -> CountArgs:
        if self.phrase is None and not self.positive_boxes:
            raise ValueError("give a phrase or at least one positive box")
        return self


class AskArgs(ToolArgs):
    """``sam3_ask``: a question answered by the whole sam3-agent (an LLM, or the built-in planner, driving SAM 3)."""

    image: ImageRef
    question: Question


# --- video: sam3_track_video, sam3_ask_video (offered only where the service has a video tracker) ---------------

VIDEO_HELP = "the video: a file path (relative to the allowed folder, or absolute inside it); no URLs or base64"
TRACK_VIDEO_DESCRIPTION = (
    "Track EVERY instance of short noun phrases through a video file with SAM 3 (e.g. ['car', 'person']): each "
    "object keeps one track id across frames, through occlusions. Returns one row per track (id, phrase, first and "
    "last frame and time, frames seen, best score), the frames looked at, and counts per phrase; no per-frame masks "
    "(for masks and an overlay video use the `sam3-agent track` command or the HTTP server's video jobs)."
)
ASK_VIDEO_DESCRIPTION = (
    "Answer a question about a video file that needs tracking objects, e.g. 'how many different cars pass?', "
    "'which dog is on screen longest?', 'how many people are in the room at the end?'. Returns the answer, the "
    "count if one was asked, and the ids and summary rows of the tracks that answer it."
)

VideoRef = Annotated[str, Field(min_length=1, description=VIDEO_HELP)]
VideoPhrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PHRASE_CHARS)]
VideoPhrases = Annotated[
    list[VideoPhrase],
    Field(min_length=1, max_length=8, description="1 to 8 short noun phrases, e.g. ['car', 'person']"),
]
Stride = Annotated[int | None, Field(ge=1, le=1000, description="look at every n-th frame (default 1: every frame)")]
MaxFrames = Annotated[
    int | None, Field(ge=1, le=100_000, description=f"look at most this many frames (default {DEFAULT_MAX_FRAMES})")
]
StartS = Annotated[float | None, Field(ge=0.0, description="start of the time range in seconds (default 0)")]
EndS = Annotated[float | None, Field(gt=0.0, description="end of the time range in seconds (default: the clip's end)")]
VideoQuestion = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    Field(description="the question about the video, e.g. 'how many different cars pass?'"),
]


class TrackVideoArgs(ToolArgs):
    """``sam3_track_video``: every instance of each phrase tracked through the selected frames of a video."""

    video: VideoRef
    phrases: VideoPhrases
    stride: Stride = None
    max_frames: MaxFrames = None
    start_s: StartS = None
    end_s: EndS = None
    score_threshold: ScoreThreshold = None

    @model_validator(mode="after")
    def _time_range(self) -> TrackVideoArgs:
        if self.end_s is not None and self.end_s <= (self.start_s or 0.0):
            raise ValueError(
                f"the time range is empty: end_s {self.end_s:g} is not after start_s {self.start_s or 0:g}"
            )
        return self


class AskVideoArgs(ToolArgs):
    """``sam3_ask_video``: a question about a video answered by the clip agent (an LLM, or the built-in planner)."""

    video: VideoRef
    question: VideoQuestion
