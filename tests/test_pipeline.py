"""flows/pipeline.py: annotate-and-train end to end on tiny data, under Prefect's test
harness (a temporary server) with a private local Ray; a run stopped mid-way resumes
without redoing finished stages; a finished run started again redoes nothing."""

from __future__ import annotations

import json

import pytest

from tests.flow_fixtures import tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
    import ray

    ray.shutdown()


def _mtimes(run_dir):
    return {p.name: p.stat().st_mtime_ns for p in (run_dir / "stages").glob("*.json")}


def test_end_to_end_stop_and_resume(harness, tmp_path, monkeypatch):
    import flows.evaluate
    from flows.pipeline import annotate_and_train

    cfg = tiny_config(tmp_path)

    # 1. stopped mid-way: evaluation fails after the other stages finished
    def stopped(*a, **k):
        raise RuntimeError("run stopped during evaluation")

    with monkeypatch.context() as m:
        m.setattr(flows.evaluate, "evaluate_split", stopped)
        with pytest.raises(RuntimeError, match="stopped during evaluation"):
            annotate_and_train(config=cfg)
    assert set(_mtimes(cfg.run_dir)) == {"annotate.json", "convert.json", "train.json"}
    before = _mtimes(cfg.run_dir)
    ckpt = cfg.run_dir / "train" / "latest.pt"
    ckpt_mtime = ckpt.stat().st_mtime_ns

    # 2. started again: only evaluation runs
    result = annotate_and_train(config=cfg)
    after = _mtimes(cfg.run_dir)
    assert {k: after[k] for k in before} == before
    assert ckpt.stat().st_mtime_ns == ckpt_mtime
    assert result["trained"]["step"] == 3
    assert result["annotated"]["written"] == 2
    metrics = json.loads((cfg.run_dir / "eval" / "synth" / "metrics.json").read_text())
    assert metrics  # one entry per task group
    assert (cfg.run_dir / "eval" / "synth" / "report.md").exists()
    assert list((cfg.run_dir / "previews").glob("*.png"))

    # 3. a finished run started again redoes nothing
    final = _mtimes(cfg.run_dir)
    again = annotate_and_train(config=cfg)
    assert _mtimes(cfg.run_dir) == final
    assert again["trained"] == result["trained"]

    # what a person looks at: artifacts in the Prefect API
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts()}
    assert {"counts-synth", "counts-auto", "eval-synth", "files-results-t", "loss-train", "metrics-synth",
            "overlays-synth"} <= keys
    with get_client(sync_client=True) as client:
        arts = {a.key: a for a in client.read_artifacts()}
    assert arts["loss-train"].type == "markdown" and "](data:image/png;base64," in arts["loss-train"].data
    assert arts["overlays-synth"].data.count("data:image/png;base64,") == 1
    table = arts["metrics-synth"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert {r["task"] for r in rows} == set(metrics["metrics"]) and all("n" in r for r in rows)
