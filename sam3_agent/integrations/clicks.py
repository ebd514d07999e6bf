"""``sam3_segment_at``: ONE object from clicks, for other agents (MCP; ``Sam3Service.segment_at`` in Python).

The arguments (``SegmentAtArgs``) and the result (``ClickResult``) of the tool; ``Sam3Service`` runs it on its
click engine (SAM 3's tracker). Points and boxes are pixels of the image as given; the mask is COCO RLE.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sam3_agent.agent.tools import describe
from sam3_agent.integrations.args import IMAGE_HELP, MaskThreshold, ToolArgs
from sam3_agent.schema import BoxArg, Instance, PointArg

SEGMENT_AT_DESCRIPTION = (
    "Segment ONE object in an image from clicks with SAM 3's tracker: points [x, y] on the object, "
    "negative_points on things that are not part of it, and/or a box [x0, y0, x1, y1] around it, in pixels. "
    "Returns that object's mask (id 1), its score (the predicted IoU), area and box. For every instance of a "
    "concept use sam3_segment instead."
)

ClickPoints = Annotated[list[PointArg], Field(max_length=16, description="points [x, y] ON the object, pixels")]
NegativeClickPoints = Annotated[
    list[PointArg], Field(max_length=16, description="points [x, y] that are NOT on the object, pixels")
]
ClickBox = Annotated[BoxArg | None, Field(description="a box [x0, y0, x1, y1] around the object, pixels")]


class SegmentAtArgs(ToolArgs):
    """``sam3_segment_at``: the clicks on one object (at least one point on it, or a box)."""

    image: Annotated[str, Field(min_length=1, description=IMAGE_HELP)]
    points: ClickPoints = Field(default_factory=list)
    negative_points: NegativeClickPoints = Field(default_factory=list)
    box: ClickBox = None
    mask_threshold: MaskThreshold = None

    @model_validator(mode="after")
    def _has_target(self) -> SegmentAtArgs:
        if not self.points and self.box is None:
            raise ValueError("give at least one point on the object, or a box around it")
        return self


class ClickResult(BaseModel):
    """The object one ``sam3_segment_at`` call segmented; ``instances`` is empty when its mask came out empty."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    phrase: str = Field(description="what the clicks were, e.g. 'clicked object (1 positive point)'")
    image_size: tuple[int, int] = Field(description="(height, width) of the image in pixels")
    instances: list[Instance] = Field(max_length=1)

    def summary(self) -> str:
        if not self.instances:
            return f"{self.phrase}: the mask came out empty; click nearer the object's middle, or give a box."
        height, width = self.image_size
        return f"Segmented one object in the {width}x{height} image:\n{describe(self.instances[0], height * width)}"
