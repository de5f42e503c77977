"""flows/pipeline.py: annotate-and-train end to end on tiny data, under Prefect's test
harness (a temporary server) with a private local Ray; a run stopped mid-way resumes
without redoing finished stages; a finished run started again redoes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from s3_fixtures import s3_bucket, s3_options  # noqa: F401 (fixtures)

from flows.config import EvaluateEngineStage
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
    return {p.name: p.stat().st_mtime_ns for p in (Path(run_dir) / "stages").glob("*.json")}


def test_end_to_end_stop_and_resume(harness, tmp_path, monkeypatch):
    import flows.evaluate
    from flows.pipeline import annotate_and_train

    # the engine scored on the labeled val split, its expressions read back by the run's model
    cfg = tiny_config(tmp_path).model_copy(
        update={"evaluate_engine": EvaluateEngineStage(dataset="synth", split="val", limit=4)}
    )

    # 1. stopped mid-way: evaluation fails after the other stages finished
    def stopped(*a, **k):
        raise RuntimeError("run stopped during evaluation")

    with monkeypatch.context() as m:
        m.setattr(flows.evaluate, "evaluate_split", stopped)
        with pytest.raises(RuntimeError, match="stopped during evaluation"):
            annotate_and_train(config=cfg)
    assert set(_mtimes(cfg.run_dir)) == {"annotate.json", "convert.json", "train.json"}
    import ray

    jobs = ray._private.worker.global_worker.gcs_client.get_all_job_info()  # what the dashboard's Jobs page lists
    assert [j.config.metadata["job_name"].split(": flow run ")[0] for j in jobs.values()] == [
        "annotate-and-train/(no deployment)"
    ]
    before = _mtimes(cfg.run_dir)
    ckpt = Path(cfg.run_dir) / "train" / "latest.pt"
    ckpt_mtime = ckpt.stat().st_mtime_ns

    # 2. started again: only evaluation runs
    result = annotate_and_train(config=cfg)
    after = _mtimes(cfg.run_dir)
    assert {k: after[k] for k in before} == before
    assert ckpt.stat().st_mtime_ns == ckpt_mtime
    assert result["trained"]["step"] == 3
    assert result["annotated"]["written"] == 2
    metrics = json.loads((Path(cfg.run_dir) / "eval" / "synth" / "metrics.json").read_text())
    assert metrics  # one entry per task group
    assert (Path(cfg.run_dir) / "eval" / "synth" / "report.md").exists()
    assert list((Path(cfg.run_dir) / "previews").glob("*.png"))
    engine_eval = json.loads((Path(cfg.run_dir) / "engine-eval" / "synth" / "metrics.json").read_text())
    assert engine_eval["run"]["grounding"] == str(ckpt) and engine_eval["run"]["engine_name"] == "weightfree"
    assert engine_eval["images"]["evaluated"] == 4 and engine_eval["expressions"]["generated"]["n"] > 0
    assert result["engine_eval"]["metrics"]["masks"]["AR@100"] == engine_eval["masks"]["AR@100"]

    # 3. a finished run started again redoes nothing
    final = _mtimes(cfg.run_dir)
    again = annotate_and_train(config=cfg)
    assert _mtimes(cfg.run_dir) == final
    assert again["trained"] == result["trained"]
    _assert_artifacts(metrics)


def _assert_artifacts(metrics: dict) -> None:
    """What a person looks at: artifacts in the Prefect API."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts()}
    assert {
        "counts-synth",
        "counts-auto",
        "eval-synth",
        "files-results-t",
        "loss-train",
        "metrics-synth",
        "overlays-synth",
        "metrics-engine-synth",  # the engine evaluation: its table, report and pictures
        "eval-engine-synth",
        "engine-synth-recall",
        "engine-synth-scores",
        "engine-synth-proposals",
    } <= keys
    with get_client(sync_client=True) as client:
        arts = {a.key: a for a in client.read_artifacts()}
    assert arts["loss-train"].type == "markdown" and "](data:image/png;base64," in arts["loss-train"].data
    assert arts["overlays-synth"].data.count("data:image/png;base64,") == 1
    table = arts["metrics-synth"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert {r["task"] for r in rows} == set(metrics["metrics"]) and all("n" in r for r in rows)
    assert {"counts-synth", "counts-auto", "eval-synth", "files-results-t"} <= keys
    table = arts["metrics-engine-synth"].data
    rows = {r["task"]: r for r in (json.loads(table) if isinstance(table, str) else table)}
    assert set(rows) == {"masks", "images", "expressions generated", "expressions reference"}
    assert {"AR@100", "precision@0.5"} <= set(rows["masks"]) and "hit_rate@0.5" in rows["expressions generated"]
    assert arts["engine-synth-proposals"].data.count("data:image/png;base64,") == 1
    assert "engine-eval/synth/report.md" in arts["files-results-t"].data


def _local_tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else None


# what the pipeline leaves in the bucket (under s3://BUCKET/)
S3_OBJECTS = (
    "data/auto/train/dataset.json",
    "data/synth/train/dataset.json",
    "data/synth/val/dataset.json",
    "runs/t/train/latest.pt",
    "runs/t/train/metrics.jsonl",
    "runs/t/eval/synth/metrics.json",
    "runs/t/eval/synth/report.md",
    "runs/t/eval/synth/overlays.png",
    "runs/t/stages/train.json",
    "runs/t/stages/evaluate.json",
)


def _assert_secret_nowhere(secret: str, fs, objects: list[str], tmp_path) -> None:
    """Not in the bucket's objects, local files, or any Prefect record (flow and task runs,
    their parameters, artifacts, logs)."""
    from prefect.client.orchestration import get_client

    for o in objects:
        assert secret.encode() not in fs.cat_file(o), o
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    with get_client(sync_client=True) as client:
        records = [r.model_dump_json() for r in client.read_flow_runs()]
        records += [a.model_dump_json() for a in client.read_artifacts()]
        records += [r.model_dump_json() for r in client.read_task_runs()]
        records += [r.model_dump_json() for r in client.read_logs()]
    assert len(records) > 10 and not [r for r in records if secret in r]


def test_end_to_end_with_data_and_runs_on_s3(harness, tmp_path, s3_options, monkeypatch):
    """data_root and runs_root in a bucket reached only through the YAML's storage_options (no
    endpoint or credentials in the environment): every stage writes there, a second run redoes
    nothing, nothing lands in local data/runs folders, and the secret key shows up nowhere:
    not in the bucket's objects, local files, Prefect parameters, artifacts or logs."""
    import ray
    from pydantic import Secret

    from flows.paths import PROJECT_ROOT
    from flows.pipeline import annotate_and_train
    from shards import storage

    bucket, options = s3_options
    secret = options["secret"]
    ray.shutdown()  # a Ray started by an earlier test lacks this test's environment
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("UNILSEG_CACHE_DIR", str(tmp_path / "cache"))
    project = {d: _local_tree(PROJECT_ROOT / d) for d in ("data", "runs")}
    cfg = tiny_config(tmp_path).model_copy(
        update={"data_root": f"{bucket}/data", "runs_root": f"{bucket}/runs", "storage_options": Secret(options)}
    )
    assert secret not in repr(cfg) and secret not in cfg.model_dump_json()
    try:
        result = annotate_and_train(config=cfg)
        run = f"{bucket}/runs/t"
        assert str(cfg.run_dir) == run and result["run_dir"] == run
        assert result["trained"] == {**result["trained"], "checkpoint": f"{run}/train/latest.pt", "step": 3}
        assert result["annotated"]["written"] == 2 and result["annotated"]["dataset"] == f"{bucket}/data/auto"
        fs, _ = storage.filesystem(storage.Location(bucket, options))
        objects = sorted(fs.find(bucket.removeprefix("s3://")))
        names = {o.split("/", 1)[1] for o in objects}
        assert set(S3_OBJECTS) <= names, set(S3_OBJECTS) - names
        assert any(n.startswith("runs/t/train/train/checkpoint_") for n in names)  # Ray Train's own state
        assert any(n.startswith("runs/t/previews/") and n.endswith(".png") for n in names)
        markers = {n: fs.info(f"{bucket}/{n}".removeprefix("s3://"))["ETag"] for n in names if "/stages/" in n}
        again = annotate_and_train(config=cfg)  # finished: every stage skipped through its marker on S3
        assert again["trained"] == result["trained"]
        assert {n: fs.info(f"{bucket}/{n}".removeprefix("s3://"))["ETag"] for n in markers} == markers
    finally:
        ray.shutdown()  # its workers carry this test's environment

    # nothing written to local data or runs folders
    assert {d: _local_tree(PROJECT_ROOT / d) for d in ("data", "runs")} == project
    assert _local_tree(tmp_path / "cwd") == []
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()
    _assert_secret_nowhere(secret, fs, objects, tmp_path)
