"""Write a tiny randomly initialised SAM 3 checkpoint directory (to try commands without the real weights).

    python tools/make_tiny_checkpoint.py ./sam3-tiny
    sam3-agent ... --checkpoint ./sam3-tiny      # or SAM3_CHECKPOINT=./sam3-tiny

Its masks and scores are random. Real weights: see ``sam3_agent.engine.checkpoint.HOW_TO_GET_WEIGHTS``.

With ``--tracker`` it writes the full SAM 3 layout (detector + tracker, as ``facebook/sam3`` ships it), which
the click engine needs (``sam3-agent segment IMAGE --point x,y``)::

    python tools/make_tiny_checkpoint.py --tracker ./sam3-tiny

With ``--video`` it writes that layout at widths SAM 3's video model runs on, with detection thresholds lowered
so random weights still start tracks: the video engine's checkpoint (``sam3_agent.video.engine``)::

    python tools/make_tiny_checkpoint.py --video ./sam3-tiny-video

With ``--vlm`` it writes a tiny random vision-language model (Qwen2.5-VL) instead, for ``local:PATH``::

    python tools/make_tiny_checkpoint.py --vlm ./vlm-tiny
    sam3-agent ... --llm-model local:./vlm-tiny   # its replies are random: runs end with "gave_up"
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="directory to write (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights (default 0)")
    parser.add_argument("--size", choices=["tiny", "mid"], default="tiny", help="tiny (tests) or mid (benchmarks)")
    parser.add_argument("--image-size", type=int, default=None, help="square input size, a multiple of 14")
    parser.add_argument(
        "--tracker", action="store_true", help="also write the SAM 3 tracker (point / box clicks), as facebook/sam3"
    )
    parser.add_argument(
        "--video", action="store_true", help="the full layout sized for the video model (tracking through clips)"
    )
    parser.add_argument(
        "--vlm", action="store_true", help="write a tiny random vision-language model (for --llm-model local:DIR)"
    )
    args = parser.parse_args(argv)
    if args.vlm:
        if args.image_size is not None or args.tracker or args.video:
            parser.error("--image-size, --tracker and --video apply to SAM 3 checkpoints, not to --vlm")
        return _write_vlm(args.out_dir, args.seed)

    from sam3_agent.engine.tiny import make_tiny_checkpoint
    from sam3_agent.errors import Sam3AgentError

    try:
        path = make_tiny_checkpoint(
            args.out_dir,
            seed=args.seed,
            image_size=args.image_size,
            size=args.size,
            tracker=args.tracker,
            video=args.video,
        )
    except Sam3AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    what = "SAM 3 checkpoint (detector + tracker)" if args.tracker else "SAM 3 checkpoint"
    what = "SAM 3 video checkpoint (detector + tracker)" if args.video else what
    print(f"Wrote a {args.size} {what} with RANDOM weights to {path}: its masks and scores are random.")
    print(f"Use it with --checkpoint {path} or SAM3_CHECKPOINT={path}.")
    return 0


def _write_vlm(out_dir: str, seed: int) -> int:
    """Write the tiny vision-language model and say how to use it."""
    from sam3_agent.testing.tiny_vlm import make_tiny_vlm

    path = make_tiny_vlm(out_dir, seed=seed)
    print(f"Wrote a tiny vision-language model (Qwen2.5-VL) with RANDOM weights to {path}: its replies are random.")
    print(f"Use it with --llm-model local:{path}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
