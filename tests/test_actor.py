"""EngineWorker in-process: the same callable the Ray actors run, (ok, result) per image."""

import pytest

from annotation_engine.actor import EnginePool, EngineWorker
from conftest import encode
from engine_fixtures import photo

ENGINE = {"base": "weightfree", "max_side": 96, "generator": {"params": {"n_segments": 80}}}


@pytest.fixture(scope="module")
def worker():
    return EngineWorker(ENGINE)


def test_annotates_a_batch_in_order(worker):
    good = encode(photo("coffee", 96), "JPEG")
    results = worker.annotate([good, b"", b"GIF89a-not-really"])
    assert [ok for ok, _ in results] == [True, False, False]
    ok, result = results[0]
    assert result["ext"] == "jpg" and result["data"] == good and result["targets"]
    assert (result["width"], result["height"]) == (96, 64)
    assert results[1][1][0] == "bad_input" and "0 bytes" in results[1][1][1]
    assert worker.version() == worker.engine.version and worker.pid() > 0 and worker.peak_rss_mb() > 10


def test_engine_errors_are_reported_not_raised(worker, monkeypatch):
    def boom(rgb):
        raise RuntimeError("model exploded")

    def batch_boom(images):
        raise RuntimeError("batch exploded")

    monkeypatch.setattr(worker.engine, "annotate", boom)
    monkeypatch.setattr(worker.engine, "annotate_batch", batch_boom)
    ok, (kind, reason) = worker.annotate_one(encode(photo("rocket", 64)))
    assert not ok and kind == "engine_error" and "RuntimeError: model exploded" in reason


def test_a_failing_batch_is_retried_image_by_image(worker, monkeypatch):
    """Images go to Engine.annotate_batch together; when it raises, only the culprit fails."""
    calls = []
    real = worker.engine.annotate

    def batch_boom(images):
        calls.append(len(images))
        raise RuntimeError("one image is bad")

    def one(rgb):
        if rgb.shape[1] == 64:  # the rocket below is the culprit
            raise ValueError("bad image")
        return real(rgb)

    monkeypatch.setattr(worker.engine, "annotate_batch", batch_boom)
    monkeypatch.setattr(worker.engine, "annotate", one)
    results = worker.annotate([encode(photo("coffee", 96), "JPEG"), encode(photo("rocket", 64)), b""])
    assert calls == [2]  # the two decodable images, together
    assert [ok for ok, _ in results] == [True, False, False]
    assert results[1][1] == ("engine_error", "ValueError: bad image") and results[2][1][0] == "bad_input"


def test_pool_needs_an_actor():
    with pytest.raises(ValueError, match="actors"):
        EnginePool({}, actors=0)
