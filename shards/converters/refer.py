"""RefCOCO, RefCOCO+ and RefCOCOg in refer's layout (github.com/lichengunc/refer).

Layout, as refer's ``REFER(data_root, dataset, splitBy)`` reads it::

    data_root/refcoco/refs(unc).p          refs(google).p; refcocog: refs(umd).p / refs(google).p
    data_root/refcoco/instances.json       COCO-style images, annotations, categories
    data_root/images/mscoco/images/train2014/COCO_train2014_*.jpg

``SRC`` is the dataset folder (``data_root/refcoco``). A ref is one referred object:
``{ref_id, ann_id, image_id, split, category_id, sent_ids, file_name, sentences: [{sent,
tokens, raw, sent_id}]}``; its mask is the COCO annotation ``ann_id``. One sample per image
holds one target per ref of the requested split, with all the ref's sentences as texts.

Splits are selected as refer's ``getRefIds(split=...)`` does: train and val exactly,
testA/testB/testC by letter (RefCOCO+ also has testAB...), test = every test split.

Granularity is "instance", except for annotations whose category is named "group"
(granularity "group") or has supercategory "part" (granularity "part"): COCO has neither,
the synthetic shapes set (shards.synth) uses them for group and part expressions.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shards.converters import ConvertError, Item, Rejected, image_sample, order_splits, register_converter
from shards.converters.coco_json import (
    CocoIndex,
    annotation_problem,
    annotation_rle,
    find_one,
    nonempty,
    read_image,
    stream_coco,
)
from shards.converters.safe_pickle import safe_load, safe_load_list
from shards.format import Sample, Target
from shards.keys import make_key

log = logging.getLogger(__name__)


def split_matches(ref_split: str, wanted: str) -> bool:
    """Whether a ref of split ``ref_split`` belongs to the requested split, as refer selects."""
    if wanted in ("testA", "testB", "testC"):
        return ref_split.startswith("test") and wanted[-1] in ref_split[4:]
    if wanted == "test":
        return "test" in ref_split
    return ref_split == wanted


def find_refs_file(src: Path, split_by: str | None, stem: str = "refs") -> tuple[Path, str]:
    """The ``<stem>(<split_by>).p`` file of src, and its split_by; the only one when not given."""
    if split_by:
        path = src / f"{stem}({split_by}).p"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        return path, split_by
    path = find_one(src, [f"{stem}(*).p"], f"{stem}(<split_by>).p")
    return path, path.name[len(stem) + 1 : -3]


def default_images_dir(src: Path, candidates: list[Path]) -> Path:
    """The first existing directory among candidates, else ``src/images``."""
    for c in candidates:
        if c.is_dir():
            return c
    return src / "images"


def id_order(value: Any) -> tuple:
    """Sort key for ids that are usually ints (numeric order) but may be anything."""
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def compact_ref(ref: dict) -> dict[str, Any]:
    """The fields converters use, without tokens and raw texts (a split is held in memory)."""
    return {
        "ref_id": ref.get("ref_id"),
        "ann_id": ref.get("ann_id"),
        "image_id": ref.get("image_id"),
        "no_target": ref.get("no_target"),
        "texts": ref_texts(ref),
        "sent_ids": [s.get("sent_id") for s in ref.get("sentences") or [] if isinstance(s, dict)],
    }


def in_split(ref: dict, split: str, exact: bool = False) -> bool:
    """Whether a ref belongs to the split wanted: refer's matching (split_matches), or equality if exact."""
    return str(ref.get("split")) == split if exact else split_matches(str(ref.get("split")), split)


def split_index(src: Path, refs: list[dict]) -> CocoIndex:
    """The part of ``src/instances.json`` that compact refs use, streamed (stream_coco).

    Only the refs' images stay in memory; their annotations wait in a temporary file.
    """
    ann_ids = {a for r in refs for a in (r["ann_id"] if isinstance(r["ann_id"], list) else [r["ann_id"]])}
    return stream_coco(src / "instances.json", {r["image_id"] for r in refs}, ann_ids)


def select_split(src: Path, refs: list[dict], split: str, exact: bool = False) -> tuple[list[dict], CocoIndex]:
    """Compact refs of one split and the part of ``src/instances.json`` they use (split_index).

    ``refs`` is emptied once the split's compact refs are taken, so that the raw refs are
    freed before instances.json is read.

    Args:
        src: the dataset folder (holding instances.json).
        refs: every ref of the refs file (emptied).
        split: the split wanted; refer's matching (split_matches), or equality if exact.
        exact: match split names exactly (gRefCOCO).

    Raises:
        ConvertError: no ref has that split (the message lists the splits present).
    """
    chosen = [compact_ref(r) for r in refs if isinstance(r, dict) and in_split(r, split, exact)]
    have = sorted({str(r.get("split")) for r in refs if isinstance(r, dict)}) if not chosen else []
    refs.clear()
    if not chosen:
        raise ConvertError(f"no refs of split {split!r}; the refs file has {', '.join(have)}")
    return chosen, split_index(src, chosen)


def load_split_refs(path: Path, split: str, exact: bool = False) -> list[dict]:
    """The compact refs of one split, streamed from a refs pickle (restricted: plain data only).

    Each ref is compacted or dropped as it is read (safe_load_list), so the whole file is
    never in memory as Python objects (several times its size on disk).

    Raises:
        ConvertError: not a pickled list of dicts, or no ref has that split (the message lists
            the splits present).
    """
    have: set[str] = set()

    def keep(ref: Any) -> dict | None:
        if not isinstance(ref, dict):
            raise ConvertError(f"expected a list of ref dicts, got a {type(ref).__name__} in it")
        have.add(str(ref.get("split")))
        return compact_ref(ref) if in_split(ref, split, exact) else None

    chosen = safe_load_list(path, keep)
    if not chosen:
        raise ConvertError(f"no refs of split {split!r}; the refs file has {', '.join(sorted(have))}")
    return chosen


def ref_texts(ref: dict) -> list[str]:
    """The distinct non-empty sentences of a ref, in order."""
    texts: list[str] = []
    for s in ref.get("sentences") or []:
        sent = (s.get("sent") or s.get("raw") or "").strip() if isinstance(s, dict) else ""
        if sent and sent not in texts:
            texts.append(sent)
    return texts


def category_granularity(category: dict) -> str:
    """Granularity of a referred annotation from its category (see the module docstring)."""
    if category.get("name") == "group":
        return "group"
    if category.get("supercategory") == "part":
        return "part"
    return "instance"


def refer_sample(
    images_dir: Path, image: dict, targets: list[tuple[dict, dict, list[str]]], cats: dict, source: str, task: str
) -> Sample:
    """Reads one image and turns its (ref, annotation, texts) triples into a Sample."""
    stored = read_image(images_dir, image)
    out = []
    for ref, ann, texts in targets:
        rle = annotation_rle(ann, image)
        if not nonempty(rle):
            log.warning("ref %s: annotation %s rasterises to an empty mask; dropped", ref["ref_id"], ann["id"])
            continue
        cat = cats[ann["category_id"]]
        out.append(
            Target(
                texts,
                rle,
                task,
                category_granularity(cat),
                source,
                provenance={
                    "ref_id": ref["ref_id"],
                    "ann_id": ann["id"],
                    "category": cat.get("name"),
                    "sent_ids": ref["sent_ids"],
                },
            )
        )
    if not out:
        raise ConvertError("every referred mask of this image is empty")
    name = image["file_name"]
    return image_sample(source, name, str(image["id"]), stored, out)


def load_refs(path: Path) -> list[dict]:
    """Reads a refs pickle (restricted: plain data only) and checks it is a list of dicts."""
    refs = safe_load(path)
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise ConvertError(f"{path.name}: expected a list of ref dicts, got {type(refs).__name__}")
    return refs


def refer_splits(src: Path, split_by: str | None = None, **_: Any) -> list[str]:
    """The split names of the refs file (RefCOCO: train, val, testA, testB; RefCOCOg umd: train, val, test)."""
    refs_path, _ = find_refs_file(src, split_by)
    have: set[str] = set()

    def note(ref: Any) -> None:
        if isinstance(ref, dict):
            have.add(str(ref.get("split")))
        return None

    safe_load_list(refs_path, note)
    return order_splits(have)


@register_converter("refcoco", splits=refer_splits)
def convert_refcoco(
    src: Path, split: str = "train", split_by: str | None = None, images: str | None = None, name: str | None = None
) -> Iterator[Item | Rejected]:
    """RefCOCO / RefCOCO+ / RefCOCOg (refer layout) -> "res" targets with their sentences.

    Args:
        src: the dataset folder holding ``refs(<split_by>).p`` and ``instances.json``.
        split: refer split to convert (train, val, testA, testB, test, ...).
        split_by: which refs file (unc, google, umd); default: the only one present.
        images: COCO train2014 image folder; default refer's ``src/../images/mscoco/images/train2014``
            when it exists, else ``src/images``.
        name: source name recorded on every target; default ``<src folder>(<split_by>)``.
    """
    refs_path, split_by = find_refs_file(src, split_by)
    refs = load_split_refs(refs_path, split)
    idx = split_index(src, refs)
    images_dir = (
        Path(images) if images else default_images_dir(src, [src.parent / "images" / "mscoco" / "images" / "train2014"])
    )
    source = name or f"{src.name}({split_by})"
    yield from _refer_items(refs, idx, images_dir, source)


def _refer_items(refs: list[dict], idx: CocoIndex, images_dir: Path, source: str) -> Iterator[Item | Rejected]:
    # image id -> (ref, annotation id, texts); annotations are read again when the image is built
    by_image: dict[Any, list[tuple[dict, Any, list[str]]]] = defaultdict(list)
    for ref in sorted(refs, key=lambda r: (id_order(r["image_id"]), id_order(r["ref_id"]))):
        label = f"ref {ref.get('ref_id')}"
        if not isinstance(ref["ann_id"], int) or isinstance(ref["ann_id"], bool):
            yield Rejected(label, f"ann_id must be one annotation id, got {ref['ann_id']!r}")
            continue
        image = idx.images.get(ref.get("image_id"))
        ann = idx.anns.get(ref.get("ann_id"))
        if image is None:
            yield Rejected(label, f"image {ref.get('image_id')} is not in instances.json")
            continue
        if ann is None:
            yield Rejected(label, f"annotation {ref.get('ann_id')} is not in instances.json")
            continue
        if ann.get("image_id") != image["id"]:
            yield Rejected(
                label, f"annotation {ann['id']} belongs to image {ann.get('image_id')}, the ref to image {image['id']}"
            )
            continue
        problem = annotation_problem(ann, image, idx.cats)
        if problem:
            yield Rejected(label, problem)
            continue
        texts = ref["texts"]
        if not texts:
            yield Rejected(label, "ref has no non-empty sentence")
            continue
        by_image[image["id"]].append((ref, ann["id"], texts))
    for image_id, targets in by_image.items():
        image = idx.images[image_id]
        yield Item(
            make_key(source, image["file_name"]),
            image["file_name"],
            lambda im=image, ts=targets: refer_sample(
                images_dir, im, [(r, idx.anns[a], t) for r, a, t in ts], idx.cats, source, "res"
            ),
        )
