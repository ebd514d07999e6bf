"""Runs: samples -> predictions -> one JSONL record per sample, resumable after a crash at any point.

Layout of a run folder: ``records.jsonl`` (one ``EvalRecord`` per line, in completion order), ``run.json``
(what was evaluated and how; a resume with different settings is refused), ``summary.json`` and ``plots/``.

Durability: each record is appended with ONE ``os.write`` of the whole line followed by ``fsync``, so a kill
leaves at most one partial last line; on resume that line is cut off and its sample runs again. Samples
already in the file are skipped, and every sample id is written at most once, so nothing is lost and nothing
is counted twice. One writer at a time: the records file is locked (``flock``) for the run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sam3_agent.errors import CheckpointError, ConfigError
from sam3_agent.evaluation.metrics import score_sample
from sam3_agent.evaluation.predictors import Predictor
from sam3_agent.evaluation.records import EvalRecord, Sample, Timings
from sam3_agent.outputs import write_json_atomic

try:  # POSIX only; elsewhere runs are simply not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

RECORDS = "records.jsonl"
RUN_INFO = "run.json"
DELAY_ENV = "SAM3_AGENT_EVAL_DELAY"
"""Seconds to sleep before each sample (a test hook: gives an interruption test time to strike)."""


class RunError(ConfigError):
    """The run folder cannot be used: locked by another run, a corrupt record, or different settings."""


class Executor(Protocol):
    """Turns samples into records, in any order; used as a context manager (workers start and stop)."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...

    def run(self, samples: Sequence[Sample]) -> Iterator[EvalRecord]: ...


def evaluate_sample(sample: Sample, predictor: Predictor, *, worker: str = "") -> EvalRecord:
    """Load the image, predict, score, time. A failure becomes a record with ``error`` set (scored as an empty
    answer); ``ConfigError`` / ``CheckpointError`` propagate, since every other sample would fail the same way."""
    from sam3_agent.images import load_image

    delay = float(os.environ.get(DELAY_ENV) or 0)
    if delay > 0:
        time.sleep(delay)
    started = time.perf_counter()
    loaded = predicted = started
    prediction, error = None, None
    try:
        image = load_image(sample.image, allow_private_urls=True)  # the dataset file names it: any address
        loaded = time.perf_counter()
        prediction = predictor.predict(sample, image)
        predicted = time.perf_counter()
        metrics = score_sample(sample, prediction)
    except (ConfigError, CheckpointError):
        raise
    except Exception as exc:  # a bad image, an LLM outage, a bug: recorded, and the run goes on
        error = f"{type(exc).__name__}: {exc}"
        metrics = score_sample(sample, None)
        prediction = None
    ended = time.perf_counter()
    return EvalRecord(
        sample_id=sample.id,
        dataset=sample.dataset,
        split=sample.split,
        subset=sample.subset,
        task=sample.task,
        image=sample.image,
        query=sample.query,
        gt_count=sample.gt_count,
        prediction=prediction,
        metrics=metrics,
        timings=Timings(
            load_s=max(0.0, loaded - started), predict_s=max(0.0, predicted - loaded), total_s=ended - started
        ),
        error=error,
        worker=worker,
    )


class RecordsFile:
    """The append-only ``records.jsonl`` of a run, opened and locked as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> RecordsFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._fd)
                self._fd = None
                raise RunError(
                    f"another run is writing {self.path}; wait for it or use another output folder"
                ) from None
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None

    def load(self) -> list[EvalRecord]:
        """The records written so far, first occurrence of each sample id. A partial last line (a crash in the
        middle of a write) is cut off the file. Raises RunError for an unreadable line elsewhere."""
        data = self.path.read_bytes() if self.path.exists() else b""
        end = data.rfind(b"\n") + 1
        if end < len(data):
            os.truncate(self.path, end)
            data = data[:end]
        records: dict[str, EvalRecord] = {}
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = EvalRecord.model_validate_json(line)
            except ValueError as exc:
                raise RunError(f"line {number} of {self.path} is not a record ({exc}); remove it to resume") from exc
            records.setdefault(record.sample_id, record)
        return list(records.values())

    def append(self, record: EvalRecord) -> None:
        """Append one record durably: the whole line in one write, then fsync."""
        if self._fd is None:
            raise RuntimeError("RecordsFile.append outside its `with` block")
        line = memoryview(record.to_line())
        while line:  # os.write may write less than asked on some filesystems
            line = line[os.write(self._fd, line) :]
        os.fsync(self._fd)

    def rewrite(self, records: Iterable[EvalRecord]) -> None:
        """Replace the file's content with ``records`` atomically (temporary file, fsync, rename)."""
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                for record in records:
                    fh.write(record.to_line())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if self._fd is not None:  # keep appending (and holding the lock) on the new file
            os.close(self._fd)
            self._fd = None
            self.__enter__()


@dataclass
class RunResult:
    """What a run produced: the records of the samples asked for (resumed ones included), how many of them
    were computed by this call, and the run folder."""

    records: list[EvalRecord]
    computed: int
    out_dir: Path


def _check_settings(records_file: RecordsFile, settings: dict[str, Any], resume: bool) -> None:
    """Start over (``resume`` False) or refuse to resume a run made with other settings; record ``settings``."""
    out_dir = records_file.path.parent
    info = out_dir / RUN_INFO
    if not resume:
        records_file.rewrite(())  # emptied in place: the open, locked file stays the one appended to
        for name in (RUN_INFO, "summary.json"):
            (out_dir / name).unlink(missing_ok=True)
        shutil.rmtree(out_dir / "plots", ignore_errors=True)
    elif info.exists() and (out_dir / RECORDS).exists():
        before = _flatten(json.loads(info.read_text(encoding="utf-8")).get("settings") or {})
        now = _flatten(json.loads(json.dumps(settings)))  # compare as JSON would store it (tuples -> lists)
        if before != now:
            changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            raise RunError(
                f"{out_dir} holds a run with other settings (differing: {', '.join(changed)}); "
                "resume with the same settings, start over with --fresh, or use another --out"
            )
    write_json_atomic(info, {"settings": settings})


def _flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}, so a refused resume can name the setting that changed."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def run_eval(
    samples: Sequence[Sample],
    executor: Executor,
    out_dir: str | Path,
    *,
    settings: dict[str, Any] | None = None,
    resume: bool = True,
    retry_errors: bool = False,
    console: Console | None = None,
    progress: bool = True,
    on_record: Callable[[EvalRecord], None] | None = None,
) -> RunResult:
    """Evaluate ``samples`` into ``out_dir/records.jsonl``, skipping samples already recorded there.

    Args:
        settings: JSON-able description of the dataset and predictor; a resume with other settings raises.
        resume: False deletes an earlier run in ``out_dir`` first.
        retry_errors: run again the samples whose earlier record has an error (their old line is dropped).
        progress: show a progress bar with ETA on ``console`` (stderr by default).
        on_record: called with each new record after it is on disk.

    Returns the records of ``samples`` (each once, in sample order) and the count computed in this call.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    console = console or Console(stderr=True)
    computed = 0
    with RecordsFile(out_dir / RECORDS) as records_file:
        _check_settings(records_file, settings or {}, resume)
        done = {r.sample_id: r for r in records_file.load()}
        if retry_errors and any(r.error for r in done.values()):
            done = {k: r for k, r in done.items() if r.error is None}
            records_file.rewrite(done.values())
        todo = [s for s in samples if s.id not in done]
        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
            resumed = len(samples) - len(todo)
            task = bar.add_task(_describe(resumed, 0), total=len(samples), completed=resumed)
            errors = 0
            with executor:
                for record in executor.run(todo):
                    if record.sample_id in done:  # an executor must not repeat a sample; never count it twice
                        continue
                    records_file.append(record)
                    done[record.sample_id] = record
                    computed += 1
                    errors += record.error is not None
                    bar.update(task, advance=1, description=_describe(resumed, errors))
                    if on_record is not None:
                        on_record(record)
    ordered = [done[s.id] for s in samples if s.id in done]
    return RunResult(records=ordered, computed=computed, out_dir=out_dir)


def _describe(resumed: int, errors: int) -> str:
    parts = ["eval"]
    if resumed:
        parts.append(f"({resumed} resumed)")
    if errors:
        parts.append(f"[red]{errors} failed[/]")
    return " ".join(parts)
