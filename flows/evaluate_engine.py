"""`evaluate-engine` flow: an engine config scored against a labeled split (annotation_engine.quality).

Its artifacts: the headline table (masks, images, expressions), the report, the recall curve,
the score-against-IoU plot and the sheet of best and worst proposals.
"""

from __future__ import annotations

from typing import Any, Optional

from prefect import flow, get_run_logger, task

from annotation_engine.quality.run import evaluate_engine as score_engine
from flows.artifacts import publish_image, publish_metrics, publish_report
from flows.config import EvaluateEngineStage
from shards import storage
from shards.storage import Location

PICTURES = {
    "recall.png": ("Recall against IoU threshold", "Share of ground-truth masks found at each IoU threshold."),
    "scores.png": ("Engine scores against IoU", "Each proposal's score against its best IoU with the ground truth."),
    "proposals.png": ("Best and worst proposals", "Top: the best matched proposals; bottom: the worst (report.md)."),
}


@task(name="evaluate-engine-split")
def evaluate_engine_task(
    engine: str | dict,
    data: str | Location,
    out: str | Location,
    grounding: str | Location | None,
    settings: dict[str, Any],
) -> dict[str, Any]:
    return score_engine(engine, data, out, grounding=grounding, progress=False, **settings)


def headline_rows(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The figures the UI table shows, one row per family (publish_metrics' shape)."""
    m, im, ex = metrics["masks"], metrics["images"], metrics["expressions"]
    rows = {
        "masks": {"n": m["n_images"], **{k: m[k] for k in ("AR@1", "AR@10", "AR@100", "recall@0.5", "precision@0.5")}},
        "images": {"n": im["evaluated"], "quarantined": im["quarantined"], "no_proposals": im["no_proposals"]},
    }
    if ex.get("method") == "grounding":
        for side in ("generated", "reference"):
            rows[f"expressions {side}"] = {"n": ex[side]["n"], **{k: ex[side][k] for k in ("hit_rate@0.5", "mean_iou")}}
    else:
        rows["expressions minilm"] = {"n": ex["similarity"]["n"], "cosine mean": ex["similarity"]["mean"]}
    return rows


@flow(name="evaluate-engine", log_prints=True)
def evaluate_engine(
    engine: str | dict,
    data: str | Location,
    out: str | Location,
    stage: EvaluateEngineStage,
    grounding: Optional[str | Location] = None,
    ray_address: Optional[str] = None,
) -> dict[str, Any]:
    """Scores ENGINE on DATA's split (stage.split): OUT gets report.md, metrics.json, the
    pictures, proposals.json and ground_truth.json; the UI gets the table and pictures.

    Args:
        engine: a preset name or an engine YAML (what `unilseg annotate --engine` takes).
        data: the labeled dataset dir.
        out: the report dir.
        stage: split, limit, actors, ... (flows.config.EvaluateEngineStage).
        grounding: a UniLSeg checkpoint that reads the generated expressions back, or None.
        ray_address: the Ray cluster.
    """
    log = get_run_logger()
    name = storage.name(data)
    settings = {**stage.settings(), "ray_address": ray_address}
    metrics = evaluate_engine_task(engine, data, out, grounding, settings)
    publish_metrics(f"engine-{name}", headline_rows(metrics))
    publish_report(f"engine-{name}", storage.join(out, "report.md"))
    for file, (title, caption) in PICTURES.items():
        if storage.isfile(storage.join(out, file)):
            publish_image(f"engine-{name}-{file.removesuffix('.png')}", storage.join(out, file), title, caption)
    m = metrics["masks"]
    log.info(
        "engine %s on %s/%s: AR@100 %.3f, recall@0.5 %.3f, precision@0.5 %.3f (%d images, %d quarantined)",
        metrics["run"]["engine_name"],
        name,
        stage.split,
        m["AR@100"],
        m["recall@0.5"],
        m["precision@0.5"],
        metrics["images"]["evaluated"],
        metrics["images"]["quarantined"],
    )
    return {"report_dir": str(out), "metrics": metrics}
