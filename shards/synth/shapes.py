"""Drawing the synthetic scenes: coloured shapes and composite objects with parts.

Every object is drawn as boolean part masks on an (S, S) canvas; its mask is the union of
its parts, and objects never overlap, so every mask is exactly the pixels painted in its
colour. Simple shapes (circle, square, triangle, star) are one part in a palette colour and
come in two clearly different sizes. Composite objects have two parts: the main part in a
palette colour (that is the object's colour, as in "the green house") and a second part in
a fixed colour outside the palette, so colour words never describe the wrong part:
house = wall + roof, person = body + head, tree = crown + trunk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

# Palette of colour words -> RGB; distinct hues that stay visible on every background.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (245, 215, 40),
    "purple": (150, 60, 200),
}
SHAPES = ("circle", "square", "triangle", "star")
COMPOSITES = ("house", "person", "tree")
# Part names of each composite: (main part in the object's colour, second part in a fixed colour).
PARTS: dict[str, tuple[str, str]] = {"house": ("wall", "roof"), "person": ("body", "head"), "tree": ("crown", "trunk")}
SECOND_PART_COLORS: dict[str, tuple[int, int, int]] = {
    "roof": (110, 45, 35),
    "head": (235, 195, 160),
    "trunk": (115, 75, 40),
}
# Radius ranges as fractions of the image side.
SIZE_RANGES = {"small": (0.07, 0.09), "big": (0.13, 0.16)}
COMPOSITE_RANGE = (0.15, 0.18)


@dataclass
class SceneObject:
    """One drawn object.

    Attributes:
        index (int): position in the scene's object list.
        kind (str): one of SHAPES or COMPOSITES.
        color (str): palette colour word (of the main part for composites).
        size (str | None): "small"/"big" for simple shapes, None for composites.
        parts (dict[str, np.ndarray]): part name -> (S, S) bool mask; simple shapes have one
            part named after their kind.
        bbox (tuple[int, int, int, int]): x0, y0, x1, y1 of the mask (inclusive).
    """

    index: int
    kind: str
    color: str
    size: str | None
    parts: dict[str, np.ndarray]
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)
    mask: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.mask = np.logical_or.reduce(list(self.parts.values()))
        ys, xs = np.nonzero(self.mask)
        self.bbox = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))

    @property
    def is_shape(self) -> bool:
        """True for simple shapes (what "shapes" means in expressions)."""
        return self.kind in SHAPES

    @property
    def center(self) -> tuple[float, float]:
        """(x, y) centre of the bounding box, in pixels."""
        x0, y0, x1, y1 = self.bbox
        return (x0 + x1) / 2, (y0 + y1) / 2


def _canvas(size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("L", (size, size), 0)
    return img, ImageDraw.Draw(img)


def _polygon(size: int, points: list[tuple[float, float]]) -> np.ndarray:
    img, draw = _canvas(size)
    draw.polygon(points, fill=255)
    return np.asarray(img) > 0


def _ellipse(size: int, cx: float, cy: float, r: float) -> np.ndarray:
    img, draw = _canvas(size)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    return np.asarray(img) > 0


def _rect(size: int, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    img, draw = _canvas(size)
    draw.rectangle([x0, y0, x1, y1], fill=255)
    return np.asarray(img) > 0


def shape_parts(kind: str, size: int, cx: float, cy: float, r: float) -> dict[str, np.ndarray]:
    """Part masks of an object of radius r (pixels) centred at (cx, cy) on a size x size canvas."""
    if kind == "circle":
        return {"circle": _ellipse(size, cx, cy, r)}
    if kind == "square":
        h = 0.85 * r
        return {"square": _rect(size, cx - h, cy - h, cx + h, cy + h)}
    if kind == "triangle":
        return {"triangle": _polygon(size, [(cx, cy - r), (cx - r, cy + 0.8 * r), (cx + r, cy + 0.8 * r)])}
    if kind == "star":
        pts = [
            (
                cx + (r if k % 2 == 0 else 0.45 * r) * math.sin(k * math.pi / 5),
                cy - (r if k % 2 == 0 else 0.45 * r) * math.cos(k * math.pi / 5),
            )
            for k in range(10)
        ]
        return {"star": _polygon(size, pts)}
    if kind == "house":
        wall = _rect(size, cx - 0.65 * r, cy - 0.05 * r, cx + 0.65 * r, cy + r)
        roof = _polygon(size, [(cx - 0.9 * r, cy - 0.05 * r), (cx + 0.9 * r, cy - 0.05 * r), (cx, cy - r)])
        return {"wall": wall, "roof": roof & ~wall}
    if kind == "person":
        head = _ellipse(size, cx, cy - 0.68 * r, 0.3 * r)
        body = _polygon(
            size,
            [
                (cx - 0.25 * r, cy - 0.3 * r),
                (cx + 0.25 * r, cy - 0.3 * r),
                (cx + 0.5 * r, cy + r),
                (cx - 0.5 * r, cy + r),
            ],
        )
        return {"body": body & ~head, "head": head}
    if kind == "tree":
        crown = _ellipse(size, cx, cy - 0.3 * r, 0.65 * r)
        trunk = _rect(size, cx - 0.14 * r, cy + 0.2 * r, cx + 0.14 * r, cy + r)
        return {"crown": crown, "trunk": trunk & ~crown}
    raise ValueError(f"unknown kind {kind!r}")


def part_color(obj: SceneObject, part: str) -> tuple[int, int, int]:
    """RGB of one part: the object's palette colour, or the fixed colour of a second part."""
    return SECOND_PART_COLORS.get(part, COLORS[obj.color])


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A plain or lightly textured neutral background, (S, S, 3) uint8.

    A grey tone (slightly tinted) with a soft gradient and, half of the time, faint stripes
    or checks: enough texture that background is not a constant, never a palette colour.
    """
    base = rng.uniform(95, 165) + rng.uniform(-8, 8, size=3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    img = base[None, None, :] + rng.uniform(0, 18) * ((np.cos(angle) * xx + np.sin(angle) * yy)[..., None] - 0.5)
    texture = rng.integers(0, 3)
    if texture == 1:
        period = rng.integers(6, 14)
        img += 5.0 * ((((xx + yy) * size) // period) % 2)[..., None]
    elif texture == 2:
        period = rng.integers(8, 16)
        img += 5.0 * (((xx * size // period) + (yy * size // period)) % 2)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def render(objects: list[SceneObject], bg: np.ndarray) -> np.ndarray:
    """Paints every part of every object on a copy of the background."""
    img = bg.copy()
    for obj in objects:
        for part, mask in obj.parts.items():
            img[mask] = part_color(obj, part)
    return img


def place_objects(rng: np.random.Generator, size: int, count: int) -> list[SceneObject]:
    """Samples up to ``count`` non-overlapping objects (fewer if the canvas is full).

    Kinds and colours already in the scene are reused often, so that many scenes need
    size, position, relation or group words to single an object out.
    """
    objects: list[SceneObject] = []
    boxes: list[tuple[float, float, float, float]] = []
    margin = max(2.0, 0.03 * size)
    for _ in range(count):
        if objects and rng.random() < 0.4:
            kind = objects[rng.integers(len(objects))].kind
        else:
            kind = SHAPES[rng.integers(len(SHAPES))] if rng.random() < 0.72 else COMPOSITES[rng.integers(3)]
        if objects and rng.random() < 0.3:
            color = objects[rng.integers(len(objects))].color
        else:
            color = list(COLORS)[rng.integers(len(COLORS))]
        obj_size = None
        if kind in SHAPES:
            obj_size = "small" if rng.random() < 0.5 else "big"
            lo, hi = SIZE_RANGES[obj_size]
        else:
            lo, hi = COMPOSITE_RANGE
        r = rng.uniform(lo, hi) * size
        for _try in range(40):
            cx, cy = rng.uniform(r + 1, size - r - 1, size=2)
            box = (cx - r - margin, cy - r - margin, cx + r + margin, cy + r + margin)
            if all(box[2] < b[0] or b[2] < box[0] or box[3] < b[1] or b[3] < box[1] for b in boxes):
                boxes.append(box)
                parts = shape_parts(kind, size, cx, cy, r)
                if all(m.any() for m in parts.values()):
                    objects.append(SceneObject(len(objects), kind, color, obj_size, parts))
                break
    return objects
