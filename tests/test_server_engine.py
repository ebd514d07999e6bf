"""The server on the tiny SAM 3 engine: concurrent clients, cross-client batching, and ``sam3-agent serve``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from sam3_agent.cli import app as cli_app
from sam3_agent.engine.transformers_engine import Sam3Engine
from sam3_agent.schema import ExemplarBox, Instance, Prompt, Thresholds
from sam3_agent.server import runner
from sam3_agent.server.api import create_app
from sam3_agent.server.client import RemoteSegmenter
from sam3_agent.server.runner import BackgroundServer
from sam3_agent.server.settings import TOKEN_ENV, ServerSettings

KEEP_ALL = Thresholds(score=0.0)


def noise_image(seed: int, width: int = 96, height: int = 64) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def close_enough(got: list[list[Instance]], want: list[list[Instance]]) -> bool:
    """Equal but for float summation order in a bigger batch (scores to 1e-5, at most one mask pixel flip)."""
    if [len(g) for g in got] != [len(w) for w in want]:
        return False
    for g, w in zip(got, want, strict=True):
        if [i.phrase for i in g] != [i.phrase for i in w]:
            return False
        if not np.allclose([i.score for i in g], [i.score for i in w], atol=1e-5):
            return False
        if sum(i.rle != j.rle for i, j in zip(g, w, strict=True)) > 1:
            return False
    return True


def test_concurrent_clients_share_forward_passes_and_get_their_own_results(
    engine: Sam3Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = [noise_image(seed) for seed in range(6)]
    requests = [
        (c, images[c % len(images)], [Prompt(text=["cup", "hat", "dog red"][c % 3]), Prompt(text=f"person {c}")])
        for c in range(8)
    ]
    requests += [(9, images[0], [Prompt(text="cup", boxes=(ExemplarBox(box=(5, 5, 40, 30)),))])]
    want = [engine.segment(image, prompts, KEEP_ALL) for _, image, prompts in requests]
    engine.clear_cache(reset_counters=True)
    passes: list[int] = []
    forward = engine.model.forward

    def counted(*args: Any, **kwargs: Any) -> Any:
        passes.append(int(kwargs["input_ids"].shape[0]))
        return forward(*args, **kwargs)

    monkeypatch.setattr(engine.model, "forward", counted)
    settings = ServerSettings(max_batch=16, max_wait_ms=30)
    with BackgroundServer(create_app(engine, settings)) as server, ThreadPoolExecutor(8) as pool:
        clients = {c: RemoteSegmenter(server.base_url) for c in range(10)}
        futures = [pool.submit(clients[c].segment, image, prompts, KEEP_ALL) for c, image, prompts in requests]
        got = [f.result() for f in futures]
        metrics = clients[0]._client.get(server.base_url + "/metrics").text
    assert all(close_enough(g, w) for g, w in zip(got, want, strict=True))
    assert engine.backbone_calls == len(images)  # once per distinct image, whatever the number of clients
    assert sum(passes) == sum(len(prompts) for _, _, prompts in requests)
    assert len(passes) < len(requests) and max(passes) > 2  # prompts of several clients shared passes
    assert "sam3_engine_backbone_runs_total 6.0" in metrics and "sam3_engine_feature_cache_hits_total" in metrics


def test_engine_results_over_the_wire_equal_in_process(engine: Sam3Engine) -> None:
    image = noise_image(7, 120, 80)
    prompts = [Prompt(text="cup"), Prompt(boxes=(ExemplarBox(box=(10, 10, 60, 50)),))]
    want = engine.segment(image, prompts, KEEP_ALL)
    with TestClient(create_app(engine), base_url="http://sam3.test") as client:
        remote = RemoteSegmenter("http://sam3.test", client=client)  # type: ignore[arg-type]
        got = remote.segment(image, prompts, KEEP_ALL)
    assert [[i.model_dump() for i in g] for g in got] == [[i.model_dump() for i in w] for w in want]


class Captured:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, app: Any, **kwargs: Any) -> None:
        self.calls.append({"app": app, **kwargs})


def test_serve_command_builds_the_app_from_its_options(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    captured = Captured()
    monkeypatch.setattr(runner, "serve_forever", captured)
    monkeypatch.setenv(TOKEN_ENV, "from-env")
    options = ["--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--port", "8123", "--max-batch", "4"]
    options += ["--max-wait-ms", "2", "--max-queue", "9", "--timeout", "7", "--max-body-mb", "3", "--cache-size", "2"]
    result = CliRunner().invoke(cli_app, ["serve", *options])
    assert result.exit_code == 0, result.output
    (call,) = captured.calls
    assert (call["host"], call["port"], call["graceful_timeout"]) == ("127.0.0.1", 8123, 30.0)
    state = call["app"].state.sam3
    settings = state.settings
    assert (settings.max_batch, settings.max_wait_ms, settings.max_queue, settings.timeout_s) == (4, 2.0, 9, 7.0)
    assert settings.max_body_bytes == 3 * 2**20 and settings.token == "from-env"
    assert isinstance(state.target, Sam3Engine) and state.target.loaded and state.target.max_batch == 4
    with TestClient(call["app"]) as client:
        headers = {"Authorization": "Bearer from-env"}
        assert client.get("/v1/info", headers=headers).json()["device"] == "cpu"


@pytest.mark.parametrize(
    ("arguments", "code", "says"),
    [
        (["--token", ""], 2, "the server token is an empty string"),
        (["--checkpoint", "/nonexistent/sam3"], 1, "/nonexistent/sam3"),
        (["--device", "quantum"], 2, "device must be like"),
    ],
)
def test_serve_command_errors(arguments: list[str], code: int, says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "serve_forever", Captured())
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    result = CliRunner().invoke(cli_app, ["serve", *arguments])
    assert result.exit_code == code, result.output
    assert says in " ".join(result.output.split())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ray's own
def test_serve_command_on_ray(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray.serve

    from sam3_agent.server import command, ray_serve

    started: list[dict[str, Any]] = []
    monkeypatch.setattr(ray_serve, "start_ray_serve", lambda *a, **kw: started.append(kw) or "http://127.0.0.1:8000")
    monkeypatch.setattr(ray.serve, "shutdown", lambda: started.append({"shutdown": True}))

    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(command.time, "sleep", interrupt)
    result = CliRunner().invoke(cli_app, ["serve", "--ray", "--replicas", "3", "--gpus-per-replica", "1"])
    assert result.exit_code == 0, result.output
    assert started[0]["replicas"] == 3 and started[0]["gpus_per_replica"] == 1.0 and started[1] == {"shutdown": True}
