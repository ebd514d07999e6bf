"""Per-session state of the demo: one ``DemoSession`` per browser tab (or ``gradio_client`` session).

Nothing here is shared between sessions; the SAM 3 engine (and its backbone-feature cache) is the only
thing all sessions share, and it lives in ``DemoHandlers``. Boxes are XYXY pixels of the ORIGINAL image,
max corner exclusive.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw

from sam3_agent.demo.formatting import ChatMessage
from sam3_agent.schema import BoxXYXY, ExemplarBox, Instance

POSITIVE = (30, 200, 60)
NEGATIVE = (230, 40, 40)
DRAWN = (255, 200, 0)


@dataclass(frozen=True)
class ShownResult:
    """The latest result on the page: answer text, the instances on the overlay / in the table, files.

    ``instances`` are the ones drawn and listed (the answer's selected masks, or all found when none was
    selected); ``overlay`` is the numbered Set-of-Mark rendering of them on the original image;
    ``files`` are the downloads (the JSON record with COCO RLE masks, then one PNG per selected mask).
    """

    kind: Literal["answer", "segmentation", "click"]
    markdown: str
    instances: tuple[Instance, ...]
    overlay: Image.Image
    files: tuple[Path, ...]
    count: int | None = None


@dataclass
class DemoSession:
    """Everything one user's page holds between requests.

    ``chat``: the Chatbot messages; ``image``: the current image (RGB, EXIF applied), the one every
    question and refinement is about; ``result``: the latest answer or segmentation; ``phrase``: the phrase
    exemplar refinement re-runs; ``exemplars``: boxes accumulated for ``exemplar_phrase``; ``corner``: first
    click of a box being drawn; ``box``: the last box drawn, not yet used; ``hint``: a line under the image;
    ``clicks``: the points clicked on one object, (x, y, label) with label 1 on it and 0 off it; ``error``: the
    one-line reason the latest action failed ("" if it did not), which the page raises as ``gr.Error``.
    """

    chat: list[ChatMessage] = field(default_factory=list)
    image: Image.Image | None = None
    image_name: str = ""
    result: ShownResult | None = None
    phrase: str = ""
    exemplars: list[ExemplarBox] = field(default_factory=list)
    exemplar_phrase: str | None = None
    corner: tuple[int, int] | None = None
    box: BoxXYXY | None = None
    clicks: list[tuple[int, int, int]] = field(default_factory=list)
    hint: str = ""
    error: str = ""
    workdir: Path | None = None
    runs: int = 0
    session_id: str = ""

    def new_image(self, image: Image.Image, name: str) -> None:
        """Make ``image`` current: forget the previous result, exemplars and drawn box (the chat stays)."""
        self.image = image
        self.image_name = name
        self.result = None
        self.phrase = ""
        self.forget_exemplars()
        self.clicks = []

    def forget_exemplars(self) -> None:
        self.exemplars = []
        self.exemplar_phrase = None
        self.corner = None
        self.box = None

    def run_dir(self, root: Path) -> Path:
        """A fresh folder for one result's files: ``<root>/<session id>/run_<n>``."""
        if self.workdir is None:
            # assigned here, not at construction: Gradio deep-copies one initial session for every visitor
            self.session_id = self.session_id or uuid.uuid4().hex[:12]
            self.workdir = root / self.session_id
        self.runs += 1
        path = self.workdir / f"run_{self.runs}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def delete_files(self) -> None:
        """Remove this session's result files (called when Gradio drops the session)."""
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def display_image(self) -> Image.Image | None:
        """The image panel: the overlay (or the plain image) with exemplar boxes and the box being drawn.

        Positive exemplars are green, negative red, the drawn-but-unused box yellow, a first corner a cross;
        clicked points are dots, green on the object and red off it.
        """
        base = self.result.overlay if self.result is not None else self.image
        if base is None:
            return None
        marks = [(ex.box, POSITIVE if ex.positive else NEGATIVE) for ex in self.exemplars]
        if self.box is not None:
            marks.append((self.box, DRAWN))
        if not marks and self.corner is None and not self.clicks:
            return base
        shown = base.copy()
        draw = ImageDraw.Draw(shown)
        width = max(2, round(min(shown.size) / 160))
        for (x0, y0, x1, y1), color in marks:
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=color, width=width)
        if self.corner is not None:
            x, y = self.corner
            arm = max(6, 4 * width)
            draw.line((x - arm, y, x + arm, y), fill=DRAWN, width=width)
            draw.line((x, y - arm, x, y + arm), fill=DRAWN, width=width)
        radius = 2 * width
        for x, y, label in self.clicks:
            dot = (x - radius, y - radius, x + radius, y + radius)
            draw.ellipse(dot, fill=POSITIVE if label else NEGATIVE, outline=(255, 255, 255), width=max(1, width // 2))
        return shown
