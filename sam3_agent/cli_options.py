"""Typer options shared by the commands (ask, segment, demo, mcp, eval, serve): one definition each."""

from __future__ import annotations

from typing import Annotated

import typer

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
