import numpy as np

from shards.synth.expressions import Query, render, resolve, scene_expressions
from shards.synth.shapes import SceneObject, place_objects, shape_parts

S = 128


def _obj(i, kind, color, size, cx, cy, r):
    return SceneObject(i, kind, color, size, shape_parts(kind, S, cx, cy, r))


def _scene():
    # two red circles (small left, big right), a blue square at the bottom, a green house
    return [
        _obj(0, "circle", "red", "small", 20, 30, 10),
        _obj(1, "circle", "red", "big", 90, 30, 18),
        _obj(2, "square", "blue", "small", 50, 100, 10),
        _obj(3, "house", "green", None, 100, 95, 20),
    ]


def test_texts_of_a_known_scene():
    objs = _scene()
    exprs = {t: {render(q) for q in qs} for t, qs in scene_expressions(objs, S).items()}
    assert "the circle" not in exprs.get(frozenset({0}), set())  # two circles: ambiguous
    assert {"the small circle", "the circle on the left", "the small red circle"} <= exprs[frozenset({0})]
    assert {"the big circle", "the circle on the right"} <= exprs[frozenset({1})]
    assert {"the square", "the blue square", "the square left of the house"} <= exprs[frozenset({2})]
    assert "all circles" in exprs[frozenset({0, 1})] and "all red shapes" in exprs[frozenset({0, 1})]
    assert {"the roof", "the roof of the house", "the roof of the green house"} <= exprs[frozenset({(3, "roof")})]
    assert "the wall of the house" in exprs[frozenset({(3, "wall")})]
    # every text names one target only
    seen = {}
    for target, texts in exprs.items():
        for text in texts:
            assert seen.setdefault(text, target) == target, text


def test_resolve_semantics():
    objs = _scene()
    assert resolve(Query(kind="circle"), objs, S) == {0, 1}
    assert resolve(Query(kind="circle", position="left"), objs, S) == {0}
    assert resolve(Query(kind="shape", color="red", size="big"), objs, S) == {1}
    assert resolve(Query(kind="circle", relation=("above", Query(kind="square"))), objs, S) == {0, 1}
    assert resolve(Query(kind="circle", relation=("left", Query(kind="house"))), objs, S) == {0}
    # the anchor must be unique, else the relation denotes nothing
    assert resolve(Query(kind="square", relation=("below", Query(kind="circle"))), objs, S) == frozenset()
    assert resolve(Query(part="roof"), objs, S) == {(3, "roof")}
    assert (
        render(Query(kind="circle", color="red", relation=("left", Query(kind="house", color="green"))))
        == "the red circle left of the green house"
    )
    assert render(Query(kind="shape", color="red", group=True)) == "all red shapes"
    assert render(Query(kind="person", group=True)) == "all people"


def test_random_scenes_are_unambiguous():
    """For many random scenes: each expression resolves to exactly its target, and no text repeats."""
    for seed in range(60):
        rng = np.random.default_rng(seed)
        objs = place_objects(rng, S, 5)
        texts = {}
        for target, queries in scene_expressions(objs, S).items():
            for q in queries:
                assert resolve(q, objs, S) == target
                assert texts.setdefault(render(q), target) == target
        assert not (np.sum([o.mask for o in objs], axis=0) > 1).any()  # objects never overlap
