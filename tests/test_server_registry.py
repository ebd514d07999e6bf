"""The image registry is bounded by decoded bytes: least recently used images go first, and a small PNG that
decodes to a huge image (a zlib "bomb") counts for what it costs; ``/readyz`` and ``/metrics`` report it."""

from __future__ import annotations

import io

import pytest
import typer
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from sam3_agent.errors import ImageError
from sam3_agent.server import command
from sam3_agent.server.api import create_app
from sam3_agent.server.image_registry import DEFAULT_MAX_BYTES, ImageRegistry, image_bytes
from sam3_agent.server.settings import ServerSettings
from sam3_agent.testing.scene import Scene, SceneSegmenter

MB = 2**20


def solid(side: int, value: int) -> Image.Image:
    return Image.new("RGB", (side, side), (value, 40, 80))


def bomb_png(side: int, value: int) -> bytes:
    """A single-colour PNG: a few KB that decode to ``side`` x ``side`` RGB pixels."""
    buffer = io.BytesIO()
    solid(side, value).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


def test_image_bytes_are_what_pillow_holds() -> None:
    assert image_bytes(solid(100, 1)) == 100 * 100 * 4, "Pillow keeps an RGB pixel in 4 bytes"
    assert image_bytes(Image.new("L", (10, 20))) == 200


def test_eviction_by_bytes_drops_the_least_recently_used() -> None:
    one = image_bytes(solid(50, 0))  # 10,000 bytes
    registry = ImageRegistry(100, ttl_s=60, max_bytes=3 * one)
    ids = [registry.add(solid(50, v))[1] for v in range(3)]
    assert registry.nbytes == 3 * one and registry.evictions == 0
    registry.get(ids[0])  # the first is now the most recently used: the second goes next
    _, fourth = registry.add(solid(50, 3))
    assert [i in registry for i in ids] == [True, False, True] and fourth in registry
    assert registry.nbytes == 3 * one and registry.evictions == 1
    big = solid(70, 9)  # 19,600 bytes: room for it means dropping the two least recently used
    registry.add(big)
    assert registry.nbytes == one + image_bytes(big) <= registry.max_bytes and len(registry) == 2
    assert registry.evictions == 3 and fourth in registry
    usage = registry.usage()
    assert (usage.images, usage.bytes, usage.max_bytes, usage.max_images) == (2, registry.nbytes, 3 * one, 100)


def test_one_image_over_the_cap_is_refused_and_nothing_is_evicted() -> None:
    registry = ImageRegistry(10, ttl_s=60, max_bytes=50_000)
    _, kept = registry.add(solid(50, 1))
    with pytest.raises(ImageError, match=r"the image is 200x200, 160,000 bytes decoded, over the server's image"):
        registry.add(solid(200, 2))
    assert kept in registry and registry.nbytes == 10_000 and registry.evictions == 0


def test_the_same_pixels_keep_one_stored_copy() -> None:
    registry = ImageRegistry(10, ttl_s=60)
    first = solid(20, 5)
    stored, image_id = registry.add(first)
    again, same_id = registry.add(first.copy())
    assert stored is first and again is first and same_id == image_id
    assert registry.nbytes == image_bytes(first) and registry.max_bytes == DEFAULT_MAX_BYTES


def test_uploaded_bombs_stay_within_the_cap() -> None:
    side = 3000  # 36 MB decoded each, a few KB as PNG
    settings = ServerSettings(max_image_mb=80)  # room for two
    with TestClient(create_app(SceneSegmenter(Scene(side, side, [])), settings)) as client:
        registry = client.app.state.sam3.registry
        ids = []
        for value in range(4):
            data = bomb_png(side, value)
            assert len(data) < 100_000
            response = client.post("/v1/images", content=data, headers={"Content-Type": "image/png"})
            assert response.status_code == 200, response.text
            ids.append(response.json()["image_id"])
            assert registry.nbytes <= settings.max_image_bytes
        assert registry.nbytes == 2 * side * side * 4 and len(registry) == 2 and registry.evictions == 2
        gone = client.post("/v1/segment", json={"image_id": ids[0], "prompts": [{"text": "cup"}]})
        assert gone.status_code == 404 and "at most 83,886,080 bytes decoded" in gone.json()["error"]
        kept = client.post("/v1/segment", json={"image_id": ids[-1], "prompts": [{"text": "cup"}]})
        assert kept.status_code == 200 and kept.json()["width"] == side
        images = client.get("/readyz").json()["images"]
        assert images == {"images": 2, "max_images": 256, "bytes": 72_000_000, "max_bytes": 80 * MB}
        metrics = client.get("/metrics").text
        assert "sam3_server_registered_image_bytes 7.2e+07" in metrics
        assert "sam3_server_registered_image_bytes_limit 8.388608e+07" in metrics
        assert "sam3_server_registry_evictions_total 2.0" in metrics


def test_an_image_bigger_than_the_whole_cap_is_a_clear_400() -> None:
    settings = ServerSettings(max_image_mb=1)
    with TestClient(create_app(SceneSegmenter(Scene(10, 10, [])), settings)) as client:
        response = client.post("/v1/images", content=bomb_png(1000, 1), headers={"Content-Type": "image/png"})
    assert response.status_code == 400 and response.json()["type"] == "image_error"
    assert (
        "1000x1000, 4,000,000 bytes decoded, over the server's image memory of 1,048,576 bytes"
        in (response.json()["error"])
    )
    assert "--max-image-mb" in response.json()["error"]


def test_the_cap_is_a_setting_and_a_serve_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServerSettings().max_image_bytes == DEFAULT_MAX_BYTES == 1024 * MB
    seen: list[ServerSettings] = []
    monkeypatch.setattr(command, "_serve_local", lambda checkpoint, settings, *rest: seen.append(settings))
    app = typer.Typer()
    app.command()(command.serve)
    result = CliRunner().invoke(app, ["--max-image-mb", "256"])
    assert result.exit_code == 0, result.output
    assert seen[0].max_image_bytes == 256 * MB
    refused = CliRunner().invoke(app, ["--max-image-mb", "0"])
    assert refused.exit_code == 2
