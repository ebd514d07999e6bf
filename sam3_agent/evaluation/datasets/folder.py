"""A plain folder of images with one query for all of them (a batch run; no ground truth, no metrics)."""

from __future__ import annotations

from pathlib import Path

from sam3_agent.evaluation.datasets.common import IMAGE_SUFFIXES, DatasetError
from sam3_agent.evaluation.records import Sample, Task


def read_folder(folder: str | Path, query: str, *, task: Task = "segment", phrase: str | None = None) -> list[Sample]:
    """One sample per image under ``folder`` (recursively, sorted), each asked ``query``.

    Ids are the images' paths relative to ``folder``; the split is the folder's name.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist")
    if not query.strip():
        raise DatasetError("a folder run needs a query (--query)")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    return [
        Sample(
            id=f"folder/{p.relative_to(root).as_posix()}",
            dataset="folder",
            split=root.name or "images",
            task=task,
            image=str(p),
            query=query.strip(),
            phrase=phrase,
        )
        for p in paths
    ]
