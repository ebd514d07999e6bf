"""`sam3-agent eval`: evaluate the agent (or SAM 3 alone) on a dataset, or run it over a folder of images.

Heavy imports (torch, ray, matplotlib) happen inside the function, so `sam3-agent --help` stays fast.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from sam3_agent.cli_options import CheckpointOpt, DeviceOpt, DtypeOpt, LLMOpt, ServerOpt, TokenOpt
from sam3_agent.evaluation.datasets import DatasetKind

Kind = Literal[DatasetKind, "answers"]
"""A dataset format, or ``answers``: the generated answer suite (``sam3_agent.evaluation.answers``)."""

if TYPE_CHECKING:
    from rich.console import Console

    from sam3_agent.evaluation.answers.command import AnswerRun
    from sam3_agent.evaluation.predictors import PredictorSpec
    from sam3_agent.evaluation.records import Sample
    from sam3_agent.evaluation.runner import Executor

EXIT_BAD_INPUT, EXIT_FAILURE = 2, 1

_DATA_HELP = (
    "reasonseg: the ReasonSeg folder (or one split folder); refcoco*: the refer API data folder; countbench: the "
    "JSON/JSONL file; coco-count: a COCO instances JSON; folder: a folder of images; synthetic: a folder (written "
    "if it holds no synthetic set); answers: the folder for answers.json (optional)."
)
ANSWER_CASES = 405
"""Default number of answer-suite cases (``answers.DEFAULT_CASES``; not imported here to keep --help fast)."""


def evaluate(
    kind: Annotated[Kind, typer.Argument(help="Dataset format.")],
    data: Annotated[Path | None, typer.Argument(help=_DATA_HELP)] = None,
    split: Annotated[str | None, typer.Option(help="Split: val (ReasonSeg, RefCOCO*), test, testA, ...")] = None,
    split_by: Annotated[str | None, typer.Option(help="RefCOCO* refs variant: unc, umd, google.")] = None,
    images: Annotated[Path | None, typer.Option(help="Images folder (RefCOCO*: COCO train2014).")] = None,
    query: Annotated[str | None, typer.Option(help="folder: the query asked of every image.")] = None,
    task: Annotated[Literal["segment", "count"], typer.Option(help="folder: segment or count.")] = "segment",
    phrase: Annotated[str | None, typer.Option(help="folder: noun phrase for the baseline.")] = None,
    all_queries: Annotated[bool, typer.Option(help="ReasonSeg: every query per image, not LISA's first.")] = False,
    include_zero: Annotated[bool, typer.Option(help="coco-count: also ask about absent categories.")] = False,
    category: Annotated[list[str] | None, typer.Option(help="coco-count: only this category; repeat.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate the first N samples only.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder. Default: outputs/eval/...")] = None,
    predictor: Annotated[
        Literal["agent", "baseline"], typer.Option(help="agent (LLM + SAM 3) or baseline (SAM 3 alone, no LLM).")
    ] = "agent",
    baseline_mode: Annotated[Literal["top1", "all"], typer.Option(help="Baseline masks kept: best or all.")] = "top1",
    engine: Annotated[
        Literal["sam3", "scenes"], typer.Option(help="sam3, or scenes: the exact segmenter of a synthetic set.")
    ] = "sam3",
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    llm_base_url: LLMOpt.BaseUrl = None,
    llm_model: LLMOpt.Model = None,
    llm_api_key: LLMOpt.ApiKey = None,
    tool_mode: LLMOpt.ToolMode = None,
    max_turns: Annotated[int, typer.Option(min=1, help="LLM turns per sample.")] = 12,
    score_threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Keep instances >= this.")] = 0.5,
    mask_threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Mask pixel probability cut.")] = 0.5,
    workers: Annotated[int, typer.Option(min=1, help="Parallel workers, each with its own engine.")] = 1,
    pool: Annotated[Literal["thread", "process"], typer.Option(help="Local worker kind.")] = "thread",
    ray: Annotated[bool, typer.Option("--ray", help="Run on Ray Data (one engine per actor).")] = False,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (default: find or start).")] = None,
    gpus_per_worker: Annotated[float, typer.Option(min=0.0, help="Ray: GPUs per actor.")] = 0.0,
    cpus_per_worker: Annotated[float, typer.Option(min=0.0, help="Ray: CPUs per actor.")] = 1.0,
    fresh: Annotated[bool, typer.Option("--fresh", help="Delete an earlier run in the folder first.")] = False,
    retry_errors: Annotated[bool, typer.Option(help="Run failed samples of an earlier run again.")] = False,
    plots: Annotated[bool, typer.Option(help="Write PNG plots.")] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    synthetic_images: Annotated[int, typer.Option(min=1, help="synthetic: images to draw.")] = 8,
    cases: Annotated[int, typer.Option(min=1, help="answers: cases, kinds in turn (then --case-kind).")] = ANSWER_CASES,
    seed: Annotated[int, typer.Option(help="answers: generator seed.")] = 0,
    case_kind: Annotated[list[str] | None, typer.Option(help="answers: only this query kind; repeat.")] = None,
) -> None:
    """Evaluate on ReasonSeg / RefCOCO* / CountBench / COCO counting (or run over a folder); resumable.

    answers: the generated answer suite, passed per query kind (the LLM configured, else the built-in planner).
    """
    from rich.console import Console

    from sam3_agent.errors import ConfigError, ImageError, PromptError, Sam3AgentError

    console, out = Console(stderr=True), Console()
    llm_flags = {"base_url": llm_base_url, "model": llm_model, "api_key": llm_api_key, "tool_mode": tool_mode}
    if kind == "answers":
        from sam3_agent.evaluation.answers.command import AnswerRun

        run = AnswerRun(
            out_dir=data or out_dir or Path("outputs") / "eval" / "answers", cases=cases, seed=seed,
            kinds=tuple(case_kind or ()), llm_flags=llm_flags, max_turns=max_turns, workers=workers,
        )  # fmt: skip
        _answers(run, predictor, console=console, out=out, progress=progress)
        return
    if data is None:
        console.print(f"[bold red]error:[/] {kind} needs DATA (the dataset's path)")
        raise typer.Exit(EXIT_BAD_INPUT)
    choice = DatasetChoice(
        kind=kind, data=data, split=split, split_by=split_by, images=images, query=query, task=task,
        phrase=phrase, all_queries=all_queries, include_zero=include_zero, categories=tuple(category or ()),
    )  # fmt: skip
    try:
        spec = _spec(
            choice, predictor=predictor, engine=engine, checkpoint=checkpoint, device=device, dtype=dtype,
            server=server, token=token, baseline_mode=baseline_mode, max_turns=max_turns, score=score_threshold,
            mask=mask_threshold, llm_flags=llm_flags,
        )  # fmt: skip
        if spec.kind == "agent" and spec.llm is None:
            from sam3_agent.agent.chat_models import PLANNER_NOTICE

            console.print(PLANNER_NOTICE, soft_wrap=True, highlight=False, markup=False)
        samples = choice.load(limit=limit, synthetic_images=synthetic_images)
        executor = _executor(spec, workers, pool, ray, ray_address, gpus_per_worker, cpus_per_worker)
        run_dir = out_dir or Path("outputs") / "eval" / f"{kind}-{split or 'default'}-{predictor}"
        settings = {"dataset": choice.settings(), "predictor": _without_device(spec.public())}
        _run(samples, executor, run_dir, settings, fresh=fresh, retry_errors=retry_errors, plots=plots,
             progress=progress, console=console, out=out)  # fmt: skip
    except Sam3AgentError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        code = EXIT_BAD_INPUT if isinstance(exc, ImageError | PromptError | ConfigError) else EXIT_FAILURE
        raise typer.Exit(code) from None


def _answers(run: AnswerRun, predictor: str, *, console: Console, out: Console, progress: bool) -> None:
    """``eval answers``: the answer suite (exit 2 on bad input; low pass rates still exit 0)."""
    from sam3_agent.errors import ConfigError, Sam3AgentError
    from sam3_agent.evaluation.answers.command import run_answers

    try:
        if predictor != "agent":
            raise ConfigError("answers measures the agent's answers: --predictor baseline does not apply")
        run_answers(run, console=console, out=out, progress=progress)
    except Sam3AgentError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(EXIT_BAD_INPUT if isinstance(exc, ConfigError) else EXIT_FAILURE) from None


@dataclass(frozen=True)
class DatasetChoice:
    """Which samples to evaluate: the dataset format, where it is, and the reader's options."""

    kind: DatasetKind
    data: Path
    split: str | None = None
    split_by: str | None = None
    images: Path | None = None
    query: str | None = None
    task: Literal["segment", "count"] = "segment"
    phrase: str | None = None
    all_queries: bool = False
    include_zero: bool = False
    categories: tuple[str, ...] = ()

    def load(self, *, limit: int | None = None, synthetic_images: int = 8) -> list[Sample]:
        """The samples (a ``synthetic`` folder without a set gets one written first)."""
        from sam3_agent.evaluation.datasets import load_dataset
        from sam3_agent.evaluation.synthetic import MANIFEST, write_synthetic

        if self.kind == "synthetic" and not (self.data / MANIFEST).is_file():
            write_synthetic(self.data, n_images=synthetic_images)
        return load_dataset(
            self.kind, self.data, split=self.split, split_by=self.split_by, images=self.images, query=self.query,
            task=self.task, phrase=self.phrase, all_queries=self.all_queries, include_zero=self.include_zero,
            categories=list(self.categories) or None, limit=limit,
        )  # fmt: skip

    def settings(self) -> dict[str, Any]:
        """JSON-able identity of the dataset selection (paths resolved), for ``run.json``."""
        data = asdict(self)
        data["data"] = str(self.data.resolve())
        data["images"] = None if self.images is None else str(self.images.resolve())
        data["categories"] = list(self.categories)
        return data


def _without_device(predictor: dict[str, Any]) -> dict[str, Any]:
    # The device may change between a run and its resume; the numbers do not depend on it.
    return {k: v for k, v in predictor.items() if k != "device"}


def _spec(
    choice: DatasetChoice,
    *,
    predictor: str,
    engine: str,
    checkpoint: str | None,
    device: str | None,
    dtype: str | None,
    server: str | None,
    token: str | None,
    baseline_mode: str,
    max_turns: int,
    score: float,
    mask: float,
    llm_flags: dict[str, str | None],
) -> PredictorSpec:
    from pydantic import ValidationError

    from sam3_agent.agent.llm_settings import LLMSettings
    from sam3_agent.errors import ConfigError
    from sam3_agent.evaluation.predictors import PredictorSpec
    from sam3_agent.schema import Thresholds
    from sam3_agent.server.settings import TOKEN_ENV

    if engine == "scenes" and choice.kind != "synthetic":
        raise ConfigError("--engine scenes segments the images of a synthetic set only (kind 'synthetic')")
    if engine == "scenes" and (server or token):
        raise ConfigError("--server/--token run SAM 3 on a segmentation server: they do not go with --engine scenes")
    if server and (checkpoint or device or dtype):
        given = ", ".join(f for f, v in (("--checkpoint", checkpoint), ("--device", device), ("--dtype", dtype)) if v)
        raise ConfigError(f"--server runs SAM 3 on the server: drop {given} (set them on `sam3-agent serve`)")
    if token and not server:
        raise ConfigError("--token is the segmentation server's token: give --server URL too")
    llm = LLMSettings.configured(**llm_flags) if predictor == "agent" else None  # None: the built-in planner
    try:
        return PredictorSpec(
            kind=predictor,
            engine=engine,
            # resolved here so that workers on other machines load what this machine was told
            checkpoint=None if server else checkpoint or os.environ.get("SAM3_CHECKPOINT") or None,
            device=device,
            dtype=dtype,
            server=server,
            server_token=(token or os.environ.get(TOKEN_ENV) or None) if server else None,
            scenes=str(choice.data) if engine == "scenes" else None,
            thresholds=Thresholds(score=score, mask=mask),
            baseline_mode=baseline_mode,
            llm=llm,
            max_turns=max_turns,
        )
    except ValidationError as exc:
        raise ConfigError(f"invalid predictor settings: {exc}") from exc


def _executor(
    spec: PredictorSpec, workers: int, pool: str, ray: bool, address: str | None, gpus: float, cpus: float
) -> Executor:
    from sam3_agent.evaluation.batch import LocalPoolExecutor, RayExecutor, SerialExecutor

    if ray:
        return RayExecutor(spec, workers=workers, num_gpus=gpus, num_cpus=cpus, address=address)
    if workers == 1 and pool == "thread":
        return SerialExecutor(spec)
    return LocalPoolExecutor(spec, workers=workers, kind="process" if pool == "process" else "thread")


def _run(
    samples: list[Sample],
    executor: Executor,
    run_dir: Path,
    settings: dict[str, Any],
    *,
    fresh: bool,
    retry_errors: bool,
    plots: bool,
    progress: bool,
    console: Console,
    out: Console,
) -> None:
    from sam3_agent.evaluation.report import group_summaries, summary_table, write_plots, write_summary
    from sam3_agent.evaluation.runner import run_eval

    result = run_eval(
        samples, executor, run_dir, settings=settings, resume=not fresh, retry_errors=retry_errors,
        console=console, progress=progress,
    )  # fmt: skip
    rows = group_summaries(result.records)
    out.print(summary_table(rows, title=f"{len(result.records)} sample(s), {result.computed} computed now"))
    written = [write_summary(rows, run_dir / "summary.json")]
    if plots:
        written += write_plots(result.records, run_dir / "plots")
    console.print(f"wrote {run_dir / 'records.jsonl'}, " + ", ".join(str(p) for p in written))
