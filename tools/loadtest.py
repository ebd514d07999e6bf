"""Load-test the segmentation server: N concurrent clients send a fixed number of segment requests.

    python tools/loadtest.py                         # tiny checkpoint, 8 clients, 400 requests, 16 vs 1
    python tools/loadtest.py --clients 16 --requests 2000 --checkpoint ./sam3-tiny
    python tools/loadtest.py --url http://gpu-box:8000 --token $SAM3_AGENT_SERVER_TOKEN   # an existing server

Without --url it starts ``sam3-agent serve`` twice in a subprocess on a free port (a tiny random checkpoint
unless --checkpoint is given): once with dynamic batching (--max-batch, default 16) and once with batch
size 1. For each it prints the throughput, p50 / p99 latency, errors, lost requests, the mean batch size
and the server's CPU time per request; then the throughput ratio (the issue's target: >= 3x at 8 clients,
with no failed or lost request). Each client has its own image (registered once, untimed) and sends one
phrase per request. Exit status 0 when nothing failed or was lost, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PHRASES = ("cup", "person", "red hat", "laptop", "dog", "bottle", "white car", "chair")


@dataclass
class Run:
    """What one load run measured."""

    label: str
    requests: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    mean_batch: float | None = None
    server_cpu: float | None = None  # CPU seconds the server process spent on the timed requests

    @property
    def lost(self) -> int:
        return self.requests - len(self.latencies) - len(self.errors)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[round(q) - 1]

    def line(self) -> str:
        batch = f", mean batch {self.mean_batch:.1f} requests" if self.mean_batch is not None else ""
        if self.server_cpu is not None and self.latencies:
            batch += f", server CPU {1000 * self.server_cpu / len(self.latencies):.1f} ms/request"
        return (
            f"{self.label:<34} {self.throughput:8.1f} req/s   p50 {1000 * self.percentile(50):7.1f} ms   "
            f"p99 {1000 * self.percentile(99):7.1f} ms   errors {len(self.errors)}   lost {self.lost}{batch}"
        )


def test_images(count: int) -> list:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) for _ in range(count)]


def load(
    url: str,
    token: str | None,
    clients: int,
    requests: int,
    label: str,
    warmup: int = 2,
    cpu_seconds: Callable[[], float] | None = None,
    client_kind: str = "raw",
) -> Run:
    """``clients`` threads, each with its own image (registered once, untimed), share ``requests`` requests.

    ``client_kind`` "raw" posts a prepared JSON body over one keep-alive httpx connection per client and
    checks the answer's shape (one instance list per prompt), so that the clients, which run on this
    machine too, take little CPU from the server; "remote" goes through ``RemoteSegmenter`` (request
    models, retries, instances validated into pydantic models), as the agent does.
    ``cpu_seconds`` (optional) reads the server's CPU time, to report CPU per request.
    """
    import httpx

    from sam3_agent.server.client import RemoteSegmenter

    images = test_images(clients)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connections = [httpx.Client(base_url=url, headers=headers, timeout=300) for _ in range(clients)]
    remotes = [RemoteSegmenter(url, token=token, timeout=300, client=http) for http in connections]
    image_ids = [remote.register(image) for remote, image in zip(remotes, images, strict=True)]
    senders = [
        _remote_sender(remote, image) if client_kind == "remote" else _raw_sender(http, image_id)
        for remote, http, image, image_id in zip(remotes, connections, images, image_ids, strict=True)
    ]
    for send in senders:  # warm-up is not timed
        for _ in range(warmup):
            send("cup")
    run = Run(label, requests)
    counter = iter(range(requests))
    lock = threading.Lock()

    def client(send: Callable[[str], None]) -> None:
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            started = time.perf_counter()
            try:
                send(PHRASES[n % len(PHRASES)])
            except Exception as exc:
                with lock:
                    run.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                run.latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(send,), daemon=True) for send in senders]
    before = batch_counts(url)
    cpu_before = cpu_seconds() if cpu_seconds is not None else None
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - started
    after = batch_counts(url)
    if cpu_seconds is not None and cpu_before is not None:
        run.server_cpu = cpu_seconds() - cpu_before
    if before is not None and after is not None and after[1] > before[1]:
        run.mean_batch = (after[0] - before[0]) / (after[1] - before[1])
    for http in connections:
        http.close()
    return run


def _remote_sender(remote, image) -> Callable[[str], None]:
    from sam3_agent.schema import Prompt

    def send(phrase: str) -> None:
        found = remote.segment(image, [Prompt(text=phrase)])
        if len(found) != 1:
            raise RuntimeError(f"expected 1 result list, got {len(found)}")

    return send


def _raw_sender(http, image_id: str) -> Callable[[str], None]:
    """Posts prepared JSON through ``http`` (an httpx.Client with the server's base URL and auth header)."""
    import json

    def send(phrase: str) -> None:
        body = json.dumps({"image_id": image_id, "prompts": [{"text": phrase}]})
        response = http.post("/v1/segment", content=body, headers={"Content-Type": "application/json"})
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        instances = json.loads(response.content)["instances"]
        if len(instances) != 1 or not isinstance(instances[0], list):
            raise RuntimeError(f"expected 1 result list, got {len(instances)}")

    return send


def batch_counts(url: str) -> tuple[float, float] | None:
    """(requests run, batches run) so far, from the server's /metrics (None if it does not say)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(url + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    if "sam3_server_batch_requests_count" not in values:
        return None
    return values["sam3_server_batch_requests_sum"], values["sam3_server_batch_requests_count"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``sam3-agent serve`` in a subprocess on a free loopback port; stopped with SIGTERM (graceful)."""

    def __init__(
        self, checkpoint: str, max_batch: int, max_wait_ms: float, device: str | None, threads: int | None = None
    ) -> None:
        self.port = free_port()
        command = [sys.executable, "-c", "from sam3_agent.cli import main; main()", "serve"]
        command += ["--checkpoint", checkpoint, "--port", str(self.port), "--max-batch", str(max_batch)]
        command += ["--max-wait-ms", str(max_wait_ms), "--max-queue", "4096", "--log-level", "warning"]
        command += ["--device", device] if device else []
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "SAM3_AGENT_SERVER_TOKEN": ""}
        if threads is not None:  # torch's intra-op (OpenMP) threads of the server
            env["OMP_NUM_THREADS"] = str(threads)
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 300.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with status {self.process.returncode}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server on {self.url} was not ready within {timeout:g} s")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (Linux /proc; 0.0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def served_run(args: argparse.Namespace, checkpoint: str, max_batch: int, label: str) -> Run:
    server = ServerProcess(checkpoint, max_batch, args.max_wait_ms, args.device, args.server_threads)
    try:
        server.wait_ready()
        return load(
            server.url,
            None,
            args.clients,
            args.requests,
            label,
            cpu_seconds=server.cpu_seconds,
            client_kind=args.client,
        )
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an already running server (default: start one per configuration)")
    parser.add_argument("--token", default=os.environ.get("SAM3_AGENT_SERVER_TOKEN"), help="bearer token for --url")
    parser.add_argument("--checkpoint", help="SAM 3 checkpoint for the started servers (default: a tiny random one)")
    parser.add_argument("--device", help="torch device of the started servers (default: CUDA if present)")
    parser.add_argument(
        "--server-threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 2),
        help="torch CPU threads of the started servers (OMP_NUM_THREADS); default half the cores, the clients "
        "run on this machine too (oversubscribed OpenMP threads stall each other)",
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--requests", type=int, default=400, help="requests in all, per configuration (default 400)")
    parser.add_argument(
        "--client",
        choices=("raw", "remote"),
        default="raw",
        help="raw: prepared JSON over httpx, light on this machine's CPU (default); remote: RemoteSegmenter",
    )
    parser.add_argument("--max-batch", type=int, default=16, help="dynamic batching's max batch (default 16)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="dynamic batching's max wait (default 5)")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < 1:
        parser.error("--clients and --requests must be >= 1")

    print(f"{args.requests} requests from {args.clients} concurrent clients, one phrase each", flush=True)
    if args.url:
        run = load(args.url.rstrip("/"), args.token, args.clients, args.requests, args.url, client_kind=args.client)
        print(run.line())
        return 0 if not run.errors and not run.lost else 1

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            from sam3_agent.engine.tiny import make_tiny_checkpoint

            checkpoint = str(make_tiny_checkpoint(Path(tmp) / "sam3-tiny", seed=0))
        batched = served_run(args, checkpoint, args.max_batch, f"dynamic batching (max batch {args.max_batch})")
        print(batched.line(), flush=True)
        single = served_run(args, checkpoint, 1, "batch size 1")
        print(single.line(), flush=True)
    ratio = batched.throughput / single.throughput if single.throughput else float("inf")
    verdict = "met" if ratio >= 3 else "not met"
    print(f"throughput ratio, dynamic batching / batch size 1: {ratio:.2f}x (target >= 3x: {verdict})")
    failures = [e for run in (batched, single) for e in run.errors]
    for message in sorted(set(failures))[:5]:
        print(f"  error: {message}")
    return 0 if not failures and not batched.lost and not single.lost else 1


if __name__ == "__main__":
    sys.exit(main())
