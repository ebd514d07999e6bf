"""The demo's video tab: upload a clip, name what to track, see the overlay video, the track table and the JSON.

The tracker (SAM 3's video model) is shared by every session and loaded on the first clip, so a page that is only
used for images never loads it. Each run writes into its own folder; the oldest folders are deleted once more than
``KEEP_RUNS`` exist (Gradio serves the files from its own cache after a run returns). ``/track_video`` is on the
API page for ``gradio_client``; a refused input raises ``gr.Error`` (a toast; ``AppError`` in ``gradio_client``).
"""

import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic import ValidationError

from sam3_agent.demo import formatting as fmt
from sam3_agent.demo.api import app_error
from sam3_agent.errors import ConfigError, PromptError, VideoError
from sam3_agent.video.protocol import DEFAULT_MAX_FRAMES, FrameSelection, LazyTracker, TrackOptions, VideoTracker

KEEP_RUNS = 16
TABLE_HEADERS = ["track", "phrase", "first (s)", "last (s)", "duration (s)", "frames", "best score"]
TrackerSource = VideoTracker | Callable[[], VideoTracker]
"""A loaded tracker, or a function that loads one (called once, on the first clip)."""


class VideoRuns:
    """Tracks clips for the demo: the shared tracker, loaded once, and the run folders it writes."""

    def __init__(self, tracker: TrackerSource, *, score: float = 0.5) -> None:
        self.tracker: VideoTracker = tracker if isinstance(tracker, VideoTracker) else LazyTracker(tracker)
        self._lock = threading.Lock()
        self._runs: deque[Path] = deque()
        self.score = score

    def new_folder(self) -> Path:
        folder = Path(tempfile.mkdtemp(prefix="sam3-video-"))
        with self._lock:
            self._runs.append(folder)
            while len(self._runs) > KEEP_RUNS:
                shutil.rmtree(self._runs.popleft(), ignore_errors=True)
        return folder

    def run(
        self, video: str, phrases: str, options: TrackOptions, progress: Callable[[int, int], None] | None = None
    ) -> tuple[str, list[list[Any]], str]:
        """Track ``phrases`` (comma separated) through ``video``; (overlay mp4, table rows, JSON path)."""
        from sam3_agent.outputs import write_json_atomic
        from sam3_agent.video.frames import Clip
        from sam3_agent.video.overlay import write_overlay_video
        from sam3_agent.video.summary import clip_json, track_table

        if not phrases.strip():
            raise PromptError("type the noun phrases to track, separated by commas, e.g. 'car, person'")
        names = fmt.split_phrases(phrases)
        clip = Clip.open(video)
        if not clip.plan(options.frames):
            raise VideoError(f"no frame of {clip.name!r} is in the chosen range")
        tracks = self.tracker.track(clip, names, options, progress=progress)
        folder = self.new_folder()
        json_path = folder / "tracks.json"
        write_json_atomic(json_path, clip_json(tracks, video=clip.name))
        mp4 = write_overlay_video(clip, tracks, folder / "tracks.mp4", options.frames)
        rows = [
            [r.track_id, r.phrase, r.first_s, r.last_s, r.duration_s, r.frames_seen, r.best_score]
            for r in track_table(tracks)
        ]
        return str(mp4), rows, str(json_path)


def _video_path(video: object) -> str:
    """The uploaded clip's path (``gr.Video`` hands the handler a path, or None when nothing was uploaded)."""
    if not isinstance(video, str) or not video:
        raise VideoError("upload a video first")
    return video


def track_api(runs: VideoRuns) -> Callable[..., tuple[str, list[list[Any]], str]]:
    """The ``/track_video`` handler: clip, phrases, frame stride, most frames, score threshold, presence threshold."""

    def track_video(
        video: Any,
        phrases: str,
        stride: int = 1,
        max_frames: int = DEFAULT_MAX_FRAMES,
        score_threshold: float = runs.score,
        presence_threshold: float = 0.5,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's way of asking for a progress bar
    ) -> tuple[str, list[list[Any]], str]:
        try:
            frames = FrameSelection(stride=int(stride), max_frames=int(max_frames))
            options = TrackOptions(frames=frames, score=score_threshold, presence=presence_threshold)
            path = _video_path(video)

            def report(done: int, total: int) -> None:
                progress((done, max(total, done)), desc="tracking", unit="frames")

            return runs.run(path, phrases, options, progress=report)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise app_error(ConfigError(f"{first['loc'][-1]}: {first['msg']}")) from None
        except Exception as exc:  # every failure is a one-line toast / AppError
            raise app_error(exc) from None

    return track_video


def build_video_tab(runs: VideoRuns, concurrency: int) -> None:
    """The tab's components and its one event, inside the caller's ``gr.Tab``."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=4):
            video = gr.Video(label="Clip", sources=["upload"], elem_id="sam3-video-input")
            phrases = gr.Textbox(
                label="Phrases",
                placeholder="Noun phrases to track, separated by commas, e.g. 'car, person'",
                elem_id="sam3-video-phrases",
            )
            with gr.Row():
                stride = gr.Number(label="Every N-th frame", value=1, minimum=1, precision=0)
                max_frames = gr.Number(label="At most frames", value=DEFAULT_MAX_FRAMES, minimum=1, precision=0)
            with gr.Row():
                score = gr.Slider(0.0, 1.0, value=runs.score, step=0.05, label="Score threshold")
                presence = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Presence threshold")
            start = gr.Button("Track", variant="primary", elem_id="sam3-video-track")
        with gr.Column(scale=5):
            overlay = gr.Video(label="Tracks", interactive=False, elem_id="sam3-video-overlay")
            table = gr.Dataframe(headers=TABLE_HEADERS, label="Track table", interactive=False, elem_id="sam3-tracks")
            download = gr.File(label="tracks.json", interactive=False)
    start.click(
        track_api(runs),
        [video, phrases, stride, max_frames, score, presence],
        [overlay, table, download],
        api_name="track_video",
        concurrency_limit=concurrency,
        concurrency_id="sam3-video",
    )
