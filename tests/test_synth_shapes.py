import numpy as np
import pytest

from shards.synth.shapes import COLORS, COMPOSITES, PARTS, SHAPES, background, place_objects, render, shape_parts


@pytest.mark.parametrize("kind", SHAPES + COMPOSITES)
def test_parts_are_disjoint_and_inside(kind):
    parts = shape_parts(kind, 64, 32, 32, 14)
    assert set(parts) == ({kind} if kind in SHAPES else set(PARTS[kind]))
    assert all(m.shape == (64, 64) and m.any() for m in parts.values())
    if len(parts) == 2:
        a, b = parts.values()
        assert not (a & b).any()


def test_render_paints_exactly_the_masks():
    rng = np.random.default_rng(0)
    objs = place_objects(rng, 96, 5)
    bg = background(rng, 96)
    img = render(objs, bg)
    for o in objs:
        if o.is_shape:
            assert (img[o.mask] == COLORS[o.color]).all()
        else:
            assert (img[o.parts[PARTS[o.kind][0]]] == COLORS[o.color]).all()  # the main part has the colour
    outside = ~np.logical_or.reduce([o.mask for o in objs])
    assert (img[outside] == bg[outside]).all()
    # the background is neutral grey: never one of the palette colours
    assert np.abs(bg.astype(int) - bg.mean(axis=2, keepdims=True)).max() < 20
