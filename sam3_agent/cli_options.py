"""Typer options shared by the commands (ask, segment, demo, mcp, eval, serve): one definition each."""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

CheckpointOpt = Annotated[
    str | None,
    typer.Option("--checkpoint", "-c", help="SAM 3 checkpoint: local directory or hub id. Env: SAM3_CHECKPOINT."),
]
DeviceOpt = Annotated[str | None, typer.Option(help="Torch device, e.g. cuda, cuda:1, cpu. Default: CUDA if present.")]
DtypeOpt = Annotated[str | None, typer.Option(help="float32, bfloat16 or float16. Default: bf16 on CUDA, fp32 on CPU.")]
ServerOpt = Annotated[
    str | None, typer.Option(help="Use a running `sam3-agent serve` at this URL instead of loading SAM 3 here.")
]
TokenOpt = Annotated[
    str | None, typer.Option(help="Bearer token of the server. Default: $SAM3_AGENT_SERVER_TOKEN.", show_default=False)
]

OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace an earlier result of this command in the output folder.")
]


class LLMOpt:
    """The language-model options of ask, demo, eval and mcp, e.g. ``llm_model: LLMOpt.Model = None``.

    Unset, each falls back to its environment variable (``LLMSettings.configured``; the demo reads the same ones).
    """

    BaseUrl = Annotated[
        str | None,
        typer.Option(
            "--llm-base-url",
            help="OpenAI-compatible endpoint of the language model, e.g. http://localhost:8000/v1. "
            "Env: SAM3_AGENT_LLM_BASE_URL / OPENAI_BASE_URL.",
        ),
    ]
    Model = Annotated[
        str | None,
        typer.Option(
            "--llm-model",
            help="Model at the endpoint, or local:PATH (a vision-language model run in-process). "
            "Env: SAM3_AGENT_LLM_MODEL. Without one the built-in planner answers (no LLM; common query shapes only).",
        ),
    ]
    ApiKey = Annotated[
        str | None,
        typer.Option(
            "--llm-api-key",
            help="API key of the endpoint (stays on this machine; local servers need none). "
            "Env: SAM3_AGENT_LLM_API_KEY / OPENAI_API_KEY.",
        ),
    ]
    ToolMode = Annotated[
        str | None,
        typer.Option(
            "--tool-mode", help="auto, native or text (for endpoints without tools). Env: SAM3_AGENT_LLM_TOOL_MODE."
        ),
    ]
    Timeout = Annotated[
        float | None,
        typer.Option(
            "--llm-timeout",
            help="Seconds to wait for one answer of the endpoint (a timed-out request is tried once more). "
            "Default: 120. Env: SAM3_AGENT_LLM_TIMEOUT.",
            show_default=False,
        ),
    ]


class TileOpt:
    """The tiling options of ask and segment (``sam3_agent.engine.tiling``); neither flag: auto mode."""

    Tile = Annotated[
        bool | None,
        typer.Option(
            "--tile/--no-tile",
            help="Always segment in overlapping tiles at native resolution (crowds, large images) / never. "
            "Default: auto: tiles images longer than 2016 px, and results near SAM 3's limit of objects per pass.",
            show_default=False,
        ),
    ]
    Size = Annotated[int, typer.Option("--tile-size", min=32, help="Tile side in pixels (SAM 3's input is 1008).")]
    Overlap = Annotated[
        float, typer.Option("--tile-overlap", min=0.0, max=0.9, help="Least overlap of neighbouring tiles (fraction).")
    ]


QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print only the results and errors: no progress, steps or notes.")
]


def parse_numbers(text: str, what: str, layout: str) -> tuple[float, ...]:
    """Parse comma-separated numbers laid out as ``layout`` ("x0,y0,x1,y1", "x,y"): ``what`` names them in the
    ``typer.BadParameter`` raised when they are not numbers or not as many."""
    expected = len(layout.split(","))
    count = {2: "two", 4: "four"}.get(expected, str(expected))
    try:
        values = tuple(float(p) for p in text.replace(" ", "").split(","))
    except ValueError:
        raise typer.BadParameter(f"{what} {text!r} must be {count} numbers {layout}") from None
    if len(values) != expected:
        raise typer.BadParameter(f"{what} {text!r} has {len(values)} numbers; expected {count}: {layout}")
    if not all(map(math.isfinite, values)):
        raise typer.BadParameter(f"{what} {text!r} must be {count} finite numbers {layout} (pixels), not nan or inf")
    return values


# --- help without type tags ---------------------------------------------------------------------------------
# typer 0.2x prints a type tag beside every parameter in --help (`<str>`, `<list[str]>`, `--help <bool>`), and
# arguments show one even with a metavar. Our help texts say what each value is; the parameters of the commands
# below show their metavar (when one is set) and no tag.


class _UntaggedArgument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class _UntaggedOption(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None if self.is_flag else self.metavar


def _untagged(param: Any) -> Any:
    """``param`` re-classed to print no type tag (the subclasses add no state, only the help display)."""
    if type(param) is TyperArgument:
        param.__class__ = _UntaggedArgument
    elif type(param) is TyperOption:
        param.__class__ = _UntaggedOption
    return param


class UntaggedCommand(TyperCommand):
    """A command whose --help lists its parameters without typer's type tags (``app.command(cls=...)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _untagged(param)

    def get_help_option(self, ctx: Any) -> Any:
        return _untagged(super().get_help_option(ctx))


class UntaggedGroup(TyperGroup):
    """The command group of ``sam3-agent``, its --help without type tags (``typer.Typer(cls=...)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _untagged(param)

    def get_help_option(self, ctx: Any) -> Any:
        return _untagged(super().get_help_option(ctx))
