"""One image through the engine: annotate_one, and the child process that tells a poison image
(its child dies) from an innocent one."""

import numpy as np
import pytest
from annotation_engine.image_task import CRASHED, annotate_isolated, annotate_one
from annotation_engine.engine import Engine
from conftest import encode
from crash_generator import poison_image
from engine_fixtures import photo

ENGINE = {"base": "weightfree", "max_side": 96, "generator": {"params": {"n_segments": 80}}}
CRASHY = {**ENGINE, "generator": {"name": "crash_generator:CrashOnGrey", "params": {"n_segments": 80}}}


@pytest.fixture(scope="module")
def engine():
    return Engine(ENGINE)


def test_annotate_one(engine, monkeypatch):
    good = encode(photo("coffee", 96), "JPEG")
    ok, result = annotate_one(engine, good)
    assert ok and result["ext"] == "jpg" and result["data"] == good and result["targets"]
    assert (result["width"], result["height"]) == (96, 64)
    assert annotate_one(engine, b"") == (False, ("bad_input", "empty file (0 bytes)"))
    assert annotate_one(engine, encode(np.full((64, 64, 3), 128, np.uint8)))[1][0] == "no_targets"

    def boom(rgb):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(engine, "annotate", boom)
    ok, (kind, reason) = annotate_one(engine, encode(photo("rocket", 64)))
    assert not ok and kind == "engine_error" and "RuntimeError: model exploded" in reason


def test_sandbox_tells_poison_from_innocent():
    ok, result = annotate_isolated(CRASHY, encode(photo("coffee", 96)))
    assert ok and result["targets"]
    ok, (kind, reason) = annotate_isolated(CRASHY, encode(poison_image()))
    assert not ok and kind == CRASHED and "exit code 3" in reason
