"""A weight-free referring-expression writer: colour, size, position, neighbours, nesting.

It names a region by its mean colour ("the large dark-grey region at the top left"), and it
turns any name (a model caption such as "a dog") into an expression that singles the region
out among the others: "the dog on the left", "the small red region left of the blue one",
"the red part of the large grey region at the top".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from skimage import color

from annotation_engine.regions import mask_bbox
from annotation_engine.registry import CAPTIONERS

GENERIC = "region"  # the noun of weight-free names; parts are called "part"
SMALL, LARGE = 0.03, 0.2  # area fractions for the size words
_ARTICLES = re.compile(r"^(there is |there are |this is |an image of |a picture of |a photo of )?(a |an |the )?")
_ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]


@dataclass
class RegionAttrs:
    """What the writer knows of one region.

    Attributes:
        area (float): fraction of the image covered.
        cx (float): centroid x in [0, 1] (left to right).
        cy (float): centroid y in [0, 1] (top to bottom).
        colour (str): colour name of the mean colour ("dark-grey", "red", "light blue").
        bbox (tuple[int, int, int, int]): (x0, y0, x1, y1) pixel box.
    """

    area: float
    cx: float
    cy: float
    colour: str
    bbox: tuple[int, int, int, int]

    @property
    def size_word(self) -> str:
        return "small" if self.area < SMALL else "large" if self.area >= LARGE else ""

    @property
    def position(self) -> str:
        """Where the centroid lies in a 3x3 grid: "at the top left", "in the centre"..."""
        return _grid(self.cx, self.cy, centre="in the centre")


def colour_name(lab: np.ndarray) -> str:
    """Name of a CIELAB colour (3,) for a person: "black", "dark-grey", "red", "light blue"...

    Achromatic below a chroma of 12; otherwise bins of the Lab hue angle, calibrated on
    reference colours (pure red is at 37-40 degrees, red-orange 43-48, orange 59-73, yellow 97, green 139, cyan
    213, blue 299, purple 328), with brown/olive/beige for dark or dull oranges and yellows.
    """
    L, a, b = (float(v) for v in lab)
    chroma, hue = np.hypot(a, b), np.degrees(np.arctan2(b, a)) % 360
    if chroma < 12:
        for limit, name in ((20, "black"), (40, "dark-grey"), (62, "grey"), (82, "light-grey")):
            if L < limit:
                return name
        return "white"
    if 15 <= hue < 41:
        name = "red"
    elif 41 <= hue < 80:
        name = "brown" if L < 50 else "beige" if chroma < 30 else "orange"
    elif 80 <= hue < 115:
        name = "yellow" if L >= 70 and chroma >= 40 else "beige" if chroma < 30 and L >= 60 else "olive"
    elif 115 <= hue < 180:
        name = "green"
    elif 180 <= hue < 240:
        name = "teal"
    elif 240 <= hue < 305:
        name = "blue"
    elif 305 <= hue < 335:
        name = "purple"
    else:
        name = "pink" if L >= 60 else "magenta"
    if name in ("brown", "olive", "beige", "pink", "yellow"):
        return name
    if L < 30:
        return f"dark {name}"
    if L > 75:
        return f"light {name}"
    return name


def region_attributes(rgb: np.ndarray, masks: list[np.ndarray]) -> list[RegionAttrs]:
    """(H, W, 3) uint8 image + (H, W) bool masks -> one RegionAttrs per mask."""
    lab = color.rgb2lab(rgb)
    h, w = rgb.shape[:2]
    out = []
    for m in masks:
        ys, xs = np.nonzero(m)
        if not len(ys):
            out.append(RegionAttrs(0.0, 0.5, 0.5, "empty", (0, 0, 0, 0)))
            continue
        out.append(
            RegionAttrs(
                len(ys) / (h * w),
                float(xs.mean() + 0.5) / w,
                float(ys.mean() + 0.5) / h,
                colour_name(np.median(lab[ys, xs], 0)),
                mask_bbox(m),
            )
        )
    return out


def clean_caption(text: str | None, max_words: int = 10) -> str | None:
    """A model caption -> a noun phrase without its leading article ("a dog on a sofa" ->
    "dog on a sofa"); None when nothing readable is left."""
    if not text:
        return None
    t = re.sub(r"\s+", " ", text.strip().lower()).strip(" .,;:!?")
    t = _ARTICLES.sub("", t)
    t = re.sub(r"\b(arafed|araffe|arafe)\b\s*", "", t).strip()  # BLIP's known filler token
    words = [w for w in t.split(" ") if w]
    if not words or not any(c.isalpha() for c in t):
        return None
    return " ".join(words[:max_words])


def _relation(a: RegionAttrs, b: RegionAttrs) -> str:
    """Where region a is relative to region b."""
    dx, dy = a.cx - b.cx, a.cy - b.cy
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def _noun(name: str, part: bool) -> str:
    return name[: -len(GENERIC)] + "part" if part and name.endswith(GENERIC) else name


def _short(name: str) -> str:
    """The name used for a neighbour: "blue region" -> "blue one"."""
    return name[: -len(GENERIC)] + "one" if name.endswith(GENERIC) else name


def referring_texts(
    attrs: list[RegionAttrs], names: list[str], parents: list[int | None], neighbours: list[list[int]]
) -> list[list[str] | None]:
    """Expressions that single each region out among the others.

    Args:
        attrs (list[RegionAttrs]): one per region.
        names (list[str]): one noun phrase per region ("dog", "dark-grey region").
        parents (list[int | None]): index of the region each one is a part of, or None.
        neighbours (list[list[int]]): indices of the regions touching each one.

    Returns:
        list[list[str] | None]: per region, the expressions (the first one unique within the
        image), or None for a part that its attributes cannot single out; e.g.
        ["the large dark-grey region at the top left",
        "the dark-grey region above the white one"].
    """
    n = len(attrs)
    generic = [nm.endswith(GENERIC) for nm in names]
    base = []
    for i in range(n):
        size = attrs[i].size_word if generic[i] else ""
        phrase = " ".join(w for w in ("the", size, names[i]) if w)
        base.append(f"{phrase} {attrs[i].position}")
    relational: list[str | None] = []
    for i in range(n):
        others = [j for j in neighbours[i] if names[j] != names[i] and parents[j] is None] or [
            j for j in neighbours[i] if names[j] != names[i]
        ]
        if not others:
            relational.append(None)
            continue
        j = max(others, key=lambda k: attrs[k].area)
        size = attrs[i].size_word if generic[i] else ""
        subject = " ".join(w for w in ("the", size, names[i]) if w)
        relational.append(f"{subject} {_relation(attrs[i], attrs[j])} the {_short(names[j])}")
    texts: list[list[str] | None] = []
    for i in range(n):
        p = parents[i]
        if p is None:
            texts.append([base[i]] + ([relational[i]] if relational[i] else []))
        elif generic[i] and names[i] == names[p]:
            texts.append(None)  # "the grey part of the grey region" singles nothing out
        else:
            where = _inside(attrs[i], attrs[p])
            texts.append(
                [f"the {_noun(names[i], True)} of {base[p]}", f"the {_noun(names[i], True)} {where} of {base[p]}"]
            )
    _disambiguate(texts, attrs)
    return texts


def _inside(a: RegionAttrs, whole: RegionAttrs) -> str:
    """Position of region a's box centre within the box of the region it is a part of."""
    x0, y0, x1, y1 = whole.bbox
    w, h = max(x1 - x0, 1), max(y1 - y0, 1)
    return _grid(((a.bbox[0] + a.bbox[2]) / 2 - x0) / w, ((a.bbox[1] + a.bbox[3]) / 2 - y0) / h)


def _grid(x: float, y: float, centre: str = "in the middle") -> str:
    """A point in [0, 1]^2 named by its cell of a 3x3 grid ("at the top left", ..., `centre`)."""
    col = "left" if x < 1 / 3 else "right" if x > 2 / 3 else ""
    row = "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else ""
    if row and col:
        return f"at the {row} {col}"
    if row:
        return f"at the {row}"
    if col:
        return f"on the {col}"
    return centre


def _disambiguate(texts: list[list[str] | None], attrs: list[RegionAttrs]) -> None:
    """Makes first expressions unique: the second expression when that one is unique, else
    an ordinal from the left ("..., the second from the left")."""
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(texts):
        if t is not None:
            groups.setdefault(t[0], []).append(i)
    for first, members in groups.items():
        if len(members) < 2:
            continue
        alt = [texts[i][1] if len(texts[i]) > 1 else None for i in members]
        if all(alt) and len(set(alt)) == len(alt) and not (set(alt) & set(groups)):
            for i in members:
                texts[i][0], texts[i][1] = texts[i][1], texts[i][0]
            continue
        for rank, i in enumerate(sorted(members, key=lambda k: attrs[k].cx)):
            word = _ORDINALS[rank] if rank < len(_ORDINALS) else f"{rank + 1}th"
            texts[i][0] = f"{first}, the {word} from the left"


@CAPTIONERS.register("attributes")
class AttributesCaptioner:
    """Names every region by its colour ("dark-grey region"); the engine's attribute writer
    adds size, position, neighbours and nesting.

    Args:
        noun (str): the noun after the colour; keep "region" so that parts read "... part".
    """

    version = "attributes-1"

    def __init__(self, noun: str = GENERIC):
        self.noun = noun

    def identity(self) -> dict[str, str]:
        return {"captioner": "attributes", "captioner_version": self.version}

    def describe(
        self, rgb: np.ndarray, masks: list[np.ndarray], attrs: list[RegionAttrs] | None = None
    ) -> list[str | None]:
        """(H, W, 3) uint8 + masks -> "<colour> region" per mask."""
        attrs = attrs if attrs is not None else region_attributes(rgb, masks)
        return [f"{a.colour} {self.noun}" for a in attrs]
