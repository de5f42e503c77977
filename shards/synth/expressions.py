"""Referring expressions for synthetic scenes, generated only when they are unambiguous.

An expression is a structured ``Query``; ``resolve`` evaluates it on the scene's objects and
returns the set it denotes, and ``render`` turns it into words. A text is emitted for a
target only if resolving its query gives exactly that target, so every sentence identifies
one mask in its image. The grammar (a small fixed vocabulary, so that a tiny model can learn
it):

- attributes: "the [small|big] [<colour>] <kind>", kind = circle, square, triangle, star,
  house, person, tree, or "shape" for any simple shape;
- position among the objects the attributes select: "... on the left|on the right|at the
  top|at the bottom" (the extreme one, by a clear margin);
- relation to another uniquely described object: "... left of|right of|above|below the ...";
- parts: "the <part> of the <object expression>" (roof/wall, head/body, crown/trunk);
- groups: "all [small|big] [<colour>] <kinds>" ("all red shapes", "all circles"): 2+ objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from shards.synth.shapes import COMPOSITES, PARTS, SHAPES, SceneObject

PLURALS = {
    "circle": "circles",
    "square": "squares",
    "triangle": "triangles",
    "star": "stars",
    "house": "houses",
    "person": "people",
    "tree": "trees",
    "shape": "shapes",
}
POSITIONS = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom"}
RELATIONS = {"left": "left of", "right": "right of", "above": "above", "below": "below"}
# An extreme object must beat the runner-up by this fraction of the image side.
POSITION_MARGIN = 0.12


@dataclass(frozen=True)
class Query:
    """A structured referring expression.

    Attributes:
        kind (str | None): object kind, "shape" (any simple shape) or None (any object; only
            with ``part``, as in "the roof").
        color (str | None): palette colour word.
        size (str | None): "small" or "big" (simple shapes only).
        position (str | None): key of POSITIONS.
        relation (tuple[str, Query] | None): (key of RELATIONS, the anchor's query).
        part (str | None): the part of the selected object, for part expressions.
        group (bool): "all ..." expressions, denoting every selected object.
    """

    kind: str | None = None
    color: str | None = None
    size: str | None = None
    position: str | None = None
    relation: tuple[str, Query] | None = None
    part: str | None = None
    group: bool = False


Atom = int | tuple[int, str]  # an object index, or (object index, part name)


def matches(obj: SceneObject, q: Query) -> bool:
    """Whether an object has the kind, colour and size a query names."""
    if q.kind == "shape":
        if not obj.is_shape:
            return False
    elif q.kind is not None and obj.kind != q.kind:
        return False
    return (q.color is None or obj.color == q.color) and (q.size is None or obj.size == q.size)


def _extreme(objs: list[SceneObject], ids: set[int], position: str, side: int) -> set[int]:
    """The single object furthest in a direction, if it leads the runner-up by the margin."""
    if len(ids) < 2:
        return set()
    axis, sign = {"left": (0, 1), "right": (0, -1), "top": (1, 1), "bottom": (1, -1)}[position]
    order = sorted(ids, key=lambda i: sign * objs[i].center[axis])
    first, second = objs[order[0]].center[axis], objs[order[1]].center[axis]
    return {order[0]} if abs(second - first) >= POSITION_MARGIN * side else set()


def related(a: SceneObject, b: SceneObject, relation: str) -> bool:
    """Whether a is (entirely, by bounding box) left of / right of / above / below b."""
    ax0, ay0, ax1, ay1 = a.bbox
    bx0, by0, bx1, by1 = b.bbox
    return {"left": ax1 < bx0, "right": ax0 > bx1, "above": ay1 < by0, "below": ay0 > by1}[relation]


def resolve(q: Query, objs: list[SceneObject], side: int) -> frozenset[Atom]:
    """The set of objects (or (object, part) pairs) a query denotes in a scene.

    Args:
        q: the query.
        objs: the scene's objects (index = position).
        side: image side in pixels (position margins scale with it).
    """
    ids = {o.index for o in objs if matches(o, q)}
    if q.position:
        ids = _extreme(objs, ids, q.position, side)
    if q.relation:
        rel, anchor_q = q.relation
        anchor = resolve(anchor_q, objs, side)
        if len(anchor) != 1:
            return frozenset()
        (a,) = anchor
        ids = {i for i in ids if i != a and related(objs[i], objs[a], rel)}  # type: ignore[index]
    if q.part:
        return frozenset((i, q.part) for i in ids if q.part in objs[i].parts and not objs[i].is_shape)
    return frozenset(ids)


def render(q: Query) -> str:
    """The words of a query."""
    if q.group:
        return "all " + " ".join(w for w in (q.size, q.color, PLURALS[q.kind or "shape"]) if w)
    if q.part:
        base = replace(q, part=None)
        return f"the {q.part}" if q.kind is None else f"the {q.part} of {render(base)}"
    words = ["the", *(w for w in (q.size, q.color, q.kind) if w)]
    if q.position:
        words.append(POSITIONS[q.position])
    if q.relation:
        words += [RELATIONS[q.relation[0]], render(q.relation[1])]
    return " ".join(words)


def descriptors(objs: list[SceneObject]) -> Iterator[Query]:
    """Every attribute-only query that selects at least one object of the scene."""
    kinds = sorted({o.kind for o in objs}) + (["shape"] if any(o.is_shape for o in objs) else [])
    colors = [None, *sorted({o.color for o in objs})]
    for kind in kinds:
        sizes = [None, "small", "big"] if kind in SHAPES or kind == "shape" else [None]
        for color in colors:
            for size in sizes:
                q = Query(kind=kind, color=color, size=size)
                if any(matches(o, q) for o in objs):
                    yield q


def _words(q: Query) -> int:
    return len(render(q).split())


def scene_expressions(objs: list[SceneObject], side: int) -> dict[frozenset[Atom], list[Query]]:
    """Every unambiguous expression of the scene, grouped by the target it denotes.

    Targets are ``frozenset({i})`` for object i, ``frozenset({(i, part)})`` for a part and
    ``frozenset({i, j, ...})`` for a group. Each query in a target's list resolves to
    exactly that target.
    """
    out: dict[frozenset[Atom], list[Query]] = {}

    def add(q: Query) -> None:
        target = resolve(q, objs, side)
        if target and (q.group or len(target) == 1):
            out.setdefault(target, []).append(q)

    descs = list(descriptors(objs))
    unique: dict[int, Query] = {}  # object -> its shortest unique attribute query (anchors)
    for q in descs:
        ids = resolve(q, objs, side)
        if len(ids) == 1:
            add(q)
            (i,) = ids
            if i not in unique or _words(q) < _words(unique[i]):  # type: ignore[index]
                unique[i] = q  # type: ignore[index]
        elif len(ids) >= 2:
            for pos in POSITIONS:
                add(replace(q, position=pos))
            add(replace(q, group=True))
    for q in descs:
        if q.size is not None or q.kind == "shape" and q.color is None:
            continue
        for a, anchor_q in unique.items():
            if matches(objs[a], q):
                continue
            for rel in RELATIONS:
                add(replace(q, relation=(rel, anchor_q)))
    for target, queries in list(out.items()):
        (i,) = target if len(target) == 1 else (None,)
        if isinstance(i, int) and objs[i].kind in COMPOSITES:
            for part in PARTS[objs[i].kind]:
                add(Query(part=part))
                for q in queries:
                    if not q.relation:
                        add(replace(q, part=part))
    return {t: list({render(q): q for q in qs}.values()) for t, qs in out.items()}
