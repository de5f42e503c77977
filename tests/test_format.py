import json

import numpy as np
import pytest

from shards.format import FormatError, ImageInfo, Sample, Target, parse_metadata, validate_sample, validate_target
from shards.keys import make_key
from shards.rle import mask_to_rle


def _target(**kw):
    d = dict(
        texts=["the cat"], mask=mask_to_rle(np.ones((4, 5), bool)), task="res", granularity="instance", source="test"
    )
    d.update(kw)
    return Target(**d)


def test_valid_target_and_no_target_expression():
    validate_target(_target(), 4, 5)
    validate_target(_target(mask=None, task="gres"), 4, 5)


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(texts=[]), "empty text list"),
        (dict(texts=["  "]), "empty or non-string"),
        (dict(task="bogus"), "unknown task"),
        (dict(granularity="galaxy"), "unknown granularity"),
        (dict(mask={"size": [4, 5], "counts": "zz"}), "invalid RLE"),
        (dict(scores={"iou": "high"}), "not a number"),
    ],
)
def test_invalid_targets_are_rejected(kw, msg):
    with pytest.raises(FormatError, match=msg):
        validate_target(_target(**kw), 4, 5)


def test_mask_size_must_match_image():
    with pytest.raises(FormatError, match="differs from image size"):
        validate_target(_target(), 5, 4)


def test_sample_metadata_round_trip():
    s = Sample(
        make_key("t", "x.jpg"),
        ImageInfo("x", 5, 4, "0" * 64, "t"),
        b"\xff",
        "jpg",
        [_target(scores={"iou": 0.9}, provenance={"ann_id": 3})],
    )
    validate_sample(s)
    image, targets = parse_metadata(s.metadata())
    assert image == s.image and targets == s.targets


def test_unknown_target_key_fails_loudly():
    with pytest.raises(FormatError, match="bad target"):
        parse_metadata(
            {
                "image": {"id": "x", "width": 1, "height": 1, "sha256": "0" * 64, "source": "t"},
                "targets": [
                    {
                        "texts": ["a"],
                        "mask": None,
                        "task": "res",
                        "granularity": "instance",
                        "source": "t",
                        "colour": "red",
                    }
                ],
            }
        )


def test_metadata_holds_every_image_field_and_is_the_json_member():
    from dataclasses import asdict

    s = Sample(
        make_key("t", "x.jpg"), ImageInfo("x", 5, 4, "0" * 64, "t"), b"\xff", "jpg", [_target(texts=["le chat gris é"])]
    )
    assert s.metadata()["image"] == asdict(s.image)  # a new ImageInfo field must reach KEY.json
    assert json.loads(s.metadata_json()) == s.metadata() and "é".encode() in s.metadata_json()
    assert s.to_wds() == {"__key__": s.key, "jpg": b"\xff", "json": s.metadata_json()}


@pytest.mark.parametrize("data", [np.zeros((4, 5, 3), np.uint8), "\xff", bytearray(b"\xff"), b""])
def test_image_must_be_encoded_non_empty_bytes(data):
    s = Sample(make_key("t", "x.jpg"), ImageInfo("x", 5, 4, "0" * 64, "t"), data, "jpg", [_target()])
    with pytest.raises(FormatError, match="image bytes"):
        validate_sample(s)
