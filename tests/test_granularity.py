"""Nesting -> part targets; neighbours."""

from functools import partial

from engine_fixtures import box

from annotation_engine.granularity import assign_parents, part_or_instance, touching

_box = partial(box, shape=(40, 40))


def test_nested_masks_get_the_smallest_whole():
    image_half = _box(0, 40, 0, 20)
    big = _box(0, 30, 0, 20)
    wheel = _box(20, 25, 2, 8)
    other = _box(0, 40, 25, 40)
    parents = assign_parents([image_half, big, wheel, other], containment=0.9, max_part_ratio=0.6)
    assert parents == [None, None, 1, None]  # big is 75% of image_half: too big to be a part
    assert [part_or_instance(p) for p in parents] == ["instance", "instance", "part", "instance"]


def test_partial_overlap_is_no_part():
    a = _box(0, 20, 0, 20)
    b = _box(10, 14, 12, 22)  # a fifth of it sticks out
    assert assign_parents([a, b], containment=0.9) == [None, None]
    assert assign_parents([a, b], containment=0.5) == [None, 0]
    assert assign_parents([]) == []


def test_touching():
    a, b, c = _box(0, 10, 0, 10), _box(0, 10, 11, 20), _box(30, 40, 30, 40)
    assert touching([a, b, c]) == [[1], [0], []]
