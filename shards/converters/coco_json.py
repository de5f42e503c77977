"""Shared reading of COCO-style annotation JSON for the labeled-set converters.

COCO instances, refer's ``instances.json``, gRefCOCO, PACO and PartImageNet all store
``images`` ({id, file_name, width, height}), ``annotations`` ({id, image_id, category_id,
segmentation, iscrowd, ...}) and ``categories`` ({id, name, supercategory}). A
``segmentation`` is a list of polygons ``[[x0, y0, x1, y1, ...], ...]``, a compressed RLE
``{"size": [h, w], "counts": str}`` or, for crowd regions, an uncompressed RLE with a list
of counts.

Problems found by the cheap checks here (unknown category, degenerate or out-of-image
polygon, RLE of the wrong size or undecodable) are reported while listing, so a bad
annotation is quarantined alone and the rest of its image still converts.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ijson
import numpy as np

from shards.converters import ConvertError, Rejected
from shards.images import StoredImage, prepare_image
from shards.rle import RLEError, coco_segmentation_to_rle, rle_area, validate_rle

# Polygon vertices may sit this many pixels outside the image (COCO rounds to the border).
POLYGON_TOLERANCE = 1.0


def load_json(path: str | Path) -> Any:
    """Reads a JSON annotation file, naming the file in every error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist")
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConvertError(f"{path.name}: not valid JSON: {e}") from e


@dataclass
class CocoIndex:
    """Lookups over a COCO-style document.

    Attributes:
        images (dict[int, dict]): image id -> image record.
        anns (Mapping[int, dict]): annotation id -> annotation (a SpilledAnnotations when streamed).
        cats (dict[int, dict]): category id -> category record.
        anns_by_image (Mapping[int, list[dict]]): image id -> its annotations, in file order.
    """

    images: dict[int, dict] = field(default_factory=dict)
    anns: Mapping[int, dict] = field(default_factory=dict)
    cats: dict[int, dict] = field(default_factory=dict)
    anns_by_image: Mapping[int, list[dict]] = field(default_factory=lambda: defaultdict(list))


def index_coco(doc: Any, name: str = "annotation file", annotations: bool = True) -> CocoIndex:
    """Builds a CocoIndex; a document without the lists, or a record without an id, fails clearly.

    Args:
        doc: the loaded JSON.
        name: file name for error messages.
        annotations: index ``annotations`` too (COCO panoptic's records have no ``id``).
    """
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "categories")):
        raise ConvertError(f"{name}: not a COCO-style document (needs 'images' and 'categories' lists)")
    idx = CocoIndex()
    kind = "an image"
    try:
        for img in doc["images"]:
            idx.images[img["id"]] = img
        kind = "a category"
        for cat in doc["categories"]:
            idx.cats[cat["id"]] = cat
        kind = "an annotation"
        for ann in (doc.get("annotations") or []) if annotations else []:
            idx.anns[ann["id"]] = ann
            idx.anns_by_image[ann["image_id"]].append(ann)
    except (KeyError, TypeError) as e:
        raise ConvertError(f"{name}: {kind} record lacks {e}") from e
    return idx


class SpilledAnnotations(Mapping):
    """Annotation id -> annotation, kept as JSON in an anonymous temporary file.

    Memory holds only where each record is (offset, length) and each image's annotation
    ids; a record is parsed again on every access, so a converter holding this for a whole
    split keeps one image's annotations in memory at a time.
    """

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()
        self._where: dict[Any, tuple[int, int]] = {}
        self.ids_by_image: dict[Any, list[Any]] = defaultdict(list)  # image id -> ann ids, file order

    def add(self, ann: dict) -> None:
        """Stores an annotation (it needs an ``id`` and an ``image_id``)."""
        data = json.dumps(ann, ensure_ascii=False).encode("utf-8")
        self._file.seek(0, os.SEEK_END)
        self._where[ann["id"]] = (self._file.tell(), len(data))
        self.ids_by_image[ann["image_id"]].append(ann["id"])
        self._file.write(data)

    def __getitem__(self, ann_id: Any) -> dict:
        offset, length = self._where[ann_id]
        self._file.seek(offset)
        return json.loads(self._file.read(length))

    def __contains__(self, ann_id: object) -> bool:
        return ann_id in self._where

    def __iter__(self) -> Iterator[Any]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


class _AnnotationsByImage(Mapping):
    """Image id -> its annotations in file order, read from a SpilledAnnotations on access."""

    def __init__(self, anns: SpilledAnnotations):
        self._anns = anns

    def __getitem__(self, image_id: Any) -> list[dict]:
        return [self._anns[i] for i in self._anns.ids_by_image[image_id]] if image_id in self else []

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._anns.ids_by_image

    def __iter__(self) -> Iterator[Any]:
        return iter(self._anns.ids_by_image)

    def __len__(self) -> int:
        return len(self._anns.ids_by_image)


def stream_coco(
    path: str | Path, image_ids: set | None = None, ann_ids: set | None = None, annotations: bool = True
) -> CocoIndex:
    """A CocoIndex of an annotation file, parsed incrementally (never the whole document in memory).

    Holds the selected image records and every category; the selected annotations go to a
    SpilledAnnotations (``idx.anns`` and ``idx.anns_by_image`` read them back on access).
    Three passes over the file (categories, images, annotations), each streaming.

    Args:
        path: the JSON file.
        image_ids: keep only these images (None: all).
        ann_ids: keep only these annotations (None: all).
        annotations: read ``annotations`` at all (COCO panoptic's records have no ``id``).

    Raises:
        FileNotFoundError: the file does not exist.
        ConvertError: not valid JSON, not a COCO-style document, or a record without an id.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist")
    name = path.name

    def items(prefix: str) -> Iterator[Any]:
        with open(path, "rb") as f:
            try:
                yield from ijson.items(f, prefix, use_float=True)
            except ijson.JSONError as e:
                raise ConvertError(f"{name}: not valid JSON: {e}") from e

    cats = next(items("categories"), None)
    images = next(items("images"), None)
    if not isinstance(cats, list) or not isinstance(images, list):
        raise ConvertError(f"{name}: not a COCO-style document (needs 'images' and 'categories' lists)")
    spilled = SpilledAnnotations()
    idx = CocoIndex(anns=spilled, anns_by_image=_AnnotationsByImage(spilled))
    kind = "an image"
    try:
        for img in images:
            if image_ids is None or img["id"] in image_ids:
                idx.images[img["id"]] = img
        del images
        kind = "a category"
        for cat in cats:
            idx.cats[cat["id"]] = cat
        kind = "an annotation"
        for ann in items("annotations.item") if annotations else ():
            if ann_ids is None or ann["id"] in ann_ids:
                spilled.add(ann)
    except (KeyError, TypeError) as e:
        raise ConvertError(f"{name}: {kind} record lacks {e}") from e
    return idx


def clean_name(name: str) -> str:
    """A category name as words: ``car_(automobile)`` -> ``car``, ``wall-other-merged`` -> ``wall``."""
    name = re.sub(r"_\(.*?\)$", "", name.strip())
    name = re.sub(r"(-other)?-merged$", "", name)
    name = re.sub(r"-other$", "", name)
    return re.sub(r"[_\-\s]+", " ", name).strip().lower()


def _valid_rings(segm: list) -> list[list[float]]:
    """Polygon rings with at least 3 points (COCO files hold a few 1- and 2-point rings)."""
    return [ring for ring in segm if isinstance(ring, list) and len(ring) >= 6 and len(ring) % 2 == 0]


def _ring_area(ring: list[float]) -> float:
    xy = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def segmentation_problem(segm: Any, height: int, width: int) -> str | None:
    """Why a segmentation cannot become a mask of an (height, width) image, or None if it can.

    Cheap checks only (no rasterising): empty or degenerate polygons, vertices outside the
    image, non-numeric coordinates, RLE size different from the image, RLE counts that do
    not decode to h*w pixels.
    """
    if isinstance(segm, list):
        if not segm:
            return "empty segmentation"
        if not all(
            isinstance(ring, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ring)
            for ring in segm
        ):
            return "polygon coordinates are not numbers"
        rings = _valid_rings(segm)
        if not rings or sum(_ring_area(r) for r in rings) < 0.5:
            return "degenerate polygon (fewer than 3 points or zero area)"
        coords = np.concatenate([np.asarray(r, dtype=np.float64) for r in rings])
        xs, ys = coords[0::2], coords[1::2]
        if not np.isfinite(coords).all():
            return "polygon has non-finite coordinates"
        t = POLYGON_TOLERANCE
        if xs.min() < -t or ys.min() < -t or xs.max() > width + t or ys.max() > height + t:
            return (
                f"polygon outside the image: x in [{xs.min():g}, {xs.max():g}], y in "
                f"[{ys.min():g}, {ys.max():g}] for a {width}x{height} image"
            )
        return None
    if isinstance(segm, dict):
        size = segm.get("size")
        if not isinstance(size, (list, tuple)) or [*size] != [height, width]:
            return f"RLE size {size} differs from image size [{height}, {width}]"
        counts = segm.get("counts")
        if isinstance(counts, bytes):
            counts = counts.decode("ascii", "replace")
        try:
            validate_rle({"size": [int(s) for s in size], "counts": counts})
        except (RLEError, TypeError, ValueError) as e:
            return f"undecodable RLE: {e}"
        return None
    return f"unsupported segmentation type {type(segm).__name__}"


def checked_images(idx: CocoIndex) -> Iterator[tuple[dict, list[dict]] | Rejected]:
    """Per image (in id order): a Rejected for each annotation that cannot become a target,
    then (image record, its good annotations) when any are left."""
    for image_id in sorted(idx.anns_by_image):
        image = idx.images.get(image_id)
        good = []
        for ann in idx.anns_by_image[image_id]:
            problem = annotation_problem(ann, image, idx.cats)
            if problem:
                label = image["file_name"] if image else f"image {image_id}"
                yield Rejected(f"{label}#ann{ann.get('id')}", problem)
            else:
                good.append(ann)
        if good:
            yield image, good


def annotation_problem(ann: dict, image: dict | None, cats: dict[int, dict]) -> str | None:
    """Why an annotation cannot become a target (unknown image/category, bad segmentation), or None."""
    if image is None:
        return f"annotation {ann.get('id')} refers to image {ann.get('image_id')}, not in the images list"
    if ann.get("category_id") not in cats:
        return f"annotation {ann.get('id')} has an unknown category id {ann.get('category_id')!r}"
    if "segmentation" not in ann:
        return f"annotation {ann.get('id')} has no segmentation"
    problem = segmentation_problem(ann["segmentation"], image["height"], image["width"])
    return None if problem is None else f"annotation {ann.get('id')}: {problem}"


def annotation_rle(ann: dict, image: dict) -> dict[str, Any]:
    """The annotation's mask as our compressed RLE (polygons rasterised, crowd RLE recompressed).

    Raises:
        ConvertError: the segmentation cannot be decoded at the image's size.
    """
    segm = ann["segmentation"]
    if isinstance(segm, list):
        segm = _valid_rings(segm)
    try:
        return coco_segmentation_to_rle(segm, image["height"], image["width"])
    except (RLEError, TypeError, ValueError) as e:
        raise ConvertError(f"annotation {ann.get('id')}: cannot decode segmentation: {e}") from e


def nonempty(rle: dict[str, Any]) -> bool:
    """True if the mask has at least one foreground pixel (tiny polygons can rasterise to none)."""
    return rle_area(rle) > 0


def read_image(images_dir: Path, image: dict, path: Path | None = None) -> StoredImage:
    """Reads an image named by a COCO image record and checks it against the recorded size.

    Args:
        images_dir (Path): folder the record's ``file_name`` is relative to.
        image (dict): the COCO image record (file_name, width, height).
        path (Path | None): the file, when the layout does not follow ``images_dir/file_name``.

    Raises:
        ConvertError: the file is missing, or its size differs from ``width``/``height``.
        ImageError: the file is not a readable image.
    """
    path = path or images_dir / image["file_name"]
    if not path.is_file():
        raise ConvertError(f"missing image file {path}")
    stored = prepare_image(path.read_bytes())
    if (stored.width, stored.height) != (image["width"], image["height"]):
        raise ConvertError(
            f"image is {stored.width}x{stored.height} but the annotation file says {image['width']}x{image['height']}"
        )
    return stored


def find_one(folder: Path, patterns: list[str], what: str) -> Path:
    """The single file matching the first pattern that matches anything under folder.

    Raises:
        FileNotFoundError: nothing matches (the message lists the patterns).
        ConvertError: a pattern matches several files (the message lists them).
    """
    for pattern in patterns:
        found = sorted(p for p in folder.glob(pattern) if p.is_file())
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(str(p.relative_to(folder)) for p in found)
            raise ConvertError(f"several {what} files under {folder}: {names}; choose one with an option")
    raise FileNotFoundError(f"no {what} under {folder} (looked for {', '.join(patterns)})")
