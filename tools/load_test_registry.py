"""Upload N zlib-bomb-like PNGs to an in-process segmentation server and show that its memory stays bounded.

    python tools/load_test_registry.py                          # 12 uploads of 7000x7000, the default cap
    python tools/load_test_registry.py --count 20 --max-image-mb 256

Each PNG is one colour (a different one per upload, so each is a new image): tens of KB that decode to
``side`` x ``side`` RGB pixels (196 MB at 7000x7000, as Pillow holds them). They go to ``POST /v1/images`` of
``create_app`` through FastAPI's TestClient (the server's real routes, decoder and registry, in this process),
and after each upload the script prints the process's resident memory, the registry's decoded bytes and
images, and its evictions. The registry never holds more than ``--max-image-mb``, so the resident memory
levels off at about the baseline plus the cap, however many images are uploaded (``--clients`` uploads at
once add at most ``DECODES_AT_ONCE`` images being decoded). Exit status 1 when the registry went over its cap
or an upload was refused. Linux (reads /proc/self/statm).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient
from PIL import Image

from sam3_agent.server.api import create_app
from sam3_agent.server.settings import ServerSettings
from sam3_agent.testing.scene import Scene, SceneSegmenter

MB = 2**20


def rss_bytes() -> int:
    """Resident memory of this process now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bomb_png(side: int, index: int) -> bytes:
    """A ``side`` x ``side`` PNG of one colour (``index`` picks it), compressed as far as zlib goes."""
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (index % 256, (index // 256) % 256, 90)).save(buffer, "PNG", compress_level=9)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=12, help="images to upload (default 12)")
    parser.add_argument("--side", type=int, default=7000, help="width and height of each image (default 7000)")
    parser.add_argument("--clients", type=int, default=1, help="uploads at the same time (default 1)")
    parser.add_argument(
        "--max-image-mb", type=float, default=None, help="the registry's cap (default: the server's, 1024)"
    )
    args = parser.parse_args(argv)
    settings = ServerSettings.build(max_image_mb=args.max_image_mb, token_from_env=False)
    app = create_app(SceneSegmenter(Scene(args.side, args.side, [])), settings)
    cap = settings.max_image_bytes
    print(f"registry cap {cap / MB:,.0f} MB; {args.count} uploads of {args.side}x{args.side} one-colour PNGs, ", end="")
    print(f"{args.clients} at a time")
    pngs = [bomb_png(args.side, index) for index in range(args.count)]
    with TestClient(app) as client, ThreadPoolExecutor(args.clients) as pool:
        registry = app.state.sam3.registry
        before = rss_bytes()
        print(f"RSS before: {before / MB:,.0f} MB")
        print(
            f"{'upload':>6} {'PNG KB':>7} {'seconds':>7} {'RSS MB':>8} {'registry MB':>11} {'images':>6} {'evicted':>7}"
        )

        def upload(data: bytes) -> tuple[int, float, int]:
            started = time.perf_counter()
            response = client.post("/v1/images", content=data, headers={"Content-Type": "image/png"})
            return response.status_code, time.perf_counter() - started, registry.nbytes

        peak_registry, peak_rss, refused = 0, before, 0
        for done, (data, (status, took, held)) in enumerate(zip(pngs, pool.map(upload, pngs), strict=True), 1):
            refused += status != 200
            peak_registry, peak_rss = max(peak_registry, held), max(peak_rss, rss_bytes())
            print(
                f"{done:>6} {len(data) / 1024:>7.0f} {took:>7.2f} {rss_bytes() / MB:>8,.0f} "
                f"{held / MB:>11,.0f} {len(registry):>6} {registry.evictions:>7}"
                + (f" HTTP {status}" if status != 200 else "")
            )
        after = rss_bytes()
        print(
            f"RSS after: {after / MB:,.0f} MB (+{(after - before) / MB:,.0f} MB), highest seen {peak_rss / MB:,.0f} MB"
        )
        now, most = registry.nbytes / MB, peak_registry / MB
        print(f"registry: {now:,.0f} MB now, {most:,.0f} MB at most, cap {cap / MB:,.0f} MB; {refused} refused")
        print(f"/readyz images: {client.get('/readyz').json()['images']}")
    return 0 if peak_registry <= cap and not refused else 1


if __name__ == "__main__":
    sys.exit(main())
