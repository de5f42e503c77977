"""The engine stage as a Ray Data UDF: one result row per image (sample or quarantine record),
the ledger told how each went."""

import json

import numpy as np
import ray
from conftest import encode
from engine_fixtures import photo

from annotation_engine.actor import RESULT_COLUMNS, EngineActor
from annotation_engine.ledger import Ledger
from shards.format import parse_metadata

ENGINE = {"base": "weightfree", "max_side": 96, "generator": {"params": {"n_segments": 80}}}


def test_engine_actor_rows(ray_cluster, tmp_path):
    ledger = ray.remote(Ledger).remote(str(tmp_path), [])
    udf = EngineActor(ENGINE, ledger)
    good = encode(photo("chelsea", 96))
    batch = {
        "path": np.array(["/a.png", "/b.png", "/c.png"], object),
        "sha256": np.array(["s" * 64, "t" * 64, ""], object),
        "data": np.array([good, b"", b""], object),
        "problem": np.array(["", "", "cannot read: Permission denied"], object),
    }
    out = udf(batch)
    assert set(out) == set(RESULT_COLUMNS) and out["kind"] == ["sample", "bad_input", "unreadable"]
    info, targets = parse_metadata(json.loads(out["meta"][0]))
    assert out["key"][0] == f"{'s' * 24}-{udf.engine.version[:12]}" and info.id == "/a.png" and targets
    assert out["image"][0] == good and out["reason"][2] == "cannot read: Permission denied"
    progress = ray.get(ledger.progress.remote())
    assert progress["annotated"] == 1 and progress["quarantined"] == 2


def test_engine_actor_takes_the_niceness_it_is_given(ray_cluster, tmp_path):
    """Ray starts its workers at niceness 15; the actor moves to the niceness the driver hands it
    (the caller's, by default). 17: raising it needs no privilege, so the test runs anywhere."""
    import os

    ledger = ray.remote(Ledger).remote(str(tmp_path), [])
    actor = ray.remote(EngineActor).remote(ENGINE, ledger, niceness=17)
    assert ray.get(actor.__ray_call__.remote(lambda self: os.getpriority(os.PRIO_PROCESS, 0))) == 17
    ray.kill(actor)
