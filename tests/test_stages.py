"""flows/stages.py: done-markers skip finished stages and only those."""

from __future__ import annotations

from flows.stages import finished, fingerprint, run_stage


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
