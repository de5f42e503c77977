"""One image through the engine: annotate_one, and the child process that tells a poison image
(its child dies) from an innocent one."""

import numpy as np
import pytest
from conftest import encode
from crash_generator import poison_image
from engine_fixtures import photo

from annotation_engine.engine import Engine
from annotation_engine.image_task import CRASHED, annotate_isolated, annotate_one

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


def test_a_failing_batch_is_retried_image_by_image(engine, monkeypatch):
    """Images go to Engine.annotate_batch together; when it raises, only the culprit fails."""
    from annotation_engine.image_task import annotate_batch

    calls = []
    real = engine.annotate

    def batch_boom(images):
        calls.append(len(images))
        raise RuntimeError("one image is bad")

    def one(rgb):
        if rgb.shape[1] == 64:  # the rocket below is the culprit
            raise ValueError("bad image")
        return real(rgb)

    monkeypatch.setattr(engine, "annotate_batch", batch_boom)
    monkeypatch.setattr(engine, "annotate", one)
    results = annotate_batch(engine, [encode(photo("coffee", 96), "JPEG"), encode(photo("rocket", 64)), b""])
    assert calls == [2]  # the two decodable images, together
    assert [ok for ok, _ in results] == [True, False, False]
    assert results[1][1] == ("engine_error", "ValueError: bad image") and results[2][1][0] == "bad_input"


def test_batch_equals_one_by_one(engine):
    from annotation_engine.image_task import annotate_batch

    datas = [encode(photo(n, 96)) for n in ("coffee", "chelsea")]
    batched = annotate_batch(engine, datas)
    single = [annotate_one(engine, d) for d in datas]
    assert [r[1]["targets"] for r in batched] == [r[1]["targets"] for r in single]
