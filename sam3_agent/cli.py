"""The `sam3-agent` command line: `ask` (agent + engine), `segment` (engine only)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sam3_agent.cli_options import (
    CheckpointOpt,
    DeviceOpt,
    DtypeOpt,
    LLMOpt,
    ServerOpt,
    TileOpt,
    TokenOpt,
    parse_numbers,
)
from sam3_agent.errors import ConfigError, ImageError, PromptError, Sam3AgentError
from sam3_agent.schema import ExemplarBox, Instance, Prompt, Thresholds, TraceStep

if TYPE_CHECKING:
    from sam3_agent.agent.llm_settings import LLMSettings
    from sam3_agent.engine.protocol import Segmenter
    from sam3_agent.engine.tiling import SegmentReport, TiledSegmenter

app = typer.Typer(
    name="sam3-agent",
    help="Answer questions about images with an agent (an LLM, or the built-in planner) driving SAM 3.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
out = Console()

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1

ScoreOpt = Annotated[float, typer.Option("--score-threshold", min=0.0, max=1.0, help="Keep instances scoring >= this.")]
MaskOpt = Annotated[float, typer.Option("--mask-threshold", min=0.0, max=1.0, help="Mask pixel probability cut.")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Output folder. Default: outputs/<image name>.")]


def parse_box(text: str) -> tuple[float, float, float, float]:
    """Parse "x0,y0,x1,y1" (pixels, XYXY) into a tuple; raises typer.BadParameter with the reason."""
    return parse_numbers(text, "box", "x0,y0,x1,y1")  # type: ignore[return-value]


def _default_out(image: str) -> Path:
    stem = Path(image).stem if not image.startswith(("http://", "https://", "data:")) else "image"
    return Path("outputs") / (stem or "image")


def _load_segmenter(
    checkpoint: str | None, server: str | None, token: str | None, device: str | None, dtype: str | None
) -> Segmenter:
    """The in-process SAM 3 engine, loaded, or the client of a segmentation server, checked."""
    from sam3_agent.server.client import make_segmenter

    with console.status(f"Connecting to {server} …" if server else "Loading SAM 3 …", spinner="dots"):
        return make_segmenter(checkpoint, server, token, device, dtype)


def _tiled(
    segmenter: Segmenter, tile: bool | None, size: int, overlap: float, reports: list[SegmentReport]
) -> TiledSegmenter:
    """``segmenter`` behind tiling: --tile always, --no-tile never, neither auto; every call's report goes to
    ``reports``."""
    from sam3_agent.engine.tiling import TiledSegmenter

    mode = "auto" if tile is None else "always" if tile else "never"
    return TiledSegmenter(segmenter, mode=mode, tile=size, overlap=overlap, on_report=reports.append)


def _print_tiling(reports: list[SegmentReport]) -> None:
    """On stderr: how many tiles the calls used, and which results came near SAM 3's query cap."""
    tiles = max((r.tiles for r in reports), default=0)
    if tiles:
        console.print(f"tiling: segmented in {tiles} overlapping tiles of {reports[0].tile} px")
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


def _print_step(step: TraceStep) -> None:
    mark = "[green]✓[/]" if step.ok else "[red]✗[/]"
    console.print(f"{mark} {step.tool} ({step.seconds:.1f}s): {step.summary}")


def _llm_settings(
    base_url: str | None, model: str | None, api_key: str | None, tool_mode: str | None
) -> LLMSettings | None:
    """The configured language model (flags, then environment), or None (said once on stderr): the planner."""
    from sam3_agent.agent.chat_models import PLANNER_NOTICE
    from sam3_agent.agent.llm_settings import LLMSettings

    settings = LLMSettings.configured(base_url=base_url, model=model, api_key=api_key, tool_mode=tool_mode)
    if settings is None:
        console.print(escape(PLANNER_NOTICE), soft_wrap=True, highlight=False)
    return settings


def _fail(exc: Exception) -> typer.Exit:
    code = EXIT_BAD_INPUT if isinstance(exc, ImageError | PromptError | ConfigError) else EXIT_FAILURE
    console.print(f"[bold red]error:[/] {escape(str(exc))}")
    return typer.Exit(code)


@app.command()
def ask(
    image: Annotated[str, typer.Argument(help="Image path or http(s) URL.")],
    query: Annotated[str, typer.Argument(help='The question, e.g. "how many cups are left of the laptop?"')],
    checkpoint: CheckpointOpt = None,
    llm_base_url: LLMOpt.BaseUrl = None,
    llm_model: LLMOpt.Model = None,
    llm_api_key: LLMOpt.ApiKey = None,
    tool_mode: LLMOpt.ToolMode = None,
    max_turns: Annotated[int, typer.Option(min=1, help="Model turns before the agent gives up.")] = 12,
    score_threshold: ScoreOpt = 0.5,
    mask_threshold: MaskOpt = 0.5,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    out_dir: OutOpt = None,
    tile: TileOpt.Tile = None,
    tile_size: TileOpt.Size = 1008,
    tile_overlap: TileOpt.Overlap = 0.2,
) -> None:
    """Ask a question about an image; print the answer and count, write overlay.png and answer.json."""
    from sam3_agent.agent.chat_models import make_chat_model
    from sam3_agent.agent.loop import Sam3Agent, check_query
    from sam3_agent.engine.protocol import clicker_for
    from sam3_agent.images import load_image
    from sam3_agent.outputs import write_answer

    try:
        if not query.strip():
            raise PromptError("the query is empty: ask a question about the image")
        check_query(query)
        settings = _llm_settings(llm_base_url, llm_model, llm_api_key, tool_mode)
        pil = load_image(image)
        reports: list[SegmentReport] = []
        loaded = _load_segmenter(checkpoint, server, token, device, dtype)
        segmenter = _tiled(loaded, tile, tile_size, tile_overlap, reports)
        agent = Sam3Agent(
            segmenter,
            make_chat_model(settings),
            clicker=clicker_for(loaded),  # segment_at: SAM 3's tracker, sharing the engine's backbone
            thresholds=Thresholds(score=score_threshold, mask=mask_threshold),
            max_turns=max_turns,
        )
        answer = agent.run(pil, query, on_step=_print_step)
        paths = write_answer(answer, pil, out_dir or _default_out(image), tiling=reports)
    except Sam3AgentError as exc:
        raise _fail(exc) from None
    _print_tiling(reports)
    if answer.instances:
        out.print(_instances_table(list(answer.instances), "selected instances"))
    out.print(f"[bold]answer:[/] {answer.text}")
    if answer.count is not None:
        out.print(f"[bold]count:[/] {answer.count}")
    console.print(f"wrote {paths['overlay']} and {paths['json']}")
    if answer.status == "gave_up":
        raise typer.Exit(EXIT_FAILURE)


@app.command()
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
    tile: TileOpt.Tile = None,
    tile_size: TileOpt.Size = 1008,
    tile_overlap: TileOpt.Overlap = 0.2,
) -> None:
    """Run SAM 3 alone (no LLM): every instance of each phrase, optionally guided by exemplar boxes.

    With --point / --neg-point: the ONE object the clicks point at (SAM 3's tracker; --box is then its box).
    """
    from sam3_agent.images import load_image
    from sam3_agent.outputs import SegmentationRecord, write_segmentation

    if point or neg_point:
        clicks = {"points": point, "negative_points": neg_point, "boxes": box, "negative_boxes": neg_box}
        where = {"checkpoint": checkpoint, "device": device, "dtype": dtype, "server": server, "token": token}
        _segment_clicks(image, phrases, clicks, tile, where, mask_threshold, out_dir)
        return
    try:
        exemplars = tuple(ExemplarBox(box=parse_box(b)) for b in box or ()) + tuple(
            ExemplarBox(box=parse_box(b), positive=False) for b in neg_box or ()
        )
        prompts = [Prompt(text=p, boxes=exemplars) for p in phrases or ()] or [Prompt(boxes=exemplars)]
    except (ValueError, typer.BadParameter) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    try:
        pil = load_image(image)
        reports: list[SegmentReport] = []
        segmenter = _tiled(
            _load_segmenter(checkpoint, server, token, device, dtype), tile, tile_size, tile_overlap, reports
        )
        thresholds = Thresholds(score=score_threshold, mask=mask_threshold, nms_iom=nms)
        with console.status("Segmenting …", spinner="dots"):
            per_prompt, report = segmenter.segment_with_report(pil, prompts, thresholds)
        instances = [inst for group in per_prompt for inst in group]
        instances = [inst.model_copy(update={"id": i}) for i, inst in enumerate(instances)]
        record = SegmentationRecord(
            image=image, image_size=(pil.height, pil.width), prompts=prompts, instances=instances, tiling=report
        )
        paths = write_segmentation(record, pil, out_dir or _default_out(image))
    except Sam3AgentError as exc:
        raise _fail(exc) from None
    out.print(_instances_table(instances, f"{len(instances)} instance(s)"))
    for prompt, group in zip(prompts, per_prompt, strict=True):
        out.print(f"{prompt.label}: {len(group)}")
    _print_tiling(reports)
    console.print(f"wrote {paths['overlay']} and {paths['json']}")


def _segment_clicks(
    image: str,
    phrases: list[str] | None,
    clicks: dict[str, list[str] | None],
    tile: bool | None,
    where: dict[str, str | None],
    mask_threshold: float,
    out_dir: Path | None,
) -> None:
    """`segment --point`: the clicked object (``sam3_agent.cli_clicks``); bad clicks exit 2 before loading.

    ``clicks``: the raw --point / --neg-point / --box / --neg-box values; ``where``: checkpoint, device, dtype,
    server and token.
    """
    from sam3_agent.cli_clicks import click_prompt, segment_by_clicks

    try:
        if tile:
            raise ConfigError("--tile applies to phrase search, not to clicks on one object")
        prompt = click_prompt(phrases or [], **{k: v or [] for k, v in clicks.items()})
    except (ValueError, typer.BadParameter) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    segment_by_clicks(image, prompt, mask_threshold=mask_threshold, out_dir=out_dir or _default_out(image), **where)


# --- commands that live in other rooms -------------------------------------------------------------------------
# Each is a plain typed function in its own module that imports its heavy dependencies (gradio, mcp, fastapi,
# ray, ...) inside the function body, so `sam3-agent --help` stays fast. Register one per line below.
from sam3_agent.integrations.command import mcp as mcp_command  # noqa: E402

app.command("mcp")(mcp_command)
from sam3_agent.evaluation.command import evaluate as eval_command  # noqa: E402

app.command("eval")(eval_command)
from sam3_agent.demo.command import demo as demo_command  # noqa: E402

app.command("demo")(demo_command)
from sam3_agent.server.command import serve as serve_command  # noqa: E402

app.command("serve")(serve_command)


def main() -> None:  # pragma: no cover - console entry
    app(sys.argv[1:])
