"""Executors: where samples are predicted. All yield ``EvalRecord``s to ``run_eval``, which alone writes the
run's files, so every executor produces the same output and the same resume guarantees.

- ``SerialExecutor``: this process, one sample after another (one predictor).
- ``LocalPoolExecutor``: a pool of threads or processes on this machine, each worker building its own
  predictor (engine) once from a factory; images are loaded in the workers.
- ``RayExecutor``: Ray Data over a Ray cluster (or a local Ray instance): ``map_batches`` with a callable
  class, so each actor holds one engine (``num_gpus`` per actor), samples streamed one per block so records
  reach the driver as they finish.

A factory is a ``PredictorSpec`` or any picklable zero-argument callable returning a ``Predictor``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from multiprocessing import get_context
from typing import Any, Literal

import numpy as np

from sam3_agent.errors import ConfigError
from sam3_agent.evaluation.predictors import Predictor, PredictorSpec
from sam3_agent.evaluation.records import EvalRecord, Sample
from sam3_agent.evaluation.runner import evaluate_sample

Factory = PredictorSpec | Callable[[], Predictor]


def _build(factory: Factory) -> Predictor:
    return factory.build() if isinstance(factory, PredictorSpec) else factory()


class SerialExecutor:
    """Predict in this thread with one predictor: ``predictor`` itself, or built from a factory on entry."""

    def __init__(self, predictor: Predictor | Factory) -> None:
        self._source = predictor
        self._predictor: Predictor | None = None

    def __enter__(self) -> SerialExecutor:
        source = self._source
        self._predictor = source if hasattr(source, "predict") else _build(source)  # type: ignore[arg-type]
        return self

    def __exit__(self, *exc: object) -> None:
        self._predictor = None

    def run(self, samples: Sequence[Sample]) -> Iterator[EvalRecord]:
        if self._predictor is None:
            raise RuntimeError("SerialExecutor.run outside its `with` block")
        for sample in samples:
            yield evaluate_sample(sample, self._predictor, worker="main")


# --- local pool --------------------------------------------------------------------------------------------------

_local = threading.local()
_process_predictor: Predictor | None = None


def _thread_work(factory: Factory, sample: Sample) -> EvalRecord:
    if getattr(_local, "predictor", None) is None:
        _local.predictor = _build(factory)
    return evaluate_sample(sample, _local.predictor, worker=threading.current_thread().name)


def _process_work(factory: Factory, sample_json: str) -> str:
    # Built on the first task rather than in a pool initializer, so a CheckpointError reaches the caller as
    # itself instead of as a broken pool.
    global _process_predictor
    if _process_predictor is None:
        _process_predictor = _build(factory)
    record = evaluate_sample(Sample.model_validate_json(sample_json), _process_predictor, worker=f"pid-{os.getpid()}")
    return record.model_dump_json()


class LocalPoolExecutor:
    """``workers`` threads or processes on this machine, each with its own predictor (one engine each).

    Threads share the process (cheap to start; an engine releases the GIL inside torch); processes use the
    "spawn" start method (safe with CUDA) and need a picklable factory. At most ``2 * workers`` samples are
    in flight, so an interrupted run has little work in the air.
    """

    def __init__(self, factory: Factory, *, workers: int = 2, kind: Literal["thread", "process"] = "thread") -> None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        if kind not in ("thread", "process"):
            raise ConfigError(f"pool kind must be 'thread' or 'process', got {kind!r}")
        self.factory, self.workers, self.kind = factory, workers, kind
        self._pool: Executor | None = None

    def __enter__(self) -> LocalPoolExecutor:
        if self.kind == "thread":
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="eval-worker")
        else:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _submit(self, sample: Sample) -> Future:
        if self._pool is None:
            raise RuntimeError("LocalPoolExecutor.run outside its `with` block")
        if self.kind == "thread":
            return self._pool.submit(_thread_work, self.factory, sample)
        return self._pool.submit(_process_work, self.factory, sample.model_dump_json())

    def run(self, samples: Sequence[Sample]) -> Iterator[EvalRecord]:
        pending: set[Future] = set()
        queue = iter(samples)
        while True:
            for sample in queue:
                pending.add(self._submit(sample))
                if len(pending) >= 2 * self.workers:
                    break
            if not pending:
                return
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                result = future.result()  # re-raises ConfigError / CheckpointError from a worker
                yield result if isinstance(result, EvalRecord) else EvalRecord.model_validate_json(result)


# --- Ray Data ----------------------------------------------------------------------------------------------------


class RayPredictActor:
    """Ray Data callable class: one predictor (engine) per actor; a batch is a column of sample JSON strings."""

    def __init__(self, factory: Factory) -> None:
        self.predictor = _build(factory)
        self.worker = f"ray-pid-{os.getpid()}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        records = [
            evaluate_sample(Sample.model_validate_json(str(text)), self.predictor, worker=self.worker).model_dump_json()
            for text in batch["sample"]
        ]
        return {"record": np.array(records, dtype=object)}


class RayExecutor:
    """Predict with Ray Data: ``workers`` actors, each holding one predictor, ``num_gpus`` / ``num_cpus`` each.

    ``address``: a running cluster ("auto", "ray://host:10001", ...); None connects to the cluster Ray finds
    or starts a local instance. ``init_kwargs`` go to ``ray.init`` (e.g. ``num_cpus=2`` for a local one).
    Ray is shut down on exit only if this executor started it.
    """

    def __init__(
        self,
        factory: Factory,
        *,
        workers: int = 1,
        num_gpus: float = 0.0,
        num_cpus: float = 1.0,
        address: str | None = None,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.factory, self.workers, self.num_gpus, self.num_cpus = factory, workers, num_gpus, num_cpus
        self.address, self.init_kwargs = address, dict(init_kwargs or {})
        self._started = False

    def __enter__(self) -> RayExecutor:
        try:
            import ray
            import ray.data  # needs pyarrow (the ray[data] extra)
        except ImportError as exc:
            raise ConfigError(f"Ray Data is not installed ({exc}); install 'ray[data]'") from exc
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, **self.init_kwargs)
            self._started = True
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def run(self, samples: Sequence[Sample]) -> Iterator[EvalRecord]:
        if not samples:
            return
        import ray.data

        items = [{"sample": s.model_dump_json()} for s in samples]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            RayPredictActor,
            fn_constructor_kwargs={"factory": self.factory},
            batch_size=1,
            batch_format="numpy",
            concurrency=self.workers,
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus or None,
        )
        for row in dataset.iter_rows():
            yield EvalRecord.model_validate_json(str(row["record"]))
