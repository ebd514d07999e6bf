"""Counting sets: CountBench-style question lists, and any COCO-format set counted by category.

CountBench (Paiss et al., "Teaching CLIP to Count to Ten", ICCV 2023) is released as a list of items with
``image_url``, ``text`` (a caption that contains the number) and ``number``. Question-style copies (e.g.
CountBenchQA) add ``question``. ``read_countbench`` takes a JSON list (or ``{"data": [...]}``) or JSONL with:
- the image under ``image``, ``image_path``, ``file_name``, ``image_url`` or ``url`` (first one set):
  an http(s) URL, or a path relative to ``images_dir`` (default: the file's folder);
- the answer under ``number``, ``count`` or ``answer``;
- the query: ``question`` when present; otherwise it is built from ``text`` with the number word hidden,
  so the caption does not give the answer away;
- optionally ``phrase`` (the noun phrase the no-LLM baseline counts) and ``id``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from sam3_agent.agent.planner.words import plural
from sam3_agent.evaluation.datasets.common import DatasetError, read_json, resolve_image
from sam3_agent.evaluation.records import Sample

IMAGE_KEYS = ("image", "image_path", "file_name", "image_url", "url")
NUMBER_KEYS = ("number", "count", "answer")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_STOP = {"in", "on", "at", "with", "and", "of", "sitting", "standing", "lying", "are", "is", "that", "near", "from"}


def hide_number(text: str, number: int) -> tuple[str, str | None]:
    """(caption with the number word / digits replaced by "N", the words right after it as a phrase guess)."""
    words = [str(number), *((NUMBER_WORDS[number],) if 0 <= number < len(NUMBER_WORDS) else ())]
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    match = pattern.search(text)
    if match is None:
        return text, None
    following: list[str] = []
    for word in re.findall(r"[A-Za-z-]+", text[match.end() :]):
        if word.lower() in _STOP or len(following) == 3:
            break
        following.append(word.lower())
    return text[: match.start()] + "N" + text[match.end() :], " ".join(following) or None


def _items(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".jsonl":
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise DatasetError(f"cannot read {path}: {exc}") from exc
        try:
            items = [json.loads(line) for line in lines if line.strip()]
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path} is not valid JSONL: {exc}") from exc
    else:
        data = read_json(path)
        items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise DatasetError(f"{path} must hold a list of objects (or JSONL lines), one per counting question")
    return items


def _first(item: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((item[k] for k in keys if item.get(k) not in (None, "")), None)


def read_countbench(
    path: str | Path, *, images_dir: str | Path | None = None, split: str = "test", dataset: str = "countbench"
) -> list[Sample]:
    """Count samples of a CountBench-style file, in file order.

    Raises:
        DatasetError: unreadable file, an item without image or number, or a number that is not >= 0.
    """
    path = Path(path).expanduser()
    base = Path(images_dir).expanduser() if images_dir is not None else path.parent
    samples: list[Sample] = []
    for index, item in enumerate(_items(path)):
        image, number = _first(item, IMAGE_KEYS), _first(item, NUMBER_KEYS)
        try:
            count = int(number)
        except (TypeError, ValueError):
            count = -1
        if not isinstance(image, str) or count < 0:
            raise DatasetError(
                f"{path} item {index}: expected an image ({'/'.join(IMAGE_KEYS)}) and a number >= 0 "
                f"({'/'.join(NUMBER_KEYS)}), got image={image!r}, number={number!r}"
            )
        phrase = item.get("phrase")
        if item.get("question"):
            query = str(item["question"]).strip()
        elif item.get("text"):
            hidden, guess = hide_number(str(item["text"]), count)
            query = f'How many are there of the objects counted by "N" in this caption: "{hidden}"?'
            phrase = phrase or guess
        else:
            raise DatasetError(f"{path} item {index}: expected a 'question' or a 'text' caption")
        samples.append(
            Sample(
                id=str(item.get("id", f"{dataset}/{index:05d}")),
                dataset=dataset,
                split=split,
                task="count",
                image=resolve_image(image, base),
                query=query,
                phrase=phrase,
                gt_count=count,
                meta={"index": index},
            )
        )
    if not samples:
        raise DatasetError(f"{path} holds no counting question")
    return samples


def read_coco_counting(
    instances: str | Path,
    images_dir: str | Path | None = None,
    *,
    categories: list[str] | None = None,
    include_zero: bool = False,
    split: str | None = None,
    dataset: str = "coco-count",
) -> list[Sample]:
    """One count sample per (image, category) of a COCO ``instances*.json``: "How many <category>s are there?".

    The true count is the number of non-crowd annotations of that category in the image. By default only
    categories present in an image are asked about; ``include_zero`` also asks about the absent ones (of
    ``categories``, or of every category). ``split`` defaults to the file name without "instances_".
    """
    instances = Path(instances).expanduser()
    coco = read_json(instances)
    if not isinstance(coco, dict) or "images" not in coco or "categories" not in coco:
        raise DatasetError(f"{instances} is not a COCO instances file: expected 'images' and 'categories'")
    names = {cat["id"]: str(cat["name"]) for cat in coco["categories"]}
    if categories:
        unknown = sorted(set(categories) - set(names.values()))
        if unknown:
            raise DatasetError(f"unknown categories {unknown}; {instances} has {sorted(names.values())}")
        names = {cid: name for cid, name in names.items() if name in categories}
    counts: Counter[tuple[int, int]] = Counter(
        (ann["image_id"], ann["category_id"])
        for ann in coco.get("annotations", [])
        if not ann.get("iscrowd", 0) and ann["category_id"] in names
    )
    base = Path(images_dir).expanduser() if images_dir is not None else instances.parent
    split = split or instances.stem.removeprefix("instances_")
    samples: list[Sample] = []
    for image in sorted(coco["images"], key=lambda img: img["id"]):
        for cid, name in sorted(names.items()):
            count = counts.get((image["id"], cid), 0)
            if count == 0 and not include_zero:
                continue
            samples.append(
                Sample(
                    id=f"{dataset}/{image['id']}/{cid}",
                    dataset=dataset,
                    split=split,
                    task="count",
                    image=resolve_image(str(image["file_name"]), base),
                    query=f"How many {plural(name)} are there in the image?",
                    phrase=name,
                    gt_count=count,
                    meta={"image_id": image["id"], "category": name},
                )
            )
    if not samples:
        raise DatasetError(f"{instances} gives no counting question (no annotation of the chosen categories)")
    return samples
