"""`sam3-agent track VIDEO PHRASE...`: every instance of each phrase tracked through a clip (SAM 3's video model).

Everything that can be checked is checked before the model loads: the phrases, the frame options, the clip itself
(it is probed and its first frame decoded) and the output folder (``outputs.out_folder``: runs never replace each
other's files unless ``--overwrite``). The track table is printed and the JSON written
before the overlay video is encoded, so a failure there loses neither.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from sam3_agent.cli_options import CheckpointOpt, DeviceOpt, DtypeOpt, OverwriteOpt
from sam3_agent.errors import Cancelled, ConfigError, PromptError, Sam3AgentError

if TYPE_CHECKING:
    from sam3_agent.video.frames import Clip
    from sam3_agent.video.protocol import TrackOptions, VideoTracker
    from sam3_agent.video.summary import TrackSummary
    from sam3_agent.video.tracks import ClipTracks

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv"})


def is_video_path(source: str) -> bool:
    """Whether ``source`` names a video file by its extension (how `ask` tells a clip from an image)."""
    return Path(source).suffix.lower() in VIDEO_SUFFIXES


class FrameOpt:
    """The frame-selection options of `track` and `ask VIDEO` (``sam3_agent.video.protocol.FrameSelection``)."""

    Stride = Annotated[int, typer.Option("--stride", min=1, help="Look at every N-th frame.")]
    MaxFrames = Annotated[int, typer.Option("--max-frames", min=1, help="Look at no more frames than this.")]
    Start = Annotated[float, typer.Option("--start", min=0.0, help="Start at this time (seconds).")]
    End = Annotated[float | None, typer.Option("--end", help="Stop before this time (seconds). Default: the end.")]
    Presence = Annotated[
        float,
        typer.Option(
            "--presence-threshold",
            min=0.0,
            max=1.0,
            help="A phrase whose presence score stays below this on every frame gets no tracks (absent concept).",
        ),
    ]
    MinFrames = Annotated[int, typer.Option("--min-frames", min=1, help="Drop tracks seen on fewer frames (flicker).")]


VideoOutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Output folder. Default: outputs/<video name>.")]


def track_options(
    stride: int, max_frames: int, start: float, end: float | None, score: float, presence: float, min_frames: int
) -> TrackOptions:
    """The options as one ``TrackOptions``; a bad combination (an empty time range) is a one-line ConfigError."""
    from sam3_agent.video.protocol import FrameSelection, TrackOptions

    try:
        frames = FrameSelection(stride=stride, max_frames=max_frames, start_s=start, end_s=end)
        return TrackOptions(frames=frames, score=score, presence=presence, min_frames=min_frames)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{where + ': ' if where else ''}{first['msg'].removeprefix('Value error, ')}") from None


def check_phrases(phrases: list[str] | None) -> list[str]:
    """The phrases stripped, each checked as SAM 3 takes it (not empty, not over the length limit)."""
    from sam3_agent.schema import Prompt

    if not phrases:
        raise PromptError("give at least one noun phrase to track, e.g. sam3-agent track clip.mp4 car person")
    try:
        return [Prompt(text=p).text or "" for p in phrases]
    except ValidationError as exc:
        raise PromptError(f"phrase: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def open_clip(video: str, selection_options: TrackOptions) -> Clip:
    """The clip, probed; a time range past its end is refused here, before the model loads."""
    from sam3_agent.errors import VideoError
    from sam3_agent.video.frames import Clip

    clip = Clip.open(video)
    if not clip.plan(selection_options.frames):
        duration = clip.info.duration_s
        raise VideoError(
            f"no frame of {clip.name!r} is in the chosen range (start {selection_options.frames.start_s:g} s; the "
            f"clip lasts {duration:g} s)"
            if duration
            else f"no frame of {clip.name!r} is in the chosen range"
        )
    return clip


def load_tracker(checkpoint: str | None, device: str | None, dtype: str | None) -> VideoTracker:
    """SAM 3's video model, loaded in process (the slow step)."""
    from sam3_agent.video.engine import Sam3VideoEngine

    return Sam3VideoEngine.load(checkpoint, device=device, dtype=dtype)


def run_tracking(tracker: VideoTracker, clip: Clip, phrases: list[str], options: TrackOptions, console) -> ClipTracks:
    """Track with a progress bar on ``console``; Ctrl-C stops between frames (``Cancelled``)."""
    planned = len(clip.plan(options.frames))
    cancel = threading.Event()
    columns = (TextColumn("tracking"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("track", total=planned)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, done))

        try:
            return tracker.track(clip, phrases, options, progress=progress, cancel=cancel)
        except KeyboardInterrupt:
            cancel.set()
            raise Cancelled("tracking cancelled") from None


def track_table(rows: list[TrackSummary], phrases: list[str]) -> Table:
    table = Table(title=f"{len(rows)} track(s) of {', '.join(phrases)}")
    for column in ("track", "phrase", "first (s)", "last (s)", "duration (s)", "frames", "best score"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.track_id),
            row.phrase,
            f"{row.first_s:.2f}",
            f"{row.last_s:.2f}",
            f"{row.duration_s:.2f}",
            str(row.frames_seen),
            f"{row.best_score:.3f}",
        )
    return table


def write_tracks_json(tracks: ClipTracks, video: str, out_dir: Path) -> Path:
    from sam3_agent.outputs import write_json_atomic
    from sam3_agent.video.summary import clip_json

    path = out_dir / "tracks.json"
    write_json_atomic(path, clip_json(tracks, video=video))
    return path


def track(
    video: Annotated[str, typer.Argument(help="Video file (mp4, mov, mkv, webm, avi, ...).")],
    phrases: Annotated[list[str] | None, typer.Argument(help="Short noun phrases, e.g. car 'person in red'.")] = None,
    checkpoint: CheckpointOpt = None,
    stride: FrameOpt.Stride = 1,
    max_frames: FrameOpt.MaxFrames = 300,
    start: FrameOpt.Start = 0.0,
    end: FrameOpt.End = None,
    score_threshold: Annotated[
        float, typer.Option("--score-threshold", min=0.0, max=1.0, help="Keep objects scoring >= this on a frame.")
    ] = 0.5,
    presence_threshold: FrameOpt.Presence = 0.5,
    min_frames: FrameOpt.MinFrames = 1,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    out_dir: VideoOutOpt = None,
    overlay: Annotated[
        bool, typer.Option("--overlay/--no-overlay", help="Also write tracks.mp4 (ids drawn, one colour per track).")
    ] = True,
    overwrite: OverwriteOpt = False,
) -> None:
    """Track every instance of each phrase through a video: print a track table, write tracks.json (per-frame COCO
    RLE with track ids) and tracks.mp4 (the overlay)."""
    from sam3_agent.cli import EXIT_FAILURE, _fail, console, out
    from sam3_agent.outputs import out_folder
    from sam3_agent.video.summary import track_table as summary_rows

    try:
        names = check_phrases(phrases)
        options = track_options(stride, max_frames, start, end, score_threshold, presence_threshold, min_frames)
        clip = open_clip(video, options)
        folder = out_folder(out_dir, video, "tracks", overwrite=overwrite)
        with console.status("Loading SAM 3's video model …", spinner="dots"):
            tracker = load_tracker(checkpoint, device, dtype)
        tracks = run_tracking(tracker, clip, names, options, console)
        json_path = write_tracks_json(tracks, video, folder)
    except Sam3AgentError as exc:
        raise _fail(exc) from None
    out.print(track_table(summary_rows(tracks), names))
    console.print(f"looked at {len(tracks.frames)} frame(s); wrote {json_path}")
    if not overlay:
        return
    try:
        from sam3_agent.video.overlay import write_overlay_video

        with console.status("Writing the overlay video …", spinner="dots"):
            mp4 = write_overlay_video(clip, tracks, folder / "tracks.mp4", options.frames)
    except (Sam3AgentError, OSError) as exc:
        console.print(f"[bold red]error:[/] the overlay video was not written: {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILURE) from None
    console.print(f"wrote {mp4}")


def ask_video(
    video: str,
    query: str,
    *,
    llm: object,
    checkpoint: str | None,
    device: str | None,
    dtype: str | None,
    score: float,
    max_turns: int,
    out_dir: Path | None,
    overwrite: bool,
    on_step,
) -> None:
    """`sam3-agent ask VIDEO QUERY`: the clip agent's answer printed, then answer.json and answer.mp4 (the chosen
    tracks drawn) written; a failed video write keeps the printed answer and the JSON."""
    from sam3_agent.agent.clip_agent import answer_clip
    from sam3_agent.cli import EXIT_FAILURE, _fail, console, out
    from sam3_agent.outputs import out_folder, write_json_atomic
    from sam3_agent.video.protocol import TrackOptions

    try:
        options = TrackOptions(score=score)
        clip = open_clip(video, options)
        folder = out_folder(out_dir, video, "answer", overwrite=overwrite)
        with console.status("Loading SAM 3's video model …", spinner="dots"):
            tracker = load_tracker(checkpoint, device, dtype)
        answer = answer_clip(tracker, clip, query, llm, options=options, max_turns=max_turns, on_step=on_step)  # type: ignore[arg-type]
    except Sam3AgentError as exc:
        raise _fail(exc) from None
    if answer.selected:
        from sam3_agent.video.summary import summarize

        phrases = list(dict.fromkeys(t.phrase for t in answer.selected))
        out.print(track_table([summarize(t) for t in answer.selected], phrases))
    out.print(f"[bold]answer:[/] {escape(answer.text)}")
    if answer.count is not None:
        out.print(f"[bold]count:[/] {answer.count}")
    try:
        json_path = folder / "answer.json"
        write_json_atomic(json_path, answer.model_dump(mode="json"))
        written = [json_path]
        chosen = answer.selected_tracks()
        if chosen is not None:
            from sam3_agent.video.overlay import write_overlay_video

            with console.status("Writing the overlay video …", spinner="dots"):
                written.append(write_overlay_video(clip, chosen, folder / "answer.mp4", answer.options.frames))
    except (Sam3AgentError, OSError) as exc:
        console.print(f"[bold red]error:[/] the answer was not fully written: {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILURE) from None
    console.print("wrote " + " and ".join(str(p) for p in written))
    if answer.status == "gave_up":
        raise typer.Exit(EXIT_FAILURE)
