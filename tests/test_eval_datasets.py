"""Dataset readers on small hand-written files in the upstream layouts, and the synthetic generator."""

from __future__ import annotations

import json
import pickle
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from sam3_agent.errors import ImageError
from sam3_agent.evaluation.datasets import DatasetError, load_dataset
from sam3_agent.evaluation.datasets.common import image_size
from sam3_agent.evaluation.datasets.counting import hide_number, plural, read_coco_counting, read_countbench
from sam3_agent.evaluation.datasets.folder import read_folder
from sam3_agent.evaluation.datasets.reasonseg import read_reasonseg
from sam3_agent.evaluation.datasets.refcoco import read_refcoco
from sam3_agent.evaluation.predictors import counting_phrase, union_mask
from sam3_agent.evaluation.synthetic import SceneSetSegmenter, read_synthetic, synthetic_answers, write_synthetic
from sam3_agent.images import load_image
from sam3_agent.masks import rle_decode
from sam3_agent.schema import Prompt


def _image(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 90, 90)).save(path)
    return path


# --- ReasonSeg ---------------------------------------------------------------------------------------------------


def _reasonseg_folder(root: Path) -> Path:
    val = root / "val"
    _image(val / "a.jpg", 20, 16)
    anno_a = {
        "text": ["the grey square", "another wording"],
        "is_sentence": False,
        "shapes": [
            # listed first but smaller: drawn after the big target, so it stays ignored (LISA sorts by area)
            {"label": "ignore", "points": [[2, 2], [3, 2], [3, 3], [2, 3]]},
            {"label": "target", "points": [[0, 0], [9, 0], [9, 9], [0, 9]]},
            {"label": "flag", "points": [[15, 10], [19, 10], [19, 15]]},
            {"label": "target", "points": [[12.7, 11.2], [15.9, 11.2], [15.9, 13.9], [12.7, 13.9]]},
        ],
    }
    (val / "a.json").write_text(json.dumps(anno_a), encoding="utf-8")
    _image(val / "b.jpg", 20, 16)
    anno_b = '{"text": ["What would a caf\xe9 serve this on?"], "is_sentence": true, "shapes": []}'
    (val / "b.json").write_bytes(anno_b.encode("cp1252"))  # not UTF-8: LISA falls back to cp1252, so do we
    return root


def test_reasonseg_reads_lisa_layout(tmp_path: Path) -> None:
    samples = read_reasonseg(_reasonseg_folder(tmp_path / "ReasonSeg"), split="val")
    assert [s.id for s in samples] == ["reasonseg/val/a", "reasonseg/val/b"]
    a, b = samples
    assert (a.query, a.subset, a.split, a.task) == ("the grey square", "short", "val", "segment")
    assert b.query == "What would a café serve this on?" and b.subset == "long"
    target, ignore = rle_decode(a.gt_mask), rle_decode(a.ignore_mask)
    assert target.shape == (16, 20)
    # 10x10 square (outline included) minus the 2x2 ignored block, plus the 4x3 square of truncated points
    assert target.sum() == 100 - 4 + 4 * 3
    assert ignore.sum() == 4 and ignore[2:4, 2:4].all() and not (ignore & target).any()
    assert target[11:14, 12:16].all() and not target[10:16, 16:].any()  # the "flag" shape was skipped
    assert rle_decode(b.gt_mask).sum() == 0 and b.ignore_mask is None  # no shape: an empty target
    assert Path(a.image).name == "a.jpg"


def test_reasonseg_all_queries_and_split_folder(tmp_path: Path) -> None:
    root = _reasonseg_folder(tmp_path / "ReasonSeg")
    samples = read_reasonseg(root / "val", split=None, all_queries=True)
    assert [(s.id, s.query) for s in samples[:2]] == [
        ("reasonseg/val/a#0", "the grey square"),
        ("reasonseg/val/a#1", "another wording"),
    ]
    with pytest.raises(DatasetError, match="no 'test' folder"):
        read_reasonseg(root, split="test")
    (root / "val" / "b.jpg").unlink()
    with pytest.raises(DatasetError, match="no image beside"):
        read_reasonseg(root, split="val")


def test_image_size_follows_exif_rotation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    path = tmp_path / "rotated.jpg"
    Image.new("RGB", (30, 10)).save(path, exif=exif)
    assert image_size(path) == (30, 10)
    loaded = load_image(path)
    assert (loaded.height, loaded.width) == (30, 10)


# --- RefCOCO ------------------------------------------------------------------------------------------------------


def _py2_pickle(obj: object) -> bytes:
    """Pickle dicts / lists / str / int the way Python 2 did: str as 8-bit SHORT_BINSTRING (bytes in Python 3)."""
    out = bytearray(b"\x80\x02")

    def emit(o: object) -> None:
        if isinstance(o, dict):
            out.extend(b"}(")
            for k, v in o.items():
                emit(k)
                emit(v)
            out.extend(b"u")
        elif isinstance(o, list):
            out.extend(b"](")
            for v in o:
                emit(v)
            out.extend(b"e")
        elif isinstance(o, str):
            data = o.encode("utf-8")
            out.extend(b"U" + bytes([len(data)]) + data)
        else:
            out.extend(b"J" + struct.pack("<i", o))

    emit(obj)
    out.extend(b".")
    return bytes(out)


def _refer_root(root: Path) -> Path:
    h, w = 10, 12
    box = np.zeros((h, w), np.uint8, order="F")
    box[5:9, 6:11] = 1
    compressed = coco_mask.encode(box)
    uncompressed_counts = [0, 20, 100]  # column-major: first 20 pixels (two columns of 10) set
    segmentations = [
        [[1, 1, 5, 1, 5, 4, 1, 4]],  # one polygon (continuous coordinates): pixels x 1..4, y 1..3
        {"size": [h, w], "counts": uncompressed_counts},
        {"size": [h, w], "counts": compressed["counts"].decode()},
        [[0, 0, 2, 0, 2, 2, 0, 2], [8, 0, 10, 0, 10, 2, 8, 2]],  # two polygons, merged
    ]
    categories = [3, 3, 4, 4]
    coco = {
        "images": [{"id": 7, "file_name": "COCO_train2014_000000000007.jpg", "height": h, "width": w}],
        "annotations": [
            {"id": i + 1, "image_id": 7, "category_id": c, "segmentation": seg}
            for i, (c, seg) in enumerate(zip(categories, segmentations, strict=True))
        ],
        "categories": [{"id": 3, "name": "cup"}, {"id": 4, "name": "dog"}],
    }  # fmt: skip
    refs = [
        {"ref_id": 12, "ann_id": 3, "image_id": 7, "split": "val", "category_id": 4,
         "sentences": [{"sent": "dog on the right", "sent_id": 120}]},
        {"ref_id": 10, "ann_id": 1, "image_id": 7, "split": "val", "category_id": 3,
         "sentences": [{"sent": "left cup", "sent_id": 100}, {"sent": "  cup near the edge ", "sent_id": 101}]},
        {"ref_id": 11, "ann_id": 2, "image_id": 7, "split": "testA", "category_id": 3,
         "sentences": [{"sent": "tall cup", "sent_id": 110}]},
        {"ref_id": 13, "ann_id": 4, "image_id": 7, "split": "val", "category_id": 4,
         "sentences": [{"sent": "two dog parts", "sent_id": 130}, {"sent": "", "sent_id": 131}]},
    ]  # fmt: skip
    (root / "refcoco").mkdir(parents=True)
    (root / "refcoco" / "instances.json").write_text(json.dumps(coco))
    (root / "refcoco" / "refs(unc).p").write_bytes(_py2_pickle(refs))
    _image(root / "images/mscoco/images/train2014/COCO_train2014_000000000007.jpg", w, h)
    return root


def test_refcoco_reads_refer_layout_with_python2_pickle(tmp_path: Path) -> None:
    root = _refer_root(tmp_path / "refer")
    samples = read_refcoco(root, dataset="refcoco", split="val")
    assert [s.id for s in samples] == [
        "refcoco/val/10/100",
        "refcoco/val/10/101",
        "refcoco/val/12/120",
        "refcoco/val/13/130",
    ]
    assert [s.query for s in samples] == ["left cup", "cup near the edge", "dog on the right", "two dog parts"]
    polygon, _, compressed, two_polygons = (rle_decode(s.gt_mask) for s in samples)
    assert polygon.shape == (10, 12) and polygon.sum() == 4 * 3 and polygon[1:4, 1:5].all()
    assert compressed.sum() == 20 and compressed[5:9, 6:11].all()
    assert two_polygons.sum() == 8 and two_polygons[0:2, 0:2].all() and two_polygons[0:2, 8:10].all()
    assert samples[0].meta == {"ref_id": 10, "ann_id": 1, "image_id": 7, "category": "cup"}
    assert samples[0].image.endswith("images/mscoco/images/train2014/COCO_train2014_000000000007.jpg")
    (test_a,) = read_refcoco(root, dataset="refcoco", split="testA")
    mask = rle_decode(test_a.gt_mask)
    assert mask.sum() == 20 and mask[:, :2].all()  # uncompressed RLE, column-major
    assert len(read_refcoco(root, dataset="refcoco", split=None)) == 5


def test_refcoco_errors(tmp_path: Path) -> None:
    root = _refer_root(tmp_path / "refer")
    with pytest.raises(DatasetError, match=r"refs\(umd\)\.p"):
        read_refcoco(root, dataset="refcoco", split_by="umd")
    with pytest.raises(DatasetError, match="no ref of split 'testB'"):
        read_refcoco(root, dataset="refcoco", split="testB")
    with pytest.raises(DatasetError, match=r"no refcocog/instances\.json"):
        read_refcoco(root, dataset="refcocog")
    with pytest.raises(DatasetError, match="does not exist"):
        read_refcoco(root, dataset="refcoco", images_dir=tmp_path / "nowhere")
    # a pickle that would call a function is refused, not run
    (root / "refcoco" / "refs(unc).p").write_bytes(pickle.dumps([Path("x")]))
    with pytest.raises(DatasetError, match="refers to pathlib"):
        read_refcoco(root, dataset="refcoco")


# --- counting ----------------------------------------------------------------------------------------------------


def test_countbench_question_caption_and_url(tmp_path: Path) -> None:
    _image(tmp_path / "imgs" / "0.jpg", 8, 8)
    items = [
        {"image_url": "https://example.org/cats.jpg", "text": "Three cats on a sofa", "number": 3},
        {"image": "imgs/0.jpg", "question": "How many apples are in the bowl?", "number": "2", "id": "q1"},
        {"file_name": "imgs/0.jpg", "text": "a photo of 7 kites flying", "count": 7, "phrase": "kite"},
    ]
    path = tmp_path / "countbench.json"
    path.write_text(json.dumps(items))
    cats, apples, kites = read_countbench(path)
    assert cats.image == "https://example.org/cats.jpg" and cats.gt_count == 3 and cats.id == "countbench/00000"
    assert "Three" not in cats.query and '"N cats on a sofa"' in cats.query and cats.phrase == "cats"
    assert (apples.id, apples.query, apples.gt_count, apples.phrase) == ("q1", items[1]["question"], 2, None)
    assert apples.image == str(tmp_path / "imgs/0.jpg") and cats.split == "test"
    assert kites.phrase == "kite" and "7" not in kites.query
    jsonl = tmp_path / "cb.jsonl"
    jsonl.write_text("\n".join(json.dumps(i) for i in items) + "\n\n")
    assert [s.gt_count for s in read_countbench(jsonl, images_dir=tmp_path)] == [3, 2, 7]
    path.write_text(json.dumps({"data": [{"image": "x.jpg", "number": -1, "text": "t"}]}))
    with pytest.raises(DatasetError, match="number >= 0"):
        read_countbench(path)


def test_coco_counting_by_category(tmp_path: Path) -> None:
    coco = {
        "images": [{"id": 2, "file_name": "b.jpg"}, {"id": 1, "file_name": "a.jpg"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1},
            {"id": 2, "image_id": 1, "category_id": 1},
            {"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 1},  # a crowd region is not one object
            {"id": 4, "image_id": 2, "category_id": 2},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "cup"}],
    }
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(coco))
    samples = read_coco_counting(path, tmp_path / "val2017")
    assert [(s.id, s.gt_count, s.phrase) for s in samples] == [
        ("coco-count/1/1", 2, "person"),
        ("coco-count/2/2", 1, "cup"),
    ]
    assert samples[0].query == "How many people are there in the image?" and samples[0].split == "val2017"
    assert samples[1].image == str(tmp_path / "val2017" / "b.jpg")
    with_zero = read_coco_counting(path, include_zero=True, categories=["cup"])
    assert [(s.id, s.gt_count) for s in with_zero] == [("coco-count/1/2", 0), ("coco-count/2/2", 1)]
    with pytest.raises(DatasetError, match="unknown categories"):
        read_coco_counting(path, categories=["giraffe"])


@pytest.mark.parametrize(
    ("question", "phrase"),
    [
        ("How many red cups are on the table?", "red cups"),
        ("how many people are there", "people"),
        ("How many zebras?", "zebras"),
        ("Count the birds", "Count the birds"),
    ],
)
def test_counting_phrase(question: str, phrase: str) -> None:
    assert counting_phrase(question) == phrase


def test_plural_and_hide_number() -> None:
    assert [plural(n) for n in ("cup", "bus", "person", "teddy bear", "strawberry", "toy")] == [
        "cups", "buses", "people", "teddy bears", "strawberries", "toys",
    ]  # fmt: skip
    assert hide_number("two dogs and a cat", 2) == ("N dogs and a cat", "dogs")
    assert hide_number("no number here", 4) == ("no number here", None)


def test_folder_and_duplicate_ids(tmp_path: Path) -> None:
    _image(tmp_path / "photos" / "b.png", 4, 4)
    _image(tmp_path / "photos" / "sub" / "a.jpg", 4, 4)
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    samples = read_folder(tmp_path / "photos", "how many cups?", task="count")
    assert [s.id for s in samples] == ["folder/b.png", "folder/sub/a.jpg"]
    assert all(s.task == "count" and s.gt_count is None and not s.has_ground_truth for s in samples)
    assert len(load_dataset("folder", tmp_path / "photos", query="cups", limit=1)) == 1
    with pytest.raises(DatasetError, match="needs a query"):
        read_folder(tmp_path / "photos", " ")
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps([{"image": "x.jpg", "question": "how many?", "number": 1, "id": "same"}] * 2))
    with pytest.raises(DatasetError, match="occurs twice"):
        load_dataset("countbench", dup)


# --- synthetic ---------------------------------------------------------------------------------------------------


def test_synthetic_set_is_consistent_with_its_scenes(tmp_path: Path) -> None:
    written = write_synthetic(tmp_path / "syn", n_images=8, seed=3)
    samples = read_synthetic(tmp_path / "syn")
    assert written.n_samples == len(samples)
    by_kind = Counter((s.dataset, s.subset) for s in samples)
    assert by_kind[("reasonseg", "short")] == 4 and by_kind[("reasonseg", "long")] == 4
    assert by_kind[("refcoco", None)] == 6 * 2 * 2  # 6 of 8 images are "val", 2 refs each, 2 sentences each
    assert by_kind[("countbench", None)] == 8
    assert sum(s.ignore_mask is not None for s in samples) == 2  # images 2 and 5 carry an ignore region
    answers = synthetic_answers(tmp_path / "syn")
    segmenter = SceneSetSegmenter.load(tmp_path / "syn")
    for sample in samples:
        image = load_image(sample.image)
        (found,) = segmenter.segment(image, [Prompt(text=answers[sample.id])])
        if sample.task == "segment":
            # the phrase the manifest names gives back the ground truth exactly, through every format
            truth = rle_decode(union_mask(found, (image.height, image.width)))
            assert np.array_equal(truth, rle_decode(sample.gt_mask)), sample.id
        else:
            assert len(found) == sample.gt_count, sample.id
    with pytest.raises(ImageError, match="not one of the synthetic scenes"):
        segmenter.segment(Image.new("RGB", (128, 96), (0, 0, 0)), [Prompt(text="ball")])
