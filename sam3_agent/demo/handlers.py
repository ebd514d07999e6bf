"""The page's actions as plain functions over a ``DemoSession`` (no Gradio here, so tests call them directly).

``DemoHandlers`` holds what all sessions share: the segmenter (one SAM 3 engine, whose backbone-feature
cache makes follow-up questions and refinements on the same image skip the backbone), the server's
``DemoConfig`` and the folder for result files. Each action takes the caller's session, changes it and
yields it (several times for streaming actions). Agent questions are answered by the session's language
model, or by the built-in planner when none is set. Errors never escape: a caller mistake (bad upload, bad
box, bad endpoint) or a failure (LLM endpoint down) becomes a readable chat message and the session's ``error``
(which the page raises as ``gr.Error``); anything unexpected is logged with its traceback and reported in one
line.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from sam3_agent.agent.chat_models import describe_chat_model, make_chat_model
from sam3_agent.agent.llm_settings import LLMSettings
from sam3_agent.agent.loop import Sam3Agent
from sam3_agent.agent.messages import ChatModel
from sam3_agent.demo import formatting as fmt
from sam3_agent.demo.clicking import add_click, clear_clicks
from sam3_agent.demo.config import DemoConfig, TurnSettings
from sam3_agent.demo.session import DemoSession, ShownResult
from sam3_agent.demo.streaming import stream_agent
from sam3_agent.engine.protocol import Clicker, Segmenter
from sam3_agent.engine.tiling import TiledSegmenter
from sam3_agent.errors import ImageError, LLMError, PromptError, Sam3AgentError
from sam3_agent.images import decode_image
from sam3_agent.outputs import SegmentationRecord, write_json_atomic, write_mask_pngs
from sam3_agent.render import render_overlay
from sam3_agent.schema import Answer, BoxXYXY, ExemplarBox, Instance, Prompt, TraceStep

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 256
PLANNING = "Planning with {model}…"
NEXT_STEP = "Thinking about the next step…"
Settings = TurnSettings | Mapping[str, Any]
ChatModelFactory = Callable[[LLMSettings | None], ChatModel]
"""Builds the chat model of one question from its ``LLMSettings`` (None: the built-in planner)."""


class DemoHandlers:
    """The demo's actions, sharing one ``segmenter`` among all sessions.

    Args:
        segmenter: a ``Segmenter`` (normally a ``Sam3Engine``; it must be safe to call from several
            threads, as ``Sam3Engine`` is).
        config: server-side settings.
        chat_model_factory: builds the chat model for one question from its ``LLMSettings``, None meaning
            the built-in planner (default: ``make_chat_model``).
        clicker: the click engine (SAM 3's tracker) of point clicks on the image and of the agent's
            ``segment_at`` tool; None: clicks answer that they need the tracker.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        config: DemoConfig | None = None,
        *,
        chat_model_factory: ChatModelFactory = make_chat_model,
        clicker: Clicker | None = None,
    ) -> None:
        self.segmenter = segmenter
        # Large images and crowds past SAM 3's query cap are segmented in tiles (auto: small images never are).
        self.tiled = segmenter if isinstance(segmenter, TiledSegmenter) else TiledSegmenter(segmenter, mode="auto")
        self.clicker = clicker
        self.config = config or DemoConfig()
        self.chat_model_factory = chat_model_factory
        if self.config.workdir is None:
            self.root = Path(tempfile.mkdtemp(prefix="sam3-agent-demo-"))
            atexit.register(shutil.rmtree, self.root, ignore_errors=True)
        else:
            self.root = self.config.workdir
            self.root.mkdir(parents=True, exist_ok=True)

    # -- the chat ---------------------------------------------------------------------------------------------

    def chat(
        self, session: DemoSession, message: Mapping[str, Any] | str | None, settings: Settings
    ) -> Iterator[DemoSession]:
        """Handle one chat message: ``{"text": str, "files": [path, ...]}`` (a MultimodalTextbox value) or text.

        An attached file becomes the session's image (the last one if several). The text is a question for
        the agent (mode "agent") or comma-separated noun phrases (mode "segment"). Yields the session after
        each visible change: the user's message, each agent step, the answer.
        """
        session.error = ""
        try:
            turn = settings if isinstance(settings, TurnSettings) else TurnSettings.parse(**settings)
            text, files = _split_message(message)
            if files:
                self._receive_image(session, files[-1], ignored=len(files) - 1)
                yield session
            if not text:
                if not files:
                    raise PromptError("type a question, or attach an image with the paperclip (or paste one)")
                return
            if session.image is None:
                raise ImageError(
                    "there is no image yet: attach one to your message (paperclip, drag and drop, or paste)"
                )
            session.chat.append(fmt.user_text(text))
            if turn.mode == "segment":
                yield from self._segment(session, text, turn)
            else:
                yield from self._ask(session, text, turn)
        except Exception as exc:
            self._fail(session, exc)
            yield session

    def _receive_image(self, session: DemoSession, path: str, *, ignored: int) -> None:
        name = Path(path).name
        session.chat.append(fmt.user_text(f"Attached {name}"))
        try:
            image = self.load_upload(Path(path))
        except ImageError as exc:
            raise ImageError(f"that upload was refused: {exc}") from None
        session.chat.pop()
        thumb = image.copy()
        thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        thumb_path = session.run_dir(self.root) / "upload.png"
        thumb.save(thumb_path)
        session.chat.append(fmt.user_image(str(thumb_path), name))
        session.new_image(image, name)
        note = f" (only the last of {ignored + 1} attached files is used)" if ignored else ""
        session.chat.append(fmt.assistant_text(f"Got **{name}**, {image.width}×{image.height} pixels{note}."))
        session.hint = ""

    def load_upload(self, path: Path) -> Image.Image:
        """Decode an uploaded file as RGB; ImageError (naming the file, not the server path) if refused."""
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ImageError(f"{path.name!r} could not be read: {exc.strerror or exc}") from None
        limit = self.config.max_upload_bytes
        if size > limit:
            raise ImageError(f"{path.name!r} is {_megabytes(size)}, over the upload limit of {_megabytes(limit)}")
        return decode_image(path.read_bytes(), max_pixels=self.config.max_pixels, what=repr(path.name))

    def _ask(self, session: DemoSession, query: str, turn: TurnSettings) -> Iterator[DemoSession]:
        assert session.image is not None
        settings = turn.llm_settings(self.config)
        agent = Sam3Agent(
            self.tiled,
            self.chat_model_factory(settings),
            clicker=self.clicker,
            thresholds=turn.thresholds,
            max_turns=self.config.max_turns,
        )
        answered_by = describe_chat_model(settings)
        session.chat.append(fmt.pending_message(PLANNING.format(model=answered_by)))
        yield session
        for event in stream_agent(agent, session.image, query):
            _drop_pending(session)
            if isinstance(event, TraceStep):
                session.chat.append(fmt.step_message(event))
                session.chat.append(fmt.pending_message(NEXT_STEP))
                yield session
            else:
                self._show_answer(session, event, answered_by)
                yield session

    def _show_answer(self, session: DemoSession, answer: Answer, answered_by: str) -> None:
        assert session.image is not None
        shown = answer.instances or answer.all_instances
        out = session.run_dir(self.root)
        write_json_atomic(out / "answer.json", answer.model_dump(mode="json"))
        masks = write_mask_pngs(answer.instances, out / "masks")
        markdown = fmt.answer_markdown(answer)
        session.result = ShownResult(
            kind="answer",
            markdown=markdown,
            instances=tuple(shown),
            overlay=_overlay(session.image, shown),
            files=(out / "answer.json", *masks),
            count=answer.count,
        )
        session.phrase = _phrase_of(answer) or session.phrase
        session.chat.append(fmt.assistant_text(f"{markdown}\n\n*Answered by {answered_by}.*"))

    # -- segment-only mode and exemplar refinement --------------------------------------------------------------

    def _segment(self, session: DemoSession, text: str, turn: TurnSettings) -> Iterator[DemoSession]:
        phrases = fmt.split_phrases(text)
        session.chat.append(fmt.pending_message(f"Segmenting {len(phrases)} phrase(s) with SAM 3…"))
        yield session
        self._run_prompts(session, [Prompt(text=p) for p in phrases], turn)
        session.phrase = phrases[0]
        yield session

    def refine(
        self, session: DemoSession, box_text: str, positive: bool, phrase: str, settings: Settings
    ) -> Iterator[DemoSession]:
        """Re-run ``phrase`` with the drawn box (``box_text`` "x0, y0, x1, y1", else the last box clicked) as a
        positive or negative exemplar, together with the exemplars given before for the same phrase."""
        added = False
        session.error = ""
        try:
            turn = settings if isinstance(settings, TurnSettings) else TurnSettings.parse(**settings)
            if session.image is None:
                raise ImageError("there is no image yet: attach one to a chat message first")
            box = parse_box_text(box_text) if box_text.strip() else session.box
            if box is None:
                raise PromptError("draw a box first: click two opposite corners on the image (or type x0, y0, x1, y1)")
            exemplar = ExemplarBox(box=box, positive=positive)
            exemplar.check_inside(session.image.width, session.image.height)
            phrase = " ".join(phrase.split())
            if session.exemplar_phrase != phrase:
                session.exemplars, session.exemplar_phrase = [], phrase
            if not phrase and not any(ex.positive for ex in [*session.exemplars, exemplar]):
                raise PromptError("without a phrase, give a positive box first (what to find), then negatives")
            session.exemplars.append(exemplar)
            added = True
            session.box, session.corner = None, None
            kind = "positive" if positive else "negative"
            target = f'"{phrase}"' if phrase else "the exemplars alone"
            session.chat.append(fmt.user_text(f"Refine {target} with a {kind} box [{_box_text(box)}]"))
            session.chat.append(fmt.pending_message("Re-running SAM 3 with the exemplars…"))
            yield session
            self._run_prompts(session, [Prompt(text=phrase or None, boxes=tuple(session.exemplars))], turn)
            session.phrase = phrase
            session.hint = f"{len(session.exemplars)} exemplar box(es) in use for {target}."
            yield session
        except Exception as exc:
            if added and isinstance(exc, PromptError):
                session.exemplars.pop()
            self._fail(session, exc)
            yield session

    def _run_prompts(self, session: DemoSession, prompts: Sequence[Prompt], turn: TurnSettings) -> None:
        """Segment ``prompts`` on the session's image; show the instances (ids from 1), write the downloads."""
        assert session.image is not None
        groups, report = self.tiled.segment_with_report(session.image, prompts, turn.thresholds)
        instances: list[Instance] = []
        labelled: list[tuple[str, list[Instance]]] = []
        for prompt, found in zip(prompts, groups, strict=True):
            renumbered = [inst.model_copy(update={"id": len(instances) + k + 1}) for k, inst in enumerate(found)]
            instances += renumbered
            labelled.append((prompt.label, renumbered))
        record = SegmentationRecord(
            image=session.image_name,
            image_size=(session.image.height, session.image.width),
            prompts=list(prompts),
            instances=instances,
            tiling=report,
        )
        out = session.run_dir(self.root)
        write_json_atomic(out / "segmentation.json", record.model_dump(mode="json"))
        masks = write_mask_pngs(instances, out / "masks")
        markdown = fmt.segmentation_markdown(labelled) + fmt.tiling_note(report)
        session.result = ShownResult(
            kind="segmentation",
            markdown=markdown,
            instances=tuple(instances),
            overlay=_overlay(session.image, instances),
            files=(out / "segmentation.json", *masks),
        )
        _drop_pending(session)
        session.chat.append(fmt.assistant_text(markdown))

    # -- drawing boxes ------------------------------------------------------------------------------------------

    def pick(self, session: DemoSession, x: float, y: float) -> DemoSession:
        """A click on the image at pixel (x, y) of the original image: first corner, then the opposite one.

        The box spans both clicked pixels: XYXY with the max corner exclusive (+1).
        """
        if session.image is None:
            session.hint = "Attach an image to a chat message first."
            return session
        px = min(max(int(x), 0), session.image.width - 1)
        py = min(max(int(y), 0), session.image.height - 1)
        if session.corner is None:
            session.corner, session.box = (px, py), None
            session.hint = f"First corner at ({px}, {py}): click the opposite corner."
            return session
        cx, cy = session.corner
        session.corner = None
        session.box = (min(cx, px), min(cy, py), max(cx, px) + 1, max(cy, py) + 1)
        session.hint = f"Box [{_box_text(session.box)}] drawn: choose positive or negative, then press Refine."
        return session

    # -- clicks on one object -------------------------------------------------------------------------------------

    def click(self, session: DemoSession, x: float, y: float, positive: bool, settings: Settings) -> DemoSession:
        """A click at pixel (x, y) of the original image in point mode: a point on the object (``positive``) or
        off it; the tracker segments the object from all points so far (``sam3_agent.demo.clicking``)."""
        session.error = ""
        try:
            turn = settings if isinstance(settings, TurnSettings) else TurnSettings.parse(**settings)
            add_click(self.clicker, self.root, session, x, y, positive, turn.thresholds)
        except Exception as exc:
            self._fail(session, exc)
        return session

    def clear_clicks(self, session: DemoSession) -> DemoSession:
        clear_clicks(session)
        return session

    def clear_exemplars(self, session: DemoSession) -> DemoSession:
        session.forget_exemplars()
        session.hint = "Exemplars cleared. Click two opposite corners on the image to draw a box."
        return session

    def reset(self, session: DemoSession) -> DemoSession:
        """Start over: a new empty session (the old one's files are deleted)."""
        session.delete_files()
        return DemoSession()

    # -- errors ---------------------------------------------------------------------------------------------------

    def _fail(self, session: DemoSession, exc: Exception) -> None:
        _drop_pending(session)
        if isinstance(exc, LLMError):
            text = f"the language model failed: {exc}"
        elif isinstance(exc, Sam3AgentError):
            text = str(exc)
        else:
            log.exception("demo action failed")
            text = f"something went wrong inside the demo ({type(exc).__name__}: {exc}); the server log has details"
        session.error = text
        session.chat.append(fmt.error_message(text))


def parse_box_text(text: str) -> BoxXYXY:
    """Parse "x0, y0, x1, y1" (pixels of the original image, XYXY). Raises PromptError saying what is wrong."""
    parts = [p for p in text.replace(",", " ").replace("[", " ").replace("]", " ").split() if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise PromptError(f"box {text!r} must be four numbers: x0, y0, x1, y1 (pixels)") from None
    if len(values) != 4:
        raise PromptError(f"box {text!r} has {len(values)} numbers; expected four: x0, y0, x1, y1 (pixels)")
    return (values[0], values[1], values[2], values[3])


def _box_text(box: BoxXYXY) -> str:
    return ", ".join(f"{v:g}" for v in box)


def _split_message(message: Mapping[str, Any] | str | None) -> tuple[str, list[str]]:
    if message is None:
        return "", []
    if isinstance(message, str):
        return message.strip(), []
    files = [str(f["path"] if isinstance(f, Mapping) else f) for f in message.get("files") or []]
    return str(message.get("text") or "").strip(), files


def _drop_pending(session: DemoSession) -> None:
    session.chat[:] = [m for m in session.chat if (m.get("metadata") or {}).get("status") != "pending"]


def _phrase_of(answer: Answer) -> str:
    """The phrase refinement should re-run: the first selected mask's, else the first phrase segmented."""
    for inst in answer.instances:
        if not inst.phrase.startswith("exemplar ("):
            return inst.phrase
    for step in answer.trace:
        phrases = step.arguments.get("phrases")
        if step.tool == "segment_phrases" and step.ok and isinstance(phrases, list) and phrases:
            return str(phrases[0])
    return ""


def _overlay(image: Image.Image, instances: Sequence[Instance]) -> Image.Image:
    """Set-of-Mark overlay with numbers big enough to read on the page (about 1/18 of the short side)."""
    size = min(max(round(min(image.size) / 18), 16), 72)
    return render_overlay(image, instances, font_size=size)


def _megabytes(n: int) -> str:
    return f"{n / 2**20:.1f} MB"
