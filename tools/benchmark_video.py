"""Benchmark the SAM 3 video engine on a mid-size random SAM 3 (real classes, CPU), printed as ratios.

    python tools/benchmark_video.py [--frames 32] [--long-frames 256] [--image-size 1008] [--memory-image-size 336]

(a) Tracking one phrase through ``--frames`` frames of an mp4 with the video engine (``Sam3VideoEngine``:
    detector + memory tracker, one backbone pass per frame) vs. the naive alternative, the image engine
    (``Sam3Engine.segment``) on every frame, which gives no identities. Same checkpoint, same detector weights.
(b) Peak memory of tracking ``--frames`` vs ``--long-frames`` frames: the process's resident memory above what
    it held before the run (sampled every 10 ms; each run in its own process so freed pages do not hide
    growth), the Python heap's peak (tracemalloc: the results, as RLE), and the tracker outputs the session
    held at its peak. With streamed frames and pruned session state it must stay flat (ratio near 1).

The mid checkpoint is ``make_tiny_checkpoint(size="mid", video=True)``: the real 1008x1008 input geometry
with narrow towers; its decoder width is 128 (the video memory needs a multiple of 64 above 64; the image-only
mid checkpoint of tools/benchmark.py uses 64). (b) may run at a smaller input (``--memory-image-size``) to keep
the run short; the frames themselves are 640x480 either way. Weights are random: speed and memory are measured,
not quality.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

PHRASE = "car"
FRAME_H, FRAME_W = 480, 640
WARM_UP_FRAMES = 8


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


class PeakRss:
    """Samples the resident set size in a thread; ``peak`` is the largest seen."""

    def __init__(self, every_s: float = 0.01) -> None:
        self.every_s, self.peak, self._stop = every_s, rss_bytes(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def make_clip(path: Path, frames: int) -> Path:
    from sam3_agent.testing.clips import Shape, iter_moving_shapes, write_video

    shapes = (
        Shape(side=120, start=(20, 60), end=(480, 100)),
        Shape(kind="disc", colour=(40, 160, 230), side=90, start=(500, 300), end=(60, 320), enter=frames // 4),
    )
    return write_video(path, iter_moving_shapes(frames, height=FRAME_H, width=FRAME_W, shapes=shapes), fps=30)


def bench_speed(checkpoint: Path, clip_path: Path, frames: int) -> tuple[float, float, int]:
    """Seconds for the video engine and for the image engine frame by frame, and the tracks found."""
    from sam3_agent.engine.transformers_engine import Sam3Engine
    from sam3_agent.schema import Prompt
    from sam3_agent.video import FrameSelection, TrackOptions
    from sam3_agent.video.engine import Sam3VideoEngine
    from sam3_agent.video.frames import Clip

    video = Sam3VideoEngine.load(checkpoint, device="cpu")
    image = Sam3Engine(checkpoint, device="cpu", cache_size=0).load()
    clip = Clip.open(clip_path)
    options = TrackOptions(frames=FrameSelection(max_frames=frames), score=0.0, presence=0.0)
    video.track(clip, [PHRASE], TrackOptions(frames=FrameSelection(max_frames=2)))  # warm-up
    image.segment(clip.frame(0), [Prompt(text=PHRASE)])
    start = time.perf_counter()
    tracks = video.track(clip, [PHRASE], options)
    video_s = time.perf_counter() - start
    start = time.perf_counter()
    for _, frame in clip.frames(options.frames):
        image.segment(frame, [Prompt(text=PHRASE)])
    image_s = time.perf_counter() - start
    return video_s, image_s, len(tracks.tracks)


def measure_memory(checkpoint: Path, clip_path: Path, frames: int) -> dict:
    """In this process: peak RSS above the pre-run level, Python heap peak, session peaks, for ``frames``."""
    from sam3_agent.video import FrameSelection, TrackOptions
    from sam3_agent.video.engine import Sam3VideoEngine
    from sam3_agent.video.frames import Clip

    engine = Sam3VideoEngine.load(checkpoint, device="cpu")
    clip = Clip.open(clip_path)
    warm = TrackOptions(frames=FrameSelection(max_frames=WARM_UP_FRAMES), score=0.0, presence=0.0)
    engine.track(clip, [PHRASE], warm)  # the allocator's pools fill on the first frames
    options = TrackOptions(frames=FrameSelection(max_frames=frames), score=0.0, presence=0.0)
    before = rss_bytes()
    tracemalloc.start()
    start = time.perf_counter()
    with PeakRss() as peak:
        result = engine.track(clip, [PHRASE], options)
    seconds = time.perf_counter() - start
    _, heap_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stats = engine.last_stats
    return {
        "frames": len(result.frames),
        "seconds": seconds,
        "rss_growth": peak.peak - before,
        "heap_peak": heap_peak,
        "outputs_held": stats.peak_outputs_held,
        "frames_held": stats.peak_frames_held,
        "tracks": len(result.tracks),
    }


def memory_in_subprocess(checkpoint: Path, clip_path: Path, frames: int, threads: int | None) -> dict:
    command = [sys.executable, __file__, "--measure-memory", str(frames), "--checkpoint", str(checkpoint)]
    command += ["--clip", str(clip_path)] + (["--threads", str(threads)] if threads else [])
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32, help="frames tracked in (a) and the short run of (b)")
    parser.add_argument("--long-frames", type=int, default=256, help="frames of the long run of (b)")
    parser.add_argument("--image-size", type=int, default=1008, help="model input side for (a), multiple of 14")
    parser.add_argument("--memory-image-size", type=int, default=1008, help="model input side for (b)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--skip-speed", action="store_true", help="run (b) only")
    parser.add_argument("--measure-memory", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure_memory is not None:
        print(json.dumps(measure_memory(args.checkpoint, args.clip, args.measure_memory)))
        return 0

    from sam3_agent.engine.tiny import make_tiny_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clip_path = make_clip(tmp / "clip.mp4", args.long_frames)
        print(f"clip: {args.long_frames} frames of {FRAME_W}x{FRAME_H} (H.264), phrase {PHRASE!r}")
        print(f"CPU, {torch.get_num_threads()} torch threads")
        if not args.skip_speed:
            checkpoint = make_tiny_checkpoint(tmp / "mid", size="mid", video=True, image_size=args.image_size)
            video_s, image_s, tracks = bench_speed(checkpoint, clip_path, args.frames)
            print(f"(a) {args.frames} frames at {args.image_size}x{args.image_size} input ({tracks} tracks):")
            print(f"    video engine {video_s:.1f} s ({video_s / args.frames:.2f} s/frame), ", end="")
            print(f"image engine frame by frame {image_s:.1f} s ({image_s / args.frames:.2f} s/frame)")
            print(f"    video / image time ratio: {video_s / image_s:.2f}")
        checkpoint = make_tiny_checkpoint(tmp / "mid-mem", size="mid", video=True, image_size=args.memory_image_size)
        short = memory_in_subprocess(checkpoint, clip_path, args.frames, args.threads)
        long = memory_in_subprocess(checkpoint, clip_path, args.long_frames, args.threads)
        print(f"(b) peak memory at {args.memory_image_size}x{args.memory_image_size} input:")
        for run in (short, long):
            print(
                f"    {run['frames']:>4} frames: RSS +{_mb(run['rss_growth'])}, "
                f"Python heap peak {_mb(run['heap_peak'])}, "
                f"{run['outputs_held']} tracker outputs and {run['frames_held']} frame held at peak, "
                f"{run['tracks']} tracks, {run['seconds']:.1f} s"
            )
        print(
            f"    {long['frames']} / {short['frames']} frames: RSS growth ratio "
            f"{long['rss_growth'] / max(short['rss_growth'], 1):.2f}, heap peak ratio "
            f"{long['heap_peak'] / max(short['heap_peak'], 1):.2f}, outputs held ratio "
            f"{long['outputs_held'] / max(short['outputs_held'], 1):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
