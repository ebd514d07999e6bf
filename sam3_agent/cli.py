"""The `sam3-agent` command line: `ask` (agent + engine), `segment` (engine only)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from sam3_agent.cli_options import (
    CheckpointOpt,
    DeviceOpt,
    DtypeOpt,
    LLMOpt,
    OverwriteOpt,
    QuietOpt,
    ServerOpt,
    TileOpt,
    TokenOpt,
    UntaggedCommand,
    UntaggedGroup,
    parse_numbers,
)
from sam3_agent.cli_video import ask_video, is_video_path
from sam3_agent.errors import ConfigError, ImageError, PromptError, Sam3AgentError, VideoError
from sam3_agent.schema import MAX_PHRASE_CHARS, ExemplarBox, Instance, Prompt, Thresholds, TraceStep
from sam3_agent.validation import clip, validation_message

if TYPE_CHECKING:
    from sam3_agent.agent.llm_settings import LLMSettings
    from sam3_agent.agent.messages import ChatModel
    from sam3_agent.engine.protocol import Segmenter
    from sam3_agent.engine.tiling import SegmentReport, TiledSegmenter

app = typer.Typer(
    name="sam3-agent",
    help="Answer questions about images with an agent (an LLM, or the built-in planner) driving SAM 3.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=UntaggedGroup,
)
console = Console(stderr=True)
out = Console()

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1

ScoreOpt = Annotated[float, typer.Option("--score-threshold", min=0.0, max=1.0, help="Keep instances scoring >= this.")]
MaskOpt = Annotated[float, typer.Option("--mask-threshold", min=0.0, max=1.0, help="Mask pixel probability cut.")]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Output folder. Default: outputs/<image name>, or the first of outputs/<image name>-2, -3, ... "
        "without an earlier result of this command. A folder holding one needs --overwrite.",
    ),
]


class Work:
    """The one progress display on stderr: what is being done (spinner, elapsed time; a bar while SAM 3's
    weights load), and the lines printed meanwhile. ``quiet``: neither, only warnings and errors."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        shown = not quiet and console.is_terminal  # a log or a pipe gets the lines, not a redrawn display
        self._progress = Progress(*columns, console=console, transient=True, disable=not shown, redirect_stdout=False)

    def note(self, text: str) -> None:
        """A line of information (not shown with --quiet)."""
        if not self.quiet:
            console.print(text, soft_wrap=True, highlight=False)

    @contextmanager
    def running(self) -> Iterator[Work]:
        with self._progress:
            yield self

    @contextmanager
    def step(self, what: str, *, loads_weights: bool = False) -> Iterator[None]:
        """Show ``what`` while the block runs; ``loads_weights``: with the weight-loading bar."""
        task = self._progress.add_task(escape(what), total=None)
        self._progress.refresh()  # shown at once, not at the next tick
        try:
            if loads_weights:
                from sam3_agent.engine.checkpoint import loading_progress, report_weight_bars

                listener = None if self.quiet else (lambda desc, done, total: self._advance(task, what, done, total))
                with loading_progress(listener), report_weight_bars():
                    yield
            else:
                yield
        finally:
            self._progress.remove_task(task)

    def _advance(self, task: TaskID, what: str, done: int, total: int | None) -> None:
        self._progress.update(task, description=f"{escape(what)} (weights)", completed=done, total=total)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """Parse "x0,y0,x1,y1" (pixels, XYXY) into a tuple; raises typer.BadParameter with the reason."""
    return parse_numbers(text, "box", "x0,y0,x1,y1")  # type: ignore[return-value]


def _load_segmenter(
    checkpoint: str | None, server: str | None, token: str | None, device: str | None, dtype: str | None
) -> Segmenter:
    """The in-process SAM 3 engine, loaded, or the client of a segmentation server, checked."""
    from sam3_agent.server.client import make_segmenter

    return make_segmenter(checkpoint, server, token, device, dtype)


def _loading(work: Work, server: str | None) -> AbstractContextManager[None]:
    """The progress step around ``_load_segmenter``."""
    return work.step(f"Connecting to {server}" if server else "Loading SAM 3", loads_weights=not server)


def _tiled(
    segmenter: Segmenter, tile: bool | None, size: int, overlap: float, reports: list[SegmentReport]
) -> TiledSegmenter:
    """``segmenter`` behind tiling: --tile always, --no-tile never, neither auto; every call's report goes to
    ``reports``."""
    from sam3_agent.engine.tiling import TiledSegmenter

    mode = "auto" if tile is None else "always" if tile else "never"
    return TiledSegmenter(segmenter, mode=mode, tile=size, overlap=overlap, on_report=reports.append)


def _print_tiling(reports: list[SegmentReport], work: Work) -> None:
    """On stderr: how many tiles the calls used, and which results came near SAM 3's query cap."""
    tiles = max((r.tiles for r in reports), default=0)
    if tiles:
        work.note(f"tiling: segmented in {tiles} overlapping tiles of {reports[0].tile} px")
    for report in reports:
        for row in report.prompts:
            if row.near_cap:
                where = "one tile" if row.tiled else "the image"
                console.print(
                    f"[yellow]warning:[/] {escape(row.phrase)}: {row.largest_pass} instances in {where}, near SAM 3's "
                    f"limit of {report.query_cap} per pass: the count may be too low (try --tile / a smaller "
                    "--tile-size)"
                )


def _instances_table(instances: list[Instance], title: str) -> Table:
    table = Table(title=title)
    for column in ("id", "phrase", "score", "area", "box (x0, y0, x1, y1)"):
        table.add_column(column)
    for inst in instances:
        box = ", ".join(f"{v:.0f}" for v in inst.box)
        table.add_row(str(inst.id), inst.phrase, f"{inst.score:.3f}", str(inst.area), box)
    return table


def _step_printer(work: Work) -> Callable[[TraceStep], None]:
    def print_step(step: TraceStep) -> None:
        mark = "[green]✓[/]" if step.ok else "[red]✗[/]"
        if not work.quiet:
            console.print(f"{mark} {step.tool} ({step.seconds:.1f}s): {escape(step.summary)}")

    return print_step


def _llm_settings(work: Work, **flags: str | float | None) -> LLMSettings | None:
    """The configured language model (flags, then environment), or None (said once on stderr): the planner."""
    from sam3_agent.agent.chat_models import PLANNER_NOTICE
    from sam3_agent.agent.llm_settings import LLMSettings

    settings = LLMSettings.configured(**flags)
    if settings is None:
        work.note(escape(PLANNER_NOTICE))
    return settings


def _chat_model(work: Work, settings: LLMSettings | None) -> ChatModel:
    """The chat model of ``settings`` (the planner for None), loaded or its endpoint checked with one cheap
    request, so a wrong URL or a dead endpoint fails before SAM 3 loads."""
    from sam3_agent.agent.chat_models import check_chat_model, make_chat_model

    if settings is None:
        return make_chat_model(None)
    where = f"Loading {settings.model}" if settings.is_local else f"Checking the LLM at {settings.base_url or 'OpenAI'}"
    with work.step(where, loads_weights=settings.is_local):
        chat = make_chat_model(settings, on_wait=work.note)
        warning = check_chat_model(chat)
    if warning:
        console.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True, highlight=False)
    return chat


def _error(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)


def _fail(exc: Exception) -> typer.Exit:
    code = EXIT_BAD_INPUT if isinstance(exc, ImageError | PromptError | ConfigError | VideoError) else EXIT_FAILURE
    _error(str(exc))
    return typer.Exit(code)


def _wrote(work: Work, paths: dict[str, Path]) -> None:
    work.note(f"wrote {escape(str(paths['overlay']))} and {escape(str(paths['json']))}")


@app.command(cls=UntaggedCommand)
def ask(
    image: Annotated[str, typer.Argument(help="Image path or http(s) URL, or a video file (mp4, mov, mkv, ...).")],
    query: Annotated[str, typer.Argument(help='The question, e.g. "how many cups are left of the laptop?"')],
    checkpoint: CheckpointOpt = None,
    llm_base_url: LLMOpt.BaseUrl = None,
    llm_model: LLMOpt.Model = None,
    llm_api_key: LLMOpt.ApiKey = None,
    tool_mode: LLMOpt.ToolMode = None,
    llm_timeout: LLMOpt.Timeout = None,
    max_turns: Annotated[int, typer.Option(min=1, help="Model turns before the agent gives up.")] = 12,
    score_threshold: ScoreOpt = 0.5,
    mask_threshold: MaskOpt = 0.5,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    out_dir: OutOpt = None,
    overwrite: OverwriteOpt = False,
    tile: TileOpt.Tile = None,
    tile_size: TileOpt.Size = 1008,
    tile_overlap: TileOpt.Overlap = 0.2,
    quiet: QuietOpt = False,
) -> None:
    """Ask a question about an image or a video clip; print the answer and count, write answer.json and
    answer_overlay.png + masks/ (an image) or answer.mp4, the chosen tracks drawn (a clip)."""
    from sam3_agent.agent.loop import Sam3Agent, check_query
    from sam3_agent.engine.protocol import clicker_for
    from sam3_agent.images import load_image
    from sam3_agent.outputs import out_folder, write_answer

    work = Work(quiet)
    llm = {"base_url": llm_base_url, "model": llm_model, "api_key": llm_api_key, "tool_mode": tool_mode}
    if is_video_path(image):  # a clip: the clip agent, on SAM 3's video model
        try:
            with work.running():
                check_query(query)
                chat = _chat_model(work, _llm_settings(work, **llm, timeout=llm_timeout))
        except Sam3AgentError as exc:
            raise _fail(exc) from None
        where = {"checkpoint": checkpoint, "device": device, "dtype": dtype}
        ask_video(image, query, llm=chat, score=score_threshold, max_turns=max_turns, on_step=_step_printer(work),
                  out_dir=out_dir, overwrite=overwrite, **where)  # fmt: skip
        return
    reports: list[SegmentReport] = []
    try:
        with work.running():
            if not query.strip():
                raise PromptError("the query is empty: ask a question about the image")
            check_query(query)
            settings = _llm_settings(work, **llm, timeout=llm_timeout)
            folder = out_folder(out_dir, image, "answer", overwrite=overwrite)
            pil = load_image(image, allow_private_urls=True)  # the user typed this URL: any address
            chat = _chat_model(work, settings)
            with _loading(work, server):
                loaded = _load_segmenter(checkpoint, server, token, device, dtype)
            agent = Sam3Agent(
                _tiled(loaded, tile, tile_size, tile_overlap, reports),
                chat,
                clicker=clicker_for(loaded),  # segment_at: SAM 3's tracker, sharing the engine's backbone
                thresholds=Thresholds(score=score_threshold, mask=mask_threshold),
                max_turns=max_turns,
            )
            with work.step("Answering"):
                answer = agent.run(pil, query, on_step=_step_printer(work))
    except Sam3AgentError as exc:
        raise _fail(exc) from None
    _print_tiling(reports, work)
    if answer.instances:
        out.print(_instances_table(list(answer.instances), "selected instances"))
    out.print(f"[bold]answer:[/] {escape(answer.text)}")
    if answer.count is not None:
        out.print(f"[bold]count:[/] {answer.count}")
    try:
        _wrote(work, write_answer(answer, pil, folder, tiling=reports))
    except OSError as exc:  # the folder was checked before the work: the disk filled, or it went away
        _error(f"the answer was not saved: cannot write to {folder}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_FAILURE) from None
    if answer.status == "gave_up":
        raise typer.Exit(EXIT_FAILURE)


def segment_prompts(phrases: list[str], boxes: list[str], negative_boxes: list[str]) -> list[Prompt]:
    """The prompts of `segment`: one per phrase, each with every exemplar box; the boxes alone without phrases.

    Raises ``PromptError`` (one line) for an empty or too long phrase, or nothing to segment, and
    ``typer.BadParameter`` for a box that is not four finite numbers.
    """
    try:
        exemplars = tuple(ExemplarBox(box=parse_box(b)) for b in boxes) + tuple(
            ExemplarBox(box=parse_box(b), positive=False) for b in negative_boxes
        )
    except ValidationError as exc:
        raise PromptError(validation_message(exc, whole="box")) from None
    if not phrases and not exemplars:
        raise PromptError(
            "nothing to segment: give one or more noun phrases (e.g. `sam3-agent segment IMAGE cup`) or an "
            "exemplar --box x0,y0,x1,y1"
        )
    for phrase in phrases:
        words = " ".join(phrase.split())
        if not words:
            raise PromptError("a phrase is empty: each phrase is a short noun phrase such as 'red cup'")
        if len(words) > MAX_PHRASE_CHARS:
            raise PromptError(
                f"the phrase {clip(words, 40)!r} is {len(words)} characters long: a phrase is a short noun phrase "
                f"of at most {MAX_PHRASE_CHARS} characters"
            )
    try:
        return [Prompt(text=p, boxes=exemplars) for p in phrases] or [Prompt(boxes=exemplars)]
    except ValidationError as exc:
        raise PromptError(validation_message(exc, whole="prompt")) from None


@app.command(cls=UntaggedCommand)
def segment(
    image: Annotated[str, typer.Argument(help="Image path or http(s) URL.")],
    phrases: Annotated[list[str] | None, typer.Argument(help="Short noun phrases, e.g. 'red cup' laptop.")] = None,
    box: Annotated[list[str] | None, typer.Option(help="Positive exemplar box x0,y0,x1,y1 (pixels); repeat.")] = None,
    neg_box: Annotated[list[str] | None, typer.Option(help="Negative exemplar box x0,y0,x1,y1, repeatable.")] = None,
    point: Annotated[list[str] | None, typer.Option(help="Click x,y on ONE object (no phrases); repeat.")] = None,
    neg_point: Annotated[list[str] | None, typer.Option(help="Click x,y off that object; repeatable.")] = None,
    checkpoint: CheckpointOpt = None,
    score_threshold: ScoreOpt = 0.5,
    mask_threshold: MaskOpt = 0.5,
    nms: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="IoM NMS threshold for counting (SAM 3 uses 0.5).")
    ] = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    out_dir: OutOpt = None,
    overwrite: OverwriteOpt = False,
    tile: TileOpt.Tile = None,
    tile_size: TileOpt.Size = 1008,
    tile_overlap: TileOpt.Overlap = 0.2,
    quiet: QuietOpt = False,
) -> None:
    """Run SAM 3 alone (no LLM): every instance of each phrase, optionally guided by exemplar boxes; write
    segmentation.json and segmentation_overlay.png.

    With --point / --neg-point: the ONE object the clicks point at (SAM 3's tracker; --box is then its box).
    """
    from sam3_agent.images import load_image
    from sam3_agent.outputs import SegmentationRecord, out_folder, write_segmentation

    work = Work(quiet)
    where = {"checkpoint": checkpoint, "device": device, "dtype": dtype, "server": server, "token": token}
    if point or neg_point:
        clicks = {"points": point, "negative_points": neg_point, "boxes": box, "negative_boxes": neg_box}
        folder = {"out_dir": out_dir, "overwrite": overwrite}
        _segment_clicks(image, phrases, clicks, tile, where, mask_threshold, folder, work)
        return
    reports: list[SegmentReport] = []
    try:
        with work.running():
            prompts = segment_prompts(phrases or [], box or [], neg_box or [])
            folder_path = out_folder(out_dir, image, "segmentation", overwrite=overwrite)
            pil = load_image(image, allow_private_urls=True)  # the user typed this URL: any address
            for exemplar in prompts[0].boxes:  # every prompt has the same boxes
                exemplar.check_inside(pil.width, pil.height)
            with _loading(work, server):
                loaded = _load_segmenter(checkpoint, server, token, device, dtype)
            segmenter = _tiled(loaded, tile, tile_size, tile_overlap, reports)
            thresholds = Thresholds(score=score_threshold, mask=mask_threshold, nms_iom=nms)
            with work.step("Segmenting"):
                per_prompt, report = segmenter.segment_with_report(pil, prompts, thresholds)
    except typer.BadParameter as exc:
        raise _fail(PromptError(str(exc))) from None
    except Sam3AgentError as exc:
        raise _fail(exc) from None
    instances = [inst for group in per_prompt for inst in group]
    instances = [inst.model_copy(update={"id": i}) for i, inst in enumerate(instances, start=1)]
    record = SegmentationRecord(
        image=image, image_size=(pil.height, pil.width), prompts=prompts, instances=instances, tiling=report
    )
    out.print(_instances_table(instances, f"{len(instances)} instance(s)"))
    for prompt, group in zip(prompts, per_prompt, strict=True):
        out.print(f"{escape(prompt.label)}: {len(group)}")
    _print_tiling(reports, work)
    try:
        _wrote(work, write_segmentation(record, pil, folder_path))
    except OSError as exc:
        _error(f"the segmentation was not saved: cannot write to {folder_path}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_FAILURE) from None


def _segment_clicks(
    image: str,
    phrases: list[str] | None,
    clicks: dict[str, list[str] | None],
    tile: bool | None,
    where: dict[str, str | None],
    mask_threshold: float,
    folder: dict[str, Path | bool | None],
    work: Work,
) -> None:
    """`segment --point`: the clicked object (``sam3_agent.cli_clicks``); bad clicks exit 2 before loading.

    ``clicks``: the raw --point / --neg-point / --box / --neg-box values; ``where``: checkpoint, device, dtype,
    server and token; ``folder``: --out and --overwrite.
    """
    from sam3_agent.cli_clicks import click_prompt, segment_by_clicks
    from sam3_agent.outputs import out_folder

    try:
        if tile:
            raise ConfigError("--tile applies to phrase search, not to clicks on one object")
        prompt = click_prompt(phrases or [], **{k: v or [] for k, v in clicks.items()})
        out_dir = out_folder(folder["out_dir"], image, "segmentation", overwrite=bool(folder["overwrite"]))
    except typer.BadParameter as exc:
        raise _fail(PromptError(str(exc))) from None
    except Sam3AgentError as exc:
        raise _fail(exc) from None
    segment_by_clicks(image, prompt, mask_threshold=mask_threshold, out_dir=out_dir, work=work, **where)


# --- commands that live in other rooms -------------------------------------------------------------------------
# Each is a plain typed function in its own module that imports its heavy dependencies (gradio, mcp, fastapi,
# ray, ...) inside the function body, so `sam3-agent --help` stays fast. Register one per line below.
from sam3_agent.integrations.command import mcp as mcp_command  # noqa: E402

app.command("mcp", cls=UntaggedCommand)(mcp_command)
from sam3_agent.evaluation.command import evaluate as eval_command  # noqa: E402

app.command("eval", cls=UntaggedCommand)(eval_command)
from sam3_agent.demo.command import demo as demo_command  # noqa: E402

app.command("demo", cls=UntaggedCommand)(demo_command)
from sam3_agent.server.command import serve as serve_command  # noqa: E402

app.command("serve", cls=UntaggedCommand)(serve_command)
from sam3_agent.cli_video import track as track_command  # noqa: E402

app.command("track", cls=UntaggedCommand)(track_command)


def main() -> None:  # pragma: no cover - console entry
    app(sys.argv[1:])
