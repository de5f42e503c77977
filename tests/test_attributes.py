"""The weight-free referring-expression writer."""

import numpy as np
from skimage import color

from annotation_engine.captioners.attributes import (
    AttributesCaptioner,
    clean_caption,
    colour_name,
    referring_texts,
    region_attributes,
)


def _lab(rgb):
    return color.rgb2lab(np.array([[rgb]], np.uint8))[0, 0]


def test_colour_names():
    assert colour_name(_lab((0, 0, 0))) == "black"
    assert colour_name(_lab((255, 255, 255))) == "white"
    assert colour_name(_lab((80, 80, 80))) == "dark-grey"
    assert colour_name(_lab((200, 20, 20))) == "red"
    assert colour_name(_lab((20, 60, 200))) == "blue"
    assert colour_name(_lab((30, 160, 40))) == "green"
    assert colour_name(_lab((240, 120, 20))) == "orange"
    assert colour_name(_lab((110, 60, 20))) == "brown"
    assert colour_name(_lab((240, 220, 30))) == "yellow"


def test_clean_caption():
    assert clean_caption("A dog sitting on a couch.") == "dog sitting on a couch"
    assert clean_caption("arafed man with a hat") == "man with a hat"
    assert clean_caption("  ,. ") is None and clean_caption(None) is None


def _scene():
    """A grey image: a large dark-grey block top left, a small red square, a blue one beside it."""
    rgb = np.full((100, 100, 3), 200, np.uint8)
    masks = [np.zeros((100, 100), bool) for _ in range(4)]
    masks[0][0:45, 0:45] = True
    rgb[masks[0]] = (70, 70, 70)
    masks[1][70:76, 20:26] = True
    rgb[masks[1]] = (210, 20, 20)
    masks[2][70:82, 26:38] = True
    rgb[masks[2]] = (20, 40, 210)
    masks[3][5:15, 5:15] = True  # a red part inside the dark-grey block
    rgb[masks[3]] = (210, 20, 20)
    return rgb, masks


def test_referring_texts_are_referential_and_unique():
    rgb, masks = _scene()
    attrs = region_attributes(rgb, masks)
    names = AttributesCaptioner().describe(rgb, masks, attrs)
    assert names[:3] == ["dark-grey region", "red region", "blue region"]
    neighbours = [[], [2], [1], []]
    texts = referring_texts(attrs, names, [None, None, None, 0], neighbours)
    assert texts[0][0] == "the large dark-grey region at the top left"
    assert texts[1] == ["the small red region at the bottom left", "the small red region left of the blue one"]
    assert texts[3][0] == "the red part of the large dark-grey region at the top left"
    firsts = [t[0] for t in texts]
    assert len(set(firsts)) == len(firsts)
    # a model caption is made referential the same way
    cap = referring_texts(attrs[:3], ["man", "dog", "dog"], [None] * 3, [[], [2], [1]])
    assert cap[0][0] == "the man at the top left"
    assert cap[1][0] != cap[2][0]  # two dogs at the bottom left are told apart


def test_same_name_part_is_dropped_and_duplicates_get_ordinals():
    rgb, masks = _scene()
    attrs = region_attributes(rgb, masks)
    texts = referring_texts(attrs, ["grey region"] * 4, [None, None, None, 0], [[], [], [], []])
    assert texts[3] is None
    texts = referring_texts(attrs[1:3], ["cup", "cup"], [None, None], [[], []])
    assert texts[0][0].endswith("the first from the left") and texts[1][0].endswith("the second from the left")
