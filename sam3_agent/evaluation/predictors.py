"""Predictors: what answers a ``Sample``. The full agent (an LLM driving SAM 3), and a no-LLM baseline that
sends a phrase straight to SAM 3.

A predictor has one method, ``predict(sample, image) -> Prediction``, where ``image`` is the RGB PIL image
of ``sample.image``. ``PredictorSpec`` is a picklable recipe that builds one (engine included) inside each
worker of a pool or Ray actor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sam3_agent.agent.llm_settings import LLMSettings
from sam3_agent.agent.messages import ChatModel
from sam3_agent.engine.protocol import Segmenter
from sam3_agent.errors import ConfigError
from sam3_agent.evaluation.records import PredictedInstance, Prediction, Sample
from sam3_agent.schema import Instance, Prompt, Rle, Thresholds

if TYPE_CHECKING:
    from sam3_agent.agent.loop import Sam3Agent

COUNT_NMS_IOM = 0.5
"""SAM 3's counting recipe: IoM NMS at 0.5 on top of the 0.5 score cut."""

_HOW_MANY = re.compile(
    r"\bhow\s+many\s+(.+?)(?=\s+(?:are|is|were|was|can|could|do|does|did|there|in|on|at|of|visible)\b|[?.!,;]|$)",
    re.IGNORECASE,
)


class Predictor(Protocol):
    def predict(self, sample: Sample, image: Image.Image) -> Prediction:
        """Answer ``sample`` about ``image`` (RGB). Raises ``Sam3AgentError`` subclasses on failure."""
        ...


def counting_phrase(question: str) -> str:
    """The noun phrase a counting question asks about: "How many red cups are on the table?" -> "red cups".

    Falls back to the whole question when it has no "how many ..." part.
    """
    match = _HOW_MANY.search(question)
    return match.group(1).strip() if match else question.strip()


def union_mask(instances: Sequence[Instance], size: tuple[int, int]) -> Rle:
    """COCO RLE of the union of the instances' masks, (height, width) = ``size``; all zero when none."""
    if not instances:
        encoded = coco_mask.encode(np.zeros(size, dtype=np.uint8, order="F"))
    else:
        encoded = coco_mask.merge([inst.rle.to_coco() for inst in instances], intersect=0)
    return Rle(size=(int(encoded["size"][0]), int(encoded["size"][1])), counts=encoded["counts"].decode("ascii"))


class BaselinePredictor:
    """SAM 3 alone: the sample's ``phrase`` (else the query; for counting, the "how many X" part) as one
    text prompt.

    Segment samples: ``mode`` "top1" keeps the best-scoring instance (a referring expression names one
    object), "all" the union of every instance. Count samples: the number of instances after IoM NMS at 0.5.
    """

    def __init__(
        self, segmenter: Segmenter, *, thresholds: Thresholds | None = None, mode: Literal["top1", "all"] = "top1"
    ) -> None:
        if mode not in ("top1", "all"):
            raise ConfigError(f"baseline mode must be 'top1' or 'all', got {mode!r}")
        self.segmenter = segmenter
        self.thresholds = thresholds or Thresholds()
        self.mode = mode

    def predict(self, sample: Sample, image: Image.Image) -> Prediction:
        if sample.task == "count":
            phrase = sample.phrase or counting_phrase(sample.query)
            thresholds = self.thresholds
            if thresholds.nms_iom is None:
                thresholds = thresholds.model_copy(update={"nms_iom": COUNT_NMS_IOM})
            (found,) = self.segmenter.segment(image, [Prompt(text=phrase)], thresholds)
            return Prediction(
                status="answered" if found else "no_match",
                text=f"{len(found)} × {phrase}",
                count=len(found),
                instances=tuple(PredictedInstance.of(i) for i in found),
            )
        phrase = sample.phrase or sample.query
        (found,) = self.segmenter.segment(image, [Prompt(text=phrase)], self.thresholds)
        chosen = found[:1] if self.mode == "top1" else found
        return Prediction(
            status="answered" if chosen else "no_match",
            text=f"{len(chosen)} mask(s) of {phrase!r}",
            mask=union_mask(chosen, (image.height, image.width)),
            instances=tuple(PredictedInstance.of(i) for i in chosen),
        )


class AgentPredictor:
    """The full agent: ``Sam3Agent`` answers the query; the selected masks' union is the predicted mask and
    ``answer.count`` (else the number of selected masks) the predicted count.

    ``llm`` is one chat model for every sample, or a function giving the chat model for a sample (e.g. a
    fresh scripted model per sample in tests).
    """

    def __init__(
        self,
        segmenter: Segmenter,
        llm: ChatModel | Callable[[Sample], ChatModel],
        *,
        thresholds: Thresholds | None = None,
        max_turns: int = 12,
    ) -> None:
        self.segmenter = segmenter
        self.llm = llm
        self.thresholds = thresholds
        self.max_turns = max_turns
        self._shared: Sam3Agent | None = None

    def _agent_for(self, sample: Sample) -> Sam3Agent:
        from sam3_agent.agent.loop import Sam3Agent

        if isinstance(self.llm, ChatModel):  # one model for every sample: one agent (it keeps no per-run state)
            if self._shared is None:
                self._shared = Sam3Agent(self.segmenter, self.llm, thresholds=self.thresholds, max_turns=self.max_turns)
            return self._shared
        return Sam3Agent(self.segmenter, self.llm(sample), thresholds=self.thresholds, max_turns=self.max_turns)

    def predict(self, sample: Sample, image: Image.Image) -> Prediction:
        agent = self._agent_for(sample)
        answer = agent.run(image, sample.query)
        count = None
        if sample.task == "count":
            count = answer.count if answer.count is not None else len(answer.instances)
        return Prediction(
            status=answer.status,
            text=answer.text,
            count=count,
            mask=union_mask(answer.instances, (image.height, image.width)) if sample.task == "segment" else None,
            instances=tuple(PredictedInstance.of(i) for i in answer.instances),
            trace=answer.trace,
        )


class PredictorSpec(BaseModel):
    """A picklable recipe for a predictor, built once per worker (``build()`` loads the engine).

        ``engine`` "sam3": ``Sam3Engine(checkpoint, device=, dtype=)``, or with ``server`` a ``RemoteSegmenter``
        talking to that segmentation server (bearer ``server_token``; None: $SAM3_AGENT_SERVER_TOKEN in the
        worker); "scenes": the exact segmenter of a synthetic set written by ``sam3_agent.evaluation.synthetic``
        (folder ``scenes``), to check the harness. ``kind`` "agent" plans with the ``llm`` settings' chat model, or
    with the built-in planner when there are none.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["agent", "baseline"] = "baseline"
    engine: Literal["sam3", "scenes"] = "sam3"
    checkpoint: str | None = None
    device: str | None = None
    dtype: str | None = None
    server: str | None = None
    server_token: str | None = None
    scenes: str | None = None
    thresholds: Thresholds = Thresholds()
    baseline_mode: Literal["top1", "all"] = "top1"
    llm: LLMSettings | None = None
    max_turns: int = Field(default=12, ge=1)

    @model_validator(mode="after")
    def _complete(self) -> PredictorSpec:
        if self.engine == "scenes" and not self.scenes:
            raise ValueError("engine 'scenes' needs the synthetic set's folder in 'scenes'")
        if self.server and self.engine == "scenes":
            raise ValueError("'server' runs SAM 3 on a segmentation server: it does not go with engine 'scenes'")
        if self.server and (self.checkpoint or self.device or self.dtype):
            raise ValueError("with 'server', checkpoint, device and dtype belong to the server: leave them unset")
        if self.server_token and not self.server:
            raise ValueError("'server_token' is the segmentation server's token: it needs 'server' too")
        return self

    def public(self) -> dict[str, Any]:
        """The recipe without secrets (no API key, no server token), for the run's ``run.json``."""
        return self.model_dump(mode="json", exclude={"llm": {"api_key"}, "server_token": True})

    def build_segmenter(self) -> Segmenter:
        """The segmenter, loaded (or, with ``server``, the server checked)."""
        if self.engine == "scenes":
            from sam3_agent.evaluation.synthetic import SceneSetSegmenter

            return SceneSetSegmenter.load(self.scenes or "")
        from sam3_agent.server.client import make_segmenter

        return make_segmenter(self.checkpoint, self.server, self.server_token, self.device, self.dtype)

    def build(self) -> Predictor:
        """Load the engine (and connect the LLM client) and return the predictor."""
        segmenter = self.build_segmenter()
        if self.kind == "baseline":
            return BaselinePredictor(segmenter, thresholds=self.thresholds, mode=self.baseline_mode)
        from sam3_agent.agent.chat_models import make_chat_model

        return AgentPredictor(
            segmenter, make_chat_model(self.llm), thresholds=self.thresholds, max_turns=self.max_turns
        )
