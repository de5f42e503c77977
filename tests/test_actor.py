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

    monkeypatch.setattr(worker.engine, "annotate", boom)
    ok, (kind, reason) = worker.annotate_one(encode(photo("rocket", 64)))
    assert not ok and kind == "engine_error" and "RuntimeError: model exploded" in reason


def test_pool_needs_an_actor():
    with pytest.raises(ValueError, match="actors"):
        EnginePool({}, actors=0)
