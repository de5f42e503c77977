"""The parent flow `annotate-and-train`: annotate new images, convert the labeled sets,
train, evaluate; each stage's outputs are passed on as paths. Also `reannotate`, the
annotation stage alone, for the cron-scheduled deployment.

Each stage leaves a done-marker in RUN/stages/ (flows/stages.py): a run stopped mid-way and
started again skips the stages that finished and resumes the one that did not.

`data_root` and `runs_root` may be fsspec URLs: every location below is a shards.storage
Location built by the config (`cfg.run_dir`, `cfg.dataset_dir`, `cfg.locate` for what a stage
recorded), carrying the config's storage options to each storage call; Prefect records it,
markers and artifacts hold it, as its URL only.

    python -m flows.pipeline flows/configs/demo.yaml    # one run in this process, no server needed

Run that way, the config is validated first (a bad field is one line and exit 1), and the
Prefect API is a temporary server that dies with this process, even on SIGKILL
(flows/local_server.py), unless PREFECT_API_URL names one.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Optional

from prefect import flow, get_run_logger

from annotation_engine.engine_config import DEFAULT_ENGINE, engine_version, load_engine_config
from annotation_engine.sources import images_fingerprint
from common.errors import UniLSegError
from common.ray_runtime import dashboard_url, ensure_ray
from flows.annotate import annotate
from flows.artifacts import publish_files
from flows.config import RUN_MODEL, PipelineConfig
from flows.convert import convert
from flows.evaluate import evaluate
from flows.evaluate_engine import evaluate_engine
from flows.local_server import local_server
from flows.paths import resolve
from flows.review import review
from flows.stages import recorded, run_stage
from flows.train import train
from shards import storage
from shards.manifest import read_dataset_json

DEFAULT_CONFIG = "flows/configs/default.yaml"  # the `default` and `nightly` deployments' parameters
DEMO_CONFIG = "flows/configs/demo.yaml"  # the demo's parameters (`make demo`)


def load_config(config: Optional[PipelineConfig], config_path: Optional[str]) -> PipelineConfig:
    """The run's parameters: a YAML file when given (relative to the project root), else `config`,
    else the defaults.

    Raises:
        ConfigError: the file does not validate (one line naming it and every bad field).
    """
    if config_path:
        return PipelineConfig.from_yaml(resolve(config_path))
    return config or PipelineConfig()


def ray_job_name() -> str:
    """This flow run as the Ray dashboard's Jobs page names it: flow/deployment and run name."""
    from prefect.runtime import deployment, flow_run

    return f"{flow_run.flow_name}/{deployment.name or '(no deployment)'}: flow run {flow_run.name}"


def _connect_ray(cfg: PipelineConfig, log) -> None:
    address = ensure_ray(cfg.ray_address, job_name=ray_job_name())
    log.info("Ray cluster %s; dashboard: %s", address, dashboard_url() or "not running")


def _annotate_stage(cfg: PipelineConfig, log) -> Optional[dict[str, Any]]:
    if cfg.annotate is None:
        return None
    a = cfg.annotate
    out = cfg.dataset_dir(a.name)
    inputs = {"annotate": a.model_dump(), "images": images_fingerprint(resolve(a.images)), "out": str(out)}
    preview_dir = cfg.run_dir / "previews"
    return run_stage(
        cfg.run_dir,
        "annotate",
        inputs,
        lambda: annotate(stage=a, out=out, ray_address=cfg.ray_address, preview_dir=preview_dir),
        outputs=lambda r: [storage.join(r["dataset"], r["split"], "dataset.json")],
        log=log.info,
    )


def _convert_stage(cfg: PipelineConfig, log) -> dict[str, Any]:
    if not cfg.labeled:
        return {}
    inputs = {"labeled": [s.model_dump() for s in cfg.labeled], "data_root": str(cfg.data_location)}
    return run_stage(
        cfg.run_dir,
        "convert",
        inputs,
        lambda: convert(sets=cfg.labeled, data_root=cfg.data_location, preview_dir=cfg.run_dir / "previews"),
        outputs=lambda r: [storage.join(d["dataset"], s, "dataset.json") for d in r.values() for s in d["splits"]],
        log=log.info,
    )


def _review_stage(cfg: PipelineConfig, annotated: Optional[dict], log) -> Optional[dict[str, Any]]:
    """The annotated split's least certain targets into the review project (cfg.review)."""
    if cfg.review is None or annotated is None:
        return None
    split = cfg.locate(annotated["dataset"]) / annotated["split"]
    inputs = {"review": cfg.review.model_dump(), "split": read_dataset_json(split).get("shards")}
    return run_stage(
        cfg.run_dir, "review", inputs, lambda: review(split=split, stage=cfg.review), lambda r: [], log.info
    )


def _annotated_data(cfg: PipelineConfig, annotated: dict, log) -> tuple[storage.Location, float]:
    """The annotated split and its weight; its reviewed version (review-import) when there is one."""
    reviewed = cfg.reviewed_split()
    if reviewed is not None and read_dataset_json(reviewed).get("status") == "complete":
        log.info(
            "train: the reviewed version %s (weight %s) in place of the annotated split", reviewed, cfg.review.weight
        )
        return reviewed, cfg.review.weight
    return cfg.locate(annotated["dataset"]) / annotated["split"], cfg.annotate.weight


def _train_stage(cfg: PipelineConfig, annotated: Optional[dict], converted: dict, log) -> dict[str, Any]:
    data: list[tuple[storage.Location, float]] = []  # the stages' results hold URLs: located again
    if annotated is not None:
        data.append(_annotated_data(cfg, annotated, log))
    for d in converted.values():
        if "train" in d["splits"]:
            data.append((cfg.locate(d["dataset"]) / "train", d["weight"]))
    if not data:
        raise ValueError("nothing to train on: configure `annotate` or a labeled set with a train split")
    out = cfg.run_dir / "train"
    # a split's dataset.json lists its shards with their checksums: new data retrains
    inputs = {
        "train": cfg.train.model_dump(),
        "data": [(str(p), w, read_dataset_json(p).get("shards")) for p, w in data],
    }
    return run_stage(
        cfg.run_dir,
        "train",
        inputs,
        lambda: train(data=data, out=out, stage=cfg.train, ray_address=cfg.ray_address),
        outputs=lambda r: [r["checkpoint"]],
        log=log.info,
    )


def _evaluate_stage(cfg: PipelineConfig, trained: dict, converted: dict, log) -> dict[str, Any]:
    e = cfg.evaluate
    names = e.datasets if e.datasets is not None else [n for n, d in converted.items() if e.split in d["splits"]]
    datasets = [cfg.dataset_dir(n) for n in names]
    if not datasets:
        log.info("evaluate: no dataset has a %s split; skipped", e.split)
        return {}
    ckpt = cfg.locate(trained["checkpoint"])
    inputs = {
        "evaluate": e.model_dump(),
        "datasets": [str(d) for d in datasets],
        "checkpoint": str(ckpt),
        "checkpoint_stat": storage.file_version(ckpt),
    }
    return run_stage(
        cfg.run_dir,
        "evaluate",
        inputs,
        lambda: evaluate(checkpoint=ckpt, datasets=datasets, out=cfg.run_dir / "eval", stage=e),
        outputs=lambda r: [storage.join(v["report_dir"], "metrics.json") for v in r.values()],
        log=log.info,
    )


def _evaluate_engine_stage(cfg: PipelineConfig, run_checkpoint: Optional[str], log) -> dict[str, Any]:
    """The engine scored on a labeled split (cfg.evaluate_engine); ``run_checkpoint`` is the
    run's trained model, which reads the expressions back when the section's grounding is `run`
    (without one they are compared by MiniLM similarity)."""
    e = cfg.evaluate_engine
    grounding = run_checkpoint if e.grounding == RUN_MODEL else e.grounding
    if e.grounding == RUN_MODEL and run_checkpoint is None:
        log.info("evaluate_engine: no trained model in %s yet: expressions scored by MiniLM similarity", cfg.run_dir)
    grounding = cfg.locate(grounding) if grounding else None
    engine = e.engine or (cfg.annotate.engine if cfg.annotate is not None else DEFAULT_ENGINE)
    engine = resolve(engine) if str(engine).endswith((".yaml", ".yml")) else engine
    data = cfg.dataset_dir(e.dataset)
    inputs = {
        "evaluate_engine": e.model_dump(),
        "engine": engine_version(load_engine_config(engine)),  # what the engine computes, not its file's name
        "split": read_dataset_json(data / e.split).get("shards"),
        "grounding": None if grounding is None else [str(grounding), storage.file_version(grounding)],
    }
    out = cfg.run_dir / "engine-eval" / e.dataset
    return run_stage(
        cfg.run_dir,
        "evaluate_engine",
        inputs,
        lambda: evaluate_engine(engine, data, out, e, grounding=grounding, ray_address=cfg.ray_address),
        outputs=lambda r: [storage.join(r["report_dir"], "metrics.json")],
        log=log.info,
    )


@flow(name="annotate-and-train", log_prints=True)
def annotate_and_train(config: Optional[PipelineConfig] = None, config_path: Optional[str] = None) -> dict[str, Any]:
    """Annotate new images, convert the labeled sets, train, evaluate.

    Args:
        config: the parameters (default: PipelineConfig's defaults).
        config_path: a YAML file of the same fields, read at run time (edits apply to the next
            run without redeploying); wins over `config`.
    """
    log = get_run_logger()
    cfg = load_config(config, config_path)
    log.info("run %s -> %s", cfg.run_name, cfg.run_dir)
    _connect_ray(cfg, log)
    annotated = _annotate_stage(cfg, log)
    reviewing = _review_stage(cfg, annotated, log)
    converted = _convert_stage(cfg, log)
    e = cfg.evaluate_engine
    after_training = e is not None and e.grounding == RUN_MODEL  # the run's model reads the expressions
    engine_eval = _evaluate_engine_stage(cfg, None, log) if e is not None and not after_training else None
    trained = _train_stage(cfg, annotated, converted, log)
    evaluated = _evaluate_stage(cfg, trained, converted, log)
    if after_training:
        engine_eval = _evaluate_engine_stage(cfg, trained["checkpoint"], log)
    files = {
        "run": str(cfg.run_dir),
        "checkpoint": trained["checkpoint"],
        **{f"report {n}": storage.join(v["report_dir"], "report.md") for n, v in evaluated.items()},
    }
    if engine_eval:
        files["engine report"] = storage.join(engine_eval["report_dir"], "report.md")
    publish_files(f"results-{cfg.run_name}", files, f"Results of run {cfg.run_name}")
    return {
        "run_dir": str(cfg.run_dir),
        "annotated": annotated,
        "converted": converted,
        "trained": trained,
        "evaluated": evaluated,
        "engine_eval": engine_eval,
        "review": reviewing,
    }


@flow(name="reannotate", log_prints=True)
def reannotate(config_path: str = DEFAULT_CONFIG) -> dict[str, Any]:
    """The annotation stage alone: new images are annotated, and every image again when the
    engine config changed (its engine version differs); nothing else is redone."""
    log = get_run_logger()
    cfg = load_config(None, config_path)
    if cfg.annotate is None:
        log.info("%s has no `annotate` section: nothing to do", config_path)
        return {}
    _connect_ray(cfg, log)
    result = annotate(
        stage=cfg.annotate,
        out=cfg.dataset_dir(cfg.annotate.name),
        ray_address=cfg.ray_address,
        preview_dir=cfg.run_dir / "previews",
    )
    if cfg.evaluate_engine is not None:  # an engine change shows its effect on quality
        trained = recorded(cfg.run_dir, "train")
        result["engine_eval"] = _evaluate_engine_stage(cfg, trained and trained["checkpoint"], log)
    return result


def main(argv: list[str]) -> None:
    """`python -m flows.pipeline [CONFIG.yaml]`: one run in this process."""
    config_path = argv[0] if argv else None
    with contextlib.ExitStack() as stack:
        try:
            load_config(None, config_path)  # a bad config fails here, before a server or any stage starts
            stack.enter_context(local_server())  # so does a PREFECT_API_URL where nothing answers
        except UniLSegError as e:
            sys.exit(f"Error: {e}")
        annotate_and_train(config_path=config_path)


if __name__ == "__main__":
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    main(sys.argv[1:])
