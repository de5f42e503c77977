"""ADE20K SceneParsing (ADEChallengeData2016) -> "all <class>" semantic targets.

Layout, as the challenge archive unpacks (github.com/CSAILVision/sceneparsing)::

    SRC/images/training/ADE_train_00000001.jpg      images/validation/ADE_val_*.jpg
    SRC/annotations/training/ADE_train_00000001.png one 8-bit class index per pixel:
                                                    0 = "other objects" (ignored), 1..150
    SRC/objectInfo150.txt                           "Idx<TAB>Ratio<TAB>Train<TAB>Val<TAB>Name",
                                                    names like "building, edifice"
    SRC/sceneCategories.txt                         "ADE_train_00000001 airport_terminal"

The class list may also be semantic-segmentation-pytorch's ``object150_info.csv``
("Idx,Ratio,Train,Val,Stuff,Name", names like "building;edifice"), or any file given with
the ``classes`` option: one of those two formats, or one name per line (index = line
number). The first synonym names the class. ``--split train``/``val`` select the
training/validation folders.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from shards.converters import ConvertError, Item, Rejected, image_sample, register_converter
from shards.format import Sample, Target
from shards.images import prepare_image
from shards.keys import make_key
from shards.rle import mask_to_rle

SPLIT_DIRS = {
    "train": "training",
    "training": "training",
    "val": "validation",
    "validation": "validation",
    "test": "testing",
    "testing": "testing",
}
CLASS_FILES = ["objectInfo150.txt", "objectInfo150.csv", "object150_info.csv"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def _first_synonym(name: str) -> str:
    return re.split(r"[;,]", name.strip())[0].strip()


def load_class_names(path: Path) -> list[str]:
    """Class names by index - 1 (index 1 is names[0]) from any of the accepted class files.

    Raises:
        ConvertError: the file has no names, or its indices are not 1..N.
    """
    text = path.read_text(encoding="utf-8-sig")
    lines = [l for l in text.splitlines() if l.strip()]
    if not lines:
        raise ConvertError(f"class file {path.name} is empty")
    header = lines[0].lower()
    by_index: dict[int, str] = {}
    if "name" in header and ("idx" in header or "\t" in lines[0] or "," in lines[0]):
        if "\t" in lines[0]:
            rows = [[c.strip() for c in l.split("\t")] for l in lines]
        else:
            rows = [[c.strip() for c in r] for r in csv.reader(io.StringIO("\n".join(lines)))]
        cols = [c.lower() for c in rows[0]]
        i_name = cols.index("name")
        i_idx = cols.index("idx") if "idx" in cols else None
        for n, row in enumerate(rows[1:], start=1):
            try:
                index = int(row[i_idx]) if i_idx is not None else n
                by_index[index] = _first_synonym(row[i_name])
            except (ValueError, IndexError) as e:
                raise ConvertError(f"class file {path.name} line {n + 1}: cannot read {row!r}") from e
    else:
        by_index = {n: _first_synonym(l) for n, l in enumerate(lines, start=1)}
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise ConvertError(f"class file {path.name}: indices must be 1..N without gaps")
    return [by_index[i] for i in range(1, len(by_index) + 1)]


def load_scenes(path: Path) -> dict[str, str]:
    """Image stem -> scene category from sceneCategories.txt (empty if the file is absent)."""
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = parts[1]
    return out


def read_label_png(path: Path) -> np.ndarray:
    """Reads a class-index PNG into (H, W) ints; colour PNGs are refused (they are not indices)."""
    try:
        img = Image.open(io.BytesIO(path.read_bytes()))
        img.load()
    except Exception as e:
        raise ConvertError(f"unreadable annotation PNG {path.name}: {type(e).__name__}: {e}") from e
    if img.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
        raise ConvertError(f"annotation PNG {path.name} is {img.mode}; expected a single-channel class-index PNG")
    return np.asarray(img).astype(np.int64)


def ade20k_sample(
    image_path: Path, label_path: Path, rel: str, classes: list[str], scene: str | None, source: str
) -> Sample:
    """Reads one image and its class-index PNG into a Sample with a target per class present."""
    stored = prepare_image(image_path.read_bytes())
    label = read_label_png(label_path)
    if label.shape != (stored.height, stored.width):
        raise ConvertError(f"annotation is {label.shape[1]}x{label.shape[0]}, the image {stored.width}x{stored.height}")
    values = np.unique(label)
    if values.max() > len(classes):
        raise ConvertError(f"annotation has class index {values.max()}, beyond the {len(classes)} classes")
    targets = []
    for v in values[values > 0]:
        prov = {"class_index": int(v), **({"scene": scene} if scene else {})}
        targets.append(
            Target([f"all {classes[v - 1]}"], mask_to_rle(label == v), "semantic", "class", source, provenance=prov)
        )
    if not targets:
        raise ConvertError("annotation has only 0 (other objects) pixels")
    return image_sample(source, rel, rel, stored, targets)


def ade20k_splits(src: Path, **_: object) -> list[str]:
    """train / val / test, for each folder pair images/<x> + annotations/<x> present."""
    return [
        s
        for s, folder in (("train", "training"), ("val", "validation"), ("test", "testing"))
        if (src / "images" / folder).is_dir() and (src / "annotations" / folder).is_dir()
    ]


@register_converter("ade20k", splits=ade20k_splits)
def convert_ade20k(
    src: Path, split: str = "train", classes: str | None = None, name: str | None = None
) -> Iterator[Item | Rejected]:
    """ADE20K SceneParsing -> "all <class>" targets (task semantic, granularity class).

    Args:
        src: the ADEChallengeData2016 folder.
        split: train/training or val/validation.
        classes: class list file; default objectInfo150.txt/.csv in src.
        name: source name; default "ade20k".
    """
    folder = SPLIT_DIRS.get(split, split)
    img_dir, ann_dir = src / "images" / folder, src / "annotations" / folder
    if not img_dir.is_dir():
        raise FileNotFoundError(f"{img_dir} does not exist (expected ADEChallengeData2016/images/{folder})")
    if not ann_dir.is_dir():
        raise FileNotFoundError(f"{ann_dir} does not exist (expected ADEChallengeData2016/annotations/{folder})")
    if classes:
        class_file = Path(classes)
    else:
        found = [src / c for c in CLASS_FILES if (src / c).is_file()]
        if not found:
            raise FileNotFoundError(f"no class list ({', '.join(CLASS_FILES)}) in {src}; pass classes=FILE")
        class_file = found[0]
    names = load_class_names(class_file)
    scenes = load_scenes(src / "sceneCategories.txt")
    source = name or "ade20k"
    labels = {p.stem: p for p in sorted(ann_dir.iterdir()) if p.suffix.lower() == ".png"}
    stems = set()
    for image_path in sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        rel = f"images/{folder}/{image_path.name}"
        stems.add(image_path.stem)
        label_path = labels.get(image_path.stem)
        if label_path is None:
            yield Rejected(rel, f"no annotation PNG annotations/{folder}/{image_path.stem}.png")
            continue
        yield Item(
            make_key(source, rel),
            rel,
            lambda i=image_path, l=label_path, r=rel: ade20k_sample(i, l, r, names, scenes.get(i.stem), source),
        )
    for stem in sorted(set(labels) - stems):
        yield Rejected(f"annotations/{folder}/{stem}.png", f"annotation without an image in images/{folder}/")
