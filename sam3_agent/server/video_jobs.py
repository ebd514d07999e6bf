"""Uploaded clips and the tracking jobs run on them: long work that a client starts, polls and fetches.

``VideoStore`` keeps uploaded clips as files in one folder (at most ``max_videos``, each for ``ttl_s``; the
least recently used goes first and its file with it). ``TrackJobs`` runs one tracking job at a time on a worker
thread (a video model holds the accelerator for the whole clip), keeps each job's progress, and its result until
fetched or expired. A job is cancelled between frames (``VideoTracker``'s cancel event).
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sam3_agent.errors import Cancelled, Sam3AgentError
from sam3_agent.video.frames import Clip
from sam3_agent.video.protocol import TrackOptions, VideoTracker
from sam3_agent.video.summary import clip_json

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]


class UnknownId(LookupError):
    """A video or job id that is not (or no longer) held."""


@dataclass
class StoredVideo:
    video_id: str
    path: Path
    clip: Clip
    used: float = field(default_factory=time.monotonic)


class VideoStore:
    """Uploaded clips on disk under ``folder`` (a private temporary one by default), LRU with a TTL."""

    def __init__(self, max_videos: int = 16, ttl_s: float = 3600.0, folder: Path | None = None) -> None:
        self.max_videos = max_videos
        self.ttl_s = ttl_s
        self.folder = folder or Path(tempfile.mkdtemp(prefix="sam3-videos-"))
        self._videos: OrderedDict[str, StoredVideo] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, data: bytes, suffix: str = ".mp4") -> StoredVideo:
        """Write ``data`` and probe it as a clip (``VideoError`` for anything that is not a trackable video)."""
        video_id = secrets.token_hex(8)
        path = self.folder / f"{video_id}{suffix}"
        path.write_bytes(data)
        try:
            clip = Clip.open(path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        clip.name = "upload" + suffix
        stored = StoredVideo(video_id, path, clip)
        with self._lock:
            self._videos[video_id] = stored
            self._evict()
        return stored

    def get(self, video_id: str) -> StoredVideo:
        with self._lock:
            self._evict()
            stored = self._videos.get(video_id)
            if stored is None:
                raise UnknownId(f"unknown video id {video_id!r} (never uploaded, or expired: upload it again)")
            stored.used = time.monotonic()
            self._videos.move_to_end(video_id)
            return stored

    def __len__(self) -> int:
        return len(self._videos)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _evict(self) -> None:
        now = time.monotonic()
        while self._videos:
            oldest = next(iter(self._videos.values()))
            if len(self._videos) <= self.max_videos and now - oldest.used <= self.ttl_s:
                break
            self._videos.popitem(last=False)
            oldest.path.unlink(missing_ok=True)


@dataclass
class TrackJob:
    job_id: str
    video_id: str
    phrases: tuple[str, ...]
    options: TrackOptions
    status: JobStatus = "queued"
    frames_done: int = 0
    frames_planned: int = 0
    error: str | None = None
    result: dict | None = None
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def describe(self) -> dict:
        """What ``GET /v1/jobs/{id}`` answers: status, progress, and the error of a failed job."""
        return {
            "job_id": self.job_id,
            "video_id": self.video_id,
            "phrases": list(self.phrases),
            "status": self.status,
            "frames_done": self.frames_done,
            "frames_planned": self.frames_planned,
            "error": self.error,
        }


class TrackJobs:
    """One worker thread tracking queued jobs in order; finished jobs are kept for ``keep_s`` seconds."""

    def __init__(self, tracker: VideoTracker, *, max_queued: int = 8, keep_s: float = 3600.0) -> None:
        self.tracker = tracker
        self.max_queued = max_queued
        self.keep_s = keep_s
        self._jobs: dict[str, TrackJob] = {}
        self._queue: queue.Queue[tuple[TrackJob, Clip] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="sam3-track-jobs", daemon=True)
        self._worker.start()

    def submit(self, video_id: str, clip: Clip, phrases: tuple[str, ...], options: TrackOptions) -> TrackJob:
        """Queue a job; ``OverflowError`` when ``max_queued`` jobs already wait or run."""
        with self._lock:
            self._expire()
            waiting = sum(j.status in ("queued", "running") for j in self._jobs.values())
            if waiting >= self.max_queued:
                raise OverflowError(f"{waiting} tracking jobs are queued or running; try again later")
            job = TrackJob(secrets.token_hex(8), video_id, phrases, options)
            job.frames_planned = len(clip.plan(options.frames))
            self._jobs[job.job_id] = job
        self._queue.put((job, clip))
        return job

    def get(self, job_id: str) -> TrackJob:
        with self._lock:
            self._expire()
            job = self._jobs.get(job_id)
        if job is None:
            raise UnknownId(f"unknown job id {job_id!r} (never started, or expired)")
        return job

    def cancel(self, job_id: str) -> TrackJob:
        """Ask a queued or running job to stop (a running one stops before its next frame)."""
        job = self.get(job_id)
        job.cancel.set()
        if job.status == "queued":
            job.status, job.finished = "cancelled", time.monotonic()
        return job

    def close(self) -> None:
        for job in list(self._jobs.values()):
            job.cancel.set()
        self._queue.put(None)
        self._worker.join(timeout=5.0)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            job, clip = item
            if job.status == "cancelled":
                continue
            self._run(job, clip)

    def _run(self, job: TrackJob, clip: Clip) -> None:
        job.status = "running"

        def progress(done: int, total: int) -> None:
            job.frames_done, job.frames_planned = done, max(total, done)

        try:
            tracks = self.tracker.track(clip, job.phrases, job.options, progress=progress, cancel=job.cancel)
            job.result = clip_json(tracks, video=job.video_id)
            job.status = "done"
        except Cancelled:
            job.status = "cancelled"
        except Sam3AgentError as exc:
            job.status, job.error = "failed", str(exc)
        except Exception as exc:  # the worker must survive whatever one job does
            log.exception("tracking job %s failed", job.job_id)
            job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished = time.monotonic()

    def _expire(self) -> None:
        now = time.monotonic()
        old = [i for i, j in self._jobs.items() if j.finished is not None and now - j.finished > self.keep_s]
        for job_id in old:
            del self._jobs[job_id]


def video_suffix(content_type: str, filename: str | None = None) -> str:
    """A file suffix for an upload, from its name or content type (PyAV probes the content, not the name)."""
    if filename and (suffix := os.path.splitext(filename)[1].lower()):
        return suffix
    sub = content_type.split("/", 1)[-1].split(";")[0].strip().lower()
    return {"quicktime": ".mov", "x-matroska": ".mkv", "webm": ".webm", "x-msvideo": ".avi"}.get(sub, ".mp4")
