"""The synthetic referring set, written in refer's layout so the real ``refcoco`` converter reads it.

Output (``OUT`` = the dataset folder, like refer's ``data/refcoco``)::

    OUT/refs(unc).p        pickle of a list of refs, exactly refer's fields: ref_id, ann_id,
                           image_id, split, sentences [{sent, tokens, raw, sent_id}],
                           category_id, sent_ids, file_name
    OUT/instances.json     COCO-style images, annotations (compressed RLE, bbox, area,
                           iscrowd 0) and categories
    OUT/images/synth_000000.png ...

One ref per referred mask: objects (category = kind), parts (supercategory "part") and
groups (category "group", segmentation = the union). Image i is drawn from
``numpy.random.default_rng([seed, i])``, so a seed gives the same files whatever the count,
and splits (train/val/testA/testB, 70/10/10/10 by image) do not move when images are added.
Memory stays flat: images, annotations and refs are streamed to disk as they are made.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import numpy as np
from PIL import Image

from common.errors import UniLSegError
from shards.rle import mask_to_rle
from shards.synth.expressions import Atom, render, scene_expressions
from shards.synth.shapes import COMPOSITES, PARTS, SHAPES, SceneObject, background, place_objects
from shards.synth.shapes import render as paint

# Fixed category ids: kinds, then parts, then the group category.
CATEGORIES: list[dict[str, Any]] = (
    [{"id": i + 1, "name": k, "supercategory": "shape"} for i, k in enumerate(SHAPES)]
    + [{"id": len(SHAPES) + i + 1, "name": k, "supercategory": "object"} for i, k in enumerate(COMPOSITES)]
    + [
        {"id": 10 + i, "name": p, "supercategory": "part"}
        for i, p in enumerate(p for kind in COMPOSITES for p in PARTS[kind])
    ]
    + [{"id": 20, "name": "group", "supercategory": "group"}]
)
CATEGORY_IDS = {c["name"]: c["id"] for c in CATEGORIES}


@dataclass
class SynthConfig:
    """Generation settings.

    Attributes:
        images (int): number of images.
        seed (int): base seed; image i uses default_rng([seed, i]).
        size (int): image side in pixels.
        min_objects (int): objects per image at least (when they fit).
        max_objects (int): objects per image at most.
        max_sentences (int): sentences per ref at most.
        max_groups (int): group refs per image at most.
        splits (list[tuple[str, float]]): split names and their shares of the images.
    """

    images: int = 1000
    seed: int = 0
    size: int = 128
    min_objects: int = 2
    max_objects: int = 5
    max_sentences: int = 3
    max_groups: int = 2
    splits: list[tuple[str, float]] = field(
        default_factory=lambda: [("train", 0.7), ("val", 0.1), ("testA", 0.1), ("testB", 0.1)]
    )


@dataclass
class Scene:
    """One generated image with its referred targets.

    Attributes:
        index (int): image index.
        split (str): split of the image.
        rgb (np.ndarray): (S, S, 3) uint8 pixels.
        objects (list[SceneObject]): the drawn objects.
        targets (list[tuple[frozenset, str, np.ndarray, list[str]]]): (target, category name,
            mask, sentences) for each referred mask.
    """

    index: int
    split: str
    rgb: np.ndarray
    objects: list[SceneObject]
    targets: list[tuple[frozenset, str, np.ndarray, list[str]]]


def _target_order(target: frozenset[Atom]) -> tuple:
    atoms = sorted(target, key=lambda a: (0, a, "") if isinstance(a, int) else (1, a[0], a[1]))
    if len(atoms) > 1:
        return (2, tuple(atoms))
    a = atoms[0]
    return (0, a) if isinstance(a, int) else (1, a)


def make_scene(index: int, cfg: SynthConfig) -> Scene:
    """Draws image ``index`` and picks the sentences of each of its referable targets."""
    rng = np.random.default_rng([cfg.seed, index])
    u, split = rng.random(), cfg.splits[-1][0]
    for name, share in cfg.splits:
        if u < share:
            split = name
            break
        u -= share
    objects = place_objects(rng, cfg.size, int(rng.integers(cfg.min_objects, cfg.max_objects + 1)))
    rgb = paint(objects, background(rng, cfg.size))
    exprs = scene_expressions(objects, cfg.size)
    targets = []
    groups = [t for t in exprs if len(t) > 1]
    keep_groups = {groups[i] for i in rng.permutation(len(groups))[: cfg.max_groups]}
    for target in sorted(exprs, key=_target_order):
        if len(target) > 1 and target not in keep_groups:
            continue
        # the shortest text always (the easiest to learn), then others at random
        texts = sorted((render(q) for q in exprs[target]), key=lambda t: (len(t.split()), "shape" in t, t))
        chosen = [texts[0]] + [texts[1 + i] for i in sorted(rng.permutation(len(texts) - 1)[: cfg.max_sentences - 1])]
        if len(target) > 1:
            mask, category = np.logical_or.reduce([objects[i].mask for i in target]), "group"  # type: ignore[index]
        else:
            (atom,) = target
            if isinstance(atom, int):
                mask, category = objects[atom].mask, objects[atom].kind
            else:
                mask, category = objects[atom[0]].parts[atom[1]], atom[1]
        targets.append((target, category, mask, chosen))
    return Scene(index, split, rgb, objects, targets)


def _annotation(ann_id: int, image_id: int, category: str, mask: np.ndarray) -> dict[str, Any]:
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": CATEGORY_IDS[category],
        "segmentation": mask_to_rle(mask),
        "area": int(mask.sum()),
        "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
        "iscrowd": 0,
    }


class _PickledListWriter:
    """Streams a list of plain dicts as one protocol-2 pickle, an item at a time.

    The stream is PROTO 2, EMPTY_LIST, then per item MARK <item> APPENDS, then STOP: what
    ``pickle.dump(list)`` would produce, except that items are never all in memory. Each item
    is pickled on its own; its memo references stay within its own bytes.
    """

    def __init__(self, f: BinaryIO):
        self.f = f
        f.write(pickle.PROTO + bytes([2]) + pickle.EMPTY_LIST)

    def append(self, item: Any) -> None:
        data = pickle.dumps(item, protocol=2)
        self.f.write(pickle.MARK + data[2:-1] + pickle.APPENDS)  # drop PROTO header and STOP

    def close(self) -> None:
        self.f.write(pickle.STOP)


REFS_FILE = "refs(unc).p"  # refer's name for the UNC split's refs


def generate_shapes(
    out: str | os.PathLike, images: int = 1000, seed: int = 0, size: int = 128, **options: Any
) -> dict[str, Any]:
    """Generates the synthetic referring set in refer's layout under ``out``.

    Args:
        out: dataset folder to write (created; files of an earlier run are replaced).
        images: number of images.
        seed: base seed (same seed, same files).
        size: image side in pixels.
        **options: other SynthConfig fields.

    Returns:
        dict: counts of images, annotations, refs and sentences, and images per split.
    """
    cfg = SynthConfig(images=images, seed=seed, size=size, **options)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    refs_tmp, imgs_tmp, anns_tmp = out / f"{REFS_FILE}.tmp", out / "images.json.tmp", out / "annotations.json.tmp"
    with open(refs_tmp, "wb") as rf, open(imgs_tmp, "w") as imf, open(anns_tmp, "w") as af:
        writer = _ReferWriter(out, cfg, rf, imf, af)
        for index in range(cfg.images):
            writer.add_scene(index, make_scene(index, cfg))
        writer.close()
    _assemble_instances(out / "instances.json", imgs_tmp, anns_tmp, cfg)
    os.replace(refs_tmp, out / REFS_FILE)  # last: its presence says the set is complete
    return writer.counts


class _ReferWriter:
    """Writes scenes in refer's layout as they come: the PNG, the image and annotation records
    (the bodies of two JSON arrays) and the refs (a streamed pickle); ids count from 1 over
    the whole set."""

    def __init__(self, out: Path, cfg: SynthConfig, rf: BinaryIO, imf: TextIO, af: TextIO):
        self.out, self.cfg, self.imf, self.af = out, cfg, imf, af
        self.refs = _PickledListWriter(rf)
        self.counts = {
            "images": 0,
            "annotations": 0,
            "refs": 0,
            "sentences": 0,
            "splits": {s: 0 for s, _ in cfg.splits},
        }
        self.ann_id = self.ref_id = self.sent_id = 0

    def add_scene(self, index: int, scene: Scene) -> None:
        image_id, file_name = index + 1, f"synth_{index:06d}.png"
        Image.fromarray(scene.rgb).save(self.out / "images" / file_name, format="PNG")
        self.imf.write(
            ("," if index else "")
            + json.dumps({"id": image_id, "file_name": file_name, "width": self.cfg.size, "height": self.cfg.size})
        )
        anns: dict[Any, int] = {}  # target (a frozenset of atoms) -> its annotation id
        for obj in scene.objects:  # every object and part is annotated, referred or not
            self._add_ann(anns, frozenset({obj.index}), image_id, obj.kind, obj.mask)
            if obj.kind in COMPOSITES:
                for part, mask in obj.parts.items():
                    self._add_ann(anns, frozenset({(obj.index, part)}), image_id, part, mask)
        for target, category, mask, sentences in scene.targets:
            aid = anns.get(target) or self._add_ann(anns, target, image_id, category, mask)
            self._add_ref(index, image_id, scene.split, aid, category, sentences)
        self.counts["images"] += 1
        self.counts["splits"][scene.split] += 1

    def _add_ann(self, anns: dict[Any, int], key: Any, image_id: int, category: str, mask: np.ndarray) -> int:
        self.ann_id += 1
        record = _annotation(self.ann_id, image_id, category, mask)
        self.af.write(("," if self.counts["annotations"] else "") + json.dumps(record))
        self.counts["annotations"] += 1
        anns[key] = self.ann_id
        return self.ann_id

    def _add_ref(self, index: int, image_id: int, split: str, aid: int, category: str, sentences: list[str]) -> None:
        self.ref_id += 1
        sents = []
        for text in sentences:
            sents.append({"tokens": text.split(), "raw": text, "sent_id": self.sent_id, "sent": text})
            self.sent_id += 1
        self.refs.append(
            {
                "sent_ids": [s["sent_id"] for s in sents],
                "file_name": f"synth_{index:06d}_{aid}.png",
                "ann_id": aid,
                "ref_id": self.ref_id,
                "image_id": image_id,
                "split": split,
                "sentences": sents,
                "category_id": CATEGORY_IDS[category],
            }
        )
        self.counts["refs"] += 1
        self.counts["sentences"] += len(sents)

    def close(self) -> None:
        self.refs.close()


def is_complete(out: str | os.PathLike) -> bool:
    """True when a generated set under ``out`` is complete (a killed run leaves no refs file)."""
    return (Path(out) / REFS_FILE).is_file()


def recorded_settings(out: str | os.PathLike) -> dict[str, Any]:
    """The settings a generated set under ``out`` was made with (instances.json's "info",
    its first member: read from the file's head, not the whole file)."""
    with open(Path(out) / "instances.json", encoding="utf-8") as f:
        head = f.read(4096)
    info, _ = json.JSONDecoder().raw_decode(head, head.index("{", 1))
    return info


def ensure_shapes(out: str | os.PathLike, images: int = 1000, **kwargs: Any) -> bool:
    """Generates the set under ``out`` unless a complete one is there; True if it generated.

    Raises:
        UniLSegError: a complete set is there, generated with another seed, count or size (it
            would be used in place of the one asked for: a "held-out" set could be the
            training set's images).
    """
    if is_complete(out):
        cfg = SynthConfig(images=images, **kwargs)
        have = recorded_settings(out)
        want = {"seed": cfg.seed, "images": cfg.images, "size": cfg.size}
        if any(have.get(k) != v for k, v in want.items()):
            got = ", ".join(f"{k} {have.get(k)}" for k in want)
            raise UniLSegError(
                f"{out} holds a synthetic set made with {got}; asked for "
                + ", ".join(f"{k} {v}" for k, v in want.items())
                + ": remove it or choose another folder"
            )
        return False
    generate_shapes(out, images=images, **kwargs)
    return True


def _assemble_instances(path: Path, imgs_tmp: Path, anns_tmp: Path, cfg: SynthConfig) -> None:
    """Writes instances.json from the streamed image and annotation fragments (atomic rename)."""
    tmp = path.with_name(path.name + ".tmp")
    info = {"description": "UniLSeg synthetic shapes", "seed": cfg.seed, "images": cfg.images, "size": cfg.size}
    with open(tmp, "w") as f:
        f.write('{"info": ' + json.dumps(info) + ', "categories": ' + json.dumps(CATEGORIES) + ', "images": [')
        with open(imgs_tmp) as src:
            shutil.copyfileobj(src, f)
        f.write('], "annotations": [')
        with open(anns_tmp) as src:
            shutil.copyfileobj(src, f)
        f.write("]}")
    os.replace(tmp, path)
    imgs_tmp.unlink()
    anns_tmp.unlink()
