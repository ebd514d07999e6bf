"""Scale-out past one GPU: the segmentation server as a Ray Serve application, same HTTP API.

Two deployments:

- ``Sam3Replica`` (``num_replicas`` of them, one GPU each when the cluster has GPUs) holds a ``Sam3Engine``
  and batches the jobs routed to it with ``@serve.batch`` (up to ``max_batch`` prompts, waiting at most
  ``max_wait_ms``), running each batch through ``Sam3Engine.segment_batch``;
- ``Sam3Ingress`` serves the FastAPI app of ``api.create_app`` (auth, limits, image registry, metrics),
  handing each job to a replica through a ``DeploymentHandle``.

Images registered through one ingress replica are known to that replica only; with several ingress
replicas, ``RemoteSegmenter`` re-registers transparently when a request lands on another one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from sam3_agent.server.batcher import JobTimeout, QueueFull, ShuttingDown
from sam3_agent.server.jobs import Outcome, PerPrompt, SegmentJob, run_jobs
from sam3_agent.server.settings import ServerSettings

APP_NAME = "sam3"


def _prompts_in(jobs: list[SegmentJob]) -> int:
    return sum(job.size for job in jobs)


@serve.deployment(name="Sam3Replica")
class Sam3Replica:
    """One engine per replica; batches jobs across callers (``@serve.batch``) into shared forward passes."""

    def __init__(
        self,
        checkpoint: str | None,
        device: str | None,
        dtype: str | None,
        cache_size: int,
        max_batch: int,
        max_wait_s: float,
    ) -> None:
        from sam3_agent.engine.transformers_engine import Sam3Engine

        self.engine = Sam3Engine(checkpoint, device=device, dtype=dtype, cache_size=cache_size, max_batch=max_batch)
        self.engine.load()
        self.max_batch = max_batch
        self._batched.set_max_batch_size(max_batch)
        self._batched.set_batch_wait_timeout_s(max_wait_s)

    async def segment(self, job: SegmentJob) -> Outcome:
        """The job's per-prompt instances, or the exception it failed with (returned, not raised)."""
        if job.size > self.max_batch:  # Serve refuses an item larger than a whole batch: run it alone
            return (await asyncio.to_thread(run_jobs, self.engine, [job]))[0]
        return await self._batched(job)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005, batch_size_fn=_prompts_in)
    async def _batched(self, jobs: list[SegmentJob]) -> list[Outcome]:
        return await asyncio.to_thread(run_jobs, self.engine, jobs)


class RayDispatcher:
    """The ``batcher.Dispatcher`` of the ingress: sends each job to a ``Sam3Replica`` through its handle.

    At most ``max_queue`` jobs are in flight from this ingress replica (more get ``QueueFull``).
    """

    def __init__(self, replicas: DeploymentHandle, *, max_queue: int, description: dict[str, str]) -> None:
        self._replicas = replicas
        self.max_queue = max_queue
        self._description = description
        self._in_flight = 0
        self._closing = False

    @property
    def queue_depth(self) -> int:
        return self._in_flight

    async def start(self) -> None:
        self._closing = False

    async def submit(self, job: SegmentJob, timeout: float) -> PerPrompt:
        if self._closing:
            raise ShuttingDown("the server is shutting down and accepts no new requests")
        if self._in_flight >= self.max_queue:
            raise QueueFull(f"the queue is full ({self.max_queue} requests in flight)", 1)
        self._in_flight += 1
        response = self._replicas.segment.remote(job)
        try:
            outcome = await asyncio.wait_for(_result(response), timeout)
        except TimeoutError:
            response.cancel()
            raise JobTimeout(f"no result within the request timeout of {timeout:g} s (the server is busy)") from None
        finally:
            self._in_flight -= 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def close(self, timeout: float) -> None:
        self._closing = True
        deadline = time.monotonic() + timeout
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def describe(self) -> dict[str, str]:
        return self._description


async def _result(response: Any) -> Outcome:
    return await response


@serve.deployment(name="Sam3Ingress")
@serve.ingress()
class Sam3Ingress:
    """The HTTP API of ``api.create_app`` in front of the ``Sam3Replica`` deployment."""

    def __init__(self, replicas: DeploymentHandle, settings: ServerSettings, description: dict[str, str]) -> None:
        self._dispatcher = RayDispatcher(replicas, max_queue=settings.max_queue, description=description)
        self._settings = settings

    def __serve_build_asgi_app__(self) -> Any:
        from sam3_agent.server.api import create_app

        return create_app(self._dispatcher, self._settings)


def build_ray_app(
    checkpoint: str | None,
    settings: ServerSettings,
    *,
    replicas: int = 1,
    gpus_per_replica: float = 0.0,
    cpus_per_replica: float = 1.0,
    device: str | None = None,
    dtype: str | None = None,
    cache_size: int = 8,
    ingress_replicas: int = 1,
    ingress_cpus: float = 1.0,
) -> Any:
    """The Serve application (bind graph): ``replicas`` engines behind ``ingress_replicas`` HTTP ingresses.

    ``gpus_per_replica`` 1 puts each engine on its own GPU (Ray sets CUDA_VISIBLE_DEVICES; ``device``
    None then picks it); 0 runs on CPU. ``cpus_per_replica`` / ``ingress_cpus``: Ray CPUs each one reserves.
    """
    actor_options: dict[str, Any] = {"num_cpus": cpus_per_replica}
    if gpus_per_replica:
        actor_options["num_gpus"] = gpus_per_replica
    engines = Sam3Replica.options(
        num_replicas=replicas,
        ray_actor_options=actor_options,
        # enough concurrent calls per replica to fill a batch twice over
        max_ongoing_requests=max(32, 2 * settings.max_batch),
    ).bind(checkpoint, device, dtype, cache_size, settings.max_batch, settings.max_wait_ms / 1000.0)
    hardware = f"{gpus_per_replica:g} GPU" if gpus_per_replica else "CPU"
    description = {"segmenter": f"Sam3Engine on Ray Serve ({replicas} replica(s), {hardware} each)"}
    if device or dtype:
        description |= {k: v for k, v in (("device", device), ("dtype", dtype)) if v}
    return Sam3Ingress.options(
        num_replicas=ingress_replicas,
        ray_actor_options={"num_cpus": ingress_cpus},
        max_ongoing_requests=max(100, settings.max_queue),
    ).bind(engines, settings, description)


def start_ray_serve(
    checkpoint: str | None,
    settings: ServerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: int = 1,
    gpus_per_replica: float | None = None,
    address: str | None = None,
    **app_options: Any,
) -> str:
    """Connect to (or start) Ray, start Serve's HTTP proxy on ``host:port`` and run the app; its base URL.

    ``gpus_per_replica`` None: 1 when the cluster has a GPU, else 0 (CPU replicas).
    ``address``: a Ray cluster ("auto", "ray://head:10001"); None starts a local instance if none runs.
    """
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False)
    if gpus_per_replica is None:
        gpus_per_replica = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    serve.start(http_options={"host": host, "port": port})
    app = build_ray_app(checkpoint, settings, replicas=replicas, gpus_per_replica=gpus_per_replica, **app_options)
    serve.run(app, name=APP_NAME, route_prefix="/")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{shown}:{port}"
