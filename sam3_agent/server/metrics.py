"""Prometheus metrics of one server app, in a registry of its own (several apps may live in one process).

Exposed at ``GET /metrics``: requests and latency per route and status, errors per kind, queue depth,
batch sizes (requests and prompts per forward batch) and batch durations, the image registry (images,
decoded bytes, the byte cap, evictions), and, when the segmenter counts them (``Sam3Engine``), backbone runs
and backbone-feature cache hits / misses.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from sam3_agent.server.image_registry import ImageRegistry

ROUTES = ("/v1/images", "/v1/segment", "/v1/info", "/healthz", "/readyz", "/metrics")
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _EngineCounters(Collector):
    """Reads ``backbone_calls`` / ``cache_hits`` / ``cache_misses`` from the segmenter at scrape time."""

    _FIELDS = (
        ("backbone_calls", "sam3_engine_backbone_runs", "Vision backbone runs (images encoded)."),
        ("cache_hits", "sam3_engine_feature_cache_hits", "Backbone-feature cache hits."),
        ("cache_misses", "sam3_engine_feature_cache_misses", "Backbone-feature cache misses."),
    )

    def __init__(self, segmenter: object) -> None:
        self._segmenter = segmenter

    def collect(self) -> Iterator[Metric]:
        for attribute, name, doc in self._FIELDS:
            value = getattr(self._segmenter, attribute, None)
            if isinstance(value, int):
                yield CounterMetricFamily(name, doc, value=value)


class _RegistryCounters(Collector):
    """Reads ``evictions`` from the image registry at scrape time."""

    def __init__(self, images: ImageRegistry) -> None:
        self._images = images

    def collect(self) -> Iterator[Metric]:
        doc = "Registered images evicted to stay within the registry's image count or byte cap."
        yield CounterMetricFamily("sam3_server_registry_evictions", doc, value=self._images.evictions)


class ServerMetrics:
    """The metrics of one app; ``segmenter`` (optional) is read for engine counters at scrape time,
    ``images`` (optional) for the image registry's size, bytes, cap and evictions."""

    def __init__(self, segmenter: object | None = None, images: ImageRegistry | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sam3_server_requests", "HTTP requests answered, by route and status.", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "sam3_server_request_seconds",
            "Time to answer a request, by route.",
            ["route"],
            buckets=_SECONDS,
            registry=r,
        )
        self.errors = Counter("sam3_server_errors", "Error answers, by kind.", ["type"], registry=r)
        self.queue_depth = Gauge("sam3_server_queue_depth", "Requests waiting for a forward batch.", registry=r)
        self.batch_requests = Histogram(
            "sam3_server_batch_requests", "Requests per forward batch.", buckets=_SIZES, registry=r
        )
        self.batch_prompts = Histogram(
            "sam3_server_batch_prompts", "Prompts per forward batch.", buckets=_SIZES, registry=r
        )
        self.batch_seconds = Histogram(
            "sam3_server_batch_seconds", "Time to run one batch.", buckets=_SECONDS, registry=r
        )
        if images is not None:
            self._registry_gauges(images)
        if segmenter is not None:
            r.register(_EngineCounters(segmenter))

    def _registry_gauges(self, images: ImageRegistry) -> None:
        r = self.registry
        count = Gauge("sam3_server_registered_images", "Images held by the image registry.", registry=r)
        count.set_function(lambda: float(len(images)))
        held = Gauge(
            "sam3_server_registered_image_bytes", "Decoded bytes of the images the registry holds.", registry=r
        )
        held.set_function(lambda: float(images.nbytes))
        cap = Gauge(
            "sam3_server_registered_image_bytes_limit", "The registry's cap on decoded image bytes.", registry=r
        )
        cap.set(images.max_bytes)
        r.register(_RegistryCounters(images))

    # -- BatchObserver ---------------------------------------------------------------------------------

    def observe_batch(self, requests: int, prompts: int, seconds: float) -> None:
        self.batch_requests.observe(requests)
        self.batch_prompts.observe(prompts)
        self.batch_seconds.observe(seconds)

    def set_queue_depth(self, depth: int) -> None:
        self.queue_depth.set(depth)

    # -- requests --------------------------------------------------------------------------------------

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        route = path if path in ROUTES else "other"
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def count_error(self, kind: str) -> None:
        self.errors.labels(type=kind).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
