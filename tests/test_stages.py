"""flows/stages.py: done-markers skip finished stages and only those."""

from __future__ import annotations

import json

from s3_fixtures import s3_bucket, s3_options  # noqa: F401 (fixtures)

from flows.stages import fingerprint, finished, recorded, run_stage
from shards import storage


def _stage(tmp_path, inputs, calls, name="s"):
    out = tmp_path / "out.txt"

    def work():
        calls.append(1)
        out.write_text("x")
        return {"out": str(out)}

    return run_stage(tmp_path / "run", name, inputs, work, outputs=lambda r: [r["out"]], log=lambda m: None)


def test_second_run_skips(tmp_path):
    calls = []
    assert _stage(tmp_path, {"a": 1}, calls) == _stage(tmp_path, {"a": 1}, calls)
    assert len(calls) == 1


def test_changed_inputs_rerun(tmp_path):
    calls = []
    _stage(tmp_path, {"a": 1}, calls)
    _stage(tmp_path, {"a": 2}, calls)
    assert len(calls) == 2


def test_lost_output_reruns(tmp_path):
    calls = []
    _stage(tmp_path, {"a": 1}, calls)
    (tmp_path / "out.txt").unlink()
    _stage(tmp_path, {"a": 1}, calls)
    assert len(calls) == 2


def test_recorded_is_the_last_result_while_its_outputs_exist(tmp_path):
    """What the nightly reannotate uses to find the run's trained model: the stage's last
    result whatever its inputs were, and nothing once an output it listed is gone."""
    assert recorded(tmp_path / "run", "s") is None
    result = _stage(tmp_path, {"a": 1}, [])
    assert recorded(tmp_path / "run", "s") == result and finished(tmp_path / "run", "s", {"a": 2}) is None
    (tmp_path / "out.txt").unlink()
    assert recorded(tmp_path / "run", "s") is None


def test_failed_stage_leaves_no_marker(tmp_path):
    def boom():
        raise RuntimeError("stopped")

    try:
        run_stage(tmp_path, "s", {}, boom, outputs=lambda r: [], log=lambda m: None)
    except RuntimeError:
        pass
    assert finished(tmp_path, "s", {}) is None


def test_fingerprint_is_order_independent():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_markers_and_outputs_at_urls_with_storage_options(s3_options):
    """RUN and outputs on S3 reached only through a Location's options; they are never written
    (the marker holds URLs, and the outputs it lists are checked with the options of RUN)."""
    bucket, options = s3_options
    root = storage.Location(bucket, options)
    run, out = root / "runs" / "r", storage.join(root, "data", "out.txt")
    calls = []

    def work():
        calls.append(1)
        storage.write_bytes(out, b"x")
        return {"out": out}

    def stage(inputs):
        return run_stage(run, "s", inputs, work, outputs=lambda r: [r["out"]], log=lambda m: None)

    assert stage({"a": 1}) == {"out": out} and stage({"a": 1}) == {"out": str(out)} and len(calls) == 1
    marker = storage.read_bytes(storage.join(run, "stages", "s.json")).decode()
    assert json.loads(marker)["outputs"] == [str(out)] and options["secret"] not in marker
    assert json.loads(marker)["result"] == {"out": str(out)}
    storage.remove(out)
    stage({"a": 1})  # a lost output on S3 reruns the stage
    stage({"a": 2})
    assert len(calls) == 3 and finished(run, "s", {"a": 2}) == {"out": str(out)}
